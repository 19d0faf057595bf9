//! The `hepaview` binary end to end: info, convert, demo, and its errors.

mod common;

use std::process::Command;

fn hepaview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hepaview"))
}

#[test]
fn info_names_the_triphase_phases() {
    let Some(data) = common::shared_data() else { return };
    let out = hepaview().arg("info").arg(data.join("triphase-hcc048/dicom")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("LIVER") && l.contains("(90%)")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("ART") && lines[0].contains("arterial"), "{text}");
    assert!(lines[1].contains("PV") && lines[1].contains("portal venous"), "{text}");
    assert!(lines[2].contains("DELAYED") && lines[2].contains("delayed"), "{text}");
}

#[test]
fn info_json_and_phase_override() {
    let Some(data) = common::shared_data() else { return };
    let out = hepaview()
        .arg("info")
        .arg(data.join("triphase-hcc048/dicom"))
        .args(["--json", "--phase", "0=delayed"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["series"][0]["phase"]["phase"], "Delayed");
    assert_eq!(v["series"][0]["phase"]["reason"], "set by the user");
    assert_eq!(v["series"][1]["phase"]["phase"], "PortalVenous");

    let bad = hepaview()
        .arg("info")
        .arg(data.join("triphase-hcc048/dicom"))
        .args(["--phase", "7=arterial"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only 3 series"));
}

#[test]
fn info_on_all_shared_data_names_every_problem() {
    let Some(data) = common::shared_data() else { return };
    let out = hepaview().arg("info").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "LIVER ART",
        "arterial (90%)",
        "portal venous (90%)",
        "delayed (90%)",
        "truncated",
        "rtstruct.dcm",
        "empty file",
        "gap",
        "duplicate slice position",
        "64×48",
    ] {
        assert!(text.contains(want), "{want:?} missing from info output");
    }
}

#[test]
fn convert_writes_nifti_and_never_overwrites() {
    let Some(data) = common::shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pv.nii.gz");
    let run =
        || hepaview().arg("convert").arg(data.join("odd/broken/series_ok")).arg("--out").arg(&out).output().unwrap();
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let (v, _) = hepaview::io::nifti::read_ct(&out).unwrap();
    assert_eq!(v.geometry.shape, [5, 64, 64]);
    let before = std::fs::read(&out).unwrap();
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn convert_asks_which_series_when_there_are_several() {
    let Some(data) = common::shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = hepaview()
        .arg("convert")
        .arg(data.join("triphase-hcc048/dicom"))
        .arg("--out")
        .arg(tmp.path().join("x.nii.gz"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--series"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_paths_fail_with_the_path_named() {
    let out = hepaview().args(["info", "/no/such/folder"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/folder"));
    // issue 25/27: each cause said once, in words, never Rust debug output
    for args in [
        &["info", "/no/such/folder"][..],
        &["info", "/no/such/ct.nii.gz"],
        &["segment", "/no/such/ct.nii.gz", "--out", "/tmp/never-written.nii.gz"],
        &["mesh", "/no/such/mask.nii.gz", "--out", "/tmp/never-written"],
    ] {
        let out = hepaview().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("/no/such/"), "{args:?}: {err}");
        assert!(!err.contains("Io(") && !err.contains("Os {"), "{args:?}: {err}");
        let lower = err.to_lowercase();
        for phrase in ["no such file or folder", "no such file or directory"] {
            assert!(lower.matches(phrase).count() <= 1, "{args:?} repeats itself: {err}");
        }
    }
}

/// Issue 27: a segmentation whose mask would go nowhere is refused at once, before the
/// network runs, saying what to add (it used to run 18 s and exit 0 having written nothing).
#[test]
fn segment_without_an_output_is_refused_before_it_runs() {
    let Some(data) = common::shared_data() else { return };
    let out = hepaview().arg("segment").arg(data.join("ts-abdomen/ct.nii.gz")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0 writing nothing: {err}");
    assert!(err.contains("--out"), "{err}");
    assert!(!err.contains("Segmented"), "the network ran first: {err}");
}

#[test]
fn demo_small_writes_a_loadable_study() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = hepaview().arg("info").arg(dir.join("dicom")).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("arterial (90%)") && text.contains("portal venous (90%)") && text.contains("delayed (90%)"),
        "{text}"
    );
}

#[test]
fn register_writes_fields_warped_phases_and_a_report_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).status().unwrap().success());
    let out_dir = tmp.path().join("reg");
    let run = || {
        hepaview()
            .arg("register")
            .arg(dir.join("dicom"))
            .args(["--levels", "2:20,1:10", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("arterial → portal_venous") && text.contains("delayed → portal_venous"), "{text}");
    for f in [
        "report.json",
        "portal_venous.nii.gz",
        "arterial_registered.nii.gz",
        "field_arterial.nii.gz",
        "delayed_registered.nii.gz",
        "field_delayed.nii.gz",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    for p in phases {
        let r = &p["report"];
        assert!(r["rmsd_after_hu"].as_f64().unwrap() < r["rmsd_before_hu"].as_f64().unwrap(), "{r}");
        assert!(r["folding"]["min_jacobian"].as_f64().unwrap() > 0.0);
    }
    // the written field is on the fixed grid, in LPS mm, and closer to the truth than zero
    let (field, _) = hepaview::io::nifti::read_field(&out_dir.join("field_arterial.nii.gz")).unwrap();
    let (truth, _) = hepaview::io::nifti::read_field(&dir.join("true_field_arterial.nii.gz")).unwrap();
    let truth = hepaview::register::resample_field(&truth, &field.geometry);
    let zero = hepaview::Field::zeros(field.geometry.clone());
    let (labels, _) = hepaview::io::nifti::read_mask(&dir.join("labels.nii.gz")).unwrap();
    let liver = hepaview::Volume::new(labels.data.mapv(|l| (l > 0) as u8), labels.geometry.clone());
    let e = hepaview::register::metrics::endpoint_error(&field, &truth, Some(&liver));
    let e0 = hepaview::register::metrics::endpoint_error(&zero, &truth, Some(&liver));
    assert!(e.median < 0.6 * e0.median, "median EPE {} vs {} unregistered", e.median, e0.median);
    // a second run refuses to overwrite
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn register_writes_dicom_series_and_carries_a_moving_mask_onto_the_fixed_grid() {
    use hepaview::register::warp::{invert, warp_labels_linear};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).status().unwrap().success());
    // a mask on the arterial grid: the truth labels (portal venous grid) carried through the
    // inverse of the true arterial field
    let (labels, _) = hepaview::io::nifti::read_mask(&dir.join("labels.nii.gz")).unwrap();
    let (truth, _) = hepaview::io::nifti::read_field(&dir.join("true_field_arterial.nii.gz")).unwrap();
    let (inverse, _) = invert(&hepaview::register::resample_field(&truth, &labels.geometry), 30);
    let arterial = hepaview::study::Study::open(&[dir.join("dicom")]).unwrap();
    let art = arterial.phases.iter().find(|p| p.phase() == hepaview::io::phase::Phase::Arterial).unwrap();
    let art_mask = warp_labels_linear(&labels, &hepaview::register::resample_field(&inverse, &art.volume.geometry));
    let art_mask_path = tmp.path().join("arterial_mask.nii.gz");
    hepaview::io::nifti::write_volume(&art_mask, &art_mask_path).unwrap();

    let out_dir = tmp.path().join("reg");
    let out = hepaview()
        .arg("register")
        .arg(dir.join("dicom"))
        .args(["--levels", "2:20,1:10", "--moving", "arterial", "--dicom", "--warp-mask"])
        .arg(format!("arterial={}", art_mask_path.display()))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // the carried mask lies on the fixed grid, is the moving mask sent through the written
    // field label-wise, and matches the truth (the small demo breathes less than a voxel,
    // so the registration's accuracy is tested on the field, not here)
    let (carried, _) = hepaview::io::nifti::read_mask(&out_dir.join("arterial_mask_registered.nii.gz")).unwrap();
    assert_eq!(carried.geometry.shape, labels.geometry.shape);
    let (field, _) = hepaview::io::nifti::read_field(&out_dir.join("field_arterial.nii.gz")).unwrap();
    assert_eq!(carried.data, warp_labels_linear(&art_mask, &field).data);
    let dice = hepaview::register::metrics::dice_where(&carried, &labels, |l| l > 0);
    assert!(dice > 0.95, "liver Dice {dice:.3}");
    assert!(carried.data.iter().all(|&l| labels.data.iter().any(|&t| t == l)), "no label the input lacks");

    // the DICOM series: same patient and study, a new series in the fixed frame, the
    // registered voxels on the fixed grid
    let scan = hepaview::io::dicom::scan(&out_dir.join("dicom"), &hepaview::io::dicom::no_progress).unwrap();
    let src = hepaview::io::dicom::scan(&dir.join("dicom"), &hepaview::io::dicom::no_progress).unwrap();
    let written: Vec<_> = scan.all_series().collect();
    assert_eq!(written.len(), 1);
    let w = written[0];
    let pv = src.all_series().find(|s| s.description.contains("PORTAL")).unwrap();
    let art_src = src.all_series().find(|s| s.description.contains("ARTERIAL")).unwrap();
    assert_eq!(w.study_uid, art_src.study_uid);
    assert_ne!(w.series_uid, art_src.series_uid);
    assert_eq!(w.frame_of_reference, pv.frame_of_reference);
    assert!(w.description.ends_with(" registered"), "{}", w.description);
    assert_eq!(
        hepaview::io::phase::detect_study_phases(&scan.studies[0])[0].phase,
        hepaview::io::phase::Phase::Arterial,
        "still read as arterial"
    );
    assert_eq!(scan.studies[0].patient_id, src.studies[0].patient_id);
    let (vol, _) = hepaview::io::dicom::load_series(w, &hepaview::io::dicom::no_progress).unwrap();
    let (nii, _) = hepaview::io::nifti::read_volume::<i16>(&out_dir.join("arterial_registered.nii.gz")).unwrap();
    assert!(vol.geometry.max_corner_distance_mm(&nii.geometry) < 1e-3);
    assert_eq!(vol.data, nii.data);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["phases"][0]["dicom"]["files"].as_u64(), Some(vol.geometry.shape[0] as u64));
    if let Ok(o) = std::process::Command::new("dciodvfy")
        .arg(out_dir.join("dicom/arterial_registered").join(hepaview::io::dicom_write::slice_file_name(0)))
        .output()
    {
        let text = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        assert!(!text.lines().any(|l| l.starts_with("Error")), "dciodvfy: {text}");
    }

    // a NIfTI study cannot become DICOM: said so before any work
    let nii_out = hepaview()
        .arg("register")
        .arg(out_dir.join("portal_venous.nii.gz"))
        .arg(out_dir.join("arterial_registered.nii.gz"))
        .args(["--phase", "0=portal_venous", "--phase", "1=arterial", "--dicom", "--out"])
        .arg(tmp.path().join("r2"))
        .output()
        .unwrap();
    assert!(!nii_out.status.success());
    assert!(
        String::from_utf8_lossy(&nii_out.stderr).contains("--dicom needs a DICOM study"),
        "{}",
        String::from_utf8_lossy(&nii_out.stderr)
    );
}

#[test]
fn register_refuses_a_mask_drawn_on_another_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).status().unwrap().success());
    let out = hepaview()
        .arg("register")
        .arg(dir.join("dicom"))
        .arg("--warp-mask")
        .arg(format!("arterial={}", dir.join("labels.nii.gz").display()))
        .arg("--out")
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not the arterial phase's") && err.contains("labels.nii.gz"), "{err}");
    assert!(!tmp.path().join("r").exists(), "nothing written");
}

