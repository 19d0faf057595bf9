//! `hepaview cluster` and `hepaview report` end to end on the small demo study: the files,
//! their content against the phantom's truth, determinism, no overwriting, and the HTML
//! page rendered by headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn hepaview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hepaview"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed:\n{}\n{}", cmd, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn small_demo(dir: &Path) -> PathBuf {
    let demo = dir.join("demo");
    run_ok(hepaview().args(["demo", "--small", "--out"]).arg(&demo));
    demo
}

#[test]
fn cluster_writes_ordered_deterministic_labels_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = small_demo(tmp.path());
    let out = |name: &str| tmp.path().join(name);
    let args = |o: &Path| {
        let mut c = hepaview();
        c.arg("cluster").arg(demo.join("dicom")).arg("--mask").arg(demo.join("labels.nii.gz")).args(["--k", "5", "--out"]).arg(o);
        c
    };
    let text = run_ok(&mut args(&out("c1.nii.gz")));
    assert!(text.contains("registered"), "{text}");
    run_ok(&mut args(&out("c2.nii.gz")));

    let (a, _) = hepaview::io::nifti::read_mask(&out("c1.nii.gz")).unwrap();
    let (b, _) = hepaview::io::nifti::read_mask(&out("c2.nii.gz")).unwrap();
    assert_eq!(a.data, b.data, "two runs must give the same clusters");
    let (labels, _) = hepaview::io::nifti::read_mask(&demo.join("labels.nii.gz")).unwrap();
    assert_eq!(a.geometry.shape, labels.geometry.shape, "clusters live on the mask's grid");
    // Clusters lie in the liver + tumour only, use labels 1..=5, and cover the region
    // except the slices some phase does not reach (the small demo's arterial phase is shorter).
    for (c, l) in a.data.iter().zip(labels.data.iter()) {
        assert!(*c == 0 || *l == 1 || *l == 2);
        assert!(*c <= 5);
    }
    let region = labels.data.iter().filter(|&&l| l == 1 || l == 2).count();
    let clustered = a.data.iter().filter(|&&c| c > 0).count();
    assert!(clustered as f64 >= 0.8 * region as f64 && clustered <= region, "{clustered} of {region}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out("c1.json")).unwrap()).unwrap();
    let clusters = json["clusters"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 5);
    let pv = json["clusters"]["feature_names"].as_array().unwrap().iter().position(|n| n == "portal venous").unwrap();
    let means: Vec<f64> = clusters.iter().map(|c| c["mean"][pv].as_f64().unwrap()).collect();
    assert!(means.windows(2).all(|w| w[0] <= w[1]), "clusters numbered by portal venous HU: {means:?}");
    // Every cluster is tissue: no cluster made of the air filled in outside a phase's slab.
    for c in clusters {
        for m in c["mean"].as_array().unwrap() {
            assert!(m.as_f64().unwrap() > -200.0, "a cluster of filled-in values: {c}");
        }
    }

    let again = args(&out("c1.nii.gz")).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn report_measures_the_demo_lesions_and_renders_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = small_demo(tmp.path());
    let dir = tmp.path().join("report");
    run_ok(hepaview().arg("report").arg(demo.join("dicom")).arg("--mask").arg(demo.join("labels.nii.gz")).args(["--clusters", "7", "--out"]).arg(&dir));

    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(demo.join("lesions.json")).unwrap()).unwrap();
    let truth = truth.as_array().or_else(|| truth["lesions"].as_array()).unwrap().clone();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let lesions = json["lesions"]["lesions"].as_array().unwrap();
    assert_eq!(lesions.len(), truth.len(), "one report entry per phantom lesion");
    for t in &truth {
        let v = t["volume_ml"].as_f64().unwrap();
        assert!(lesions.iter().any(|l| (l["volume_ml"].as_f64().unwrap() - v).abs() < 0.01 * v + 0.01), "no lesion of {v} mL in the report");
    }
    assert_eq!(json["clusters"]["k"], 7);

    let csv = std::fs::read_to_string(dir.join("lesions.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), truth.len() + 1, "{csv}");
    assert!(rows[0].starts_with("lesion,volume_ml,recist_long_mm") && rows[0].contains("arterial_mean_hu") && rows[0].contains("delayed_lesion_minus_liver_hu"));

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), truth.len() * 3, "a key image per lesion and phase");
    assert_eq!(html.matches("<svg").count(), truth.len(), "an enhancement curve per lesion");
    assert!(html.contains("not a diagnosis"));
    assert!(!html.contains("http://") || html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count(), "no external resources");

    let again = hepaview().arg("report").arg(demo.join("dicom")).arg("--mask").arg(demo.join("labels.nii.gz")).arg("--out").arg(&dir).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let Some(chromium) = common::tool("chromium") else { return };
    let shot = tmp.path().join("report.png");
    let status = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .unwrap();
    assert!(shot.is_file(), "chromium wrote no screenshot: {}", String::from_utf8_lossy(&status.stderr));
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 1600));
    // The page really drew its parts: the lesion outline in the key images (yellow), the
    // lesion curve (orange) and the liver curve (blue) of the SVG plots.
    let has = |rgb: [u8; 3]| img.pixels().filter(|p| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12)).count();
    assert!(has([255, 200, 0]) > 50, "no lesion outline pixels in the rendered page");
    assert!(has([0xe0, 0x66, 0x2b]) > 50, "no lesion curve in the rendered page");
    assert!(has([0x3b, 0x6f, 0xd8]) > 50, "no liver curve in the rendered page");
    if let Ok(keep) = std::env::var("HEPAVIEW_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
