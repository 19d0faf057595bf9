#!/usr/bin/env python3
"""SimpleITK's Demons filters on the Hepaview demo phantom, by the recipe of
../../../shared/anchors/registration_sitk.py (imported, not copied: same pyramid, clamping,
histogram matching, smoothing and scoring). Only the loader differs: `hepaview demo` writes
one folder per phase (dicom/arterial, dicom/portal_venous, dicom/delayed), while the shared
script expects the series of triphase-hcc048 in one folder, named by words of their
descriptions.

    python3 registration_sitk_phantom.py --data DEMO_DIR [--variants fastsym] [--sigma 4]

DEMO_DIR must also hold body_mask.nii.gz (the bench writes it from anatomy.nii.gz > 0).
"""
import importlib.util
import os
import sys

import SimpleITK as sitk

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared", "anchors", "registration_sitk.py")

spec = importlib.util.spec_from_file_location("registration_sitk", SHARED)
anchor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor)


def read_phase_folders(folder):
    r = sitk.ImageSeriesReader()
    out = {}
    for name in sorted(os.listdir(folder)):
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            continue
        ids = r.GetGDCMSeriesIDs(sub)
        if len(ids) != 1:
            raise SystemExit(f"{sub}: expected one series, found {len(ids)}")
        r.SetFileNames(r.GetGDCMSeriesFileNames(sub, ids[0]))
        out[name] = sitk.Cast(r.Execute(), sitk.sitkFloat32)
    return out


if __name__ == "__main__":
    anchor.read_phases = read_phase_folders
    anchor.main()
