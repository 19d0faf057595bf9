//! Training: AdamW on cross-entropy + soft Dice (liver, tumour), batches of augmented 2-D
//! slices (small rotations and scales, rare left-right flips, per-phase intensity shifts and
//! gains, noise, phase dropout so portal venous alone works), a validation split scored by
//! Dice, and checkpoints (best validation → the output file, last → `<out>.last`).
//! Everything random draws from seeded generators, so a run is reproducible given the same
//! thread count (candle's reductions may round differently on another).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rayon::prelude::*;

use super::model::{UNet, UNetConfig};
use super::preprocess::{CHANNELS, MISSING};
use super::synth::TrainCase;
use super::weights::save_unet;
use super::{Rng, SegmentError};

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub config: UNetConfig,
    /// Side of the square training patches, pixels (multiple of the config's size multiple).
    pub patch: usize,
    pub batch: usize,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Probability that a sample keeps only the portal venous phase.
    pub pv_only_prob: f32,
    /// Probability that a sample keeps a random non-empty subset of its phases, each in its
    /// own channel (portal venous left out as often as the others), so the network learns
    /// arterial alone, delayed alone, late arterial + equilibrium. 0 keeps the first recipe
    /// (portal venous always present) bit for bit; above 0 the saved network is marked
    /// `any_phase_subset` and inference feeds phases in their own channels.
    pub subset_prob: f32,
    /// Stop (keeping the best checkpoint) after this long.
    pub max_minutes: Option<f64>,
    pub seed: u64,
    /// Best checkpoint; `<stem>.last.safetensors` beside it gets the latest.
    pub out: Option<PathBuf>,
    /// Validation slices per case (evenly spaced through its liver).
    pub val_slices_per_case: usize,
    /// Start from these weights instead of random ones (fine-tuning); the file's network
    /// must be `config`'s.
    pub init: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            config: UNetConfig::default(),
            patch: 96,
            batch: 8,
            epochs: 10,
            steps_per_epoch: 100,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            pv_only_prob: 0.35,
            subset_prob: 0.0,
            max_minutes: None,
            seed: 1,
            out: None,
            val_slices_per_case: 6,
            init: None,
        }
    }
}

/// What the progress callback sees.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainStatus {
    pub epoch: usize,
    pub step: usize,
    pub total_steps: usize,
    /// Mean training loss over the last steps.
    pub loss: f32,
    pub val_dice_liver: Option<f64>,
    pub val_dice_tumour: Option<f64>,
    pub elapsed_s: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    pub history: Vec<TrainStatus>,
    /// The best epoch's validation Dice of the class the run is judged by: the liver for
    /// the liver network, the tumour for the tumour stage. Its JSON key stays
    /// `best_val_dice_liver`, as the shipped `models/*.train.json` have it.
    #[serde(rename = "best_val_dice_liver")]
    pub best_val_dice: f64,
    pub best_epoch: usize,
    pub steps: usize,
    pub seconds: f64,
    /// Loss of the first and last steps (a quick check that learning happened).
    pub first_losses: Vec<f32>,
    pub last_losses: Vec<f32>,
}

/// Trains a fresh network on `train` cases, validating on `val`. `progress(status)` is
/// called every few steps and after each epoch; returning false stops (the best so far
/// is kept). Returns the trained model's variables and the report.
pub fn train(
    train: &[TrainCase],
    val: &[TrainCase],
    opts: &TrainOptions,
    progress: &(dyn Fn(&TrainStatus) -> bool + Sync),
) -> Result<(VarMap, TrainReport), SegmentError> {
    let pools: Vec<(usize, Vec<usize>)> = train.iter().enumerate().map(|(i, c)| (i, c.liver_slices())).collect();
    if train.is_empty() || pools.iter().all(|(_, s)| s.is_empty()) {
        return Err(SegmentError::NoTrainingData("no training slice contains liver".into()));
    }
    let mut run =
        Run::start(&opts.config, opts.patch, opts.seed, opts.init.as_deref(), opts.learning_rate, opts.weight_decay)?;
    // a network that saw phase subsets says so in its file (inference feeds it accordingly)
    let saved_config =
        UNetConfig { any_phase_subset: opts.config.any_phase_subset || opts.subset_prob > 0.0, ..opts.config.clone() };
    let start = Instant::now();
    let val_set = validation_set(val, opts);
    let epochs = Epochs {
        epochs: opts.epochs,
        steps_per_epoch: opts.steps_per_epoch,
        batch: opts.batch,
        learning_rate: opts.learning_rate,
        max_minutes: opts.max_minutes,
        start,
        out: opts.out.as_deref(),
        config: &saved_config,
    };
    let report = run.epochs(
        &epochs,
        &|seeds| make_batch(train, &pools, seeds, opts),
        &|model| evaluate(model, &val_set, opts),
        // the liver matters most; tumour Dice breaks ties and counts half
        |dl, dt| (dl.unwrap_or(0.0) + 0.5 * dt.unwrap_or(0.0), dl.unwrap_or(0.0)),
        progress,
    )?;
    Ok((run.varmap, report))
}

