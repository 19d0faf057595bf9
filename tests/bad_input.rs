//! Bad input gets a clear error or warning naming the file, never a panic, and the rest of
//! a folder still loads. One test per case of the foundation issue, on ../shared/data/odd.

mod common;

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
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

// ---- Issue 25, round two: damaged headers made from copies of `broken/series_ok` ----

/// A copy of `broken/series_ok` (5 slices, 64 × 64) in a new folder, with `damage` applied
/// to the slices it names (by their index in file-name order).
fn damaged_series(odd: &Path, damage: &dyn Fn(usize, &mut dicom_object::DefaultDicomObject)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in series_ok(odd).iter().enumerate() {
        let mut obj = dicom_object::open_file(f).unwrap();
        damage(i, &mut obj);
        obj.write_to_file(dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

fn put_ds(obj: &mut dicom_object::DefaultDicomObject, tag: dicom_core::Tag, values: &[f64]) {
    let text: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    obj.put(DataElement::new(tag, VR::DS, PrimitiveValue::from(text.join("\\"))));
}

fn ipp(obj: &dicom_object::DefaultDicomObject) -> Vec<f64> {
    obj.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap()
}

fn only_series(dir: &Path) -> (dicom::DicomScan, dicom::SeriesInfo) {
    let scan = dicom::scan(dir, &no_progress).unwrap();
    let s = scan.all_series().next().expect("a series").clone();
    (scan, s)
}

fn all_warnings(scan: &dicom::DicomScan) -> String {
    scan.warnings
        .iter()
        .chain(scan.all_series().flat_map(|s| s.warnings.iter()))
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_frame_count_the_bytes_cannot_hold_is_refused_at_once() {
    let Some(odd) = odd() else { return };
    for n in ["1000000000", "20000000"] {
        let dir = damaged_series(&odd, &|i, o| {
            if i == 2 {
                o.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(n)));
            }
        });
        let (scan, s) = only_series(dir.path());
        let text = all_warnings(&scan);
        assert!(text.contains("NumberOfFrames says") && text.contains("cannot hold"), "{text}");
        assert_eq!(s.frames.len(), 4, "the other slices still load");
        assert!(dicom::load_series(&s, &no_progress).is_ok());
    }
}

#[test]
fn a_slice_without_a_usable_position_is_set_aside_not_stacked_with_a_tilt() {
    let Some(odd) = odd() else { return };
    for bad in [Some(f64::NAN), Some(1e15), Some(1e300), None] {
        let dir = damaged_series(&odd, &|i, o| {
            if i == 1 {
                match bad {
                    Some(z) => {
                        let mut p = ipp(o);
                        p[2] = z;
                        put_ds(o, tags::IMAGE_POSITION_PATIENT, &p);
                    }
                    None => {
                        o.remove_element(tags::IMAGE_POSITION_PATIENT);
                    }
                }
            }
        });
        let (scan, s) = only_series(dir.path());
        let text = all_warnings(&scan);
        assert!(text.contains("no usable ImagePositionPatient"), "{bad:?}: {text}");
        assert!(!text.contains("gantry tilt"), "{bad:?}: an invented tilt: {text}");
        assert_eq!(s.frames.len(), 4, "{bad:?}");
        assert!(s.geometry.shape[0] <= 5, "{bad:?}: {:?}", s.geometry.shape);
        assert_eq!(s.geometry.direction[2], [0.0, 0.0, 1.0], "{bad:?}");
    }
}

#[test]
fn slices_a_hair_apart_or_a_metre_away_never_make_a_huge_volume() {
    let Some(odd) = odd() else { return };
    // z0, z0 + 0.01, z0 + 1000 (and the rest where they were)
    let dir = damaged_series(&odd, &|i, o| {
        let mut p = ipp(o);
        let z0 = p[2] - 2.5 * i as f64; // the series' steps are regular
        match i {
            1 => p[2] = z0 + 0.01,
            2 => p[2] = z0 + 1000.0,
            _ => {}
        }
        put_ds(o, tags::IMAGE_POSITION_PATIENT, &p);
    });
    match dicom::scan(dir.path(), &no_progress) {
        Ok(scan) => {
            for s in scan.all_series() {
                assert!(
                    s.geometry.shape[0] <= 2 * s.frames.len() + 1,
                    "{:?} from {} slices",
                    s.geometry.shape,
                    s.frames.len()
                );
            }
            let text = all_warnings(&scan);
            assert!(text.contains("left out") && text.contains("would need"), "{text}");
        }
        // the only series refused: the error says why
        Err(e) => assert!(e.to_string().contains("left out") && e.to_string().contains("would need"), "{e}"),
    }
}

#[test]
fn two_reconstructions_a_hair_apart_in_one_series_keep_one() {
    let Some(odd) = odd() else { return };
    let src = damaged_series(&odd, &|_, _| {});
    // a second reconstruction: every slice again, 0.01 mm further along, new instance UIDs
    for (i, f) in series_ok(&odd).iter().enumerate() {
        let mut o = dicom_object::open_file(f).unwrap();
        let mut p = ipp(&o);
        p[2] += 0.01;
        put_ds(&mut o, tags::IMAGE_POSITION_PATIENT, &p);
        let uid = format!("1.2.826.0.1.3680043.8.498.77.{i}");
        o.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(uid.as_str())));
        o.meta_mut().media_storage_sop_instance_uid = uid;
        o.write_to_file(src.path().join(format!("recon2_{i}.dcm"))).unwrap();
    }
    let (scan, s) = only_series(src.path());
    assert_eq!(s.frames.len(), 5);
    assert_eq!(s.geometry.shape[0], 5);
    let text = all_warnings(&scan);
    assert!(text.contains("two reconstructions"), "{text}");
}