#[test]
fn register_names_a_missing_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).status().unwrap().success());
    let out = hepaview()
        .arg("register")
        .arg(dir.join("dicom/arterial"))
        .args(["--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no portal_venous phase"), "{err}");
}

/// Numbers admesh prints after `label :` (both columns for the facet table).
fn admesh_numbers(report: &str, label: &str) -> Vec<f64> {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("admesh printed no {label:?}:\n{report}"));
    line.split(':')
        .skip(1)
        .flat_map(|s| s.split_whitespace().filter_map(|w| w.parse::<f64>().ok()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn mesh_exports_closed_surfaces_that_admesh_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().args(["demo", "--small", "--out"]).arg(&dir).status().unwrap().success());
    let out_dir = tmp.path().join("meshes");
    let out = hepaview().arg("mesh").arg(dir.join("labels.nii.gz")).arg("--out").arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("objects.json")).unwrap()).unwrap();
    let objects = summary["objects"].as_array().unwrap();
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("lesions.json")).unwrap()).unwrap();
    let n_lesions = truth.as_array().or_else(|| truth["lesions"].as_array()).unwrap().len();
    assert_eq!(objects.len(), 1 + n_lesions, "the liver and one object per tumour");
    assert!(out_dir.join("objects.obj").is_file());

    let again = hepaview().arg("mesh").arg(dir.join("labels.nii.gz")).arg("--out").arg(&out_dir).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let Some(admesh) = common::tool("admesh") else { return };
    for o in objects {
        let stl = out_dir.join(o["stl_file"].as_str().unwrap());
        let report = Command::new(&admesh).arg(&stl).output().unwrap();
        let text = String::from_utf8_lossy(&report.stdout);
        assert_eq!(admesh_numbers(&text, "Total disconnected facets"), vec![0.0, 0.0], "{text}");
        assert_eq!(admesh_numbers(&text, "Backwards edges")[0], 0.0, "{text}");
        assert_eq!(admesh_numbers(&text, "Number of parts")[0], 1.0, "{text}");
        assert_eq!(admesh_numbers(&text, "Degenerate facets")[0], 0.0, "{text}");
        // admesh's own volume agrees with ours (8 mm demo voxels are too coarse to compare
        // with the voxel count; tests/mesh.rs does that on fine grids)
        let volume_ml = admesh_numbers(&text, "Number of parts")[1] / 1000.0;
        let ours_ml = o["mesh_volume_ml"].as_f64().unwrap();
        assert!(
            (volume_ml / ours_ml - 1.0).abs() < 0.005,
            "{}: admesh volume {volume_ml} mL vs ours {ours_ml} mL",
            o["name"]
        );
    }
}

