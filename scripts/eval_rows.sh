#!/usr/bin/env bash
# The segmentation's evaluation rows of the model card, with one command:
#
#   [EVAL_DIR=DIR] bash scripts/eval_rows.sh [extra `hepaview segment` arguments]
#
# - crlm-1006 (tests/data), its four crops (1 column, 1 row, 2 of each, 3 columns off the
#   low edge: the same voxels at the same world positions) and seven scanner-like variations
#   (scripts/perturb_ct.py): the "twelve crlm-1006 rows";
# - the full-size phantom, seeds 7 and 11, with three phases and portal venous alone;
# - crlm-1004 (tests/data; no lesion seen: its tumour mL are false), hcc048-pv and
#   triphase-hcc048 (no tumour reference: tumour mL only);
# - the implanted cases (examples/implanted_cases, 6 fixed + 14 drawn lesions, each in the
#   arterial, portal venous and delayed look);
# - the small implanted cases (examples/implanted_small: 10 cases of three lesions 10–30 mm
#   across anywhere in the liver, its surface included, in the three looks; each case also
#   holds crlm-1006's own four metastases, which the counts include).
# Each row: `NAME tum ML liver DICE tumour DICE FOUND of N F false, ML`; then a summary per
# group. The inputs are made once in EVAL_DIR (default /tmp/hepaview-eval), never beside
# the data; the release binary is built first. Needs python3 with numpy, scipy and nibabel
# (data preparation only). About 5 minutes on 2 cores once built.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${EVAL_DIR:-/tmp/hepaview-eval}
EXTRA=("$@")
SHARED=../shared/data
CT=tests/data/crlm-1006/ct.nii.gz
TRUTH=tests/data/crlm-1006/truth.nii.gz
cargo build --release --quiet
BIN=target/release/hepaview
mkdir -p "$WORK"
if [ ! -f "$WORK/pert/blur.nii.gz" ]; then
  python3 scripts/perturb_ct.py "$CT" "$WORK/pert" >/dev/null
fi
if [ ! -f "$WORK/pert/crop3x-truth.nii.gz" ]; then
  python3 - "$CT" "$TRUTH" "$WORK/pert" <<'EOF'
import sys
import nibabel as nib
import numpy as np
ct, truth, out = sys.argv[1:4]
for name, rows, cols in [("crop1x", 0, 1), ("crop1y", 1, 0), ("crop2xy", 2, 2), ("crop3x", 0, 3)]:
    for src, suffix in [(ct, ""), (truth, "-truth")]:
        img = nib.load(src)
        a = np.asanyarray(img.dataobj)[cols:, rows:, :]
        aff = img.affine.copy()
        aff[:3, 3] = img.affine[:3, :3] @ np.array([cols, rows, 0]) + img.affine[:3, 3]
        hdr = img.header.copy()
        nib.save(nib.Nifti1Image(a, aff, hdr), f"{out}/{name}{suffix}.nii.gz")
EOF
fi
if [ ! -d "$WORK/implanted" ]; then
  cargo run --release --quiet --example implanted_cases -- "$WORK/implanted" 14 >/dev/null
fi
if [ ! -d "$WORK/small" ]; then
  cargo run --release --quiet --example implanted_small -- "$WORK/small" 10 >"$WORK/small-lesions.txt"
fi
row() {
  local name=$1
  shift
  local out="$WORK/out-$$.nii.gz"
  rm -f "$out"
  local r
  r=$("$BIN" segment "$@" "${EXTRA[@]}" --out "$out" 2>&1 || true)
  rm -f "$out"
  echo "$name $(echo "$r" | grep -E 'Dice vs|Tumours vs|Segmented' |
    sed -E 's/.*liver \(1\+2\) ([0-9.]+), tumour \(2\) /liver \1 tumour /; s/Tumours vs truth: //; s/ of 10 mm.*in all\);//; s/ lesion\(s\),/,/; s/Segmented in [0-9.]+ s: liver [0-9.]+ mL, tumour ([0-9.]+ mL).*/tum \1/' |
    tr '\n' ' ')"
}
{
  row crlm "$CT" --truth "$TRUTH"
  for n in crop1x crop1y crop2xy crop3x; do row "$n" "$WORK/pert/$n.nii.gz" --truth "$WORK/pert/$n-truth.nii.gz"; done
  for n in noise10 noise20 off+25 off-25 gain0.8 gain1.2 blur; do row "$n" "$WORK/pert/$n.nii.gz" --truth "$TRUTH"; done
  # no lesion seen here (tests/data/crlm-1004/README.md): all its tumour is false
  row crlm-1004 tests/data/crlm-1004/ct.nii.gz
  row phantom7 --phantom-seed 7
  row phantom7-pv --phantom-seed 7 --pv-only
  row phantom11 --phantom-seed 11
  row phantom11-pv --phantom-seed 11 --pv-only
  if [ -d "$SHARED" ]; then
    row hcc048-pv "$SHARED/hcc048-pv"
    row triphase-hcc048 "$SHARED/triphase-hcc048/dicom"
  fi
  for d in "$WORK"/implanted/*/; do row "implanted/$(basename "$d")" "$d/ct.nii.gz" --truth "$d/truth.nii.gz"; done
  for d in "$WORK"/small/*/; do row "small/$(basename "$d")" "$d/ct.nii.gz" --truth "$d/truth.nii.gz"; done
} | tee "$WORK/rows.txt"
python3 - "$WORK/rows.txt" <<'EOF'
import re, sys
groups = {}
for line in open(sys.argv[1]):
    name = line.split()[0]
    m = re.search(r"tumour ([0-9.]+) (\d+) of (\d+) (\d+) false", line)
    if not m:
        continue
    group = ("phantom" if name.startswith("phantom") else
             "implanted, " + name.split("-")[-2] + " look" if name.startswith("implanted/") else
             "implanted small, " + name.split("-")[-1] + " look" if name.startswith("small/") else
             "crlm-1006, twelve versions")
    groups.setdefault(group, []).append((float(m[1]), int(m[2]), int(m[3]), int(m[4])))
for g, v in groups.items():
    print(f"{g}: {len(v)} studies, mean tumour Dice {sum(x[0] for x in v) / len(v):.3f}, "
          f"found {sum(x[1] for x in v)} of {sum(x[2] for x in v)}, false lesions {sum(x[3] for x in v)}")
EOF
