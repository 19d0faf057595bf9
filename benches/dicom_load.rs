//! DICOM series → i16 HU volumes: Hepaview beside pydicom+numpy and SimpleITK, same data,
//! same run (the anchor script `../shared/anchors/dicom_load.py`).
//!
//! `cargo bench --bench dicom_load` runs, for each data set, 3 fresh Hepaview processes
//! (this binary re-run with `--child FOLDER`, so peak memory is per load), then the anchor
//! script with `--runs 3`, and prints a table plus one JSON line. Timed work: from file
//! discovery to finished arrays, as in the anchor. Files are in the page cache (each
//! method runs once untimed first). Peak memory is VmHWM of the child process; its
//! baseline before loading is reported apart, as the anchor does for the interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hepaview::io::dicom::{self, no_progress};

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn child(folder: &Path) {
    let baseline = vm_hwm_mb();
    let t = Instant::now();
    let scan = dicom::scan(folder, &no_progress).expect("scan");
    let mut voxel_bytes = 0usize;
    let mut sums = Vec::new();
    let mut vols = Vec::new();
    for s in scan.all_series() {
        let (v, _) = dicom::load_series(s, &no_progress).expect("load");
        voxel_bytes += v.data.len() * 2;
        vols.push(v);
    }
    let seconds = t.elapsed().as_secs_f64();
    let peak = vm_hwm_mb();
    for v in &vols {
        sums.push(v.data.iter().map(|&x| x as i64).sum::<i64>());
    }
    println!(
        "{}",
        serde_json::json!({ "seconds": seconds, "peak_rss_mb": peak, "baseline_rss_mb": baseline, "voxel_mb": voxel_bytes as f64 / 1e6, "n_series": vols.len(), "hu_sums": sums })
    );
}

fn run_child(folder: &Path) -> serde_json::Value {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe).arg("--child").arg(folder).output().expect("child runs");
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("child JSON")
}

fn anchor(folder: &Path, anchors: &Path) -> Option<serde_json::Value> {
    let script = anchors.join("dicom_load.py");
    let out =
        Command::new("python3").arg(&script).arg(folder).args(["--method", "both", "--runs", "3"]).output().ok()?;
    if !out.status.success() {
        eprintln!("anchor skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().rev().find(|l| l.starts_with('{'))?).ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`: only build-check them.
    if !args.iter().any(|a| a == "--bench") {
        println!("dicom_load: run with `cargo bench --bench dicom_load` to measure");
        return;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let data = shared.join("data");
    if !data.is_dir() {
        eprintln!("../shared/data not found; nothing to measure");
        return;
    }
    let skip_anchor = args.iter().any(|a| a == "--no-anchor");
    let mut report = Vec::new();
    for name in ["hcc048-pv", "triphase-hcc048/dicom"] {
        let folder = data.join(name);
        run_child(&folder); // warm the page cache
        let runs: Vec<serde_json::Value> = (0..3).map(|_| run_child(&folder)).collect();
        let secs: Vec<f64> = runs.iter().map(|r| r["seconds"].as_f64().unwrap_or(f64::NAN)).collect();
        let ours = secs.iter().cloned().fold(f64::INFINITY, f64::min);
        let peak = runs.iter().map(|r| r["peak_rss_mb"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
        let base = runs[0]["baseline_rss_mb"].as_f64().unwrap_or(0.0);
        let voxel_mb = runs[0]["voxel_mb"].as_f64().unwrap_or(0.0);
        let (pyd, sitk) = if skip_anchor {
            (None, None)
        } else {
            let a = anchor(&folder, &shared.join("anchors"));
            (
                a.as_ref().and_then(|a| a["results"]["pydicom"]["seconds_min"].as_f64()),
                a.as_ref().and_then(|a| a["results"]["sitk"]["seconds_min"].as_f64()),
            )
        };
        let best_peer = match (pyd, sitk) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        println!("{name}:");
        println!("  hepaview   min {ours:.3} s of {secs:.3?}; peak RSS {peak:.1} MiB (baseline {base:.1}, voxels {voxel_mb:.1} MB, peak − baseline = {:.2}× voxel bytes)", (peak - base) * 1.048576 / voxel_mb);
        if let Some(p) = pyd {
            println!("  pydicom    min {p:.3} s");
        }
        if let Some(s) = sitk {
            println!("  SimpleITK  min {s:.3} s");
        }
        if let Some(b) = best_peer {
            println!("  ratio      {:.2}× the faster peer (goal ≤ 0.5)", ours / b);
        }
        report.push(serde_json::json!({ "data": name, "hepaview_s": ours, "hepaview_runs_s": secs, "peak_rss_mb": peak, "baseline_rss_mb": base, "voxel_mb": voxel_mb, "pydicom_s": pyd, "sitk_s": sitk, "ratio_to_faster_peer": best_peer.map(|b| ours / b) }));
    }
    println!(
        "{}",
        serde_json::json!({ "bench": "dicom_load", "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "results": report })
    );
}
