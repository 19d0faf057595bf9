# Semi-automatic liver reference used for training labels and the crlm-1006 truth
# (models/MODEL_CARD.md): per slice, the liver-intensity band (smoothed HU within +-45 of the
# liver's median) joined to Hepaview's own liver mask, away from gas, holes filled, small
# pieces dropped. The cases' hand corrections (cuts at the heart and stomach) are listed in
# the model card; every slice was then looked at. Usage: CT.nii.gz HEPAVIEW_MASK.nii.gz OUT.nii.gz
import numpy as np, nibabel as nib, sys
from scipy import ndimage as ndi
ctp,netp,outp=sys.argv[1:4]
im=nib.load(ctp); ct=np.asarray(im.dataobj).astype(np.float32)
net=np.asarray(nib.load(netp).dataobj)>0
sm=ndi.gaussian_filter(ct,(1.0,1.0,0.0))
v=sm[ndi.binary_erosion(net,iterations=3)]; med=np.median(v); print('med',med)
band=(sm>med-45)&(sm<med+45)
def disk(r):
    yy,xx=np.mgrid[-r:r+1,-r:r+1]; return (yy**2+xx**2)<=r*r
out=np.zeros(net.shape,bool); gas=ct<-300
for k in range(net.shape[2]):
    nl=net[:,:,k]
    if nl.sum()==0: continue
    b=ndi.binary_opening(band[:,:,k],structure=disk(2))&ndi.binary_dilation(nl,structure=disk(12))
    b&=~ndi.binary_dilation(gas[:,:,k],structure=disk(6))
    lab,n=ndi.label(b); core=ndi.binary_erosion(nl,iterations=4)
    keep=np.zeros_like(b)
    for i in range(1,n+1):
        c=lab==i
        if (c&core).sum()>50: keep|=c
    keep=ndi.binary_fill_holes(ndi.binary_closing(keep,structure=disk(2)))
    lab,n=ndi.label(keep)
    for i in range(1,n+1):
        if (lab==i).sum()<1500: keep[lab==i]=False
    out[:,:,k]=keep
nib.save(nib.Nifti1Image(out.astype(np.uint8),im.affine),outp)
print('vol',out.sum()*np.prod(np.abs(np.diag(im.affine)[:3]))/1000)
