//! Training the tumour stage: AdamW on cross-entropy + soft Dice of the tumour class over
//! batches of 2.5-D patches (`cases::sample`), cosine decay, a fixed validation set of
//! patches scored by tumour Dice, the best checkpoint kept. Seeded, so a run is
//! reproducible given the same thread count.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rayon::prelude::*;

use super::cases::{sample, StageCase};
use super::{CLASSES, IN_CHANNELS};
use crate::segment::model::{UNet, UNetConfig};
use crate::segment::train::{Epochs, Run, TrainReport, TrainStatus};
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
    /// Share of training patches given another scanner's texture (`cases::retexture`).
    pub texture_share: f32,
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
            texture_share: 0.0,
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
    let mut run =
        Run::start(&opts.config, opts.patch, opts.seed, opts.init.as_deref(), opts.learning_rate, opts.weight_decay)?;
    let p = opts.patch;
    let val_set: Vec<(Vec<f32>, Vec<u32>)> = val
        .iter()
        .enumerate()
        .flat_map(|(n, c)| {
            let mut r = Rng::new(77 + n as u64);
            (0..opts.val_patches_per_case).map(move |_| sample(c, p, &mut r, false, 0.0)).collect::<Vec<_>>()
        })
        .collect();
    let epochs = Epochs {
        epochs: opts.epochs,
        steps_per_epoch: opts.steps_per_epoch,
        batch: opts.batch,
        learning_rate: opts.learning_rate,
        max_minutes: opts.max_minutes,
        start: Instant::now(),
        out: opts.out.as_deref(),
        config: &opts.config,
    };
    let batch = |seeds: &[u64]| {
        let samples: Vec<(Vec<f32>, Vec<u32>)> = seeds
            .par_iter()
            .map(|&s| {
                let mut r = Rng::new(s);
                let c = &train[r.below(train.len())];
                sample(c, p, &mut r, true, opts.texture_share)
            })
            .collect();
        stack(samples, p)
    };
    let report = run.epochs(
        &epochs,
        &batch,
        &|model| Ok((None, evaluate(model, &val_set, opts)?)),
        |_, tumour| (tumour.unwrap_or(0.0), tumour.unwrap_or(0.0)),
        progress,
    )?;
    Ok((run.varmap, report))
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
            .filter_map(|seed| make_case("box", &ct, &labels, &[1], None, seed, 8, 0.0))
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
