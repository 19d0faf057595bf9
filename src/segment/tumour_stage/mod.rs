//! The tumour stage of the cascade (issue 23 item 5; cascaded FCN, Christ et al. 2016;
//! H-DenseUNet, Li et al. 2018). The liver network sees 4 mm pixels, where a 10 mm lesion
//! is two pixels; this second U-Net looks only inside the liver's box, at 1.5 mm in-plane,
//! with the slices above and below as context, and answers one question per pixel: tumour
//! or not.
//!
//! What it sees does not depend on the scanner or the phase: each phase's HU are taken
//! relative to the median of that phase's own liver ([`normalise`]), since a lesion is
//! what differs from its liver (hypo in one phase, hyper in another), and the liver mask
//! of the first stage comes as a fourth channel. A study's phases are each run alone and
//! the most confident answer per voxel wins, so arterial-only, delayed-only and
//! three-phase studies all go through the same network.
//!
//! - `cases`: training cases: real livers with realistic synthetic tumours implanted
//!   (`segment::tumours`, the approach of Hu et al., CVPR 2023), cropped to the liver.
//! - `train`: AdamW on cross-entropy + Dice of 2.5-D patches, best validation kept.
//! - `infer`: the stage on a study: tumour probability on the study's grid, and the labels
//!   it gives inside the liver.
//! - `confirm`: each tumour it proposes checked and redrawn by the one-click outline.

pub mod cases;
pub mod confirm;
pub mod infer;
pub mod train;

use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use super::preprocess;
use crate::volume::{Geometry, Mask};

pub use confirm::{confirm_tumours, Confirmed};
pub use infer::{
    add_tumour_probability, apply_tumour_probability, drop_small_tumours, tumour_probability, TumourMerge,
    MIN_LESION_ML, TUMOUR_THRESHOLD,
};
pub use train::{train_stage, StageTrainOptions};

/// In-plane pixel of the stage, mm.
pub const SPACING_MM: f64 = 1.5;
/// Slices above and below the one labelled, given as context.
pub const CONTEXT: usize = 1;
/// Input channels: the slices `k - CONTEXT ..= k + CONTEXT`, then the liver mask.
pub const IN_CHANNELS: usize = 2 * CONTEXT + 2;
/// Output classes: not tumour, tumour.
pub const CLASSES: usize = 2;
/// Margin around the liver's box, mm (a lesion bulging from the capsule, context).
pub const MARGIN_MM: f64 = 12.0;
/// HU per input unit, and the clamp, in those units: ±180 HU around the liver's median
/// covers cysts (≈ −90), hypovascular metastases, hyperenhancing HCC and vessels; fat
/// and gas are all the same −3.
pub const HU_SCALE: f32 = 60.0;
pub const CLAMP: f32 = 3.0;
/// Coarsest in-plane pixel of a study the stage runs on, mm: twice its own. On coarser
/// pixels (a 6 mm test phantom) it would see interpolated blur it was never trained on and
/// gain no detail over the first network, whose tumours are kept there.
pub const MAX_STUDY_PIXEL_MM: f64 = 2.0 * SPACING_MM;

/// Does a study on `grid` suit the stage (in-plane pixels no coarser than
/// [`MAX_STUDY_PIXEL_MM`])?
pub fn suits(grid: &Geometry) -> bool {
    grid.spacing_mm[1].max(grid.spacing_mm[2]) <= MAX_STUDY_PIXEL_MM + 1e-6
}

/// File name of the shipped stage beside the liver network.
pub const DEFAULT_FILE: &str = "tumours.safetensors";

/// The shipped stage: `tumours.safetensors` beside the shipped liver network.
pub fn default_path() -> std::path::PathBuf {
    super::default_model_path().with_file_name(DEFAULT_FILE)
}