#[test]
fn compare_without_masks_segments_both_visits_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, follow) = (tmp.path().join("base"), tmp.path().join("follow"));
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&base).status().unwrap().success());
    assert!(hepaview().args(["demo", "--small", "--follow-up", "--out"]).arg(&follow).status().unwrap().success());
    let out_dir = tmp.path().join("cmp");
    let out = hepaview()
        .arg("compare")
        .arg("--baseline")
        .arg(base.join("dicom"))
        .arg("--followup")
        .arg(follow.join("dicom"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("baseline: no mask given") && err.contains("followup: no mask given"), "{err}");
    for f in ["baseline_mask.nii.gz", "followup_mask.nii.gz", "compare.json", "compare.html", "lesions.csv"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    // the written masks are the U-Net's outlines on each visit's portal venous grid, and the
    // baseline's liver overlaps the demo's truth (the lesions are the model's weak part)
    let (mask, _) = hepaview::io::nifti::read_mask(&out_dir.join("baseline_mask.nii.gz")).unwrap();
    let (truth, _) = hepaview::io::nifti::read_mask(&base.join("labels.nii.gz")).unwrap();
    assert_eq!(mask.geometry.shape, truth.geometry.shape);
    let dice = hepaview::register::metrics::dice_where(&mask, &truth, |l| l > 0);
    assert!(dice > 0.85, "liver Dice of the automatic baseline mask {dice:.3}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap()).unwrap();
    assert!(report.get("response").is_some() || report.get("recist").is_some(), "{report}");
}

#[test]
fn demo_from_study_simulates_a_follow_up_that_compare_reads_as_built() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&src).status().unwrap().success());
    let pair = tmp.path().join("pair");
    let make = |out: &std::path::Path| {
        hepaview()
            .args(["demo", "--from-study"])
            .arg(src.join("dicom"))
            .arg("--true-field")
            .arg(format!("arterial={}", src.join("true_field_arterial.nii.gz").display()))
            .arg("--true-field")
            .arg(format!("delayed={}", src.join("true_field_delayed.nii.gz").display()))
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    // without --liver-seed the U-Net finds the liver to start from
    let out = make(&pair);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = make(&pair);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "never writes into a used folder"
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair.join("truth.json")).unwrap()).unwrap();
    let t = &truth["truth"];

    // a new study, two months later, DICOM like its source, phases found again
    let follow =
        hepaview::study::Study::open(&[pair.join("followup/dicom"), pair.join("followup/mask.nii.gz")]).unwrap();
    let base = hepaview::study::Study::open(&[pair.join("baseline/dicom")]).unwrap();
    assert_eq!(follow.phases.len(), 3);
    assert!(follow.labels.is_some(), "the mask beside the DICOM folder is read");
    assert_ne!(base.title, follow.title, "{} vs {}", base.title, follow.title);

    let cmp = pair.join("compare");
    let out = hepaview()
        .arg("compare")
        .arg("--baseline")
        .arg(pair.join("baseline/dicom"))
        .arg("--baseline-mask")
        .arg(pair.join("baseline/mask.nii.gz"))
        .arg("--followup")
        .arg(pair.join("followup/dicom"))
        .arg("--followup-mask")
        .arg(pair.join("followup/mask.nii.gz"))
        .arg("--out")
        .arg(&cmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cmp.join("compare.json")).unwrap()).unwrap();
    let r = &report["response"];
    let lesions = r["lesions"].as_array().unwrap();
    assert_eq!(lesions.len(), 1, "one lesion, paired: {lesions:?}");
    let l = &lesions[0];
    let close = |a: &serde_json::Value, b: &serde_json::Value, tol: f64| {
        (a.as_f64().unwrap() / b.as_f64().unwrap() - 1.0).abs() < tol
    };
    assert!(
        close(&l["baseline_ml"], &t["baseline_ml"], 0.02) && close(&l["followup_ml"], &t["followup_ml"], 0.05),
        "{l} vs {t}"
    );
    assert_eq!(r["recist"]["category"], t["recist"], "{r}");
    assert_eq!(r["mrecist"]["category"], t["mrecist"], "{r}");
    // the alignment found the pose the follow-up was made with
    let est: hepaview::register::affine::AffineTransform =
        serde_json::from_value(report["baseline_to_followup"].clone()).unwrap();
    let truth_t: hepaview::register::affine::AffineTransform =
        serde_json::from_value(t["baseline_to_followup"].clone()).unwrap();
    let c: [f64; 3] = serde_json::from_value(t["lesion_centre_mm"].clone()).unwrap();
    let (a, b) = (est.apply(c), truth_t.apply(c));
    let err = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    assert!(err < 2.0, "lesion centre mapped {err:.2} mm from where the pose put it");
}

