//! Bad input gets a clear error or warning naming the file, never a panic, and the rest of
//! a folder still loads. One test per case of the foundation issue, on ../shared/data/odd.

mod common;

use std::path::{Path, PathBuf};

use hepaview::io::dicom::{self, no_progress, DicomError};
use hepaview::io::nifti::{self, NiftiError};

fn odd() -> Option<PathBuf> {
    common::shared_data().map(|d| d.join("odd"))
}

fn copy_into(dir: &Path, files: &[PathBuf]) {
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

fn series_ok(odd: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(odd.join("broken/series_ok")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn truncated_dicom_is_a_clear_error() {
    let Some(odd) = odd() else { return };
    // uncompressed: caught from the file size while scanning, before any decoding
    let path = odd.join("broken/truncated_pixeldata.dcm");
    let err = dicom::scan(&path, &no_progress).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("truncated_pixeldata.dcm") && msg.contains("PixelData missing or truncated"), "{msg}");
    // in a folder, the truncated slice is set aside by name and the rest loads
    let dir = tempfile::tempdir().unwrap();
    copy_into(dir.path(), &series_ok(&odd)[..4]);
    copy_into(dir.path(), std::slice::from_ref(&path));
    let scan = dicom::scan(dir.path(), &no_progress).unwrap();
    // (it belongs to another series, which has nothing left once it is set aside)
    assert_eq!(scan.all_series().count(), 1);
    assert!(
        scan.warnings.iter().any(|w| w.path.ends_with("truncated_pixeldata.dcm") && w.what.contains("truncated")),
        "{:?}",
        scan.warnings
    );
    assert!(dicom::load_series(scan.all_series().next().unwrap(), &no_progress).is_ok());
    // the same for a cut-short JPEG 2000 stream that dicom-rs itself accepts
    let path = odd.join("pydicom/emri_small_jpeg_2k_lossless_too_short.dcm");
    let scan = dicom::scan(&path, &no_progress).unwrap();
    let err = dicom::load_series(scan.all_series().next().unwrap(), &no_progress).unwrap_err();
    assert!(matches!(err, DicomError::PixelDataTruncated { .. }), "{err}");
}

#[test]
fn dicom_without_pixel_data_is_a_clear_error() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut obj = dicom_object::open_file(odd.join("broken/single_ok.dcm")).unwrap();
    obj.remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
    let path = dir.path().join("no_pixels.dcm");
    obj.write_to_file(&path).unwrap();
    let err = dicom::scan(&path, &no_progress).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no_pixels.dcm") && msg.contains("PixelData missing"), "{msg}");
}

#[test]
fn rtstruct_and_sr_in_a_folder_are_skipped_by_name() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_into(dir.path(), &series_ok(&odd));
    copy_into(dir.path(), &[odd.join("pydicom/rtstruct.dcm"), odd.join("pydicom/test-SR.dcm")]);
    let scan = dicom::scan(dir.path(), &no_progress).unwrap();
    assert_eq!(scan.all_series().count(), 1);
    let s = scan.all_series().next().unwrap();
    assert_eq!(s.geometry.shape, [5, 64, 64]);
    let text: Vec<String> = scan.warnings.iter().map(|w| w.to_string()).collect();
    assert!(text.iter().any(|w| w.contains("rtstruct.dcm") && w.contains("RT Structure Set")), "{text:?}");
    assert!(text.iter().any(|w| w.contains("test-SR.dcm") && w.contains("Structured Report")), "{text:?}");
    assert!(dicom::load_series(s, &no_progress).is_ok());
}

#[test]
fn two_studies_in_one_folder_stay_apart() {
    let Some(odd) = odd() else { return };
    let scan = dicom::scan(&odd.join("broken/two_studies"), &no_progress).unwrap();
    assert_eq!(scan.studies.len(), 2);
    let names: Vec<&str> = scan.studies.iter().map(|s| s.patient_name.as_str()).collect();
    assert_ne!(names[0], names[1]);
    for s in scan.all_series() {
        assert_eq!(s.frames.len(), 3, "never stacked together");
    }
}

#[test]
fn slices_of_another_size_are_set_aside_by_name() {
    let Some(odd) = odd() else { return };
    let scan = dicom::scan(&odd.join("broken/series_mixed_size"), &no_progress).unwrap();
    let s = scan.all_series().next().unwrap();
    assert_eq!(s.geometry.shape[1..], [64, 64]);
    assert!(s.set_aside.iter().any(|p| p.ends_with("slice3.dcm")));
    assert!(s.warnings.iter().any(|w| w.path.ends_with("slice3.dcm") && w.what.contains("64×48")), "{:?}", s.warnings);
    // the gap the odd slice leaves is reported and filled on the regular grid
    let (vol, _) = dicom::load_series(s, &no_progress).unwrap();
    assert_eq!(vol.geometry.shape, [5, 64, 64]);
    assert_eq!(vol.geometry.spacing_mm[0], 2.5);
}

