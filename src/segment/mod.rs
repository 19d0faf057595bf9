//! On-device liver and tumour segmentation: a small 2-D U-Net in candle (CPU), fed the
//! study's contrast phases as channels (arterial, portal venous, delayed; missing phases
//! marked, so portal venous alone works), trained here on synthetic and user data.
//!
//! - `model`: the network (`UNet::new(vb, &cfg)`, `forward(x, train)`).
//! - `weights`: the safetensors file with its config; refuses missing or mismatched files.
//! - `preprocess`: model grid, HU window, channels; probabilities back to the study grid.
//! - `infer`: whole-study inference in batches with progress/cancel, post-processing.
//! - `bridges`: organs joined to the liver by a thin bridge (heart, stomach), cut off.
//! - `lumen`: gas-filled organs (stomach, bowel) the network took for liver, taken out.
//! - `lesion_search`: round patches of liver unlike its parenchyma, that the network
//!   left as liver, added as lesions.
//! - `plausibility`: is the result a liver (volume, side)? Failures said, never silent.
//! - `refine`: the liver's and tumours' edges moved to the study's own intensities at its
//!   own resolution.
//! - `score`: a result against a reference: liver and tumour Dice, lesions found, missed
//!   and false.
//! - `synth`: training cases made from the phantom (realistic and SynthSeg-style random
//!   intensities, random tumours) and from NIfTI pairs.
//! - `mimics`: heart-, stomach- and bowel-like structures beside the liver, as background.
//! - `tumour_stage`: the cascade's second network: tumours inside the liver's box at
//!   1.5 mm, each phase against its own liver.
//! - `tumours`: realistic synthetic lesions (types, shapes, textures, enhancement, mass
//!   effect) for `SynthRecipe::realistic_tumours`.
//! - `train`: AdamW on Dice + cross-entropy, augmentation, validation, checkpoints.

pub mod bridges;
pub mod complete;
pub mod folded;
pub mod infer;
pub mod lesion_search;
pub mod lumen;
pub mod mimics;
pub mod model;
pub mod plausibility;
pub mod postprocess;
pub mod predict;
pub mod preprocess;
pub mod refine;
pub mod score;
pub mod synth;
pub mod train;
pub mod tumour_stage;
pub mod tumours;
pub mod weights;

use std::path::PathBuf;

pub use infer::{
    fast_registration, phases_to_register, segment, InferOptions, SegmentInput, Segmentation, SlicesFn,
    REGISTRATION_SHARE, REGISTRATION_VOXEL_MM,
};
pub use model::{UNet, UNetConfig};
pub use plausibility::{check_liver, Concern, LiverCheck};
pub use postprocess::postprocess;
pub use predict::predict_slices;
pub use train::{train, TrainOptions, TrainReport, TrainStatus};
pub use weights::{default_model_path, load_unet, read_checkpoint, save_unet, DEFAULT_MODEL};

use crate::volume::random::SplitMix64;
use crate::volume::Mask;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{path}: model weights not found; run `hepaview train --out {path}` to make them, or pass --model with the shipped models/unet.safetensors")]
    WeightsMissing { path: PathBuf },
    #[error(
        "{path}: these weights do not fit the U-Net: {detail}; use a file written by `hepaview train` (or retrain)"
    )]
    WeightsMismatch { path: PathBuf, detail: String },
    #[error("{path}: could not write the weights: {detail}; check the folder exists and is writable")]
    WeightsWrite { path: PathBuf, detail: String },
    #[error("U-Net: {0}")]
    Model(String),
    #[error("the study has no phase to segment; open a CT study first")]
    NoPhase,
    #[error("{path}: {detail}")]
    Data { path: PathBuf, detail: String },
    #[error("no training data: {0}")]
    NoTrainingData(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<candle_core::Error> for SegmentError {
    fn from(e: candle_core::Error) -> Self {
        SegmentError::Model(e.to_string())
    }
}

/// Dice of `label` between two masks on the same grid (1.0 when both lack it).
pub fn dice(a: &Mask, b: &Mask, label: u8) -> f64 {
    crate::register::metrics::dice(a, b, label)
}

/// Dice of the whole liver (liver and tumour labels together, as LiTS scores the liver).
pub fn dice_liver(a: &Mask, b: &Mask) -> f64 {
    crate::register::metrics::dice_where(a, b, |v| v > 0)
}

/// Every random choice in training and synthesis draws from one of these, seeded, so a
/// run is reproducible (rand's thread RNG is not): the crate's SplitMix64
/// ([`crate::volume::random`]) with the draws the training code needs.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::seeded(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.f32().max(1e-7);
        let v = self.f32();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}