/// A slice shifted within its plane (one damaged ImagePositionPatient) lies on no grid the
/// others make: stacked, it was silently resampled into the volume, and a shifted last
/// slice made the whole series pass for a gantry tilt. It is set aside by name.
#[test]
fn a_slice_shifted_within_its_plane_is_set_aside_by_name() {
    let Some(odd) = odd() else { return };
    let (_, good) = only_series(damaged_series(&odd, &|_, _| {}).path());
    let z: Vec<f64> = series_ok(&odd).iter().map(|f| ipp(&dicom_object::open_file(f).unwrap())[2]).collect();
    let top = (0..z.len()).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap();
    let middle =
        (0..z.len()).find(|&i| i != top && z.iter().any(|&o| o > z[i]) && z.iter().any(|&o| o < z[i])).unwrap();
    for shifted in [middle, top] {
        let dir = damaged_series(&odd, &|i, o| {
            if i == shifted {
                let mut p = ipp(o);
                p[0] += 5.0;
                put_ds(o, tags::IMAGE_POSITION_PATIENT, &p);
            }
        });
        let (scan, s) = only_series(dir.path());
        let name = series_ok(&odd)[shifted].file_name().unwrap().to_string_lossy().to_string();
        let text = all_warnings(&scan);
        assert_eq!(s.frames.len(), 4, "{text}");
        assert!(s.set_aside.iter().any(|p| p.ends_with(&name)), "{:?}", s.set_aside);
        assert!(text.contains("off the line") && text.contains(&name), "{text}");
        assert!(!text.contains("gantry tilt"), "{text}");
        assert_eq!(s.geometry.direction, good.geometry.direction);
    }
}

/// Thick slices reconstructed closely overlapping (5 mm every 0.8 mm) are one series, not
/// two reconstructions a hair apart: every slice is kept.
#[test]
fn thick_slices_reconstructed_overlapping_are_all_kept() {
    let Some(odd) = odd() else { return };
    let z: Vec<f64> = series_ok(&odd).iter().map(|f| ipp(&dicom_object::open_file(f).unwrap())[2]).collect();
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[a].total_cmp(&z[b]));
    let dir = damaged_series(&odd, &|i, o| {
        let rank = order.iter().position(|&j| j == i).unwrap();
        let mut p = ipp(o);
        p[2] = z[order[0]] + 0.8 * rank as f64;
        put_ds(o, tags::IMAGE_POSITION_PATIENT, &p);
        put_ds(o, tags::SLICE_THICKNESS, &[5.0]);
    });
    let (scan, s) = only_series(dir.path());
    let text = all_warnings(&scan);
    assert_eq!(s.frames.len(), 5, "{text}");
    assert!((s.geometry.spacing_mm[0] - 0.8).abs() < 1e-6, "{:?}", s.geometry.spacing_mm);
    assert!(!text.contains("two reconstructions"), "{text}");
}

