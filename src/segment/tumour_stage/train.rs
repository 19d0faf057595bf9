//! Training the tumour stage: AdamW on cross-entropy + soft Dice of the tumour class over
//! batches of 2.5-D patches (`cases::sample`), cosine decay, a fixed validation set of
//! patches scored by tumour Dice, the best checkpoint kept. Seeded, so a run is
//! reproducible given the same thread count.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rayon::prelude::*;

use super::cases::{sample, StageCase};
use super::{CLASSES, IN_CHANNELS};
use crate::segment::model::{UNet, UNetConfig};
use crate::segment::train::{
    last_path, loss_fn, mean, scheduled_rate, seeded_init, start_from, trainable_vars, TrainReport, TrainStatus,
};
use crate::segment::weights::save_unet;
use crate::segment::{Rng, SegmentError};

#[derive(Clone, Debug)]
pub struct StageTrainOptions {
    pub config: UNetConfig,
    pub patch: usize,
    pub batch: usize,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub max_minutes: Option<f64>,
    pub seed: u64,
    pub out: Option<PathBuf>,
    /// Validation patches per validation case.
    pub val_patches_per_case: usize,
    /// Start from these weights (a stage of the same config) instead of random ones.
    pub init: Option<PathBuf>,
}

impl Default for StageTrainOptions {
    fn default() -> Self {
        StageTrainOptions {
            config: super::config(vec![8, 16, 32, 64]),
            patch: 64,
            batch: 16,
            epochs: 40,
            steps_per_epoch: 50,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            max_minutes: None,
            seed: 1,
            out: None,
            val_patches_per_case: 8,
            init: None,
        }
    }
}

/// Trains a fresh stage on `train`, validating on `val`; `progress` as for the liver
/// network's `segment::train` (false stops, keeping the best). The report's
/// `best_val_dice` is the best validation tumour Dice here.
pub fn train_stage(
    train: &[StageCase],
    val: &[StageCase],
    opts: &StageTrainOptions,
    progress: &(dyn Fn(&TrainStatus) -> bool + Sync),
) -> Result<(VarMap, TrainReport), SegmentError> {
    if train.iter().all(|c| c.tumour.is_empty()) {
        return Err(SegmentError::NoTrainingData("no training case has a tumour".into()));
    }
    if opts.config.in_channels != IN_CHANNELS || opts.config.classes != CLASSES {
        return Err(SegmentError::Model("the tumour stage takes 4 channels and gives 2 classes".into()));
    }
    if !opts.patch.is_multiple_of(opts.config.size_multiple()) {
        return Err(SegmentError::Model(format!(
            "patch {} is not a multiple of {}",
            opts.patch,
            opts.config.size_multiple()
        )));
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = UNet::new(vb, &opts.config)?;
    seeded_init(&varmap, opts.seed)?;
    if let Some(path) = &opts.init {
        start_from(&varmap, &opts.config, path)?;
    }
    let params = ParamsAdamW { lr: opts.learning_rate, weight_decay: opts.weight_decay, ..Default::default() };
    let mut opt = AdamW::new(trainable_vars(&varmap)?, params)?;
    let mut rng = Rng::new(opts.seed);
    let p = opts.patch;
    let val_set: Vec<(Vec<f32>, Vec<u32>)> = val
        .iter()
        .enumerate()
        .flat_map(|(n, c)| {
            let mut r = Rng::new(77 + n as u64);
            (0..opts.val_patches_per_case).map(move |_| sample(c, p, &mut r, false)).collect::<Vec<_>>()
        })
        .collect();
    let total = opts.epochs * opts.steps_per_epoch;
    let start = Instant::now();
    let mut report = TrainReport::new();
    let mut recent = Vec::new();
    let mut step = 0;
    'epochs: for epoch in 1..=opts.epochs {
        for _ in 0..opts.steps_per_epoch {
            opt.set_learning_rate(scheduled_rate(opts.learning_rate, step, total, start, opts.max_minutes));
            let seeds: Vec<u64> = (0..opts.batch).map(|_| rng.next_u64()).collect();
            let samples: Vec<(Vec<f32>, Vec<u32>)> = seeds
                .par_iter()
                .map(|&s| {
                    let mut r = Rng::new(s);
                    let c = &train[r.below(train.len())];
                    sample(c, p, &mut r, true)
                })
                .collect();
            let (x, y) = stack(samples, p)?;
            let logits = model.forward(&x, true)?;
            let loss = loss_fn(&logits, &y, CLASSES)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()?;
            if report.first_losses.len() < 5 {
                report.first_losses.push(l);
            }
            recent.push(l);
            step += 1;
            let elapsed = start.elapsed().as_secs_f64();
            if step % 5 == 0 {
                let st = TrainStatus {
                    epoch,
                    step,
                    total_steps: total,
                    loss: mean(&recent[recent.len().saturating_sub(20)..]),
                    val_dice_liver: None,
                    val_dice_tumour: None,
                    elapsed_s: elapsed,
                };
                if !progress(&st) {
                    break 'epochs;
                }
            }
            if opts.max_minutes.is_some_and(|m| elapsed > m * 60.0) {
                break;
            }
        }
        let dice = evaluate(&model, &val_set, opts)?;
        let elapsed = start.elapsed().as_secs_f64();
        let st = TrainStatus {
            epoch,
            step,
            total_steps: total,
            loss: mean(&recent[recent.len().saturating_sub(opts.steps_per_epoch)..]),
            val_dice_liver: None,
            val_dice_tumour: dice,
            elapsed_s: elapsed,
        };
        report.history.push(st.clone());
        let score = dice.unwrap_or(0.0);
        let improved = score > report.best_val_dice;
        if let Some(out) = &opts.out {
            save_unet(&varmap, &opts.config, &last_path(out))?;
            if improved {
                save_unet(&varmap, &opts.config, out)?;
            }
        }
        if improved {
            report.best_val_dice = score;
            report.best_epoch = epoch;
        }
        if !progress(&st) || opts.max_minutes.is_some_and(|m| elapsed > m * 60.0) {
            break;
        }
    }
    report.steps = step;
    report.seconds = start.elapsed().as_secs_f64();
    report.last_losses = recent[recent.len().saturating_sub(5)..].to_vec();
    Ok((varmap, report))
}