/// A training run's network, optimiser and generator, shared by the liver network and the
/// tumour stage.
pub(crate) struct Run {
    pub(crate) varmap: VarMap,
    model: UNet,
    opt: AdamW,
    rng: Rng,
}

/// A batch (inputs, labels) made from one seed per sample.
pub(crate) type BatchFn<'a> = &'a dyn Fn(&[u64]) -> Result<(Tensor, Tensor), SegmentError>;
/// The validation Dice (liver, tumour) of the network as it is now.
pub(crate) type ValidateFn<'a> = &'a dyn Fn(&UNet) -> Result<(Option<f64>, Option<f64>), SegmentError>;

/// How a run's epochs go (see [`Run::epochs`]).
pub(crate) struct Epochs<'a> {
    pub(crate) epochs: usize,
    pub(crate) steps_per_epoch: usize,
    pub(crate) batch: usize,
    pub(crate) learning_rate: f64,
    /// Stop (keeping the best checkpoint) after this long from `start`.
    pub(crate) max_minutes: Option<f64>,
    pub(crate) start: Instant,
    /// Best checkpoint; `<stem>.last.safetensors` beside it gets the latest. Saved as
    /// `config`, whose classes the loss counts.
    pub(crate) out: Option<&'a Path>,
    pub(crate) config: &'a UNetConfig,
}

