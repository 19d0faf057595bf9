# The HCC048 training label of run E (models/MODEL_CARD.md): the first weights' mask of
# hcc048-pv with slices 68-88 redone from the liver-intensity band left of a line placed by
# eye (i < 250 from slice 72), joined to the slice below, so the heart is out and the dome in.
# Case-specific data preparation, kept for provenance; paths as used in that session.
import numpy as np, nibabel as nib
from scipy import ndimage as ndi
im=nib.load('/tmp/exp/hcc_ct.nii.gz'); ct=np.asarray(im.dataobj).astype(np.float32)
lab=np.asarray(nib.load('hcc_ship.nii.gz').dataobj)>0
sm=ndi.gaussian_filter(ct,(1.0,1.0,0.0))
med=np.median(sm[ndi.binary_erosion(lab,iterations=3)]); print('med',med)
band=(sm>med-40)&(sm<med+40)
def disk(r):
    yy,xx=np.mgrid[-r:r+1,-r:r+1]; return (yy**2+xx**2)<=r*r
out=lab.copy()
for k in range(68,89):
    b=ndi.binary_opening(band[:,:,k],structure=disk(4))
    if k>=72: b[250:,:]=False
    b=ndi.binary_opening(b,structure=disk(3))
    l,n=ndi.label(b)
    prev=ndi.binary_dilation(out[:,:,k-1],structure=disk(3))
    keep=np.zeros_like(b)
    for c in range(1,n+1):
        C=l==c; ii=np.argwhere(C)[:,0]
        if C.sum()>150 and ii.mean()<250 and (C&prev).sum()>0.2*C.sum(): keep|=C
    keep=ndi.binary_fill_holes(ndi.binary_closing(keep,structure=disk(2)))
    # below 70 keep the existing label but drop anything on the patient's left beyond the heart line
    print(k,'old %.1f new %.1f mL'%(lab[:,:,k].sum()*0.703125**2*2.5/1000, keep.sum()*0.703125**2*2.5/1000))
    out[:,:,k]=keep
nib.save(nib.Nifti1Image((out*5).astype(np.uint8),im.affine),'lmhcc2.nii.gz')
nib.save(nib.Nifti1Image(out.astype(np.uint8),im.affine),'hcc_fixed.nii.gz')
print('total %.0f mL'%(out.sum()*0.703125**2*2.5/1000))
