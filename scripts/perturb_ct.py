#!/usr/bin/env python3
"""Scanner-like variations of a CT (NIfTI, HU), for measuring how the segmentation holds up
on scanners and protocols it has not seen (the model card's "Robustness" section).

    python3 scripts/perturb_ct.py tests/data/crlm-1006/ct.nii.gz OUT_DIR

writes OUT_DIR/{noise10,noise20,off+25,off-25,gain0.8,gain1.2,blur}.nii.gz:
- noise10 / noise20: white noise of 10 / 20 HU SD in the body (thinner slices, lower dose);
- off+25 / off-25: the body's HU shifted by ±25 (calibration, contrast timing);
- gain0.8 / gain1.2: the body's HU scaled (contrast between tissues 20 % lower / higher);
- blur: a Gaussian of 0.8 pixel SD in-plane (a softer reconstruction kernel).
The body is what is above -500 HU; air is left as it is. Seeded, so the files are the same
on every run. Data preparation only (numpy, scipy, nibabel); the product does not use it.
"""
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as nd


def main(src: str, out: str) -> None:
    img = nib.load(src)
    ct = img.get_fdata().astype(np.float32)
    rng = np.random.default_rng(1)
    body = ct > -500
    Path(out).mkdir(parents=True, exist_ok=True)

    def save(name, a):
        h = img.header.copy()
        h.set_data_dtype(np.int16)
        data = np.round(a).clip(-1024, 3071).astype(np.int16)
        nib.save(nib.Nifti1Image(data, img.affine, h), f"{out}/{name}.nii.gz")

    save("noise10", ct + rng.normal(0, 10, ct.shape) * body)
    save("noise20", ct + rng.normal(0, 20, ct.shape) * body)
    save("off+25", np.where(body, ct + 25, ct))
    save("off-25", np.where(body, ct - 25, ct))
    save("gain0.8", np.where(body, 0.8 * ct, ct))
    save("gain1.2", np.where(body, 1.2 * ct, ct))
    save("blur", nd.gaussian_filter(ct, (0.8, 0.8, 0)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