impl Run {
    /// `config`'s network with seeded weights (or `init`'s, fine-tuning), its AdamW, and
    /// the run's generator. Refuses a patch side the network cannot take.
    pub(crate) fn start(
        config: &UNetConfig,
        patch: usize,
        seed: u64,
        init: Option<&Path>,
        learning_rate: f64,
        weight_decay: f64,
    ) -> Result<Run, SegmentError> {
        if !patch.is_multiple_of(config.size_multiple()) {
            return Err(SegmentError::Model(format!(
                "patch {} is not a multiple of {}",
                patch,
                config.size_multiple()
            )));
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = UNet::new(vb, config)?;
        seeded_init(&varmap, seed)?;
        if let Some(path) = init {
            start_from(&varmap, config, path)?;
        }
        let params = ParamsAdamW { lr: learning_rate, weight_decay, ..Default::default() };
        let opt = AdamW::new(trainable_vars(&varmap)?, params)?;
        Ok(Run { varmap, model, opt, rng: Rng::new(seed) })
    }

    /// The epochs: per step, the scheduled rate, a batch from `batch` (one seed per sample,
    /// drawn from the run's generator) and one AdamW step; every 5 steps and after each
    /// epoch a status to `progress` (false stops, keeping the best). After each epoch the
    /// validation Dice (liver, tumour) from `validate`, the last checkpoint, and the best
    /// one by `score(liver, tumour)` = (what is compared, what the report keeps).
    pub(crate) fn epochs(
        &mut self,
        e: &Epochs,
        batch: BatchFn,
        validate: ValidateFn,
        score: fn(Option<f64>, Option<f64>) -> (f64, f64),
        progress: &(dyn Fn(&TrainStatus) -> bool + Sync),
    ) -> Result<TrainReport, SegmentError> {
        let total = e.epochs * e.steps_per_epoch;
        let start = e.start;
        let mut report = TrainReport::new();
        let mut recent = Vec::new();
        let mut step = 0;
        let mut best_score = f64::MIN;
        'epochs: for epoch in 1..=e.epochs {
            for _ in 0..e.steps_per_epoch {
                self.opt.set_learning_rate(scheduled_rate(e.learning_rate, step, total, start, e.max_minutes));
                let seeds: Vec<u64> = (0..e.batch).map(|_| self.rng.next_u64()).collect();
                let (x, y) = batch(&seeds)?;
                let logits = self.model.forward(&x, true)?;
                let loss = loss_fn(&logits, &y, e.config.classes)?;
                self.opt.backward_step(&loss)?;
                let l = loss.to_scalar::<f32>()?;
                if report.first_losses.len() < 5 {
                    report.first_losses.push(l);
                }
                recent.push(l);
                step += 1;
                let elapsed = start.elapsed().as_secs_f64();
                let over = e.max_minutes.is_some_and(|m| elapsed > m * 60.0);
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
                if over {
                    break;
                }
            }
            let (dl, dt) = validate(&self.model)?;
            let elapsed = start.elapsed().as_secs_f64();
            let st = TrainStatus {
                epoch,
                step,
                total_steps: total,
                loss: mean(&recent[recent.len().saturating_sub(e.steps_per_epoch)..]),
                val_dice_liver: dl,
                val_dice_tumour: dt,
                elapsed_s: elapsed,
            };
            report.history.push(st.clone());
            let (score, dice) = score(dl, dt);
            let improved = score > best_score;
            if let Some(out) = e.out {
                save_unet(&self.varmap, e.config, &last_path(out))?;
                if improved {
                    save_unet(&self.varmap, e.config, out)?;
                }
            }
            if improved {
                best_score = score;
                report.best_val_dice = dice;
                report.best_epoch = epoch;
            }
            if !progress(&st) || e.max_minutes.is_some_and(|m| elapsed > m * 60.0) {
                break;
            }
        }
        report.steps = step;
        report.seconds = start.elapsed().as_secs_f64();
        report.last_losses = recent[recent.len().saturating_sub(5)..].to_vec();
        Ok(report)
    }
}

/// Sets every variable (BatchNorm statistics included) to the weights in `path`.
pub(crate) fn start_from(varmap: &VarMap, config: &UNetConfig, path: &Path) -> Result<(), SegmentError> {
    let (cfg, tensors) = super::weights::read_checkpoint(path)?;
    // the same network; how it was fed may change (fine-tuning for phase subsets)
    if (UNetConfig { any_phase_subset: config.any_phase_subset, ..cfg.clone() }) != *config {
        return Err(SegmentError::WeightsMismatch {
            path: path.to_path_buf(),
            detail: format!("it holds a U-Net {:?} at {} mm, not the {:?} at {} mm being trained; train with its --features and --spacing-mm", cfg.features, cfg.spacing_mm, config.features, config.spacing_mm),
        });
    }
    let data = varmap.data().lock().map_err(|_| SegmentError::Model("variable map poisoned".into()))?;
    for (name, var) in data.iter() {
        let t = tensors.get(name).ok_or_else(|| SegmentError::WeightsMismatch {
            path: path.to_path_buf(),
            detail: format!("missing {name}"),
        })?;
        var.set(t)?;
    }
    Ok(())
}

/// `<stem>.last.safetensors` beside `out`.
pub fn last_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "unet".into());
    out.with_file_name(format!("{stem}.last.safetensors"))
}

