//! The demo study written as DICOM + NIfTI reads back exactly: same voxels, same grids,
//! phases named right, labels and true fields aligned with the portal venous series.

use hepaview::io::dicom::{self, no_progress};
use hepaview::io::nifti;
use hepaview::io::phase::{clues_from_series, detect_phases, Phase, SeriesClues};
use hepaview::phantom::{self, PhantomOptions};

#[test]
fn demo_study_round_trips_through_dicom_and_nifti() {
    let opts = PhantomOptions::small();
    let truth = phantom::make_phantom(&opts);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    phantom::write_demo_study(&out, &opts).unwrap();

    let scan = dicom::scan(&out.join("dicom"), &no_progress).unwrap();
    assert_eq!(scan.studies.len(), 1);
    let series = &scan.studies[0].series;
    assert_eq!(series.len(), 3);
    let clues: Vec<SeriesClues> = series.iter().map(clues_from_series).collect();
    let calls = detect_phases(&clues);
    for ((s, call), phase) in series.iter().zip(&calls).zip(Phase::CONTRAST_ORDER) {
        assert_eq!(call.phase, phase, "{}", s.description);
        let (vol, warnings) = dicom::load_series(s, &no_progress).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let t = truth.phase(phase).unwrap();
        assert!(
            vol.geometry.max_corner_distance_mm(&t.volume.geometry) < 1e-3,
            "{:?} vs {:?}",
            vol.geometry,
            t.volume.geometry
        );
        assert_eq!(vol.data, t.volume.data, "{}", s.description);
    }

    let (labels, _) = nifti::read_mask(&out.join("labels.nii.gz")).unwrap();
    assert_eq!(labels.data, truth.labels.data);
    assert!(labels.geometry.max_corner_distance_mm(&truth.labels.geometry) < 1e-3);
    let (field, _) = nifti::read_field(&out.join("true_field_arterial.nii.gz")).unwrap();
    assert_eq!(field.data, truth.true_field(Phase::Arterial).unwrap().data);

    // never writes over an existing study
    assert!(phantom::write_demo_study(&out, &opts).is_err());
}

#[test]
fn measured_hu_names_demo_phases_when_tags_are_silent() {
    use hepaview::io::phase::measure_enhancement;
    let truth = phantom::make_phantom(&PhantomOptions::small());
    let clues: Vec<SeriesClues> = truth
        .phases
        .iter()
        .map(|p| SeriesClues { hu: Some(measure_enhancement(&p.volume)), ..Default::default() })
        .collect();
    let calls = detect_phases(&clues);
    let got: Vec<Phase> = calls.iter().map(|c| c.phase).collect();
    assert_eq!(got, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed], "{calls:?}");
}

#[test]
fn a_world_point_is_the_same_anatomy_in_phases_on_different_grids() {
    use hepaview::phantom::LesionKind;
    use hepaview::Interp;
    // no breathing: only the grids differ (arterial shifted 5 mm in z, delayed coarser)
    let opts = PhantomOptions { breathing_scale: 0.0, ..PhantomOptions::small() };
    let truth = phantom::make_phantom(&opts);
    let grids: Vec<_> = truth.phases.iter().map(|p| p.volume.geometry.clone()).collect();
    assert!(grids[0] != grids[1] && grids[1] != grids[2], "phases must differ in geometry for this test");
    let hu = |name: Phase, at| truth.phase(name).unwrap().volume.sample_world(at, Interp::Nearest).unwrap();
    for lesion in &truth.lesions {
        let c = lesion.centre_mm;
        assert_eq!(
            truth.labels.sample_world(c, Interp::Nearest),
            Some(2.0),
            "{:?} centre is labelled tumour",
            lesion.kind
        );
        let (a, pv, d) = (hu(Phase::Arterial, c), hu(Phase::PortalVenous, c), hu(Phase::Delayed, c));
        match lesion.kind {
            LesionKind::Hcc => assert!(a > pv + 20.0 && a > d + 20.0, "HCC washes in then out: {a} {pv} {d}"),
            LesionKind::Cyst => assert!(
                a.abs() < 40.0 && pv.abs() < 40.0 && d.abs() < 40.0,
                "cyst is water in every phase: {a} {pv} {d}"
            ),
            LesionKind::Hemangioma => assert!(d > a, "hemangioma fills in towards delayed: {a} {pv} {d}"),
            LesionKind::Metastasis => assert!(pv < 90.0, "metastasis centre stays hypodense: {a} {pv} {d}"),
            LesionKind::TreatedHcc => unreachable!("the baseline has no treated lesion"),
        }
    }
}