/// A SEG whose NumberOfFrames claims billions of one-pixel frames passed the size check
/// (rows × columns × frames at its limit) and had a frame table of that length reserved
/// (hundreds of GB: an abort). The count is checked against the frames the file describes.
#[test]
fn a_seg_claiming_more_frames_than_it_describes_is_refused() {
    let Some(data) = common::shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.dcm");
    let mut o = dicom_object::open_file(data.join("dcmqi-liver/liver.dcm")).unwrap();
    for (tag, v) in [(tags::NUMBER_OF_FRAMES, "4000000000"), (tags::ROWS, "1"), (tags::COLUMNS, "1")] {
        let vr = if tag == tags::NUMBER_OF_FRAMES { VR::IS } else { VR::US };
        let value =
            if vr == VR::US { PrimitiveValue::from(v.parse::<u16>().unwrap()) } else { PrimitiveValue::from(v) };
        o.put(DataElement::new(tag, vr, value));
    }
    o.write_to_file(&path).unwrap();
    let Err(err) = hepaview::io::seg::read_seg(&path, None) else { panic!("a SEG claiming 4e9 frames was read") };
    let err = err.to_string();
    assert!(err.contains("frames.dcm") && err.contains("NumberOfFrames is 4000000000"), "{err}");
}

#[test]
fn a_damaged_orientation_is_repaired_and_said_never_doubling_voxels() {
    let Some(odd) = odd() else { return };
    let (_, good) = only_series(damaged_series(&odd, &|_, _| {}).path());
    let scaled =
        damaged_series(&odd, &|_, o| put_ds(o, tags::IMAGE_ORIENTATION_PATIENT, &[2.0, 0.0, 0.0, 0.0, 2.0, 0.0]));
    let (scan, s) = only_series(scaled.path());
    assert_eq!(s.geometry.spacing_mm, good.geometry.spacing_mm);
    assert_eq!(s.geometry.direction, good.geometry.direction);
    assert!(all_warnings(&scan).contains("not 1 (normalised)"), "{}", all_warnings(&scan));
    let skewed =
        damaged_series(&odd, &|_, o| put_ds(o, tags::IMAGE_ORIENTATION_PATIENT, &[1.0, 0.0, 0.0, 0.2, 0.98, 0.0]));
    let (scan, s) = only_series(skewed.path());
    let [r, c, _] = s.geometry.direction;
    let d: f64 = (0..3).map(|i| r[i] * c[i]).sum();
    assert!(d.abs() < 1e-9, "row·column = {d}");
    assert!(all_warnings(&scan).contains("not 90°"), "{}", all_warnings(&scan));
}

#[test]
fn a_missing_or_nan_intercept_on_ct_is_said() {
    let Some(odd) = odd() else { return };
    for nan in [false, true] {
        let dir = damaged_series(&odd, &|_, o| {
            if nan {
                o.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from("NaN")));
            } else {
                o.remove_element(tags::RESCALE_INTERCEPT);
            }
        });
        let (scan, _) = only_series(dir.path());
        assert!(all_warnings(&scan).contains("RescaleIntercept missing"), "{}", all_warnings(&scan));
    }
}

#[test]
fn pixel_spacing_that_differs_or_is_absurd_is_never_used_silently() {
    let Some(odd) = odd() else { return };
    let dir = damaged_series(&odd, &|i, o| {
        if i == 3 {
            put_ds(o, tags::PIXEL_SPACING, &[0.9, 0.9]);
        }
    });
    let (scan, s) = only_series(dir.path());
    assert_eq!(s.frames.len(), 4);
    assert!(all_warnings(&scan).contains("PixelSpacing 0.900"), "{}", all_warnings(&scan));
    let dir = damaged_series(&odd, &|_, o| {
        o.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::from("inf\\inf")));
        o.put(DataElement::new(tags::SLICE_THICKNESS, VR::DS, PrimitiveValue::from("1e39")));
    });
    let (scan, s) = only_series(dir.path());
    assert!(s.geometry.spacing_mm.iter().all(|v| v.is_finite() && *v < 1e3), "{:?}", s.geometry.spacing_mm);
    assert!(all_warnings(&scan).contains("no PixelSpacing"), "{}", all_warnings(&scan));
}