/// Loads a stage, refusing a liver network (or anything else) given in its place.
pub fn load(path: &std::path::Path) -> Result<super::UNet, super::SegmentError> {
    let model = super::load_unet(path)?;
    if !is_stage(&model.config) {
        return Err(super::SegmentError::WeightsMismatch {
            path: path.to_path_buf(),
            detail: format!(
                "a network of {} channels and {} classes, not the tumour stage's {IN_CHANNELS} and {CLASSES}; give a file written by `hepaview train-tumours`",
                model.config.in_channels, model.config.classes
            ),
        });
    }
    Ok(model)
}

/// HU → input, against the liver's median in the same phase.
#[inline]
pub fn normalise(hu: f32, liver_median: f32) -> f32 {
    ((hu - liver_median) / HU_SCALE).clamp(-CLAMP, CLAMP)
}

/// The network's config: a small U-Net like the liver's, 4 channels in, 2 out.
pub fn config(features: Vec<usize>) -> super::UNetConfig {
    super::UNetConfig {
        features,
        in_channels: IN_CHANNELS,
        classes: CLASSES,
        spacing_mm: SPACING_MM,
        any_phase_subset: true,
    }
}

/// Is this network a tumour stage (four channels in, two out) rather than a liver network?
pub fn is_stage(cfg: &super::UNetConfig) -> bool {
    cfg.in_channels == IN_CHANNELS && cfg.classes == CLASSES
}

/// The grid the stage runs on for a liver mask: the box of its voxels (any label above 0)
/// widened by `margin_mm` in-plane and by `CONTEXT` slices, resampled to `spacing_mm`
/// in-plane (the study's own slices), turned to the radiological view like the liver
/// network's grid, and padded to a multiple of `multiple`. `None` without liver.
pub fn crop_grid(mask: &Mask, spacing_mm: f64, margin_mm: f64, multiple: usize) -> Option<Geometry> {
    let g = &mask.geometry;
    let [nz, ny, nx] = g.shape;
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for ((k, j, i), &v) in mask.data.indexed_iter() {
        if v > 0 {
            for (a, x) in [k, j, i].into_iter().enumerate() {
                lo[a] = lo[a].min(x);
                hi[a] = hi[a].max(x);
            }
        }
    }
    if lo[0] == usize::MAX {
        return None;
    }
    let pad = [CONTEXT, (margin_mm / g.spacing_mm[1]).ceil() as usize, (margin_mm / g.spacing_mm[2]).ceil() as usize];
    let limit = [nz, ny, nx];
    let (mut a0, mut a1) = ([0usize; 3], [0usize; 3]);
    for a in 0..3 {
        a0[a] = lo[a].saturating_sub(pad[a]);
        a1[a] = (hi[a] + pad[a]).min(limit[a] - 1);
    }
    let sub = Geometry {
        shape: [a1[0] - a0[0] + 1, a1[1] - a0[1] + 1, a1[2] - a0[2] + 1],
        origin_mm: g.index_to_world([a0[2] as f64, a0[1] as f64, a0[0] as f64]),
        ..g.clone()
    };
    Some(preprocess::model_grid(&sub, spacing_mm, multiple))
}

/// Median HU of the liver proper (label 1) in `hu`, over voxels with data (`no_data`
/// excluded); `None` with fewer than `min_voxels`.
pub fn liver_median(hu: &Array3<f32>, labels: &Array3<u8>, no_data: f32, min_voxels: usize) -> Option<f32> {
    let mut v: Vec<f32> =
        hu.iter().zip(labels.iter()).filter(|&(&h, &l)| l == 1 && h != no_data).map(|(&h, _)| h).collect();
    if v.len() < min_voxels {
        return None;
    }
    let m = v.len() / 2;
    Some(*v.select_nth_unstable_by(m, |a, b| a.total_cmp(b)).1)
}

