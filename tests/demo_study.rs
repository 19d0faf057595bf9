//! End to end: the demo study written to disk is valid DICOM (checked by dicom3tools'
//! `dciodvfy`, an independent validator), and its ground-truth files are consistent.

use std::path::Path;
use std::process::Command;

use hepaview::io::phase::Phase;
use hepaview::phantom::{write_demo_study, PhantomOptions};

/// Runs dciodvfy on one file and returns its output (it reports on stderr), or `None`
/// when the tool is not installed.
fn dciodvfy(path: &Path) -> Option<String> {
    let out = Command::new("dciodvfy").arg(path).output().ok()?;
    Some(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn demo_study_is_valid_dicom_with_consistent_truth() {
    let tmp = tempfile::tempdir().expect("temporary folder");
    let out = tmp.path().join("demo");
    let files = write_demo_study(&out, &PhantomOptions::small()).expect("demo study written");

    // layout
    assert_eq!(files.dicom.len(), 3);
    for (phase, paths) in &files.dicom {
        assert!(!paths.is_empty());
        for p in paths {
            assert!(p.starts_with(out.join("dicom").join(phase.slug())), "{}", p.display());
            assert!(p.is_file());
        }
    }
    for p in [&files.labels, &files.anatomy, &files.lesions_json] {
        assert!(p.is_file(), "{} missing", p.display());
    }
    assert_eq!(files.true_fields.len(), 2);
    assert!(files.true_fields.iter().all(|(_, p)| p.is_file()));

    // writing again refuses instead of overwriting
    let again = write_demo_study(&out, &PhantomOptions::small());
    assert!(again.is_err(), "second write into the same folder must be refused");

    // DICOM validity
    match dciodvfy(&files.dicom[0].1[0]) {
        None if std::env::var_os("CI").is_some() => {
            panic!("dciodvfy is not installed; CI needs it (apt-get install dicom3tools)")
        }
        None => eprintln!("SKIPPED the DICOM validation: dciodvfy not found (apt-get install dicom3tools to run it)"),
        Some(_) => {
            for (phase, paths) in &files.dicom {
                let n = paths.len();
                for p in [&paths[0], &paths[n / 2], &paths[n - 1]] {
                    let report = dciodvfy(p).unwrap_or_default();
                    let errors: Vec<&str> = report.lines().filter(|l| l.contains("Error")).collect();
                    assert!(errors.is_empty(), "{phase:?} {}: dciodvfy errors:\n{}", p.display(), errors.join("\n"));
                    assert!(report.contains("CTImage"), "{}: dciodvfy did not see a CT image:\n{report}", p.display());
                }
            }
        }
    }

    // one study, one frame of reference, three series in acquisition order
    let read = |p: &Path, tag| -> String {
        let obj = dicom_object::open_file(p).expect("readable DICOM");
        obj.element(tag).expect("attribute present").to_str().expect("text").trim().to_string()
    };
    use dicom_dictionary_std::tags;
    let firsts: Vec<&Path> = files.dicom.iter().map(|(_, ps)| ps[0].as_path()).collect();
    let study: Vec<String> = firsts.iter().map(|p| read(p, tags::STUDY_INSTANCE_UID)).collect();
    assert!(study.iter().all(|s| *s == study[0]));
    let for_uid: Vec<String> = firsts.iter().map(|p| read(p, tags::FRAME_OF_REFERENCE_UID)).collect();
    assert!(for_uid.iter().all(|s| *s == for_uid[0]));
    let series: Vec<String> = firsts.iter().map(|p| read(p, tags::SERIES_INSTANCE_UID)).collect();
    assert!(series[0] != series[1] && series[1] != series[2] && series[0] != series[2]);
    let times: Vec<String> = firsts.iter().map(|p| read(p, tags::ACQUISITION_TIME)).collect();
    assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
    for p in &firsts {
        assert_eq!(read(p, tags::CONTRAST_BOLUS_AGENT), "IOPAMIDOL 370");
        assert!(read(p, tags::SERIES_DESCRIPTION).starts_with("LIVER "));
    }
    assert_eq!(files.dicom[1].0, Phase::PortalVenous);

    // ground truth: every lesion lies inside the liver of the written label mask
    let (labels, _warnings) = hepaview::io::nifti::read_mask(&files.labels).expect("labels readable");
    let lesions: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.lesions_json).expect("lesions.json readable"))
            .expect("lesions.json is JSON");
    let lesions = lesions.as_array().expect("a list of lesions");
    assert_eq!(lesions.len(), 4);
    let g = &labels.geometry;
    let at = |p: [f64; 3]| {
        let ijk = g.world_to_index(p);
        let idx = [ijk[2].round() as usize, ijk[1].round() as usize, ijk[0].round() as usize];
        labels.data[idx]
    };
    for l in lesions {
        let c: Vec<f64> =
            l["centre_mm"].as_array().expect("centre").iter().map(|v| v.as_f64().expect("number")).collect();
        let r = l["radius_mm"].as_f64().expect("radius");
        assert!(l["volume_ml"].as_f64().expect("volume") > 0.0);
        assert_eq!(at([c[0], c[1], c[2]]), 2, "lesion {l} centre is not tumour");
        // just outside the lesion, in each axis direction, is liver or tumour
        let step = r + g.spacing_mm.iter().cloned().fold(0.0, f64::max);
        for a in 0..3 {
            for s in [-1.0, 1.0] {
                let mut p = [c[0], c[1], c[2]];
                p[a] += s * step;
                assert!(matches!(at(p), 1 | 2), "lesion {l}: neighbour {p:?} is outside the liver");
            }
        }
    }
}
