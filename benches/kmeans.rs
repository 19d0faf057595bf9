//! k-means (k = 7): Hepaview beside scikit-learn's KMeans (lloyd and elkan, n_init = 1),
//! same points, same run (the anchor script `../shared/anchors/kmeans_sklearn.py`).
//!
//! `cargo bench --bench kmeans` writes two inputs as `.npy` files under the system temp
//! folder (`$TMPDIR/hepaview-kmeans-bench/`, never inside `../shared`):
//!   - `random5M.npy`: `np.random.default_rng(0).random((5_000_000, 3), dtype=float32)`,
//!     exactly the anchor's default input;
//!   - `triphase-hcc048.npy`: the anchor's own `build_features` of
//!     `../shared/data/triphase-hcc048/dicom` (HU arterial, portal venous, delayed of the
//!     soft-tissue voxels), as `--triphase … --save-features` writes it.
//!
//! Then, per input, Hepaview fits `--runs` times (default 3) on a rayon pool of
//! `--threads` threads (default 2), and right after, in the same process tree, the anchor
//! runs `--features FILE --runs N --threads T` (lloyd and elkan). Timed for both: the fit
//! only, k-means++ seeding included (for Hepaview also its input checks and variance pass;
//! the row→column copy of the `.npy` data is reported apart). Prints a table and one JSON
//! line. `-- random` or `-- triphase` picks one input; `--no-anchor` skips scikit-learn.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hepaview::cluster::{kmeans, kmeans_with_progress, FeatureMatrix, KMeansOptions, KMeansResult};

/// A C-order little-endian float32 2-D `.npy` file: (rows, cols, data).
fn read_npy_f32(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{}: not a .npy file", path.display()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(format!("{}: truncated header", path.display())),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated header")?).map_err(|e| e.to_string())?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(format!("{}: need C-order little-endian float32, header {header}", path.display()));
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape")?;
    let dims: Vec<usize> = shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().map_err(|_| "bad shape")).collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("{}: not 2-D: {dims:?}", path.display()));
    };
    let body = &bytes[start + hlen..];
    if body.len() != rows * cols * 4 {
        return Err(format!("{}: {} data bytes for shape {rows}×{cols}", path.display(), body.len()));
    }
    let data = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((rows, cols, data))
}

fn python(code: &str, anchors: &Path) -> Result<(), String> {
    let out = Command::new("python3").arg("-c").arg(code).current_dir(anchors).output().map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("python3 failed").to_string());
    }
    Ok(())
}

/// Writes the input `.npy` if it is not there yet.
fn make_input(name: &str, path: &Path, anchors: &Path, data: &Path) -> Result<(), String> {
    if path.is_file() {
        return Ok(());
    }
    let p = path.display();
    let code = match name {
        "random" => format!("import numpy as np; np.save('{p}', np.random.default_rng(0).random((5_000_000, 3), dtype=np.float32))"),
        _ => format!(
            "import numpy as np, kmeans_sklearn as m; X, info = m.build_features('{}'); np.save('{p}', X); print(info)",
            data.join("triphase-hcc048/dicom").display()
        ),
    };
    python(&code, anchors)
}

