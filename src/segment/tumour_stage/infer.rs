//! The tumour stage on a study: the first stage's liver gives the box; each phase (on the
//! liver's grid, or warped onto it) is run alone against its own liver's median, and the
//! most confident answer per voxel wins; the probability comes back on the mask's grid.

use ndarray::{Array3, Axis, Zip};

use super::{crop_grid, liver_median, normalise, stage_input, MARGIN_MM};
use crate::segment::infer::predict_slices;
use crate::segment::model::UNet;
use crate::segment::refine::OtherPhase;
use crate::segment::SegmentError;
use crate::study::ProgressFn;
use crate::volume::{CtVolume, Interp, Mask, Volume};

/// Tumour where the stage's probability reaches this.
pub const TUMOUR_THRESHOLD: f32 = 0.5;

/// Liver voxels a phase needs for its median to count (about 1 mL at 1.5 × 1.5 × 5 mm).
const MIN_LIVER_VOXELS: usize = 100;

/// The stage's tumour probability on `mask`'s grid (0 outside the liver's box), from
/// `reference` (the phase `mask` was made on, same grid) and `others`. `None` when the
/// mask has no liver or no phase has enough liver to measure. Progress 0 → 1.
pub fn tumour_probability(
    model: &UNet,
    mask: &Mask,
    reference: &CtVolume,
    others: &[OtherPhase],
    batch: usize,
    progress: ProgressFn,
) -> Result<Option<Volume<f32>>, SegmentError> {
    let Some(grid) = crop_grid(mask, model.config.spacing_mm, MARGIN_MM, model.config.size_multiple()) else {
        return Ok(None);
    };
    let labels = mask.resample_to(&grid, Interp::Nearest, 0).data;
    let liver = labels.mapv(|l| (l > 0) as u8 as f32);
    // outside a phase's coverage: its liver's median (neutral), after it is measured
    let no_data = i16::MIN;
    let mut phases: Vec<Array3<i16>> = vec![reference.resample_to(&grid, Interp::Linear, -1024).data];
    phases.extend(others.iter().map(|o| o.onto(&grid)));
    let runs = phases.len() as f32;
    let mut best: Option<Array3<f32>> = None;
    for (r, hu) in phases.iter().enumerate() {
        let hu = hu.mapv(|v| v as f32);
        let Some(median) = liver_median(&hu, &labels, no_data as f32, MIN_LIVER_VOXELS) else { continue };
        let norm = hu.mapv(|h| if h == no_data as f32 { 0.0 } else { normalise(h, median) });
        let input = stage_input(&norm, &liver);
        let report = |f: f32, m: &str| progress((r as f32 + f) / runs, &format!("tumour stage, phase {}: {m}", r + 1));
        let probs = predict_slices(model, &input, batch, &report, &|_, _| {})?;
        let tumour = probs.index_axis(Axis(1), 1).to_owned();
        match &mut best {
            None => best = Some(tumour),
            Some(b) => Zip::from(b).and(&tumour).for_each(|b, &t| *b = b.max(t)),
        }
    }
    progress(1.0, "tumour stage done");
    Ok(best.map(|p| Volume::new(p, grid).resample_to(&mask.geometry, Interp::Linear, 0.0)))
}

/// Labels the liver (any label above 0) tumour where `prob` reaches `threshold`, liver
/// elsewhere: the stage's answer replaces the first stage's tumours. Returns the tumour
/// voxels.
pub fn apply_tumour_probability(mask: &mut Mask, prob: &Volume<f32>, threshold: f32) -> usize {
    let mut n = 0;
    Zip::from(&mut mask.data).and(&prob.data).for_each(|l, &p| {
        if *l > 0 {
            *l = if p >= threshold { 2 } else { 1 };
            n += (*l == 2) as usize;
        }
    });
    n
}