/// A folder entry that cannot be read (here a link to nowhere; a subfolder without read
/// permission fails the same way, but root, who runs CI, may read any folder) is named,
/// never dropped in silence, and the rest loads.
#[test]
fn an_unreadable_entry_of_a_folder_is_named() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_into(dir.path(), &series_ok(&odd));
    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("more-slices")).unwrap();
    let scan = dicom::scan(dir.path(), &no_progress).unwrap();
    assert!(
        scan.warnings.iter().any(|w| w.path.ends_with("more-slices") && w.what.contains("could not be read")),
        "{:?}",
        scan.warnings
    );
    assert_eq!(scan.all_series().next().unwrap().frames.len(), 5);
}

// ---- Issue 25, round two: damaged NIfTI headers and streams, from `broken/ok_64x64x5.nii.gz` ----

/// The uncompressed bytes of the control NIfTI (348-byte header, then the voxels).
fn ok_nifti_bytes(odd: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(odd.join("broken/ok_64x64x5.nii.gz")).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn set_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_f32(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// NIfTI-1 header offsets.
const DATATYPE: usize = 70;
const BITPIX: usize = 72;
const PIXDIM: usize = 76;
const QFORM_CODE: usize = 252;
const SFORM_CODE: usize = 254;
const QUATERN_B: usize = 256;
const SROW_X: usize = 280;

fn write_nii(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn nifti_colour_complex_or_contradictory_datatypes_are_refused_before_the_crate() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (datatype, bitpix, want) in
        [(128, 24, "RGB24"), (32, 64, "complex64"), (1792, 128, "complex128"), (4, 8, "contradicts")]
    {
        let mut b = ok_nifti_bytes(&odd);
        set_i16(&mut b, DATATYPE, datatype);
        set_i16(&mut b, BITPIX, bitpix);
        let p = write_nii(dir.path(), &format!("dt{datatype}_{bitpix}.nii"), &b);
        let err = nifti::read_ct(&p).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains(p.file_name().unwrap().to_str().unwrap()), "{err}");
        assert!(nifti::read_geometry(&p).is_err(), "info refuses it too");
    }
}

#[test]
fn nifti_qform_with_negative_pixdim_or_a_long_quaternion_keeps_the_voxel_size() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut base = ok_nifti_bytes(&odd);
    set_i16(&mut base, SFORM_CODE, 0); // the qform alone says where the voxels are
    set_i16(&mut base, QFORM_CODE, 1);
    let (good, _) = nifti::read_ct(&write_nii(dir.path(), "qform.nii", &base)).unwrap();
    let mut neg = base.clone();
    let sx = f32::from_le_bytes(neg[PIXDIM + 4..PIXDIM + 8].try_into().unwrap());
    set_f32(&mut neg, PIXDIM + 4, -sx);
    let (v, w) = nifti::read_ct(&write_nii(dir.path(), "neg.nii", &neg)).unwrap();
    assert_eq!(v.geometry.direction, good.geometry.direction, "a negative pixdim must not flip left and right");
    assert_eq!(v.geometry.spacing_mm, good.geometry.spacing_mm);
    assert!(w.iter().any(|w| w.what.contains("negative voxel size")), "{w:?}");
    let mut long = base.clone();
    set_f32(&mut long, QUATERN_B + 8, 1.5); // d = 1.5: (b, c, d) longer than 1
    let (v, w) = nifti::read_ct(&write_nii(dir.path(), "long.nii", &long)).unwrap();
    assert_eq!(v.geometry.spacing_mm, good.geometry.spacing_mm, "the quaternion must not scale the voxels");
    assert!(w.iter().any(|w| w.what.contains("quaternion has length")), "{w:?}");
}

