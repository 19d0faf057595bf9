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
