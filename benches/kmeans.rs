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
//!
//! k-means++ draws different random numbers here and in scikit-learn, and which local
//! optimum a fit ends in depends on the start (on the tri-phase features scikit-learn's own
//! inertia varies by about 6 % over seeds 0..5). So beside the headline fit the bench
//! checks exactness: Hepaview's Lloyd started from scikit-learn's own k-means++ centres
//! (same points, `init=`) must reach the same inertia. scikit-learn's `inertia_` is summed
//! in float32 for float32 data (0.37 % low on the tri-phase features, 0.004 % on the random
//! points), so that comparison uses its fit's inertia recomputed in float64; Hepaview sums
//! in float64 throughout. `--seed-sweep N` adds Hepaview's inertia over seeds 0..N.
//! `--tol T` and `--max-iter N` change both sides' settings.

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
    let header =
        std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated header")?).map_err(|e| e.to_string())?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(format!("{}: need C-order little-endian float32, header {header}", path.display()));
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| "bad shape"))
        .collect::<Result<_, _>>()?;
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
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .current_dir(anchors)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
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
        "random" => format!(
            "import numpy as np; np.save('{p}', np.random.default_rng(0).random((5_000_000, 3), dtype=np.float32))"
        ),
        _ => format!(
            "import numpy as np, kmeans_sklearn as m; X, info = m.build_features('{}'); np.save('{p}', X); print(info)",
            data.join("triphase-hcc048/dicom").display()
        ),
    };
    python(&code, anchors)
}