fn stack(samples: Vec<(Vec<f32>, Vec<u32>)>, p: usize) -> Result<(Tensor, Tensor), SegmentError> {
    let b = samples.len();
    let mut xs = Vec::with_capacity(b * IN_CHANNELS * p * p);
    let mut ys = Vec::with_capacity(b * p * p);
    for (x, y) in samples {
        xs.extend(x);
        ys.extend(y);
    }
    Ok((Tensor::from_vec(xs, (b, IN_CHANNELS, p, p), &Device::Cpu)?, Tensor::from_vec(ys, (b, p, p), &Device::Cpu)?))
}

/// Tumour Dice over the validation patches (eval mode); `None` when they hold no tumour
/// and none is predicted.
fn evaluate(model: &UNet, set: &[(Vec<f32>, Vec<u32>)], opts: &StageTrainOptions) -> Result<Option<f64>, SegmentError> {
    let (mut inter, mut a, mut b) = (0u64, 0u64, 0u64);
    for chunk in set.chunks(opts.batch.max(1)) {
        let (x, _) = stack(chunk.to_vec(), opts.patch)?;
        let pred: Vec<u32> = model.forward(&x, false)?.argmax(1)?.flatten_all()?.to_vec1()?;
        for (pr, gt) in pred.iter().zip(chunk.iter().flat_map(|(_, y)| y.iter())) {
            inter += (*pr == 1 && *gt == 1) as u64;
            a += (*pr == 1) as u64;
            b += (*gt == 1) as u64;
        }
    }
    Ok(if a + b == 0 { None } else { Some(2.0 * inter as f64 / (a + b) as f64) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::tumour_stage::cases::make_case;
    use crate::volume::{Geometry, Volume};
    use ndarray::{s, Array3};

    /// A few steps on box livers: the loss is finite and the checkpoint loads as a stage.
    #[test]
    fn a_short_run_writes_a_stage_that_loads() {
        let g = Geometry {
            shape: [10, 72, 72],
            spacing_mm: [3.0, 1.5, 1.5],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut lab = Array3::<u8>::zeros((10, 72, 72));
        lab.slice_mut(s![1..9, 8..64, 8..64]).fill(1);
        let ct = Volume::new(lab.mapv(|l| if l == 1 { 100i16 } else { 20 }), g.clone());
        let labels = Volume::new(lab, g);
        let cases: Vec<StageCase> = (0..30u64)
            .filter_map(|seed| make_case("box", &ct, &labels, &[1], None, seed, 8))
            .filter(|c| !c.tumour.is_empty())
            .take(3)
            .collect();
        assert!(cases.len() >= 2, "seeds with lesions");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stage.safetensors");
        let opts = StageTrainOptions {
            config: crate::segment::tumour_stage::config(vec![4, 8]),
            patch: 16,
            batch: 2,
            epochs: 1,
            steps_per_epoch: 3,
            out: Some(out.clone()),
            val_patches_per_case: 1,
            ..StageTrainOptions::default()
        };
        let (_, report) = train_stage(&cases[..cases.len() - 1], &cases[cases.len() - 1..], &opts, &|_| true).unwrap();
        assert_eq!(report.steps, 3);
        assert!(report.first_losses.iter().all(|l| l.is_finite()));
        let model = crate::segment::load_unet(&out).unwrap();
        assert!(crate::segment::tumour_stage::is_stage(&model.config));
    }
}