fn anchor(npy: &Path, anchors: &Path, runs: usize, threads: usize) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg(anchors.join("kmeans_sklearn.py"))
        .arg("--features")
        .arg(npy)
        .args(["--runs", &runs.to_string(), "--threads", &threads.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("anchor skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().rev().find(|l| l.starts_with('{'))?).ok()
}

fn arg_value(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs bench binaries without `--bench`: only build-check them.
    if !args.iter().any(|a| a == "--bench") {
        println!("kmeans: run with `cargo bench --bench kmeans` to measure");
        return;
    }
    let runs = arg_value(&args, "--runs", 3).max(1);
    let threads = arg_value(&args, "--threads", 2).max(1);
    let skip_anchor = args.iter().any(|a| a == "--no-anchor");
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let anchors = shared.join("anchors");
    let data = shared.join("data");
    let work = std::env::temp_dir().join("hepaview-kmeans-bench");
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("cannot create {}: {e}", work.display());
        return;
    }
    let wanted: Vec<&str> = ["random", "triphase"].into_iter().filter(|n| args.iter().any(|a| a == n)).collect();
    let inputs: Vec<&str> = if wanted.is_empty() { vec!["random", "triphase"] } else { wanted };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("thread pool: {e}");
            return;
        }
    };
    let opts = KMeansOptions::default(); // k 7, seed 0, max_iter 300, tol 1e-4
    let mut report = Vec::new();
    for name in inputs {
        let npy = work.join(if name == "random" { "random5M.npy" } else { "triphase-hcc048.npy" });
        if let Err(e) = make_input(name, &npy, &anchors, &data) {
            eprintln!("{name}: cannot make the input ({e}); skipped");
            continue;
        }
        let (rows, cols, flat) = match read_npy_f32(&npy) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let t = Instant::now();
        let x = match FeatureMatrix::from_rows(&flat, cols) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let to_columns_s = t.elapsed().as_secs_f64();
        drop(flat);
        let mut secs = Vec::new();
        let mut fit: Option<KMeansResult> = None;
        for _ in 0..runs {
            let t = Instant::now();
            let r = pool.install(|| kmeans(&x, &opts));
            secs.push(t.elapsed().as_secs_f64());
            match r {
                Ok(r) => {
                    if let Some(prev) = &fit {
                        assert_eq!(prev, &r, "k-means is not deterministic");
                    }
                    fit = Some(r);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    break;
                }
            }
        }
        let Some(fit) = fit else { continue };
        // where the time goes: one more fit, stamping each progress report
        let stamps = std::sync::Mutex::new(Vec::new());
        let t = Instant::now();
        let _ = pool.install(|| {
            kmeans_with_progress(&x, &opts, &|_, _| {
                if let Ok(mut s) = stamps.lock() {
                    s.push(t.elapsed().as_secs_f64());
                }
                true
            })
        });
        let total = t.elapsed().as_secs_f64();
        let stamps = stamps.into_inner().unwrap_or_default();
        // stamps: before seeding, after seeding, after each iteration
        let at = |i: usize| stamps.get(i).copied().unwrap_or(f64::NAN);
        let (check_s, seed_s, first_iter_s) = (at(0), at(1) - at(0), at(2) - at(1));
        let later = stamps.len().saturating_sub(3);
        let per_iter_s = if later > 0 { (at(stamps.len() - 1) - at(2)) / later as f64 } else { f64::NAN };
        let ours = secs.iter().cloned().fold(f64::INFINITY, f64::min);
        let a = if skip_anchor { None } else { anchor(&npy, &anchors, runs, threads) };
        let peer = |alg: &str, key: &str| a.as_ref().and_then(|a| a["results"][alg][key].as_f64());
        let (lloyd, elkan) = (peer("lloyd", "seconds_min"), peer("elkan", "seconds_min"));
        let faster = match (lloyd, elkan) {
            (Some(l), Some(e)) => Some(if l <= e { ("lloyd", l) } else { ("elkan", e) }),
            (Some(l), None) => Some(("lloyd", l)),
            (None, Some(e)) => Some(("elkan", e)),
            _ => None,
        };
        let mut sizes = fit.sizes.clone();
        sizes.sort_unstable();
        println!("{name}: {rows} points × {cols} features, k = {}, {threads} threads", fit.k);
        println!("  hepaview      min {ours:.3} s of {secs:.3?}, {} iterations, inertia {:.6e} (row→column copy {to_columns_s:.3} s, not timed)", fit.iterations, fit.inertia);
        println!(
            "  hepaview split  checks+variance {:.3} s, seeding {:.3} s, 1st iteration {:.3} s, then {:.4} s per iteration, final assignment {:.3} s",
            check_s,
            seed_s,
            first_iter_s,
            per_iter_s,
            total - stamps.last().copied().unwrap_or(f64::NAN)
        );
        for alg in ["lloyd", "elkan"] {
            if let Some(s) = peer(alg, "seconds_min") {
                println!(
                    "  sklearn {alg}  min {s:.3} s, {} iterations, inertia {:.6e}",
                    peer(alg, "n_iter").unwrap_or(f64::NAN),
                    peer(alg, "inertia").unwrap_or(f64::NAN)
                );
            }
        }
        let mut speedup = None;
        let mut inertia_rel = None;
        if let Some((alg, s)) = faster {
            let inertia = peer(alg, "inertia").unwrap_or(f64::NAN);
            let rel = fit.inertia / inertia - 1.0;
            println!("  speed-up      {:.2}× the faster scikit-learn ({alg}); inertia {:+.4} % vs it (goal ≥ 3×, within 0.1 %)", s / ours, 100.0 * rel);
            speedup = Some(s / ours);
            inertia_rel = Some(rel);
        }
        report.push(serde_json::json!({
            "input": name, "n": rows, "dims": cols, "k": fit.k, "threads": threads,
            "hepaview": { "seconds_min": ours, "seconds_all": secs, "iterations": fit.iterations, "inertia": fit.inertia, "converged": fit.converged, "cluster_sizes_sorted": sizes, "split_s": { "checks": check_s, "seeding": seed_s, "first_iteration": first_iter_s, "per_later_iteration": per_iter_s } },
            "sklearn": a.as_ref().map(|a| a["results"].clone()),
            "speedup_vs_faster_sklearn": speedup, "inertia_rel_vs_faster_sklearn": inertia_rel,
        }));
    }
    println!("{}", serde_json::json!({ "bench": "kmeans", "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "results": report }));
}
