# Malformed inputs of issue 25's bounded-memory classes, made from copies of hcc048-pv into
# /tmp/bad (data preparation for docs/benchmarks.md's "Bad input: time and memory"; the
# tests build their own cases in Rust, tests/bad_input.rs). Needs pydicom, nibabel, numpy.
# Run from the repository root: python3 scripts/make_bad_inputs.py
import pydicom, glob, os, shutil, numpy as np, nibabel as nib
src=sorted(glob.glob(os.path.join(os.path.dirname(__file__), '../../shared/data/hcc048-pv/*')))
def series(name, edit):
    d=f'/tmp/bad/{name}'; shutil.rmtree(d,ignore_errors=True); os.makedirs(d)
    ds=[pydicom.dcmread(f) for f in src]
    ds.sort(key=lambda x: float(x.ImagePositionPatient[2]))
    edit(ds)
    for i,x in enumerate(ds): x.save_as(f'{d}/{i:03d}.dcm')
def far(ds):   # one slice 1000 mm away, one 0.01 mm from its neighbour
    ds[0].ImagePositionPatient[2]=float(ds[1].ImagePositionPatient[2])-0.01
    ds[-1].ImagePositionPatient[2]=float(ds[-1].ImagePositionPatient[2])+1000
series('gap1000', far)
def huge(ds):
    ds[5].ImagePositionPatient[2]=1e15
series('z1e15', huge)
series('dupstack', lambda ds: None)
# duplicate reconstruction: write a second copy shifted by 0.01 mm
d='/tmp/bad/dupstack'
for i,f in enumerate(sorted(glob.glob(d+'/*.dcm'))):
    x=pydicom.dcmread(f); x.ImagePositionPatient[2]=float(x.ImagePositionPatient[2])+0.01
    x.SOPInstanceUID=x.SOPInstanceUID+'.9'; x.save_as(f'{d}/b{i:03d}.dcm')
# NumberOfFrames = 1e9 on one single-frame file
os.makedirs('/tmp/bad/frames',exist_ok=True)
x=pydicom.dcmread(src[0]); x.NumberOfFrames=1000000000; x.save_as('/tmp/bad/frames/one.dcm')
# 300 MB NIfTI of zeros (uncompressed)
img=nib.Nifti1Image(np.zeros((512,512,600),np.int16),np.diag([0.7,0.7,2.5,1])); nib.save(img,'/tmp/bad/zeros300.nii')
print('ok', os.path.getsize('/tmp/bad/zeros300.nii')/1e6,'MB')
# NumberOfFrames = 2e7 (the slow case)
x=pydicom.dcmread(src[0]); x.NumberOfFrames=20000000; x.save_as('/tmp/bad/frames/two_e7.dcm')