#[test]
fn nifti_with_a_nan_or_infinite_origin_is_refused() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in [f32::NAN, f32::INFINITY].into_iter().enumerate() {
        let mut b = ok_nifti_bytes(&odd);
        set_f32(&mut b, SROW_X + 12, v);
        let p = write_nii(dir.path(), &format!("origin{i}.nii"), &b);
        let err = nifti::read_ct(&p).unwrap_err();
        assert!(matches!(err, NiftiError::Degenerate { .. }), "{err}");
    }
}

#[test]
fn nifti_gzip_with_a_flipped_bit_or_a_bad_crc_is_an_error() {
    use std::io::Write;
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = ok_nifti_bytes(&odd);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).unwrap();
    let gz = enc.finish().unwrap();
    let p = dir.path().join("good.nii.gz");
    std::fs::write(&p, &gz).unwrap();
    assert!(nifti::read_ct(&p).is_ok(), "the re-compressed control reads");
    let n = gz.len();
    let mut crc = gz.clone();
    crc[n - 8] ^= 0x5a; // the trailer's CRC-32
    let mut flipped = gz.clone();
    flipped[n / 2] ^= 0x10; // a bit in the middle of the deflate stream
    for (name, bytes) in [("crc.nii.gz", crc), ("flipped.nii.gz", flipped)] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = nifti::read_ct(&p).expect_err(name).to_string();
        assert!(err.contains(name), "{err}");
    }
}

/// Issue 25: `--out` naming a dangling link is refused (writing would replace the link);
/// a temporary file a killed write left beside the output is cleaned by the next write.
#[test]
fn writes_refuse_dangling_links_and_clean_stale_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let g = hepaview::Geometry::axis_aligned([2, 3, 4], [1.0; 3], [0.0; 3]);
    let v: hepaview::Mask = hepaview::Volume::filled(g, 1u8);
    let link = dir.path().join("out.nii.gz");
    std::os::unix::fs::symlink(dir.path().join("elsewhere.nii.gz"), &link).unwrap();
    let err = nifti::write_volume(&v, &link).unwrap_err();
    assert!(matches!(err, NiftiError::Exists { .. }), "{err}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is left alone");
    assert!(!dir.path().join("elsewhere.nii.gz").exists());
    // a process that no longer exists (pid 4194304 is above Linux's pid_max) left its temp
    let stale = dir.path().join(".tmp-4194304-mask.nii.gz");
    let other = dir.path().join(".tmp-4194304-other.nii.gz"); // another output's: kept
    std::fs::write(&other, b"x").unwrap();
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    nifti::write_volume(&v, &dir.path().join("mask.nii.gz")).unwrap();
    assert!(!stale.exists(), "the stale temporary is removed");
    assert!(other.exists(), "another output's temporary is not this write's to remove");
    // a name with dots before its ending lands under that very name
    nifti::write_volume(&v, &dir.path().join(".a.nii.part.nii")).unwrap();
    assert!(nifti::read_mask(&dir.path().join(".a.nii.part.nii")).is_ok());
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with(".tmp-")).count(), 1, "{names:?}");
}

