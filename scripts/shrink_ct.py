"""Crop a CT (NIfTI) to a box and average each 2 x 2 block of pixels in-plane, to keep a
real study small enough for tests/data (how tests/data/crlm-1006 and crlm-1004 were made).

    python3 scripts/shrink_ct.py IN.nii.gz OUT.nii.gz I0 I1 J0 J1 K0 K1

I, J are the file's first two axes (columns, rows), K its slices; upper bounds exclusive.
The affine follows the crop and the block (a block's centre is half a pixel in)."""
import sys

import nibabel as nib
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
i0, i1, j0, j1, k0, k1 = map(int, sys.argv[3:9])
img = nib.load(src)
a = np.asarray(img.dataobj).astype(np.float64)[i0:i1, j0:j1, k0:k1]
ni, nj = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
a = a[:ni, :nj].reshape(ni // 2, 2, nj // 2, 2, -1).mean(axis=(1, 3))
aff = img.affine.copy()
aff[:3, 3] = img.affine[:3, :3] @ np.array([i0 + 0.5, j0 + 0.5, k0]) + img.affine[:3, 3]
aff[:3, 0] *= 2
aff[:3, 1] *= 2
out = nib.Nifti1Image(np.round(a).astype(np.int16), aff)
out.set_qform(aff, code=1)
out.set_sform(aff, code=1)
nib.save(out, dst)
print(dst, out.shape, np.round(np.abs(np.diag(aff)[:3]), 3))