#[test]
fn open_reads_a_mask_beside_a_dicom_folder_and_refuses_what_it_cannot_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&dir).status().unwrap().success());
    // the viewer's autosave folder inside the study is not a problem to report
    std::fs::create_dir_all(dir.join("dicom/.hepaview-session")).unwrap();
    std::fs::write(dir.join("dicom/.hepaview-session/manifest.json"), b"{}").unwrap();
    let s = hepaview::study::Study::open(&[dir.join("dicom"), dir.join("labels.nii.gz")]).unwrap();
    assert!(s.labels.is_some());
    assert!(s.warnings.iter().all(|w| !w.to_string().contains("hepaview-session")), "{:?}", s.warnings);
    let e = hepaview::study::Study::open(&[dir.join("dicom"), dir.join("anatomy.nii.gz")])
        .err()
        .expect("an image NIfTI beside DICOM is refused")
        .to_string();
    assert!(e.contains("anatomy.nii.gz") && e.contains("cannot join a DICOM study"), "{e}");
    let e = hepaview::study::Study::open(&[dir.join("dicom"), dir.join("labels.nii.gz"), dir.join("labels.nii.gz")])
        .err()
        .expect("two masks are refused")
        .to_string();
    assert!(e.contains("one label mask"), "{e}");
}

#[test]
fn train_refuses_a_mimic_fraction_outside_0_to_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hepaview()
        .args(["train", "--synthetic", "1", "--mimics", "1.5", "--out"])
        .arg(tmp.path().join("m.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mimics 1.5"), "{err}");
    assert!(!tmp.path().join("m.safetensors").exists());
}