/// Issue 25: every writer refuses a dangling link where its output would go, and leaves it
/// alone: the shared `io::write_new_file` (the reports, the SEG and series writers, the
/// cluster JSON, the label table), and the commands whose outputs are checked before any
/// work (`screenshot`, `mask-convert`, `convert`).
#[test]
fn every_writer_refuses_a_dangling_link_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = |name: &str| {
        let l = dir.path().join(name);
        std::os::unix::fs::symlink(dir.path().join(format!("nowhere-{name}")), &l).unwrap();
        l
    };
    let still_dangling = |l: &Path| {
        std::fs::symlink_metadata(l).unwrap().file_type().is_symlink()
            && !dir.path().join(format!("nowhere-{}", l.file_name().unwrap().to_string_lossy())).exists()
    };
    let json = link("report.json");
    let err = hepaview::io::write_new_file(&json, b"{}").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(still_dangling(&json));
    let seg = link("seg.dcm");
    assert!(hepaview::io::dicom_write::write_new_file(&seg, b"DICM").is_err());
    assert!(still_dangling(&seg));
    let Some(data) = common::shared_data() else { return };
    let ct = data.join("ts-abdomen/ct.nii.gz");
    let labels = data.join("ts-abdomen/liver.nii.gz");
    let png = link("shot.png");
    let seg_out = link("liver.dcm");
    let nii = link("ct.nii.gz");
    let runs: [(Vec<&std::ffi::OsStr>, &Path); 3] = [
        (vec!["screenshot".as_ref(), ct.as_os_str(), "--out".as_ref(), png.as_os_str()], &png),
        (
            vec![
                "mask-convert".as_ref(),
                labels.as_os_str(),
                "--study".as_ref(),
                ct.as_os_str(),
                "--out".as_ref(),
                seg_out.as_os_str(),
            ],
            &seg_out,
        ),
        (vec!["convert".as_ref(), ct.as_os_str(), "--out".as_ref(), nii.as_os_str()], &nii),
    ];
    for (args, out) in runs {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hepaview")).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} wrote through a dangling link");
        assert!(text.contains("exists"), "{args:?}: {text}");
        assert!(still_dangling(out), "{args:?} replaced the link");
    }
}

/// Issue 25: the DICOM writer (SEG, series, the demo's JSON) cleans what a killed write of
/// the same name left too (`.{name}.<pid>.tmp`), and leaves other files alone.
#[test]
fn the_dicom_writer_cleans_a_killed_writes_temporary() {
    let dir = tempfile::tempdir().unwrap();
    // pid 4194304 is above Linux's pid_max: that process is gone
    let stale = dir.path().join(".seg.dcm.4194304.tmp");
    let live = dir.path().join(".seg.dcm.1.tmp"); // pid 1 (init) is running
    let not_ours = dir.path().join(".seg.dcm.backup.tmp");
    let other = dir.path().join(".other.dcm.4194304.tmp");
    for f in [&stale, &live, &not_ours, &other] {
        std::fs::write(f, vec![0u8; 1000]).unwrap();
    }
    let out = dir.path().join("seg.dcm");
    hepaview::io::dicom_write::write_new_file(&out, b"DICM").unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"DICM");
    assert!(!stale.exists(), "the killed write's temporary is removed");
    assert!(live.exists(), "a running writer's temporary is left");
    assert!(not_ours.exists() && other.exists(), "files that are not this name's temporaries are left");
}

/// Issue 25: pixel data longer than the header's Rows × Columns × BitsAllocated (Rows
/// halved in every slice, or 16-bit data declared 8-bit) is refused by name, never read as
/// garbage pixels.
#[test]
fn pixel_data_longer_than_the_header_says_is_refused() {
    let Some(odd) = odd() else { return };
    let damages: [&dyn Fn(&mut dicom_object::DefaultDicomObject); 2] = [
        &|o| {
            o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(32u16)));
        },
        &|o| {
            o.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(8u16)));
            o.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(8u16)));
            o.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(7u16)));
        },
    ];
    for (n, damage) in damages.iter().enumerate() {
        let dir = damaged_series(&odd, &|_, o| damage(o));
        let (_, s) = only_series(dir.path());
        let err = dicom::load_series(&s, &no_progress).unwrap_err().to_string();
        assert!(err.contains("does not describe the pixels"), "case {n}: {err}");
    }
}