/// Cosine decay from `base` to a tenth of it over the planned steps, after a 30-step
/// warm-up; by steps, or by the clock when a time limit will end the run first.
pub(crate) fn scheduled_rate(base: f64, step: usize, total: usize, start: Instant, max_minutes: Option<f64>) -> f64 {
    let by_time = max_minutes.map_or(0.0, |m| start.elapsed().as_secs_f64() / (m * 60.0));
    let t = (step as f64 / total.max(1) as f64).max(by_time).min(1.0);
    let warm = ((step + 1) as f64 / 30.0).min(1.0);
    base * warm * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

impl TrainReport {
    /// Before the first step.
    pub(crate) fn new() -> Self {
        TrainReport {
            history: Vec::new(),
            best_val_dice: -1.0,
            best_epoch: 0,
            steps: 0,
            seconds: 0.0,
            first_losses: Vec::new(),
            last_losses: Vec::new(),
        }
    }
}

pub(crate) fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

/// Everything the optimiser should move: not BatchNorm's running statistics, which candle
/// keeps as variables too.
pub(crate) fn trainable_vars(varmap: &VarMap) -> Result<Vec<Var>, SegmentError> {
    let data = varmap.data().lock().map_err(|_| SegmentError::Model("variable map poisoned".into()))?;
    let mut named: Vec<(&String, &Var)> =
        data.iter().filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var")).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    Ok(named.into_iter().map(|(_, v)| v.clone()).collect())
}

/// Re-initialises every weight from `seed` (He-normal for convs, zero biases, BatchNorm at
/// identity): candle's CPU initialiser cannot be seeded, and the golden test and
/// reproducible training need the same start every time.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<(), SegmentError> {
    let data = varmap.data().lock().map_err(|_| SegmentError::Model("variable map poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (n, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(n as u64));
        let values: Vec<f32> = if name.ends_with("running_var") || (name.contains(".bn") && name.ends_with("weight")) {
            vec![1.0; count]
        } else if name.ends_with("bias") || name.ends_with("running_mean") {
            vec![0.0; count]
        } else {
            // fan-in: conv [out, in, kh, kw] → in·kh·kw; transposed conv [in, out, kh, kw] → in·kh·kw / 4 per output… use in·kh·kw for both
            let fan_in: usize = dims[1..].iter().product::<usize>().max(1);
            let std = (2.0 / fan_in as f32).sqrt();
            (0..count).map(|_| rng.normal() * std).collect()
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

/// One batch: each sample from its own seed (so a batch is made in parallel yet the same
/// for any thread count): a case, a slice (liver slices nine times in ten), augmentation.
pub fn make_batch(
    cases: &[TrainCase],
    pools: &[(usize, Vec<usize>)],
    seeds: &[u64],
    opts: &TrainOptions,
) -> Result<(Tensor, Tensor), SegmentError> {
    let p = opts.patch;
    let samples: Vec<(Vec<f32>, Vec<u32>)> = seeds
        .par_iter()
        .map(|&s| {
            let mut rng = Rng::new(s);
            let with_liver: Vec<&(usize, Vec<usize>)> = pools.iter().filter(|(_, v)| !v.is_empty()).collect();
            let (ci, slices) = with_liver[rng.below(with_liver.len())];
            let case = &cases[*ci];
            let k = if rng.f32() < 0.9 { slices[rng.below(slices.len())] } else { rng.below(case.labels.dim().0) };
            let phases = PhaseChoice::Dropout { pv_only_prob: opts.pv_only_prob, subset_prob: opts.subset_prob };
            augment_slice(case, k, p, &mut rng, phases, true)
        })
        .collect();
    let b = seeds.len();
    let mut xs = Vec::with_capacity(b * CHANNELS * p * p);
    let mut ys = Vec::with_capacity(b * p * p);
    for (x, y) in samples {
        xs.extend(x);
        ys.extend(y);
    }
    Ok((Tensor::from_vec(xs, (b, CHANNELS, p, p), &Device::Cpu)?, Tensor::from_vec(ys, (b, p, p), &Device::Cpu)?))
}

/// Which of a case's phases a sample keeps (the others are fed as missing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PhaseChoice {
    /// All the case has.
    AsGiven,
    /// Those of these the case has; all it has when it has none of them (a validation
    /// sample of one phase subset).
    Only([bool; CHANNELS]),
    /// Random, when augmenting: a random non-empty subset with probability `subset_prob` (a one-phase case: its phase in a random channel),
    /// else portal venous alone with probability `pv_only_prob`, else each other phase
    /// dropped with probability 0.1 (portal venous always kept).
    Dropout { pv_only_prob: f32, subset_prob: f32 },
}

/// The non-empty subsets of arterial, portal venous and delayed: the protocols a clinic
/// scans (a validation of a subset-trained network cycles through them).
pub const PHASE_SUBSETS: [[bool; CHANNELS]; 7] = [
    [true, true, true],
    [true, false, false],
    [false, true, false],
    [false, false, true],
    [true, false, true],
    [true, true, false],
    [false, true, true],
];

/// A `patch`² sample of slice `k`: with `augment`, a smooth random warp (70 %, up to ~5 px
/// per coarse node), a random rotation (±12°), scale (0.85–1.2 per axis), shift (±12 px), left-right flip (5 %), per-phase gain/offset, noise
/// and phase dropout; without, the centre crop/pad as is. `phases` says which phases it keeps.
pub fn augment_slice(
    case: &TrainCase,
    k: usize,
    patch: usize,
    rng: &mut Rng,
    phases: PhaseChoice,
    augment: bool,
) -> (Vec<f32>, Vec<u32>) {
    let (_, _, h, w) = case.image.dim();
    let (mut a, mut tx, mut ty) = ([[1.0f32, 0.0], [0.0, 1.0]], 0.0f32, 0.0f32);
    let mut present = case.present;
    // the case's channel each input channel reads (a one-phase case may be moved)
    let mut source: [usize; CHANNELS] = std::array::from_fn(|c| c);
    if let PhaseChoice::Only(keep) = phases {
        let kept: [bool; CHANNELS] = std::array::from_fn(|c| keep[c] && case.present[c]);
        if kept.iter().any(|&k| k) {
            present = kept;
        }
    }
    let mut gain = [1.0f32; CHANNELS];
    let mut offset = [0.0f32; CHANNELS];
    let mut noise = 0.0f32;
    // A smooth random warp (displacements on a coarse grid, bilinear between): one body's
    // label map gives many liver shapes.
    let mut warp = [[[0f32; 2]; WARP_NODES]; WARP_NODES];
    if augment {
        if rng.f32() < 0.7 {
            let amp = rng.range(0.0, 5.0);
            for node in warp.iter_mut().flatten() {
                *node = [amp * rng.normal(), amp * rng.normal()];
            }
        }
        let th = rng.range(-12.0, 12.0).to_radians();
        let (sx, sy) = (rng.range(0.85, 1.2), rng.range(0.85, 1.2));
        let flip = if rng.f32() < 0.05 { -1.0 } else { 1.0 };
        let (c, s) = (th.cos(), th.sin());
        // source offset = R · diag(1/s) · F · (output offset)
        a = [[c * flip / sx, -s / sy], [s * flip / sx, c / sy]];
        tx = rng.range(-12.0, 12.0);
        ty = rng.range(-12.0, 12.0);
        for ch in 0..CHANNELS {
            gain[ch] = rng.range(0.9, 1.1);
            offset[ch] = rng.range(-0.06, 0.06);
        }
        noise = rng.range(0.0, 0.03);
        if let PhaseChoice::Dropout { pv_only_prob, subset_prob } = phases {
            // the subset draw only when asked for, so the first recipe's samples stay bit for bit
            if subset_prob > 0.0 && rng.f32() < subset_prob {
                present = random_subset(case.present, rng);
                if case.present.iter().filter(|&&p| p).count() == 1 {
                    // a one-phase case (a real portal venous CT) lends its texture to any
                    // channel: otherwise only the portal venous channel ever sees real
                    // anatomy, and arterial or delayed alone in their own channels fail
                    let from = present.iter().position(|&p| p).unwrap_or(1);
                    let to = rng.below(CHANNELS);
                    present = [false; CHANNELS];
                    present[to] = true;
                    source[to] = from;
                }
            } else {
                if rng.f32() < pv_only_prob {
                    present[0] = false;
                    present[2] = false;
                } else {
                    for ch in [0, 2] {
                        if rng.f32() < 0.1 {
                            present[ch] = false;
                        }
                    }
                }
                if !present[1] {
                    // a case without portal venous still trains as given
                    present = case.present;
                }
            }
        }
    }
    let (cy, cx) = ((h as f32 - 1.0) / 2.0 + ty, (w as f32 - 1.0) / 2.0 + tx);
    let pc = (patch as f32 - 1.0) / 2.0;
    let mut x = vec![0f32; CHANNELS * patch * patch];
    let mut y = vec![0u32; patch * patch];
    let img = case.image.index_axis(ndarray::Axis(0), k);
    let lab = case.labels.index_axis(ndarray::Axis(0), k);
    for r in 0..patch {
        for q in 0..patch {
            let [wx, wy] = warp_at(&warp, q as f32 / (patch - 1).max(1) as f32, r as f32 / (patch - 1).max(1) as f32);
            let (ox, oy) = (q as f32 - pc + wx, r as f32 - pc + wy);
            let sx = cx + a[0][0] * ox + a[0][1] * oy;
            let sy = cy + a[1][0] * ox + a[1][1] * oy;
            let (ni, nj) = (sx.round(), sy.round());
            if ni >= 0.0 && nj >= 0.0 && (ni as usize) < w && (nj as usize) < h {
                y[r * patch + q] = lab[[nj as usize, ni as usize]] as u32;
            }
            let (i0, j0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - i0, sy - j0);
            for ch in 0..CHANNELS {
                let o = &mut x[ch * patch * patch + r * patch + q];
                if !present[ch] {
                    *o = MISSING;
                    continue;
                }
                let at = |jj: f32, ii: f32| -> f32 {
                    if ii < 0.0 || jj < 0.0 || ii as usize >= w || jj as usize >= h {
                        0.0
                    } else {
                        img[[source[ch], jj as usize, ii as usize]] as f32 / 255.0
                    }
                };
                let v = (1.0 - fy) * ((1.0 - fx) * at(j0, i0) + fx * at(j0, i0 + 1.0))
                    + fy * ((1.0 - fx) * at(j0 + 1.0, i0) + fx * at(j0 + 1.0, i0 + 1.0));
                *o = if augment { v * gain[ch] + offset[ch] + noise * rng.normal() } else { v };
            }
        }
    }
    (x, y)
}

/// A random non-empty subset of the phases in `present`, every subset equally likely.
fn random_subset(present: [bool; CHANNELS], rng: &mut Rng) -> [bool; CHANNELS] {
    let have: Vec<usize> = (0..CHANNELS).filter(|&c| present[c]).collect();
    if have.is_empty() {
        return present;
    }
    let pick = 1 + rng.below((1 << have.len()) - 1);
    let mut out = [false; CHANNELS];
    for (bit, &c) in have.iter().enumerate() {
        out[c] = pick & (1 << bit) != 0;
    }
    out
}

/// Nodes per side of the augmentation's warp grid.
const WARP_NODES: usize = 5;

/// The warp's displacement (pixels) at `(u, v)` in 0…1 across the patch.
fn warp_at(warp: &[[[f32; 2]; WARP_NODES]; WARP_NODES], u: f32, v: f32) -> [f32; 2] {
    let last = (WARP_NODES - 1) as f32;
    let (gx, gy) = (u.clamp(0.0, 1.0) * last, v.clamp(0.0, 1.0) * last);
    let (i0, j0) = ((gx.floor() as usize).min(WARP_NODES - 2), (gy.floor() as usize).min(WARP_NODES - 2));
    let (fx, fy) = (gx - i0 as f32, gy - j0 as f32);
    std::array::from_fn(|c| {
        (1.0 - fy) * ((1.0 - fx) * warp[j0][i0][c] + fx * warp[j0][i0 + 1][c])
            + fy * ((1.0 - fx) * warp[j0 + 1][i0][c] + fx * warp[j0 + 1][i0 + 1][c])
    })
}

/// Cross-entropy + mean soft Dice of the foreground classes.
pub fn loss_fn(logits: &Tensor, y: &Tensor, classes: usize) -> Result<Tensor, SegmentError> {
    let (b, c, h, w) = logits.dims4()?;
    let flat = logits.permute((0, 2, 3, 1))?.reshape((b * h * w, c))?;
    let ce = candle_nn::loss::cross_entropy(&flat, &y.flatten_all()?)?;
    let probs = candle_nn::ops::softmax(logits, 1)?;
    let onehot = one_hot(y, classes)?;
    let mut dice_loss = Tensor::new(0f32, &Device::Cpu)?;
    for cls in 1..classes {
        let p = probs.narrow(1, cls, 1)?;
        let t = onehot.narrow(1, cls, 1)?;
        let inter = (&p * &t)?.sum_all()?;
        let denom = (p.sum_all()? + t.sum_all()?)?;
        let d = ((inter * 2.0)? + 1.0)?.div(&(denom + 1.0)?)?;
        dice_loss = (dice_loss + (1.0 - d)?)?;
    }
    Ok((ce + (dice_loss / (classes - 1) as f64)?)?)
}

fn one_hot(y: &Tensor, classes: usize) -> Result<Tensor, SegmentError> {
    let (b, h, w) = y.dims3()?;
    let v: Vec<u32> = y.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; b * classes * h * w];
    for (idx, &lbl) in v.iter().enumerate() {
        let (n, rest) = (idx / (h * w), idx % (h * w));
        out[(n * classes + (lbl as usize).min(classes - 1)) * h * w + rest] = 1.0;
    }
    Ok(Tensor::from_vec(out, (b, classes, h, w), &Device::Cpu)?)
}

/// Fixed validation slices: per case, evenly spaced through its liver, centre crops; all
/// phases, or, when training with phase subsets, the subsets in turn (so the best
/// checkpoint is the best over the protocols, not over three phases only).
fn validation_set(val: &[TrainCase], opts: &TrainOptions) -> Vec<(Vec<f32>, Vec<u32>)> {
    let mut out = Vec::new();
    for case in val {
        let s = case.liver_slices();
        let n = opts.val_slices_per_case.min(s.len());
        for t in 0..n {
            let k = s[(t * s.len()) / n.max(1) + s.len() / (2 * n.max(1))];
            let mut rng = Rng::new(0);
            let phases = if opts.subset_prob > 0.0 {
                PhaseChoice::Only(PHASE_SUBSETS[out.len() % PHASE_SUBSETS.len()])
            } else {
                PhaseChoice::AsGiven
            };
            out.push(augment_slice(case, k.min(case.labels.dim().0 - 1), opts.patch, &mut rng, phases, false));
        }
    }
    out
}

/// Voxel Dice (liver = labels 1+2, tumour = 2) over the validation slices, eval mode.
fn evaluate(
    model: &UNet,
    set: &[(Vec<f32>, Vec<u32>)],
    opts: &TrainOptions,
) -> Result<(Option<f64>, Option<f64>), SegmentError> {
    if set.is_empty() {
        return Ok((None, None));
    }
    let p = opts.patch;
    let (mut li, mut la, mut lb, mut ti, mut ta, mut tb) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for chunk in set.chunks(opts.batch.max(1)) {
        let xs: Vec<f32> = chunk.iter().flat_map(|(x, _)| x.iter().copied()).collect();
        let x = Tensor::from_vec(xs, (chunk.len(), CHANNELS, p, p), &Device::Cpu)?;
        let pred: Vec<u32> = model.forward(&x, false)?.argmax(1)?.flatten_all()?.to_vec1()?;
        for (pr, gt) in pred.iter().zip(chunk.iter().flat_map(|(_, y)| y.iter())) {
            let (a, b) = (*pr > 0, *gt > 0);
            li += (a && b) as u64;
            la += a as u64;
            lb += b as u64;
            let (a, b) = (*pr == 2, *gt == 2);
            ti += (a && b) as u64;
            ta += a as u64;
            tb += b as u64;
        }
    }
    let d = |i: u64, a: u64, b: u64| if a + b == 0 { None } else { Some(2.0 * i as f64 / (a + b) as f64) };
    Ok((d(li, la, lb), if tb == 0 { None } else { d(ti, ta, tb) }))
}

#[cfg(test)]
mod tests {
    /// The shipped `models/*.train.json` name the best score `best_val_dice_liver`: the
    /// renamed field still writes that key.
    #[test]
    fn the_report_keeps_its_json_key() {
        let json = serde_json::to_value(super::TrainReport::new()).unwrap();
        assert_eq!(json["best_val_dice_liver"], -1.0);
        assert!(json.get("best_val_dice").is_none());
    }
}
