//! Loading the real series in ../shared/data, checked against pydicom's figures
//! (../shared/anchors/runs-2026-11-25/dicom_load_*.txt) and against dcm2niix.
#![allow(clippy::needless_range_loop)]

mod common;

use std::path::Path;
use std::process::Command;

use hepaview::io::dicom::{self, no_progress};
use hepaview::io::nifti;
use hepaview::io::phase::{clues_from_series, detect_phases, Phase, SeriesClues};
use hepaview::{Geometry, Interp};

fn hu_sum(v: &hepaview::CtVolume) -> i64 {
    v.data.iter().map(|&x| x as i64).sum()
}

#[test]
fn hcc048_pv_matches_pydicom() {
    let Some(data) = common::shared_data() else { return };
    let (vol, series, warnings) = dicom::load_folder(&data.join("hcc048-pv"), None).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(vol.geometry.shape, [89, 512, 512]);
    assert_eq!(vol.geometry.spacing_mm, [2.5, 0.703125, 0.703125]);
    assert_eq!(vol.geometry.origin_mm, [-180.0, -180.0, -396.0]);
    // figures from the pydicom anchor run
    assert_eq!(hu_sum(&vol), -18064819027);
    assert_eq!(vol.data.iter().min(), Some(&-2048));
    assert_eq!(vol.data.iter().max(), Some(&3071));
    assert_eq!(series.frames.len(), 89);
    // sorted by position, not by file name
    let z: Vec<f64> = series.frames.iter().map(|f| f.position_mm[2]).collect();
    assert!(z.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn triphase_loads_three_codecs_and_names_phases() {
    let Some(data) = common::shared_data() else { return };
    let scan = dicom::scan(&data.join("triphase-hcc048/dicom"), &no_progress).unwrap();
    assert_eq!(scan.studies.len(), 1);
    let series = &scan.studies[0].series;
    assert_eq!(series.len(), 3);
    let clues: Vec<SeriesClues> = series.iter().map(clues_from_series).collect();
    let phases: Vec<Phase> = detect_phases(&clues).iter().map(|c| c.phase).collect();
    assert_eq!(phases, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed]);
    // (shape, HU sum, origin) per series from the pydicom anchor
    let want: [([usize; 3], i64, [f64; 3]); 3] = [
        ([85, 512, 512], -12364801430, [-180.0, -180.0, -391.0]),
        ([89, 512, 512], -18064819027, [-180.0, -180.0, -396.0]),
        ([89, 512, 512], -15035893053, [-199.960938, -199.960938, -396.0]),
    ];
    for (s, (shape, sum, origin)) in series.iter().zip(want) {
        let (vol, warnings) = dicom::load_series(s, &no_progress).unwrap();
        assert!(warnings.is_empty(), "{}: {warnings:?}", s.description);
        assert_eq!(vol.geometry.shape, shape, "{}", s.description);
        assert_eq!(hu_sum(&vol), sum, "{}", s.description);
        for a in 0..3 {
            assert!((vol.geometry.origin_mm[a] - origin[a]).abs() < 1e-4);
        }
    }
}

/// Runs dcm2niix on a folder and reads its NIfTI back with our reader.
fn dcm2niix(folder: &Path, out: &Path) -> Vec<std::path::PathBuf> {
    let status = Command::new("dcm2niix")
        .args(["-z", "y", "-b", "n", "-f", "%s_%d", "-o"])
        .arg(out)
        .arg(folder)
        .output()
        .expect("dcm2niix runs");
    assert!(status.status.success(), "dcm2niix failed: {}", String::from_utf8_lossy(&status.stderr));
    let mut files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
        .collect();
    files.sort();
    files
}

/// The 8 corner voxel centres as a sorted set: dcm2niix may flip rows, so voxel (0,0,0)
/// of its grid can be another corner of ours; the set of corners must still agree.
fn corner_set(g: &Geometry) -> Vec<[f64; 3]> {
    let mut c = g.corners().to_vec();
    c.sort_by(|a, b| a.partial_cmp(b).unwrap());
    c
}

#[test]
fn geometry_agrees_with_dcm2niix() {
    let Some(data) = common::shared_data() else { return };
    if common::tool("dcm2niix").is_none() {
        return;
    }
    for folder in ["hcc048-pv", "triphase-hcc048/dicom"] {
        let tmp = tempfile::tempdir().unwrap();
        let theirs = dcm2niix(&data.join(folder), tmp.path());
        let scan = dicom::scan(&data.join(folder), &no_progress).unwrap();
        let ours: Vec<_> = scan.all_series().collect();
        assert_eq!(theirs.len(), ours.len(), "{folder}: dcm2niix wrote {theirs:?}");
        for s in ours {
            // dcm2niix names files by series number
            let n = s.series_number.unwrap();
            let file = theirs
                .iter()
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{n}_")))
                .expect("dcm2niix file for series");
            let (their_vol, _) = nifti::read_ct(file).unwrap();
            let a = corner_set(&s.geometry);
            let b = corner_set(&their_vol.geometry);
            for (p, q) in a.iter().zip(&b) {
                for i in 0..3 {
                    assert!((p[i] - q[i]).abs() < 0.01, "{folder} series {n}: corner {p:?} vs dcm2niix {q:?}");
                }
            }
            for i in 0..3 {
                let mut x = s.geometry.spacing_mm;
                let mut y = their_vol.geometry.spacing_mm;
                x.sort_by(|a, b| a.partial_cmp(b).unwrap());
                y.sort_by(|a, b| a.partial_cmp(b).unwrap());
                assert!((x[i] - y[i]).abs() < 1e-4);
            }
            if folder == "hcc048-pv" {
                // same world points must hold the same HU
                let (vol, _) = dicom::load_series(s, &no_progress).unwrap();
                let back = their_vol.resample_to(&vol.geometry, Interp::Nearest, i16::MIN);
                assert_eq!(back.data, vol.data, "HU differ from dcm2niix at the same world points");
            }
        }
    }
}

#[test]
fn info_lists_every_series_in_shared_data() {
    let Some(data) = common::shared_data() else { return };
    let scan = dicom::scan(&data, &no_progress).unwrap();
    let descs: Vec<&str> = scan.all_series().map(|s| s.description.as_str()).collect();
    for want in ["LIVER ART 2.5mm", "LIVER PV 2.5mm", "LIVER DELAYED 2.5mm", "Recon 3: LIVER 2 PHASE (C/A/P)"] {
        assert!(descs.contains(&want), "{want} missing from {descs:?}");
    }
    // every broken file is named among the warnings
    let warned: String = scan
        .warnings
        .iter()
        .chain(scan.all_series().flat_map(|s| s.warnings.iter()))
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for f in ["empty.dcm", "not_dicom.dcm", "bad_magic.dcm", "rtstruct.dcm", "test-SR.dcm", "slice3.dcm"] {
        assert!(warned.contains(f), "{f} not reported:\n{warned}");
    }
}

#[test]
fn measured_hu_names_triphase_phases_when_tags_are_silent() {
    use hepaview::io::phase::measure_enhancement;
    let Some(data) = common::shared_data() else { return };
    let scan = dicom::scan(&data.join("triphase-hcc048/dicom"), &no_progress).unwrap();
    let clues: Vec<SeriesClues> = scan
        .all_series()
        .map(|s| {
            let (vol, _) = dicom::load_series(s, &no_progress).unwrap();
            // descriptions, agent and times withheld: only the pixels speak
            SeriesClues { hu: Some(measure_enhancement(&vol)), ..Default::default() }
        })
        .collect();
    let calls = detect_phases(&clues);
    let got: Vec<Phase> = calls.iter().map(|c| c.phase).collect();
    assert_eq!(got, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed], "{calls:?}");
}

