#!/usr/bin/env bash
# The outputs a refactor must leave unchanged (issue 26), written by one binary into DIR:
#   bash scripts/same-outputs.sh BINARY DIR; then python3 scripts/compare-outputs.py DIR_BEFORE DIR_AFTER
# (demo pair, segment, register, cluster, report, mesh, compare, outline; needs ../shared).
set -u
S=$(cd "$(dirname "$0")/../../shared/data" && pwd)
B=$(realpath "$1"); O=$2
# never over an earlier run
mkdir "$O" || { echo "$O exists or cannot be made; give a new folder" >&2; exit 1; }
cd "$O"
run() { echo "== $*" >> log.txt; "$@" >> log.txt 2>&1; echo "rc $?" >> log.txt; }
run $B demo --out base --small
run $B demo --out follow --follow-up --small
run $B segment $S/hcc048-pv --out seg_hcc048.nii.gz
run $B segment base/dicom --out seg_base.nii.gz
run $B register $S/triphase-hcc048/dicom --out reg_tri --levels 4:20,2:10
run $B register base/dicom --out reg_base
run $B cluster base/dicom --mask base/labels.nii.gz --out clusters.nii.gz
run $B report base/dicom --mask base/labels.nii.gz --out report
run $B mesh base/labels.nii.gz --out mesh --format both
run $B compare --baseline base/dicom --followup follow/dicom --baseline-mask base/labels.nii.gz --followup-mask follow/labels.nii.gz --out compare
run $B outline base/dicom --at=-95,10,-210 --out outline.nii.gz
