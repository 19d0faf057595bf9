//! Demons registration: the whole `hepaview register` process beside SimpleITK's Demons
//! filters (`../shared/anchors/registration_sitk.py`), same data, same run.
//!
//! `cargo bench --bench registration` runs, on `../shared/data/triphase-hcc048`:
//! 1. `hepaview register DICOM --moving arterial,delayed --out TMP` (default settings), timed
//!    as a whole process (loading, registration, warping, writing), then scores the written
//!    fields against the true ones inside `body_mask.nii.gz`: endpoint error median / p95,
//!    min Jacobian and folded voxels;
//! 2. the anchor, `registration_sitk.py --variants fastsym,diffeo --sigma 4`, also timed as a
//!    whole process (its own per-filter seconds are printed too).
//!
//! Options: `--no-anchor`, `--anchor-variants LIST` (default fastsym,diffeo),
//! `--evaluate OUT` (only score an existing output folder), `-- ARGS` (extra arguments for
//! `hepaview register`, for trying settings). The last line is JSON.
//!
//! `--phantom` runs the same on the full-size demo phantom instead (`hepaview demo`, 3 ×
//! 256 × 256 × 80, known breathing fields; body mask = its anatomy > 0), with the anchor's
//! recipe through `benches/anchors/registration_sitk_phantom.py` (only the loader differs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hepaview::io::nifti;
use hepaview::register::{self, metrics};

/// Scores `out/field_{phase}.nii.gz` against the truth in `data`.
fn evaluate(out: &Path, data: &Path, phase: &str) -> Option<serde_json::Value> {
    let (field, _) = nifti::read_field(&out.join(format!("field_{phase}.nii.gz"))).ok()?;
    let (truth, _) = nifti::read_field(&data.join(format!("true_field_{phase}.nii.gz"))).ok()?;
    let (mask, _) = nifti::read_mask(&data.join("body_mask.nii.gz")).ok()?;
    let truth = register::resample_field(&truth, &field.geometry);
    let zero = hepaview::Field::zeros(field.geometry.clone());
    let before = metrics::endpoint_error(&zero, &truth, Some(&mask));
    let after = metrics::endpoint_error(&field, &truth, Some(&mask));
    let fold = metrics::folding(&register::jacobian(&field), Some(&mask));
    Some(serde_json::json!({
        "phase": phase,
        "epe_before_median_mm": before.median, "epe_before_p95_mm": before.p95,
        "epe_median_mm": after.median, "epe_p95_mm": after.p95, "epe_max_mm": after.max,
        "min_jacobian": fold.min_jacobian, "folded_voxels": fold.folded_voxels, "voxels": after.count,
    }))
}

/// The full-size demo study in `dir`, with `body_mask.nii.gz` (anatomy > 0) for scoring.
fn write_phantom(dir: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_hepaview"))
        .arg("demo")
        .arg("--out")
        .arg(dir)
        .status()
        .expect("hepaview demo runs");
    assert!(status.success(), "hepaview demo failed");
    let (anatomy, _) = nifti::read_mask(&dir.join("anatomy.nii.gz")).expect("the demo writes anatomy.nii.gz");
    let body = hepaview::Volume::new(anatomy.data.mapv(|l| (l > 0) as u8), anatomy.geometry.clone());
    nifti::write_volume(&body, &dir.join("body_mask.nii.gz")).expect("body mask written");
}