/// `triphase-hcc048` with its arterial series given a StudyInstanceUID of its own (and,
/// for the second case, another PatientID too), the way an anonymiser often leaves the
/// series of one visit.
fn triphase_with_arterial_split(data: &Path, into: &Path, other_patient: bool) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let dir = data.join("triphase-hcc048/dicom");
    let scan = dicom::scan(&dir, &no_progress).unwrap();
    let arterial: Vec<_> = scan
        .all_series()
        .find(|s| s.description.contains("ART"))
        .expect("arterial series")
        .frames
        .iter()
        .map(|f| f.path.clone())
        .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = into.join(path.file_name().unwrap());
        if !arterial.contains(&path) {
            std::fs::copy(&path, &out).unwrap();
            continue;
        }
        let mut obj = dicom_object::open_file(&path).unwrap();
        obj.put(DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.826.0.1.3680043.8.498.1"),
        ));
        if other_patient {
            obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("SOMEONE-ELSE")));
        }
        obj.write_to_file(&out).unwrap();
    }
}

/// Issue 23: phases of one patient in two studies of a folder are shown together, and
/// said; a study of another patient is left out, and said.
#[test]
fn phases_of_one_patient_split_over_two_studies_open_together() {
    let Some(data) = common::shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    triphase_with_arterial_split(&data, tmp.path(), false);
    let scan = dicom::scan(tmp.path(), &no_progress).unwrap();
    assert_eq!(scan.studies.len(), 2, "the split made two studies");
    let study = hepaview::study::Study::open(&[tmp.path().to_path_buf()]).unwrap();
    let phases: Vec<Phase> = study.phases.iter().map(|p| p.phase()).collect();
    assert_eq!(phases, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed]);
    assert!(
        study.warnings.iter().any(|w| w.what.contains("same patient") && w.what.contains("same frame of reference")),
        "{:?}",
        study.warnings
    );

    let tmp = tempfile::tempdir().unwrap();
    triphase_with_arterial_split(&data, tmp.path(), true);
    let study = hepaview::study::Study::open(&[tmp.path().to_path_buf()]).unwrap();
    let phases: Vec<Phase> = study.phases.iter().map(|p| p.phase()).collect();
    assert_eq!(phases, vec![Phase::PortalVenous, Phase::Delayed], "another patient's series is not joined");
    assert!(
        study.warnings.iter().any(|w| w.what.contains("leaving out") && w.what.contains("1 series")),
        "{:?}",
        study.warnings
    );
}

/// Issue 25: `info` measures two dozen slices of a series whose tags are silent, not the
/// whole series, and still names the tri-phase study's phases from them.
#[test]
fn two_dozen_slices_name_the_triphase_phases_when_tags_are_silent() {
    let Some(data) = common::shared_data() else { return };
    let scan = dicom::scan(&data.join("triphase-hcc048/dicom"), &no_progress).unwrap();
    let mut study = scan.studies[0].clone();
    for s in &mut study.series {
        s.description.clear();
        s.acquisition_time = None;
        s.contrast_agent = None;
    }
    let calls = hepaview::io::phase::detect_study_phases_sampled(&study, Some(24));
    let got: Vec<Phase> = calls.iter().map(|c| c.phase).collect();
    assert_eq!(got, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed], "{calls:?}");
}
