//! `hepaview train-tumours`: the cascade's tumour stage, trained on real livers with
//! realistic synthetic lesions implanted. All the work is in
//! `hepaview::segment::tumour_stage`; here only arguments, the cases, progress and files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use rayon::prelude::*;

use hepaview::segment::tumour_stage::{self, cases::StageCase, StageTrainOptions};
use hepaview::segment::TrainStatus;

use super::common::{parse_list, read_label_map, write_train_record, LabelMap};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A real CT and its label map, `CT.nii.gz,LABELS.nii.gz`: the liver (--liver-class)
    /// is where lesions are implanted. Its liver must hold no unlabelled tumour (a real
    /// lesion left as liver teaches the stage to ignore lesions); label real ones
    /// --tumour-class. Repeatable.
    #[arg(long = "label-map", value_name = "CT,LABELS")]
    pub label_maps: Vec<String>,
    /// Classes of --label-map that are liver (comma-separated).
    #[arg(long, default_value = "5")]
    pub liver_class: String,
    /// Class of --label-map that is a real tumour (kept as tumour).
    #[arg(long)]
    pub tumour_class: Option<u8>,
    /// Cases made per --label-map, each with its own lesions and phase appearance.
    #[arg(long, default_value_t = 40)]
    pub cases: usize,
    /// Phantom cases to add (seeds from 2000 up, clear of the evaluation seeds and the
    /// demo's): their three phases through their true motion, own lesions kept, more
    /// implanted.
    #[arg(long, default_value_t = 0)]
    pub phantom: usize,
    /// Weights file to write (best validation tumour Dice).
    #[arg(long)]
    pub out: PathBuf,
    /// Channels per U-Net level.
    #[arg(long, default_value = "8,16,32,64")]
    pub features: String,
    /// Side of the square training patches, pixels of 1.5 mm.
    #[arg(long, default_value_t = 64)]
    pub patch: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 50)]
    pub steps_per_epoch: usize,
    /// Stop after this many minutes, keeping the best checkpoint.
    #[arg(long)]
    pub minutes: Option<f64>,
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start from these tumour-stage weights (fine-tuning); --features must be theirs.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Also train on every case with its slices twice as thick (pairs averaged: the partial
    /// volume of 5 mm slices), this share of them (0: none)
    #[arg(long, default_value_t = 0.0)]
    pub thick_share: f64,
    /// Give this share of the training patches another scanner's texture: a softer kernel
    /// (in-plane blur of 0.3-1.2 pixels) and added noise (0-15 HU); 0: none
    #[arg(long, default_value_t = 0.0)]
    pub texture_share: f32,
    /// Centre this share of the implanted lesions of 20 mm radius or less anywhere in the
    /// liver, its surface included (subcapsular lesions, cut by the liver's edge); 0: a
    /// lesion of 8 mm radius or more is centred where liver surrounds it
    #[arg(long, default_value_t = 0.0)]
    pub surface_share: f32,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(a: Args) -> Result<()> {
    if hepaview::io::taken(&a.out) && !a.force {
        bail!("{} already exists; choose another output name, or --force to replace it (Hepaview never overwrites files unasked)", a.out.display());
    }
    let features: Vec<usize> = parse_list(&a.features, "--features", "a whole number")?;
    let liver: Vec<u8> = parse_list(&a.liver_class, "--liver-class", "a label number 0-255")?;
    let config = tumour_stage::config(features);
    let multiple = config.size_multiple();
    let t0 = Instant::now();
    let (mut train, mut val): (Vec<StageCase>, Vec<StageCase>) = (Vec::new(), Vec::new());
    for (m, spec) in a.label_maps.iter().enumerate() {
        let LabelMap { name, ct_path, ct, labels, .. } = read_label_map(spec, &liver)?;
        eprintln!("Implanting lesions in {} copies of {ct_path}…", a.cases);
        let made: Vec<StageCase> = (0..a.cases)
            .into_par_iter()
            .filter_map(|i| {
                let seed = 70_000 + a.seed * 10_000 + (m * 1000 + i) as u64;
                tumour_stage::cases::make_case(
                    &name,
                    &ct,
                    &labels,
                    &liver,
                    a.tumour_class,
                    seed,
                    multiple,
                    a.surface_share,
                )
            })
            .collect();
        split_every_fifth(made, &mut train, &mut val);
    }
    if a.phantom > 0 {
        eprintln!("Making {} phantom cases…", a.phantom);
        let made: Vec<StageCase> = (0..a.phantom)
            .into_par_iter()
            .filter_map(|i| {
                let seed = 2000 + a.seed * 10_000 + i as u64;
                tumour_stage::cases::phantom_case(seed, 90_000 + seed, multiple)
            })
            .collect();
        split_every_fifth(made, &mut train, &mut val);
    }
    if train.is_empty() {
        bail!("no training data: give --label-map CT,LABELS and/or --phantom N");
    }
    if a.thick_share > 0.0 {
        // every case whose place in the list falls in the share, deterministically
        let thick = |cases: &[StageCase]| -> Vec<StageCase> {
            cases
                .iter()
                .enumerate()
                .filter(|&(n, _)| ((n + 1) as f64 * a.thick_share).floor() > (n as f64 * a.thick_share).floor())
                .map(|(_, c)| tumour_stage::cases::thicken(c, 2))
                .collect()
        };
        let (t, v) = (thick(&train), thick(&val));
        eprintln!("{} training and {} validation cases also with slices twice as thick", t.len(), v.len());
        train.extend(t);
        val.extend(v);
    }
    let lesions = train.iter().filter(|c| !c.tumour.is_empty()).count();
    eprintln!(
        "{} training ({} with lesions) / {} validation cases ready in {:.1} s",
        train.len(),
        lesions,
        val.len(),
        t0.elapsed().as_secs_f64()
    );
    let opts = StageTrainOptions {
        config,
        patch: a.patch,
        batch: a.batch,
        epochs: a.epochs,
        steps_per_epoch: a.steps_per_epoch,
        learning_rate: a.learning_rate,
        max_minutes: a.minutes,
        seed: a.seed,
        out: Some(a.out.clone()),
        init: a.init.clone(),
        texture_share: a.texture_share,
        ..StageTrainOptions::default()
    };
    let progress = |s: &TrainStatus| {
        if let Some(d) = s.val_dice_tumour {
            eprintln!(
                "epoch {} step {} loss {:.4} validation tumour Dice {:.4} ({:.0} s)",
                s.epoch, s.step, s.loss, d, s.elapsed_s
            );
        }
        true
    };
    let (_, report) = tumour_stage::train_stage(&train, &val, &opts, &progress)?;
    let mut record = serde_json::to_value(&report)?;
    record["label_maps"] = serde_json::to_value(&a.label_maps)?;
    record["cases_per_map"] = serde_json::to_value(a.cases)?;
    record["phantom_cases"] = serde_json::to_value(a.phantom)?;
    record["thick_share"] = serde_json::to_value(a.thick_share)?;
    record["texture_share"] = serde_json::to_value(a.texture_share)?;
    record["surface_share"] = serde_json::to_value(a.surface_share)?;
    let json = write_train_record(&a.out, &record)?;
    println!(
        "Trained {} steps in {:.1} min; best validation tumour Dice {:.4} (epoch {}) → {}; history in {}",
        report.steps,
        report.seconds / 60.0,
        report.best_val_dice,
        report.best_epoch,
        a.out.display(),
        json.display()
    );
    Ok(())
}

/// Every fifth case of a source validates, the rest train (each body and the phantoms
/// are split alike, so validation sees every source).
fn split_every_fifth(made: Vec<StageCase>, train: &mut Vec<StageCase>, val: &mut Vec<StageCase>) {
    for (i, c) in made.into_iter().enumerate() {
        if i % 5 == 4 {
            val.push(c);
        } else {
            train.push(c);
        }
    }
}