/// Every file and folder under `root` (relative path, kind, size, mtime), to tell whether
/// anything was written, replaced or removed there, even if put back.
fn tree_state(root: &std::path::Path) -> Vec<(std::path::PathBuf, bool, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (e.path().strip_prefix(root).unwrap().to_path_buf(), m.is_dir(), m.len(), m.modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Issue 27: a command asked only to read a study changes nothing in its folder (no
/// session, probe or temporary file, not even created and removed again: a folder's mtime
/// would say so), with its outputs going elsewhere.
#[test]
fn reading_commands_leave_the_study_folder_exactly_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    assert!(hepaview().arg("demo").arg("--small").arg("--out").arg(&demo).status().unwrap().success());
    let study = demo.join("dicom");
    let labels = demo.join("labels.nii.gz");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // mtimes are compared, so let any clock granularity pass first
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = tree_state(&demo);
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["info".into(), study.clone().into()],
        vec![
            "screenshot".into(),
            study.clone().into(),
            "--out".into(),
            out.join("shot.png").into(),
            "--size".into(),
            "320x200".into(),
        ],
        vec!["segment".into(), study.clone().into(), "--out".into(), out.join("mask.nii.gz").into()],
        vec![
            "register".into(),
            study.clone().into(),
            "--levels".into(),
            "1:5".into(),
            "--out".into(),
            out.join("reg").into(),
        ],
        vec![
            "report".into(),
            study.clone().into(),
            "--mask".into(),
            labels.clone().into(),
            "--out".into(),
            out.join("report").into(),
        ],
    ];
    for args in runs {
        let o = hepaview().args(&args).env("XDG_DATA_HOME", tmp.path().join("data-home")).output().unwrap();
        assert!(o.status.success(), "hepaview {:?}: {}", args[0], String::from_utf8_lossy(&o.stderr));
        assert_eq!(tree_state(&demo), before, "hepaview {:?} changed the study folder", args[0]);
    }
}

/// Issue 27: one `.dcm` file is almost always a mistake (its folder was meant): refused
/// unless asked for with --allow-single-slice.
#[test]
fn convert_of_one_file_asks_for_allow_single_slice() {
    let Some(data) = common::shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let one = data.join("hcc048-pv/00000001.dcm");
    let out = tmp.path().join("one.nii.gz");
    let refused = hepaview().arg("convert").arg(&one).arg("--out").arg(&out).output().unwrap();
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("single slice") && msg.contains("--allow-single-slice"), "{msg}");
    assert!(!out.exists());
    let ok = hepaview().arg("convert").arg(&one).arg("--out").arg(&out).arg("--allow-single-slice").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(hepaview::io::nifti::read_ct(&out).unwrap().0.geometry.shape[0], 1);
}

