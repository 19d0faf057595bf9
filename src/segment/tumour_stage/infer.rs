//! The tumour stage on a study: the first stage's liver gives the box; each phase (on the
//! liver's grid, or warped onto it) is run alone against its own liver's median, and the
//! most confident answer per voxel wins; the probability comes back on the mask's grid.

use ndarray::{Array3, Axis, Zip};

use super::{crop_grid, liver_median, normalise, stage_input, MARGIN_MM};
use crate::segment::model::UNet;
use crate::segment::predict::predict_slices;
use crate::segment::refine::OtherPhase;
use crate::segment::SegmentError;
use crate::volume::{CtVolume, Interp, Mask, Progress, Volume};

/// Tumour where the stage's probability reaches this.
pub const TUMOUR_THRESHOLD: f32 = 0.5;

/// The stage's tumours smaller than this are dropped, mL: a ball 5 mm across, the
/// smallest lesion training draws (2.5 mm radius); below it a speck is partial volume
/// of a vessel or the capsule more often than a lesion.
pub const MIN_LESION_ML: f64 = 0.065;

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
    progress: Progress,
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

/// How the stage's tumours meet the first network's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TumourMerge {
    /// The stage's answer replaces the first network's tumours.
    #[default]
    Replace,
    /// Both: the first network's tumours (edges refined) and the stage's.
    Union,
}

/// Adds tumour where `prob` reaches `threshold` inside the liver, keeping the tumours
/// already there.
pub fn add_tumour_probability(mask: &mut Mask, prob: &Volume<f32>, threshold: f32) {
    Zip::from(&mut mask.data).and(&prob.data).for_each(|l, &p| {
        if *l > 0 && p >= threshold {
            *l = 2;
        }
    });
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

/// Turns tumour components (26-connected) smaller than `min_ml` back into liver; returns
/// how many went.
pub fn drop_small_tumours(mask: &mut Mask, min_ml: f64) -> usize {
    let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let min_voxels = (min_ml / voxel_ml).ceil().max(1.0) as usize;
    let (all, _) = crate::volume::region::connected_components(mask, 2, 1);
    let data = mask.data.as_slice_mut().expect("standard layout");
    let mut dropped = 0;
    for c in all.iter().filter(|c| c.voxels.len() < min_voxels) {
        for &v in &c.voxels {
            data[v] = 1;
        }
        dropped += 1;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;
    use ndarray::Array3;

    #[test]
    fn the_stage_labels_tumour_only_inside_the_liver() {
        let g = Geometry {
            shape: [1, 1, 4],
            spacing_mm: [1.0; 3],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut mask = Volume::new(Array3::from_shape_vec((1, 1, 4), vec![0u8, 1, 2, 1]).unwrap(), g.clone());
        let prob = Volume::new(Array3::from_shape_vec((1, 1, 4), vec![0.9f32, 0.7, 0.2, 0.5]).unwrap(), g);
        let n = apply_tumour_probability(&mut mask, &prob, TUMOUR_THRESHOLD);
        // outside stays outside; the first stage's tumour below the threshold becomes liver
        assert_eq!(mask.data.as_slice().unwrap(), &[0, 2, 1, 2]);
        assert_eq!(n, 2);
    }

    #[test]
    fn a_liver_network_is_refused_as_the_tumour_stage() {
        let liver_net = crate::segment::default_model_path();
        assert!(liver_net.is_file(), "the shipped liver network {} is missing", liver_net.display());
        let Err(err) = super::super::load(&liver_net) else { panic!("the liver network was taken as a stage") };
        assert!(err.to_string().contains("train-tumours"), "{err}");
    }
}