/// The stage's input `[nz, IN_CHANNELS, h, w]` for one phase: normalised slices with their
/// neighbours (repeated at the ends), then the liver mask (`liver`: 1 inside).
pub fn stage_input(normalised: &Array3<f32>, liver: &Array3<f32>) -> Array4<f32> {
    let (nz, ny, nx) = normalised.dim();
    let mut out = Array4::<f32>::zeros((nz, IN_CHANNELS, ny, nx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for c in 0..2 * CONTEXT + 1 {
            let src = (k + c).saturating_sub(CONTEXT).min(nz - 1);
            slab.index_axis_mut(Axis(0), c).assign(&normalised.index_axis(Axis(0), src));
        }
        slab.index_axis_mut(Axis(0), IN_CHANNELS - 1).assign(&liver.index_axis(Axis(0), k));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Volume;

    fn grid(shape: [usize; 3], spacing: [f64; 3]) -> Geometry {
        Geometry {
            shape,
            spacing_mm: spacing,
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    #[test]
    fn crop_grid_covers_the_liver_box_with_its_margin_at_the_stage_pixel() {
        let g = grid([20, 100, 100], [5.0, 1.0, 1.0]);
        let mut data = Array3::<u8>::zeros((20, 100, 100));
        // liver from x 30..=59, y 40..=69, z 5..=9
        data.slice_mut(ndarray::s![5..10, 40..70, 30..60]).fill(1);
        let crop = crop_grid(&Volume::new(data, g.clone()), 1.5, 12.0, 8).expect("liver");
        assert_eq!(crop.shape[0], 7, "five liver slices and one each side");
        // 30 mm of liver + 2 × 12 mm margin = 54 mm → 36 pixels of 1.5 mm → 40 (multiple of 8)
        assert_eq!(crop.shape[1], 40);
        assert_eq!(crop.shape[2], 40);
        // centred on the box's centre (x 44.5, y 54.5)
        let c = crop.index_to_world([(crop.shape[2] as f64 - 1.0) / 2.0, (crop.shape[1] as f64 - 1.0) / 2.0, 0.0]);
        assert!((c[0] - 44.5).abs() < 1e-9 && (c[1] - 54.5).abs() < 1e-9, "{c:?}");
        assert!((c[2] - 20.0).abs() < 1e-9, "first slice at z 4 × 5 mm: {c:?}");
        assert!(
            crop_grid(&Volume::new(Array3::<u8>::zeros((2, 4, 4)), grid([2, 4, 4], [1.0; 3])), 1.5, 0.0, 8).is_none()
        );
    }

    #[test]
    fn the_input_stacks_neighbouring_slices_and_the_liver() {
        let n = Array3::from_shape_fn((3, 2, 2), |(k, _, _)| k as f32);
        let liver = Array3::from_elem((3, 2, 2), 1.0f32);
        let x = stage_input(&n, &liver);
        assert_eq!(x.dim(), (3, IN_CHANNELS, 2, 2));
        // slice 0: below is repeated; slice 2: above is repeated
        assert_eq!([x[[0, 0, 0, 0]], x[[0, 1, 0, 0]], x[[0, 2, 0, 0]]], [0.0, 0.0, 1.0]);
        assert_eq!([x[[2, 0, 0, 0]], x[[2, 1, 0, 0]], x[[2, 2, 0, 0]]], [1.0, 2.0, 2.0]);
        assert_eq!(x[[1, 3, 1, 1]], 1.0);
        assert_eq!(normalise(160.0, 100.0), 1.0);
        assert_eq!(normalise(-1000.0, 100.0), -CLAMP);
        let at = |mm: f64| grid([4, 4, 4], [5.0, mm, mm]);
        assert!(suits(&at(0.7)) && suits(&at(3.0)));
        assert!(!suits(&at(6.0)), "a 6 mm study keeps the first network's tumours");
    }

    #[test]
    fn the_median_skips_tumour_and_missing_data() {
        let hu = Array3::from_shape_vec((1, 1, 5), vec![10.0, 20.0, 30.0, 500.0, -9.0]).unwrap();
        let lab = Array3::from_shape_vec((1, 1, 5), vec![1, 1, 1, 2, 1]).unwrap();
        assert_eq!(liver_median(&hu, &lab, -9.0, 1), Some(20.0));
        assert_eq!(liver_median(&hu, &lab, -9.0, 4), None);
    }
}
