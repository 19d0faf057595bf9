//! `hepaview register --out DIR`: the folder is written whole or not at all (a killed run
//! leaves only a partial folder beside it, which the next run removes), a full folder is
//! never written into, and `--field-spacing-mm` writes the fields on a coarser grid that
//! warps like the full one; the report and stdout give every output's size.

use std::path::Path;
use std::process::Command;

fn hepaview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hepaview"))
}

fn partials(parent: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{name}.partial-")))
        .collect()
}

fn register(demo: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    hepaview()
        .arg("register")
        .arg(demo.join("dicom"))
        .args(["--levels", "2:20,1:10", "--moving", "arterial", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_killed_run_leaves_no_output_and_does_not_block_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    assert!(hepaview().args(["demo", "--small", "--out"]).arg(&demo).status().unwrap().success());
    let out = tmp.path().join("reg");

    // a run killed part-way: the partial folder is there, DIR is not
    let mut child = hepaview()
        .arg("register")
        .arg(demo.join("dicom"))
        .args(["--levels", "2:200,1:200", "--stop-relative", "0", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = tmp.path().join(format!(".reg.partial-{}", child.id()));
    let t0 = std::time::Instant::now();
    while !partial.join("portal_venous.nii.gz").exists() && t0.elapsed().as_secs() < 120 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.is_dir(), "the killed run's partial folder");
    assert!(!out.exists(), "no half-written output folder");
    // and one from a run that never existed (a process id above the kernel's limit)
    let stale = tmp.path().join(".reg.partial-99999999");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("field_arterial.nii.gz"), b"half").unwrap();

    // the rerun is not blocked, removes both, and leaves no partial folder
    let run = register(&demo, &out, &[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&run.stderr));
    assert!(partials(tmp.path(), "reg").is_empty(), "{:?}", partials(tmp.path(), "reg"));
    assert!(stdout.contains("interrupted run"), "{stdout}");
    for f in ["report.json", "portal_venous.nii.gz", "arterial_registered.nii.gz", "field_arterial.nii.gz"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // each file's size in the report and on stdout
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let files = report["files"].as_array().unwrap();
    for f in ["portal_venous.nii.gz", "arterial_registered.nii.gz", "field_arterial.nii.gz"] {
        let e = files.iter().find(|e| e["file"] == f).unwrap_or_else(|| panic!("{f} not in {files:?}"));
        assert_eq!(e["bytes"].as_u64().unwrap(), std::fs::metadata(out.join(f)).unwrap().len(), "{f}");
        assert!(stdout.lines().any(|l| l.contains(f) && (l.contains(" kB") || l.contains(" MB"))), "{stdout}");
    }

    // a complete folder is refused, untouched, with no partial folder left behind
    let before = std::fs::read(out.join("report.json")).unwrap();
    let again = register(&demo, &out, &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists") && err.contains("reg"), "{err}");
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), before);
    assert!(partials(tmp.path(), "reg").is_empty());
}

#[test]
fn field_spacing_writes_a_coarse_field_that_warps_like_the_full_one() {
    use hepaview::io::nifti;
    use hepaview::phantom::{self, PhantomOptions};
    use hepaview::volume::Geometry;
    // the small demo's voxels (8 × 6 × 6 mm) are coarser than 4 mm: the same phantom on
    // 3.2 × 3 × 3 mm grids
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let opts = PhantomOptions {
        portal_venous_grid: Geometry::axis_aligned([60, 128, 128], [3.2, 3.0, 3.0], [-189.0, -189.0, -296.0]),
        arterial_grid: Geometry::axis_aligned([56, 128, 128], [3.2, 3.0, 3.0], [-189.0, -189.0, -291.0]),
        delayed_grid: Geometry::axis_aligned([60, 120, 120], [3.2, 3.2, 3.2], [-188.8, -188.8, -296.0]),
        supersample: [1, 1, 1],
        ..PhantomOptions::small()
    };
    phantom::write_demo_study(&demo, &opts).unwrap();
    let full_out = tmp.path().join("full");
    let coarse_out = tmp.path().join("coarse");
    let full = register(&demo, &full_out, &[]);
    assert!(full.status.success(), "{}", String::from_utf8_lossy(&full.stderr));
    let coarse = register(&demo, &coarse_out, &["--field-spacing-mm", "4"]);
    assert!(coarse.status.success(), "{}", String::from_utf8_lossy(&coarse.stderr));

    let (f, _) = nifti::read_field(&full_out.join("field_arterial.nii.gz")).unwrap();
    let (c, _) = nifti::read_field(&coarse_out.join("field_arterial.nii.gz")).unwrap();
    // the coarse grid: 4 mm on each axis finer than 4 mm, the same origin, covering the full one
    for a in 0..3 {
        let want = f.geometry.spacing_mm[a].max(4.0);
        assert!((c.geometry.spacing_mm[a] - want).abs() < 1e-3, "{:?} vs {:?}", c.geometry, f.geometry);
        let extent = |g: &hepaview::volume::Geometry| (g.shape[a] - 1) as f64 * g.spacing_mm[a];
        assert!(extent(&c.geometry) >= extent(&f.geometry) - 1e-6, "axis {a}");
        assert!(extent(&c.geometry) < extent(&f.geometry) + c.geometry.spacing_mm[a]);
    }
    for a in 0..3 {
        assert!((c.geometry.origin_mm[a] - f.geometry.origin_mm[a]).abs() < 1e-3);
    }
    assert_eq!(c.geometry.shape, [49, 97, 97], "ceil(extent / 4) + 1 samples per axis");
    assert_eq!(f.geometry.shape, [60, 128, 128]);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&coarse_out.join("field_arterial.nii.gz")) < size(&full_out.join("field_arterial.nii.gz")));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(coarse_out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["phases"][0]["field_spacing_mm"][0].as_f64().unwrap(), c.geometry.spacing_mm[2]);

    // back on the fixed grid it is close to the full field, and warps the arterial phase
    // to nearly the same image
    let back = hepaview::register::resample_field(&c, &f.geometry);
    let (labels, _) = nifti::read_mask(&demo.join("labels.nii.gz")).unwrap();
    let liver = hepaview::Volume::new(labels.data.mapv(|l| (l > 0) as u8), labels.geometry.clone());
    let e = hepaview::register::metrics::endpoint_error(&back, &f, Some(&liver));
    let max_u = f.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!("coarse vs full field in the liver: median {:.3} mm; largest component {max_u:.2} mm", e.median);
    assert!(max_u > 1.0, "the full field moves something ({max_u} mm)");
    assert!(e.median < 0.25, "median difference {} mm (largest component {max_u} mm)", e.median);
    let (art, _) = nifti::read_volume::<i16>(&full_out.join("arterial_registered.nii.gz")).unwrap();
    let study = hepaview::study::Study::open(&[demo.join("dicom")]).unwrap();
    let moving = study.phases.iter().find(|p| p.phase() == hepaview::io::phase::Phase::Arterial).unwrap();
    let warped = hepaview::register::warp_volume(&moving.volume, &back, hepaview::volume::Interp::Linear, -1024);
    let diff: Vec<f64> = warped
        .data
        .iter()
        .zip(art.data.iter())
        .zip(liver.data.iter())
        .filter(|(_, &l)| l > 0)
        .map(|((a, b), _)| (*a as f64 - *b as f64).abs())
        .collect();
    let mean = diff.iter().sum::<f64>() / diff.len() as f64;
    eprintln!("arterial warped by the coarse vs the full field: mean |difference| in the liver {mean:.2} HU");
    assert!(mean < 5.0, "mean |difference| in the liver {mean:.2} HU");

    // the flag checked before any work
    let bad = register(&demo, &tmp.path().join("bad"), &["--field-spacing-mm", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--field-spacing-mm"));
    assert!(!tmp.path().join("bad").exists());
}
