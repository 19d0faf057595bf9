//! NIfTI against ../shared/data/ts-abdomen (TotalSegmentator's example; sform only, qform 0)
//! and round trips through our writer. Reference geometry is SimpleITK's reading of the
//! same file (LPS): origin (177.956, −11.319, 94.302), direction diag(−1, −1, 1), 3 mm.
#![allow(clippy::needless_range_loop)]

mod common;

use hepaview::io::nifti;

#[test]
fn ts_abdomen_reads_like_simpleitk() {
    let Some(data) = common::shared_data() else { return };
    let dir = data.join("ts-abdomen");
    let (ct, w) = nifti::read_ct(&dir.join("ct.nii.gz")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let g = &ct.geometry;
    assert_eq!(g.shape, [30, 101, 122]);
    assert_eq!(g.spacing_mm, [3.0, 3.0, 3.0]);
    let want = [177.95632934570312, -11.319000244140625, 94.3017578125];
    for a in 0..3 {
        assert!((g.origin_mm[a] - want[a]).abs() < 1e-4, "{:?}", g.origin_mm);
    }
    assert_eq!(g.direction, [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]);
    assert_eq!(*ct.data.iter().min().unwrap(), -1100);
    assert_eq!(*ct.data.iter().max().unwrap(), 1207);

    let (liver, _) = nifti::read_mask(&dir.join("liver.nii.gz")).unwrap();
    assert_eq!(liver.geometry, ct.geometry);
    let n: usize = liver.data.iter().filter(|&&v| v == 1).count();
    assert_eq!(n, 38_634, "README: 38,634 liver voxels");
    // mean HU inside the liver (README: 45.3)
    let sum: f64 = ct.data.iter().zip(liver.data.iter()).filter(|(_, &m)| m == 1).map(|(&h, _)| h as f64).sum();
    assert!((sum / n as f64 - 45.3).abs() < 0.05, "mean liver HU {}", sum / n as f64);
    // the liver touches the first and last slice (k = 0 and 29)
    assert!(liver.data.index_axis(ndarray::Axis(0), 0).iter().any(|&v| v == 1));
    assert!(liver.data.index_axis(ndarray::Axis(0), 29).iter().any(|&v| v == 1));
}

#[test]
fn ts_abdomen_round_trips_through_our_writer() {
    let Some(data) = common::shared_data() else { return };
    let dir = data.join("ts-abdomen");
    let tmp = tempfile::tempdir().unwrap();
    let (ct, _) = nifti::read_ct(&dir.join("ct.nii.gz")).unwrap();
    let (seg, _) = nifti::read_mask(&dir.join("seg_total_multilabel.nii.gz")).unwrap();
    let p = tmp.path().join("ct.nii.gz");
    let q = tmp.path().join("seg.nii");
    nifti::write_volume(&ct, &p).unwrap();
    nifti::write_volume(&seg, &q).unwrap();
    let (ct2, _) = nifti::read_ct(&p).unwrap();
    let (seg2, _) = nifti::read_mask(&q).unwrap();
    assert_eq!(ct2.data, ct.data);
    assert_eq!(seg2.data, seg.data);
    assert!(ct2.geometry.max_corner_distance_mm(&ct.geometry) < 1e-4);
    assert!(seg2.geometry.max_corner_distance_mm(&seg.geometry) < 1e-4);
}

#[test]
fn mask_written_over_a_dicom_series_reads_back_aligned_in_nibabel_terms() {
    // A mask saved over a DICOM series must carry the series' grid: the RAS sform of the
    // file equals diag(−1, −1, 1) × the DICOM (LPS) affine, which is what ITK-SNAP and
    // 3D Slicer read.
    let Some(data) = common::shared_data() else { return };
    let (ct, _, _) = hepaview::io::dicom::load_folder(&data.join("odd/broken/series_ok"), None).unwrap();
    let mask = hepaview::Mask::filled(ct.geometry.clone(), 1);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("mask.nii.gz");
    nifti::write_volume(&mask, &p).unwrap();
    let h = nifti::NiftiHeader::from_file(&p).unwrap();
    let g = &ct.geometry;
    // DICOM series_ok: origin (-112.5, -22.5, -291) LPS, 0.703125 mm pixels, 2.5 mm slices
    assert_eq!(h.sform_code, 1);
    assert_eq!(h.qform_code, 1);
    assert!((h.srow_x[3] as f64 - (-g.origin_mm[0])).abs() < 1e-4);
    assert!((h.srow_y[3] as f64 - (-g.origin_mm[1])).abs() < 1e-4);
    assert!((h.srow_z[3] as f64 - g.origin_mm[2]).abs() < 1e-4);
    assert!((h.srow_x[0] as f64 + 0.703125).abs() < 1e-6);
    assert!((h.srow_y[1] as f64 + 0.703125).abs() < 1e-6);
    assert!((h.srow_z[2] as f64 - 2.5).abs() < 1e-6);
    assert_eq!(h.intent_code, 1002, "labels are marked as a label map");
}
