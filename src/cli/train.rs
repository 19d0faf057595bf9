//! `hepaview train`: the U-Net trained from NIfTI pairs, label maps and synthetic phantom
//! cases. All the work is in `hepaview::segment`; here only arguments, the cases, a
//! progress bar and files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use hepaview::segment::synth::{self, LabelMapStyle, PhantomStyle, SynthRecipe, TrainCase};
use hepaview::segment::{self, TrainOptions, UNetConfig};

use super::common::{parse_list, read_label_map, write_train_record, LabelMap};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Folder of NIfTI pairs (X.nii.gz + X_seg.nii.gz, or LiTS names with --lits).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// LiTS layout: volume-N.nii / segmentation-N.nii.
    #[arg(long)]
    pub lits: bool,
    /// Weights file to write (best validation checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 100)]
    pub steps_per_epoch: usize,
    /// Synthetic phantom cases to add (half own contrast, half random per-label intensities).
    #[arg(long, default_value_t = 24)]
    pub synthetic: usize,
    /// Channels per U-Net level.
    #[arg(long, default_value = "8,16,32,64")]
    pub features: String,
    /// In-plane pixel size of the model, mm.
    #[arg(long, default_value_t = 4.0)]
    pub spacing_mm: f64,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Side of the square training patches, pixels.
    #[arg(long, default_value_t = 96)]
    pub patch: usize,
    /// Stop after this many minutes, keeping the best checkpoint.
    #[arg(long)]
    pub minutes: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A real CT and its organ label map, `CT.nii.gz,LABELS.nii.gz` (TotalSegmentator's
    /// multilabel output, say): cases are synthesised from it (real CT, per-organ HU
    /// offsets, per-organ random means), each with random tumours. Repeatable.
    #[arg(long = "label-map", value_name = "CT,LABELS")]
    pub label_maps: Vec<String>,
    /// Classes of --label-map that are liver (comma-separated; 5 is liver in
    /// TotalSegmentator v2's "total" task).
    #[arg(long, default_value = "5")]
    pub liver_class: String,
    /// Cases synthesised per --label-map.
    #[arg(long, default_value_t = 12)]
    pub label_map_cases: usize,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Start from these weights instead of random ones: fine-tune a model (the shipped
    /// `models/unet.safetensors`, say) on your own cases. The network is the file's, so
    /// --features and --spacing-mm do not apply.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Peak learning rate of AdamW (cosine decay to a tenth after a short warm-up);
    /// about 5e-4 suits fine-tuning.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Fraction (0–1) of synthetic cases given liver mimics: heart-, stomach- and
    /// bowel-like structures with liver-like or blood-pool intensity against the liver,
    /// labelled background.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub mimics: f32,
    /// Make a quarter of the synthetic tumours large (25–45 mm radius) and give
    /// arterial-enhancing ones a mottled interior.
    #[arg(long)]
    pub large_tumours: bool,
    /// Replace the synthetic tumours with realistic lesions: HCC (capsule, necrosis,
    /// mosaic, satellites), metastases (target rim), cysts, haemangiomas (filling in),
    /// lipiodol-treated and infiltrative lesions; 2.5–60 mm, lobulated, textured, with
    /// blurred edges, per-phase enhancement and mass effect.
    #[arg(long)]
    pub realistic_tumours: bool,
    /// Fraction (0–1) of samples that keep a random subset of their phases, each in its
    /// own channel (arterial alone, delayed alone, arterial + delayed, …). Above 0 the
    /// weights are marked as trained for any phase protocol, and `segment` feeds a
    /// study's phases as they are.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub phase_subsets: f32,
}

pub(crate) fn run(a: Args) -> Result<()> {
    if !(0.0..=1.0).contains(&a.mimics) {
        return Err(anyhow::anyhow!("--mimics {}: give a fraction of cases from 0 to 1", a.mimics));
    }
    if !(0.0..=1.0).contains(&a.phase_subsets) {
        return Err(anyhow::anyhow!("--phase-subsets {}: give a fraction of samples from 0 to 1", a.phase_subsets));
    }
    let recipe =
        SynthRecipe { mimics: a.mimics, large_tumours: a.large_tumours, realistic_tumours: a.realistic_tumours };
    train_cmd(a, recipe)
}

/// Makes the training cases, trains with a progress bar, writes the best checkpoint to
/// `--out` (and `<stem>.last.safetensors`, `<stem>.train.json` beside it).
pub(crate) fn train_cmd(a: Args, recipe: SynthRecipe) -> Result<()> {
    if hepaview::io::taken(&a.out) && !a.force {
        bail!("{} already exists; choose another output name, or --force to replace it (Hepaview never overwrites files unasked)", a.out.display());
    }
    if !(a.learning_rate.is_finite() && a.learning_rate > 0.0) {
        bail!(
            "--learning-rate {}: give a positive number (2e-3 from scratch, about 5e-4 to fine-tune)",
            a.learning_rate
        );
    }
    let config = match &a.init {
        Some(init) => {
            if init.canonicalize().ok().is_some_and(|i| a.out.canonicalize().ok() == Some(i)) {
                bail!("--out {} is the --init file; write the fine-tuned weights to another file", a.out.display());
            }
            // the network is the file's: --features and --spacing-mm do not apply
            let (config, _) = segment::read_checkpoint(init)
                .with_context(|| format!("reading the --init weights {}", init.display()))?;
            eprintln!(
                "Starting from {} (U-Net {:?}, {} mm pixels)",
                init.display(),
                config.features,
                config.spacing_mm
            );
            config
        }
        None => {
            let features: Vec<usize> = parse_list(&a.features, "--features", "a whole number")?;
            UNetConfig { features, spacing_mm: a.spacing_mm, ..UNetConfig::default() }
        }
    };
    let multiple = config.size_multiple();
    let t0 = Instant::now();
    let mut cases: Vec<TrainCase> = Vec::new();
    if let Some(dir) = &a.data {
        let pairs = synth::find_pairs(dir, a.lits)?;
        eprintln!("Reading {} image/label pairs from {}…", pairs.len(), dir.display());
        cases.extend(synth::cases_from_pairs(&pairs, config.spacing_mm, multiple)?);
    }
    if !a.label_maps.is_empty() {
        let liver: Vec<u8> = parse_list(&a.liver_class, "--liver-class", "a label number 0-255")?;
        for (m, spec) in a.label_maps.iter().enumerate() {
            let LabelMap { name, ct_path, lab_path, ct, labels } = read_label_map(spec, &liver)?;
            eprintln!("Synthesising {} cases from {ct_path} and {lab_path}…", a.label_map_cases);
            let made: Vec<TrainCase> = (0..a.label_map_cases)
                .into_par_iter()
                .map(|i| {
                    let style = [LabelMapStyle::Real, LabelMapStyle::Offsets, LabelMapStyle::Means][i % 3];
                    synth::label_map_case(
                        &name,
                        &ct,
                        &labels,
                        &liver,
                        style,
                        5000 + a.seed * 10_000 + (m * 1000 + i) as u64,
                        config.spacing_mm,
                        multiple,
                        recipe,
                    )
                })
                .collect();
            cases.extend(made);
        }
    }
    if a.synthetic > 0 {
        eprintln!(
            "Making {} synthetic phantom cases (half own contrast, half randomised per-label intensities)…",
            a.synthetic
        );
        // Seeds from 1000 up: the demo (seed 48) and the evaluation seeds (below 1000) stay out.
        let made: Vec<TrainCase> = (0..a.synthetic)
            .into_par_iter()
            .map(|i| {
                let style = if i % 2 == 0 { PhantomStyle::Realistic } else { PhantomStyle::SynthSeg };
                synth::phantom_case(1000 + a.seed * 10_000 + i as u64, style, config.spacing_mm, a.patch, recipe)
            })
            .collect();
        cases.extend(made);
    }
    if cases.is_empty() {
        bail!("no training data: give --data DIR, --label-map CT,LABELS and/or --synthetic N");
    }
    // Every fifth case validates (at least one), the rest train: deterministic.
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, c) in cases.into_iter().enumerate() {
        if i % 5 == 4 {
            val.push(c);
        } else {
            train.push(c);
        }
    }
    if val.is_empty() && train.len() > 1 {
        val.push(train.pop().expect("len > 1"));
    }
    eprintln!("{} training / {} validation cases ready in {:.1} s", train.len(), val.len(), t0.elapsed().as_secs_f64());
    let opts = TrainOptions {
        config,
        batch: a.batch,
        patch: a.patch,
        epochs: a.epochs,
        steps_per_epoch: a.steps_per_epoch,
        max_minutes: a.minutes,
        seed: a.seed,
        out: Some(a.out.clone()),
        init: a.init.clone(),
        learning_rate: a.learning_rate,
        subset_prob: a.phase_subsets,
        ..TrainOptions::default()
    };
    let total = (opts.epochs * opts.steps_per_epoch) as u64;
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:50} [{bar:30}] {pos}/{len} steps ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = |s: &segment::TrainStatus| {
        pb.set_position(s.step as u64);
        match (s.val_dice_liver, s.val_dice_tumour) {
            (Some(l), t) => {
                let line = format!(
                    "epoch {} step {} loss {:.4} val Dice liver {:.4} tumour {} ({:.0} s)",
                    s.epoch,
                    s.step,
                    s.loss,
                    l,
                    t.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into()),
                    s.elapsed_s
                );
                // the bar draws nothing when stderr is not a terminal (nohup, CI): print the line
                if pb.is_hidden() {
                    eprintln!("{line}");
                } else {
                    pb.println(&line);
                }
                pb.set_message(line);
            }
            _ => pb.set_message(format!("epoch {} loss {:.4}", s.epoch, s.loss)),
        }
        true
    };
    let (_, report) = segment::train(&train, &val, &opts, &progress)?;
    pb.finish_and_clear();
    // the synthetic recipe beside the history, so a file says what it was trained on
    let mut record = serde_json::to_value(&report)?;
    record["recipe"] = serde_json::to_value(recipe)?;
    let json = write_train_record(&a.out, &record)?;
    println!(
        "Trained {} steps in {:.1} min; best validation liver Dice {:.4} (epoch {}) → {}; history in {}",
        report.steps,
        report.seconds / 60.0,
        report.best_val_dice,
        report.best_epoch,
        a.out.display(),
        json.display()
    );
    Ok(())
}