/// Issue 27: enumerated options are listed in --help, and a wrong value exits 2 naming
/// the choices, before any work.
#[test]
fn enumerated_options_list_their_choices_and_refuse_others() {
    let cases: [(&[&str], &[&str]); 5] = [
        (&["register", "x", "--out", "y", "--variant", "fast"], &["thirion", "symmetric", "diffeomorphic"]),
        (&["register", "x", "--out", "y", "--fixed", "venous"], &["arterial", "portal_venous", "delayed"]),
        (&["screenshot", "--out", "y.png", "--layout", "tiles"], &["row", "grid", "single"]),
        (&["screenshot", "--out", "y.png", "--window", "brain"], &["liver", "abdomen", "bone", "lung"]),
        (&["mesh", "m.nii.gz", "--out", "y", "--format", "ply"], &["stl", "obj", "both"]),
    ];
    for (args, choices) in cases {
        let o = hepaview().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        for c in choices {
            assert!(err.contains(c), "{args:?}: {err}");
        }
        let help = hepaview().args([args[0], "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for c in choices {
            assert!(help.contains(c), "{} --help lacks {c}: {help}", args[0]);
        }
    }
}

/// Issue 27: every command's PATH arguments are described in its --help.
#[test]
fn every_path_argument_is_described_in_help() {
    for cmd in ["open", "info", "convert", "screenshot", "register", "cluster", "report", "segment", "outline", "mesh"]
    {
        let out = hepaview().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let args: Vec<&str> = help.split("Options:").next().unwrap_or_default().lines().collect();
        for (i, line) in args.iter().enumerate().filter(|(_, l)| l.trim_start().starts_with('<')) {
            // clap puts the description after the name, or on the next line, indented
            let next = args.get(i + 1).copied().unwrap_or_default();
            let described = line.trim().contains("  ") || (next.starts_with("        ") && !next.trim().is_empty());
            assert!(described, "{cmd}: argument without a description: {line:?}\n{help}");
        }
    }
}