#[test]
fn gaps_and_duplicates_are_reported_and_resampled() {
    let Some(odd) = odd() else { return };
    let scan = dicom::scan(&odd.join("broken/series_gap"), &no_progress).unwrap();
    let s = scan.all_series().next().unwrap();
    assert!(s.resampled);
    assert!(s.warnings.iter().any(|w| w.what.contains("missing")), "{:?}", s.warnings);
    let (vol, _) = dicom::load_series(s, &no_progress).unwrap();
    assert_eq!(vol.geometry.shape[0], 5);
    // the interpolated middle slice lies between its neighbours
    let mid = vol.data.index_axis(ndarray::Axis(0), 2);
    let (a, b) = (vol.data.index_axis(ndarray::Axis(0), 1), vol.data.index_axis(ndarray::Axis(0), 3));
    ndarray::Zip::from(&mid).and(&a).and(&b).for_each(|&m, &x, &y| assert!(m >= x.min(y) && m <= x.max(y)));

    let scan = dicom::scan(&odd.join("broken/series_duplicate_position"), &no_progress).unwrap();
    let s = scan.all_series().next().unwrap();
    assert!(s.warnings.iter().any(|w| w.what.contains("duplicate slice position")), "{:?}", s.warnings);
    assert!(s.set_aside.len() == 1);
}

#[test]
fn empty_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = dicom::scan(dir.path(), &no_progress).unwrap_err();
    assert!(matches!(err, DicomError::NoImages { files: 0, .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn non_dicom_files_are_skipped_and_named() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_into(dir.path(), &series_ok(&odd));
    let junk =
        ["empty.dcm", "not_dicom.dcm", "bad_magic.dcm", "short_preamble.dcm"].map(|f| odd.join("broken").join(f));
    copy_into(dir.path(), &junk);
    let scan = dicom::scan(dir.path(), &no_progress).unwrap();
    assert_eq!(scan.all_series().next().unwrap().frames.len(), 5);
    for f in ["empty.dcm", "not_dicom.dcm", "bad_magic.dcm", "short_preamble.dcm"] {
        assert!(scan.warnings.iter().any(|w| w.path.ends_with(f)), "{f}: {:?}", scan.warnings);
    }
    let err = dicom::scan(&odd.join("broken/bad_magic.dcm"), &no_progress).unwrap_err();
    assert!(err.to_string().contains("DICX"), "{err}");
    let err = dicom::scan(&odd.join("broken/empty.dcm"), &no_progress).unwrap_err();
    assert!(matches!(err, DicomError::Empty { .. }), "{err}");
}

#[test]
fn dataset_without_file_meta_still_loads() {
    let Some(odd) = odd() else { return };
    let (a, _, _) = dicom::load_folder(&odd.join("broken/no_preamble_no_meta.dcm"), None).unwrap();
    let (b, _, _) = dicom::load_folder(&odd.join("broken/single_ok.dcm"), None).unwrap();
    assert_eq!(a.data, b.data);
}

#[test]
fn undecodable_transfer_syntaxes_are_named() {
    let Some(odd) = odd() else { return };
    for (f, name) in [("JPGExtended.dcm", "JPEG Extended"), ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS")] {
        let scan = dicom::scan(&odd.join("pydicom").join(f), &no_progress).unwrap();
        let err = dicom::load_series(scan.all_series().next().unwrap(), &no_progress).unwrap_err();
        assert!(matches!(err, DicomError::Decode { .. }), "{err}");
        assert!(err.to_string().contains(name) && err.to_string().contains(f), "{err}");
    }
}

#[test]
fn every_odd_file_loads_or_fails_clearly() {
    // No panics across the whole odd set; decodable ones match their siblings.
    let Some(odd) = odd() else { return };
    let mut loaded = 0;
    for sub in ["pydicom", "broken"] {
        for e in std::fs::read_dir(odd.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if let Ok(scan) = dicom::scan(&p, &no_progress) {
                for s in scan.all_series() {
                    if dicom::load_series(s, &no_progress).is_ok() {
                        loaded += 1;
                    }
                }
            }
        }
    }
    assert!(loaded >= 15, "only {loaded} odd series loaded");
    // the same MR image in five encodings decodes to the same values
    let base = dicom::load_folder(&odd.join("pydicom/MR_small_implicit.dcm"), None).unwrap().0;
    for f in ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"] {
        let v = dicom::load_folder(&odd.join("pydicom").join(f), None).unwrap().0;
        assert_eq!(v.data, base.data, "{f}");
    }
    // enhanced CT: two frames placed from the per-frame functional groups
    let (ect, s, _) = dicom::load_folder(&odd.join("pydicom/eCT_Supplemental.dcm"), None).unwrap();
    assert_eq!(ect.geometry.shape, [2, 512, 512]);
    assert!(s.frames.iter().all(|f| f.placed));
}

#[test]
fn truncated_nifti_is_a_clear_error() {
    let Some(odd) = odd() else { return };
    let p = odd.join("broken/truncated.nii.gz");
    let err = nifti::read_ct(&p).unwrap_err();
    assert!(matches!(err, NiftiError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated.nii.gz"));
}

#[test]
fn nifti_with_zero_scale_is_a_clear_error() {
    let Some(odd) = odd() else { return };
    let p = odd.join("broken/zero_scale.nii.gz");
    let err = nifti::read_ct(&p).unwrap_err();
    assert!(matches!(err, NiftiError::Degenerate { .. }), "{err}");
    assert!(err.to_string().contains("zero_scale.nii.gz"));
}

#[test]
fn good_nifti_matches_its_dicom_twin() {
    let Some(odd) = odd() else { return };
    let (n, w) = nifti::read_ct(&odd.join("broken/ok_64x64x5.nii.gz")).unwrap();
    assert!(w.is_empty());
    let (d, _, _) = dicom::load_folder(&odd.join("broken/series_ok"), None).unwrap();
    assert!(n.geometry.max_corner_distance_mm(&d.geometry) < 0.01, "{:?} vs {:?}", n.geometry, d.geometry);
    assert_eq!(n.data, d.data);
}