/// Two passes stored under one SeriesInstanceUID at the same slice positions, told apart
/// only by AcquisitionNumber (as TCIA HCC-TACE-Seg HCC_002's "LIVER 3 PHASE (AP)": 109 +
/// 109 files): each is offered as a series of its own and named by its measured HU, not
/// set aside as duplicates of the other.
#[test]
fn two_acquisitions_at_the_same_positions_are_two_phases() {
    use hepaview::io::dicom_write::{write_ct_series, SeriesMeta};
    use hepaview::io::phase::detect_study_phases;
    use hepaview::volume::Interp;
    let truth = phantom::make_phantom(&PhantomOptions::small());
    let arterial = &truth.phase(Phase::Arterial).unwrap().volume;
    // the portal venous pass on the arterial pass's grid: the same positions
    let pv = truth.phase(Phase::PortalVenous).unwrap().volume.resample_to(&arterial.geometry, Interp::Linear, -1000);
    let tmp = tempfile::tempdir().unwrap();
    let meta = |seed: &str| SeriesMeta {
        patient_name: "PHANTOM^TWO".into(),
        patient_id: "TWO".into(),
        patient_birth_date: String::new(),
        patient_sex: String::new(),
        study_uid: "1.2.826.0.1.3680043.10.1011.1".into(),
        study_date: "20260115".into(),
        study_time: "095800".into(),
        study_id: "1".into(),
        accession_number: String::new(),
        series_uid: "1.2.826.0.1.3680043.10.1011.2".into(),
        series_number: 4,
        series_description: "Recon 2: LIVER 3 PHASE (AP)".into(),
        // the same for both: the order of the passes does not tell them apart
        acquisition_time: "100000".into(),
        contrast_agent: Some("IOPAMIDOL 370".into()),
        frame_of_reference_uid: "1.2.826.0.1.3680043.10.1011.3".into(),
        manufacturer: "Hepaview test".into(),
        uid_seed: seed.into(),
        kvp: 120.0,
    };
    write_ct_series(arterial, &meta("first"), &tmp.path().join("1")).unwrap();
    let second = write_ct_series(&pv, &meta("second"), &tmp.path().join("2")).unwrap();
    for f in &second {
        let mut obj = dicom_object::open_file(f).unwrap();
        obj.put(dicom_core::DataElement::new(dicom_dictionary_std::tags::ACQUISITION_NUMBER, dicom_core::VR::IS, "2"));
        obj.write_to_file(f).unwrap();
    }

    let scan = dicom::scan(tmp.path(), &no_progress).unwrap();
    let study = &scan.studies[0];
    assert_eq!(study.series.len(), 2, "{:?}", study.series.iter().map(|s| &s.description).collect::<Vec<_>>());
    for (s, n) in study.series.iter().zip([1, 2]) {
        assert_eq!(s.acquisition, Some(n));
        assert_eq!(s.frames.len(), arterial.geometry.shape[0]);
        assert!(s.set_aside.is_empty() && s.warnings.iter().all(|w| !w.what.contains("duplicate")), "{:?}", s.warnings);
        assert!(s.description.ends_with(&format!("[acquisition {n}]")), "{}", s.description);
    }
    // the words ("AP") name the whole series; the HU name each pass
    let calls = detect_study_phases(study);
    assert_eq!(
        calls.iter().map(|c| c.phase).collect::<Vec<_>>(),
        vec![Phase::Arterial, Phase::PortalVenous],
        "{calls:?}"
    );
    let (vol, _) = dicom::load_series(&study.series[1], &no_progress).unwrap();
    assert_eq!(vol.data, pv.data, "the second pass reads back as written");

    // acquisitions at different positions (a range scanned in two parts) stay one series
    let parts = tempfile::tempdir().unwrap();
    let files = write_ct_series(arterial, &meta("parts"), parts.path()).unwrap();
    for f in &files[files.len() / 2..] {
        let mut obj = dicom_object::open_file(f).unwrap();
        obj.put(dicom_core::DataElement::new(dicom_dictionary_std::tags::ACQUISITION_NUMBER, dicom_core::VR::IS, "2"));
        obj.write_to_file(f).unwrap();
    }
    let scan = dicom::scan(parts.path(), &no_progress).unwrap();
    let series = &scan.studies[0].series;
    assert_eq!(series.len(), 1);
    assert_eq!((series[0].acquisition, series[0].frames.len()), (None, arterial.geometry.shape[0]));
}