fn print_scores(scores: &[serde_json::Value]) {
    for s in scores {
        println!(
            "  {:9} EPE median {:.3} p95 {:.3} mm (before {:.2} / {:.2}), min J {:.3} ({} folded)",
            s["phase"].as_str().unwrap_or("?"),
            s["epe_median_mm"].as_f64().unwrap_or(f64::NAN),
            s["epe_p95_mm"].as_f64().unwrap_or(f64::NAN),
            s["epe_before_median_mm"].as_f64().unwrap_or(f64::NAN),
            s["epe_before_p95_mm"].as_f64().unwrap_or(f64::NAN),
            s["min_jacobian"].as_f64().unwrap_or(f64::NAN),
            s["folded_voxels"].as_u64().unwrap_or(0),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("registration: run with `cargo bench --bench registration` to measure");
        return;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let phantom = args.iter().any(|a| a == "--phantom");
    let tmp = std::env::temp_dir().join(format!("hepaview-bench-register-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let phantom_dir = std::env::temp_dir().join(format!("hepaview-bench-phantom-{}", std::process::id()));
    let (data, anchor_script) = if phantom {
        write_phantom(&phantom_dir);
        (
            phantom_dir.clone(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/anchors/registration_sitk_phantom.py"),
        )
    } else {
        (shared.join("data/triphase-hcc048"), shared.join("anchors/registration_sitk.py"))
    };
    if !data.is_dir() {
        eprintln!("{} not found; nothing to measure", data.display());
        return;
    }
    let phases = ["arterial", "delayed"];
    if let Some(i) = args.iter().position(|a| a == "--evaluate") {
        let out = PathBuf::from(&args[i + 1]);
        let scores: Vec<_> = phases.iter().filter_map(|p| evaluate(&out, &data, p)).collect();
        print_scores(&scores);
        println!("{}", serde_json::json!({ "bench": "registration", "scores": scores }));
        return;
    }
    let extra: Vec<String> = args.iter().position(|a| a == "--").map(|i| args[i + 1..].to_vec()).unwrap_or_default();

    let t = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_hepaview"))
        .arg("register")
        .arg(data.join("dicom"))
        .args(["--moving", "arterial,delayed", "--out"])
        .arg(&tmp)
        .args(&extra)
        .status()
        .expect("hepaview runs");
    let ours_s = t.elapsed().as_secs_f64();
    assert!(status.success(), "hepaview register failed");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("report.json")).unwrap_or_default()).unwrap_or_default();
    let scores: Vec<_> = phases.iter().filter_map(|p| evaluate(&tmp, &data, p)).collect();
    println!(
        "hepaview register (whole process, {} extra args {:?}): {ours_s:.1} s",
        if extra.is_empty() { "default settings," } else { "" },
        extra
    );
    print_scores(&scores);
    let _ = std::fs::remove_dir_all(&tmp);

    let mut anchor = serde_json::Value::Null;
    let mut anchor_s = None;
    if !args.iter().any(|a| a == "--no-anchor") {
        let variants = args
            .iter()
            .position(|a| a == "--anchor-variants")
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| "fastsym,diffeo".into());
        let t = Instant::now();
        let out = Command::new("python3")
            .arg(&anchor_script)
            .args(["--variants", &variants, "--phases", "arterial,delayed", "--sigma", "4", "--data"])
            .arg(&data)
            .output();
        let secs = t.elapsed().as_secs_f64();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                for l in text.lines().filter(|l| !l.starts_with('{')) {
                    println!("  sitk: {l}");
                }
                anchor = text
                    .lines()
                    .rev()
                    .find(|l| l.starts_with('{'))
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default();
                anchor_s = Some(secs);
                println!("SimpleITK script ({variants}, whole process): {secs:.1} s");
                // the goal compares with the FastSymmetricForces run alone: its filter seconds
                // plus the script's shared load, as a separate `--variants fastsym` process would take
                if let Some(rows) = anchor["results"].as_array() {
                    let fastsym: f64 =
                        rows.iter().filter(|r| r["variant"] == "fastsym").filter_map(|r| r["seconds"].as_f64()).sum();
                    let diffeo: f64 =
                        rows.iter().filter(|r| r["variant"] == "diffeo").filter_map(|r| r["seconds"].as_f64()).sum();
                    println!("  hepaview whole process / SimpleITK whole process: {:.2}", ours_s / secs);
                    for (name, t) in [("FastSymmetricForces", fastsym), ("Diffeomorphic", diffeo)] {
                        if t > 0.0 {
                            println!("  {name}: {t:.1} s of registration for both phases; hepaview whole process / that: {:.2}", ours_s / t);
                        }
                    }
                }
            }
            Ok(o) => eprintln!("anchor failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
            Err(e) => eprintln!("anchor skipped: {e}"),
        }
    }
    if phantom {
        let _ = std::fs::remove_dir_all(&phantom_dir);
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "registration", "data": if phantom { "demo phantom 256x256x80" } else { "triphase-hcc048" }, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "hepaview_process_s": ours_s, "extra_args": extra, "scores": scores, "hepaview_report": report,
            "anchor_process_s": anchor_s, "anchor": anchor,
        })
    );
}
