//! U-Net inference: the whole tri-phase study and the same network beside PyTorch.
//!
//! `cargo bench --bench segment` (quiet unless `--bench` is among its arguments, so
//! `cargo test --benches` does not run it):
//!   1. `../shared/data/triphase-hcc048/dicom` (3 × 512 × 512 × 89): opening (DICOM decode)
//!      and segmentation with the shipped `models/unet.safetensors` (resampling onto the model
//!      grid, the network, probabilities back, post-processing), seconds and peak RSS;
//!   2. the shipped architecture (`--repeats` passes) and the anchor's (32-64-128-256-512)
//!      on 89 random 256² slices, 3 channels, batch 8, eval mode, as
//!      `../shared/anchors/unet_torch.py` times them (one warm-up batch, then the passes, min
//!      and median), each by the folded kernels `segment` uses and by candle's own ops (the
//!      anchor architecture through candle's ops: one pass, over a minute);
//!   3. `python3 ../shared/anchors/unet_torch.py --features <shipped>` right after, when
//!      torch is importable (else says so; the anchor's stored figure is in results.md §5).
//!
//! Flags: `--repeats N` (default 2), `--no-anchor-arch` skips the 32…512 network through candle's ops,
//! `--no-torch` skips the Python anchor, `--folded-only` times only the folded kernels (no
//! study, no candle ops; for working on the kernels), `--shipped-only` leaves out the
//! anchor's architecture. Threads: candle uses all cores (set
//! `RAYON_NUM_THREADS` to pin); the anchor runs with `--threads` = that count.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hepaview::segment::folded::FoldedUNet;
use hepaview::segment::{self, InferOptions, UNet, UNetConfig};
use hepaview::study::Study;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Which implementation runs the network.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `UNet::forward(x, false)`: candle's ops (im2col conv2d, separate BatchNorm, ReLU…).
    CandleOps,
    /// `FoldedUNet`: BatchNorm folded into the convolutions, hand-written kernels (what
    /// `segment` runs).
    Folded,
}

fn time_network(features: &[usize], repeats: usize, path: Path) -> (f64, f64) {
    let cfg = UNetConfig { features: features.to_vec(), ..UNetConfig::default() };
    let vm = VarMap::new();
    let model = UNet::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).expect("build");
    hepaview::segment::train::seeded_init(&vm, 0).expect("init");
    let folded = FoldedUNet::new(&model).expect("fold");
    let (n, side, batch) = (89usize, 256usize, 8usize);
    let mut rng = hepaview::segment::Rng::new(0);
    let data: Vec<f32> = (0..n * 3 * side * side).map(|_| rng.normal()).collect();
    let x = Tensor::from_vec(data, (n, 3, side, side), &Device::Cpu).expect("input");
    let run = |k: usize, m: usize| -> f32 {
        let xs = x.narrow(0, k, m).expect("narrow");
        match path {
            Path::CandleOps => {
                model.forward(&xs, false).expect("forward").sum_all().expect("sum").to_scalar::<f32>().expect("scalar")
            }
            Path::Folded => {
                let v: Vec<f32> = xs.flatten_all().expect("flatten").to_vec1().expect("vec");
                folded.logits(&v, m, side, side).iter().sum()
            }
        }
    };
    let t = Instant::now();
    run(0, batch);
    let warm = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let mut k = 0;
        while k < n {
            let m = batch.min(n - k);
            run(k, m);
            k += m;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let (min, med) = (times[0], times[times.len() / 2]);
    println!("{path:?} U-Net {features:?}: 89 × 256² × 3, batch 8: warm-up batch {warm:.2} s, min {min:.2} s, median {med:.2} s ({:.0} ms/slice)", min / n as f64 * 1e3);
    (min, med)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let repeats =
        args.iter().position(|a| a == "--repeats").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(2usize);
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model_path = root.join(segment::DEFAULT_MODEL);
    let study_dir = root.join("../shared/data/triphase-hcc048/dicom");
    println!("threads: {threads}");
    let mut json = serde_json::Map::new();
    let model = match segment::load_unet(&model_path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let features = model.config.features.clone();
    let folded_only = args.iter().any(|a| a == "--folded-only");
    if study_dir.is_dir() && !folded_only {
        let t = Instant::now();
        let study = Study::open(std::slice::from_ref(&study_dir)).expect("open the tri-phase study");
        let open_s = t.elapsed().as_secs_f64();
        let rss_open = peak_rss_mib();
        let t = Instant::now();
        let mask =
            hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
        let seg_s = t.elapsed().as_secs_f64();
        let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
        let liver_ml = mask.data.iter().filter(|&&v| v > 0).count() as f64 * voxel_ml;
        let phases: Vec<_> = study.phases.iter().map(|p| p.phase().as_str().to_string()).collect();
        println!(
            "triphase-hcc048 ({}; PV grid {:?}): open {open_s:.2} s, segment {seg_s:.2} s, total {:.2} s; peak RSS {:.0} MiB (after open {rss_open:.0}); liver {liver_ml:.0} mL",
            phases.join(", "),
            mask.geometry.shape,
            open_s + seg_s,
            peak_rss_mib()
        );
        json.insert("study_open_s".into(), open_s.into());
        json.insert("study_segment_s".into(), seg_s.into());
        json.insert("study_peak_rss_mib".into(), peak_rss_mib().into());
        json.insert("study_liver_ml".into(), liver_ml.into());
    } else {
        println!("{} not found: study timing skipped", study_dir.display());
    }
    let anchor_arch = [32, 64, 128, 256, 512];
    let shipped_only = args.iter().any(|a| a == "--shipped-only");
    for (label, feats, reps) in [("shipped", &features[..], repeats), ("anchor_arch", &anchor_arch[..], repeats.min(2))]
    {
        if shipped_only && label != "shipped" {
            continue;
        }
        let (min, med) = time_network(feats, reps, Path::Folded);
        json.insert(format!("folded_{label}_min_s"), min.into());
        json.insert(format!("folded_{label}_median_s"), med.into());
        if !folded_only && (label == "shipped" || !args.iter().any(|a| a == "--no-anchor-arch")) {
            let (min, med) = time_network(feats, if label == "shipped" { repeats } else { 1 }, Path::CandleOps);
            json.insert(format!("candle_{label}_min_s"), min.into());
            json.insert(format!("candle_{label}_median_s"), med.into());
        }
    }
    if !args.iter().any(|a| a == "--no-torch") {
        let anchor = root.join("../shared/anchors/unet_torch.py");
        let has_torch =
            Command::new("python3").args(["-c", "import torch"]).status().map(|s| s.success()).unwrap_or(false);
        if has_torch {
            let feats = features.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",");
            let out = Command::new("python3")
                .arg(&anchor)
                .args(["--features", &feats, "--threads", &threads.to_string(), "--repeats", &repeats.to_string()])
                .output();
            match out {
                Ok(o) => println!("PyTorch anchor (same network):\n{}", String::from_utf8_lossy(&o.stdout)),
                Err(e) => println!("PyTorch anchor could not run: {e}"),
            }
        } else {
            println!("PyTorch anchor not run: `import torch` fails on this machine (torch is not installed); see ../shared/anchors/results.md §5 for its stored figure (32…512: 13.26 s) and docs/benchmarks.md for a same-run comparison on another machine");
        }
    }
    json.insert("peak_rss_mib".into(), peak_rss_mib().into());
    println!("{}", serde_json::Value::Object(json));
}