/// Issue 25: `info` on a NIfTI read the whole volume (a 300 MB file of zeros: 929 MB). It
/// reads the header only: a 3.4 GB volume (a sparse file of zeros) is described in a
/// 1 GiB address space, where reading its voxels could not even start.
#[test]
fn info_on_a_large_nifti_reads_its_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.nii");
    let (nx, ny, nz) = (2048i16, 2048i16, 400i16);
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, nx, ny, nz, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&4i16.to_le_bytes()); // int16
    h[72..74].copy_from_slice(&16i16.to_le_bytes());
    for (i, p) in [1.0f32, 0.8, 0.8, 2.5].iter().enumerate() {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes()); // vox_offset
    h[112..116].copy_from_slice(&1f32.to_le_bytes()); // scl_slope
    h[252..254].copy_from_slice(&1i16.to_le_bytes()); // qform_code: scanner
    h[344..348].copy_from_slice(b"n+1\0");
    std::fs::write(&path, &h).unwrap();
    let bytes = 352 + 2 * nx as u64 * ny as u64 * nz as u64;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(bytes).unwrap();
    let out = hepaview_in_1_gib(&["info".as_ref(), path.as_os_str()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2048") && text.contains("400"), "{text}");
}

/// `bytes` with a private element (0009,1010) OB inserted before its Pixel Data, claiming
/// 3.7 GB of value the file does not hold (the fuzzer's case: a damaged length).
fn with_a_gigabyte_claim_before_the_pixels(bytes: &[u8]) -> Vec<u8> {
    let at = bytes.windows(4).position(|w| w == [0xE0, 0x7F, 0x10, 0x00]).expect("Pixel Data");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
    out.extend_from_slice(&0xDE00_0000u32.to_le_bytes());
    out.extend_from_slice(&bytes[at..]);
    out
}

/// Runs the CLI with its address space capped at 1 GiB, so a gigabyte reservation fails
/// (an abort) instead of passing unseen.
fn hepaview_in_1_gib(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 1048576 && exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_hepaview")).args(args);
    cmd.output().unwrap()
}

/// The fuzzer's third class (2026-12-07): "DICM" with no meta group, then a data set whose
/// element after the pixels claims gigabytes. Such a bare data set is read whole, even for
/// its header, so the check walks past the pixels too (it stopped at them: 1.2 s, 2.2 GB).
#[test]
fn a_bare_data_set_claiming_gigabytes_after_its_pixels_is_refused() {
    let Some(odd) = odd() else { return };
    let slice = std::fs::read(&series_ok(&odd)[0]).unwrap();
    // the meta group's length is the value of (0002,0000), UL, right after "DICM"
    assert_eq!(&slice[132..136], &[0x02, 0x00, 0x00, 0x00]);
    let meta_end = 144 + u32::from_le_bytes(slice[140..144].try_into().unwrap()) as usize;
    let mut bare = slice[..132].to_vec();
    bare.extend_from_slice(&slice[meta_end..]);
    bare.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
    bare.extend_from_slice(&0xDE00_0000u32.to_le_bytes());
    bare.extend_from_slice(&[0; 16]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bare.dcm"), &bare).unwrap();
    let out = hepaview_in_1_gib(&["info".as_ref(), dir.path().as_os_str()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bare.dcm") && text.contains("(0009,1010)") && text.contains("claims 3724541952 bytes"),
        "{text}"
    );
}

#[test]
fn an_element_claiming_gigabytes_the_file_lacks_is_refused_before_they_are_reserved() {
    let Some(odd) = odd() else { return };
    let dir = tempfile::tempdir().unwrap();
    // a CT slice: the header scan meets the claim
    let slice = std::fs::read(&series_ok(&odd)[0]).unwrap();
    let study = dir.path().join("study");
    std::fs::create_dir(&study).unwrap();
    std::fs::write(study.join("a.dcm"), with_a_gigabyte_claim_before_the_pixels(&slice)).unwrap();
    let out = hepaview_in_1_gib(&["info".as_ref(), study.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a.dcm") && err.contains("(0009,1010)") && err.contains("claims 3724541952 bytes"), "{err}");
    // a DICOM SEG: its reader opens the file whole
    let data = common::shared_data().unwrap().join("dcmqi-liver");
    let seg = std::fs::read(data.join("liver.dcm")).unwrap();
    let bad_seg = dir.path().join("liver.dcm");
    std::fs::write(&bad_seg, with_a_gigabyte_claim_before_the_pixels(&seg)).unwrap();
    let nii = dir.path().join("liver.nii.gz");
    let out = hepaview_in_1_gib(&[
        "mask-convert".as_ref(),
        bad_seg.as_os_str(),
        "--study".as_ref(),
        data.join("ct-3slice").as_os_str(),
        "--out".as_ref(),
        nii.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("(0009,1010)") && err.contains("claims 3724541952 bytes"), "{err}");
    assert!(!nii.exists());
}