fn anchor(npy: &Path, anchors: &Path, runs: usize, threads: usize, opts: &KMeansOptions) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg(anchors.join("kmeans_sklearn.py"))
        .arg("--features")
        .arg(npy)
        .args(["--runs", &runs.to_string(), "--threads", &threads.to_string()])
        .args(["--tol", &opts.tol.to_string(), "--max-iter", &opts.max_iter.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("anchor skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().rev().find(|l| l.starts_with('{'))?).ok()
}

/// scikit-learn's own k-means++ start for `KMeans(random_state=0)` on this data: the
/// indices `kmeans_plusplus` picks on the mean-centred data (what `KMeans.fit` seeds on),
/// those points as centres, and the fit from them (`init=centres`), which should equal the
/// default fit if the start was reproduced. scikit-learn sums `inertia_` in float32 for
/// float32 data, which on the tri-phase features reads 0.37 % low, so the fit's inertia is
/// also recomputed in float64 from its labels and centres (`inertia_f64`).
fn sklearn_start(npy: &Path, anchors: &Path, threads: usize, opts: &KMeansOptions) -> Option<serde_json::Value> {
    let code = format!(
        "import os\nos.environ.setdefault('OMP_NUM_THREADS', '{threads}')\nimport json, numpy as np, threadpoolctl\n\
         from sklearn.cluster import KMeans, kmeans_plusplus\n\
         X = np.load('{}')\nXc = X - X.mean(axis=0)\n\
         with threadpoolctl.threadpool_limits(limits={threads}):\n\
         \x20   _, idx = kmeans_plusplus(Xc, 7, random_state=0)\n\
         \x20   C = X[idx]\n\
         \x20   km = KMeans(7, init=C, n_init=1, algorithm='lloyd', tol={}, max_iter={}).fit(X)\n\
         X64 = X.astype(np.float64)\n\
         exact = float(((X64 - km.cluster_centers_.astype(np.float64)[km.labels_]) ** 2).sum())\n\
         print(json.dumps({{'init': C.ravel().astype(float).tolist(), 'indices': idx.tolist(), 'inertia': float(km.inertia_), 'inertia_f64': exact, 'n_iter': int(km.n_iter_)}}))",
        npy.display(),
        opts.tol,
        opts.max_iter
    );
    let out = Command::new("python3").arg("-c").arg(&code).current_dir(anchors).output().ok()?;
    if !out.status.success() {
        eprintln!("sklearn start skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().rev().find(|l| l.starts_with('{'))?).ok()
}

/// The 1-minute load average, to show whether something else ran beside the bench.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
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
    // k 7, seed 0, max_iter 300, tol 1e-4 unless given (`--tol`, `--max-iter`, for both)
    let defaults = KMeansOptions::default();
    let tol = args
        .iter()
        .position(|a| a == "--tol")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(defaults.tol);
    let opts = KMeansOptions { tol, max_iter: arg_value(&args, "--max-iter", defaults.max_iter), ..defaults };
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
        let load_before = loadavg();
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
        let a = if skip_anchor { None } else { anchor(&npy, &anchors, runs, threads, &opts) };
        let peer = |alg: &str, key: &str| a.as_ref().and_then(|a| a["results"][alg][key].as_f64());
        let (lloyd, elkan) = (peer("lloyd", "seconds_min"), peer("elkan", "seconds_min"));
        let faster = match (lloyd, elkan) {
            (Some(l), Some(e)) => Some(if l <= e { ("lloyd", l) } else { ("elkan", e) }),
            (Some(l), None) => Some(("lloyd", l)),
            (None, Some(e)) => Some(("elkan", e)),
            _ => None,
        };
        // exactness: our Lloyd from scikit-learn's own k-means++ start
        let same_start = if skip_anchor { None } else { sklearn_start(&npy, &anchors, threads, &opts) };
        let from_sklearn_start = same_start.as_ref().and_then(|s| {
            let init: Vec<f32> = s["init"].as_array()?.iter().filter_map(|v| v.as_f64()).map(|v| v as f32).collect();
            let o = KMeansOptions { init: Some(init), ..opts.clone() };
            let t = Instant::now();
            let r = pool.install(|| kmeans(&x, &o)).ok()?;
            Some((t.elapsed().as_secs_f64(), r))
        });
        // how much the optimum depends on the seed (ours)
        let sweep: Vec<(u64, usize, f64)> = (0..arg_value(&args, "--seed-sweep", 0) as u64)
            .filter_map(|seed| {
                pool.install(|| kmeans(&x, &KMeansOptions { seed, ..opts.clone() }))
                    .ok()
                    .map(|r| (seed, r.iterations, r.inertia))
            })
            .collect();
        let mut sizes = fit.sizes.clone();
        sizes.sort_unstable();
        let load_after = loadavg();
        println!("{name}: {rows} points × {cols} features, k = {}, {threads} threads (load average {load_before:.2} before, {load_after:.2} after)", fit.k);
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
            println!("  speed-up      {:.2}× the faster scikit-learn ({alg}); inertia {:+.4} % vs its reported inertia_ (own seeds on both sides)", s / ours, 100.0 * rel);
            speedup = Some(s / ours);
            inertia_rel = Some(rel);
        }
        let mut same_start_json = serde_json::Value::Null;
        if let (Some(s), Some((secs, r))) = (&same_start, &from_sklearn_start) {
            let sk_inertia = s["inertia"].as_f64().unwrap_or(f64::NAN);
            let sk_exact = s["inertia_f64"].as_f64().unwrap_or(f64::NAN);
            let sk_iter = s["n_iter"].as_u64().unwrap_or(0);
            let default_inertia = peer("lloyd", "inertia").unwrap_or(f64::NAN);
            let reproduces = sk_inertia == default_inertia;
            println!(
                "  sklearn exact  its fit's inertia recomputed in float64: {sk_exact:.6e} (its float32 inertia_ {sk_inertia:.6e} is {:+.4} % off); hepaview's own-seed fit is {:+.4} % vs that",
                100.0 * (sk_inertia / sk_exact - 1.0),
                100.0 * (fit.inertia / sk_exact - 1.0)
            );
            println!(
                "  same start    from scikit-learn's k-means++ centres{}: hepaview {} iterations, inertia {:.6e} ({secs:.3} s); scikit-learn {sk_iter} iterations, {sk_exact:.6e} in float64: {:+.4} % (goal within 0.1 %)",
                if reproduces { " (they reproduce its default fit)" } else { " (NOTE: they do not reproduce its default fit)" },
                r.iterations,
                r.inertia,
                100.0 * (r.inertia / sk_exact - 1.0),
            );
            same_start_json = serde_json::json!({ "hepaview_iterations": r.iterations, "hepaview_inertia": r.inertia, "hepaview_seconds": secs, "sklearn_iterations": sk_iter, "sklearn_inertia_float32_sum": sk_inertia, "sklearn_inertia_f64": sk_exact, "inertia_rel_vs_sklearn_f64": r.inertia / sk_exact - 1.0, "own_seed_inertia_rel_vs_sklearn_f64": fit.inertia / sk_exact - 1.0, "reproduces_default_fit": reproduces });
        }
        if !sweep.is_empty() {
            let mut inert: Vec<f64> = sweep.iter().map(|s| s.2).collect();
            inert.sort_by(f64::total_cmp);
            println!(
                "  seed sweep    hepaview seeds 0..{}: inertia min {:.6e}, median {:.6e}, max {:.6e}; iterations {:?}",
                sweep.len(),
                inert[0],
                inert[inert.len() / 2],
                inert[inert.len() - 1],
                sweep.iter().map(|s| s.1).collect::<Vec<_>>()
            );
        }
        report.push(serde_json::json!({
            "input": name, "n": rows, "dims": cols, "k": fit.k, "threads": threads, "loadavg_before": load_before, "loadavg_after": load_after,
            "hepaview": { "seconds_min": ours, "seconds_all": secs, "iterations": fit.iterations, "inertia": fit.inertia, "converged": fit.converged, "cluster_sizes_sorted": sizes, "split_s": { "checks": check_s, "seeding": seed_s, "first_iteration": first_iter_s, "per_later_iteration": per_iter_s } },
            "sklearn": a.as_ref().map(|a| a["results"].clone()),
            "speedup_vs_faster_sklearn": speedup, "inertia_rel_vs_faster_sklearn": inertia_rel,
            "same_start": same_start_json,
            "seed_sweep": sweep.iter().map(|(s, it, i)| serde_json::json!({ "seed": s, "iterations": it, "inertia": i })).collect::<Vec<_>>(),
        }));
    }
    println!(
        "{}",
        serde_json::json!({ "bench": "kmeans", "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "results": report })
    );
}
