#!/usr/bin/env python3
"""Peer for `cargo bench --bench affine`: SimpleITK's affine registration of a follow-up CT
onto a baseline (Mattes mutual information, 50 bins, 3 levels shrink 4/2/1 with smoothing
2/1/0 voxels, regular-step gradient descent, 10 % random sampling, physical-shift scales,
centre-of-geometry start), timed for the registration call only, 2 threads.

Usage: affine_sitk.py BASELINE.nii.gz FOLLOWUP.nii.gz   (prints one JSON line: seconds and
the 12 parameters + centre, so the bench can score it against the truth)."""
import json
import sys
import time

import SimpleITK as sitk


def main():
    fixed = sitk.Cast(sitk.ReadImage(sys.argv[1]), sitk.sitkFloat32)
    moving = sitk.Cast(sitk.ReadImage(sys.argv[2]), sitk.sitkFloat32)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.10, seed=0)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    t = time.perf_counter()
    out = reg.Execute(fixed, moving)
    secs = time.perf_counter() - t
    # the composite's last transform is the affine; ITK maps fixed points to moving points
    tx = out.GetNthTransform(0) if out.GetName() == "CompositeTransform" else out
    aff = sitk.AffineTransform(tx)
    print(json.dumps({
        "seconds": secs,
        "matrix": list(aff.GetMatrix()),
        "translation": list(aff.GetTranslation()),
        "center": list(aff.GetCenter()),
        "metric": reg.GetMetricValue(),
        "iterations": reg.GetOptimizerIteration(),
        "stop": reg.GetOptimizerStopConditionDescription(),
    }))


if __name__ == "__main__":
    main()
