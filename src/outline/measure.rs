//! The outlined lesion's row: everything `lesion::analyse_lesions` measures (volume, RECIST
//! long and short axis, HU per phase against a ring of liver, the pattern hint with its
//! evidence), plus how deep it lies below the liver's surface. Nothing is measured twice:
//! this file only builds the label mask `lesion` expects and adds the depth.

use crate::io::phase::Phase;
use crate::lesion::{analyse_lesions, Lesion, LesionOptions, HINT_DISCLAIMER};
use crate::volume::region::squared_distance_mm2;
use crate::volume::{CtVolume, Mask};

use super::{Outline, OutlineError};

/// The lesion's row for the table and the CLI's JSON.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionRow {
    /// All parts together.
    pub volume_ml: f64,
    /// Separate pieces of the outline (1 unless several clicks grew apart).
    pub parts: usize,
    /// The largest part, measured by `lesion` (its `volume_ml` is that part's).
    pub lesion: Lesion,
    /// Shortest distance from the lesion to the outside of the liver (lesion ∪ liver mask),
    /// mm; `None` without a liver mask.
    pub depth_below_liver_surface_mm: Option<f64>,
    pub disclaimer: String,
}

/// How far around the lesion the depth is looked for; deeper is reported as this.
const DEPTH_REACH_MM: f64 = 60.0;

/// Measures `outline` in `phases` (the grid it was made on), with the liver ring from
/// `liver` (non-zero = liver) or, without one, from the voxels of the working box within
/// 3 SD of the parenchyma in the reference phase.
pub fn measure_outline(
    outline: &Outline,
    phases: &[(Phase, &CtVolume)],
    liver: Option<&Mask>,
) -> Result<LesionRow, OutlineError> {
    measure_labels(&outline.mask, outline.volume_ml, Some(outline), phases, liver)
}

/// Measures a lesion given as a mask rather than outlined here (a baseline outline carried
/// to a follow-up, `follow_up::carry`): the same row, with the liver ring from `liver`
/// (non-zero = liver), needed here since no parenchyma statistics were gathered.
pub fn measure_mask(mask: &Mask, phases: &[(Phase, &CtVolume)], liver: &Mask) -> Result<LesionRow, OutlineError> {
    let n = mask.data.iter().filter(|&&l| l != 0).count();
    let volume_ml = n as f64 * crate::volume::region::voxel_volume_ml(&mask.geometry);
    measure_labels(mask, volume_ml, None, phases, Some(liver))
}

/// The row of the lesion `lesion_mask` (non-zero); without `liver`, the ring comes from
/// `outline`'s parenchyma statistics in its working box.
fn measure_labels(
    lesion_mask: &Mask,
    volume_ml: f64,
    outline: Option<&Outline>,
    phases: &[(Phase, &CtVolume)],
    liver: Option<&Mask>,
) -> Result<LesionRow, OutlineError> {
    let g = &lesion_mask.geometry;
    let mut labels = lesion_mask.data.mapv(|l| if l != 0 { 2u8 } else { 0 });
    match (liver, outline) {
        (Some(m), _) => ndarray::Zip::from(&mut labels).and(&m.data).for_each(|l, &m| {
            if *l == 0 && m != 0 {
                *l = 1
            }
        }),
        (None, None) => {}
        (None, Some(outline)) => {
            let r = super::reference_phase(&outline.phases);
            let (med, sd) = (outline.parenchyma.median_hu[r], outline.parenchyma.sd_hu[r]);
            let (lo, hi) = (outline.dirty.lo, outline.dirty.hi);
            let ct = &phases[r].1.data;
            for k in lo[0]..hi[0] {
                for j in lo[1]..hi[1] {
                    for i in lo[2]..hi[2] {
                        // raw voxels are noisier than the smoothed SD: 3 raw SD ≈ 13 smoothed
                        if labels[[k, j, i]] == 0 && ((ct[[k, j, i]] as f32) - med).abs() <= 13.0 * sd {
                            labels[[k, j, i]] = 1;
                        }
                    }
                }
            }
        }
    }
    let mask = Mask::new(labels, g.clone());
    let opts = LesionOptions { min_volume_ml: 0.0, ..LesionOptions::default() };
    let report = analyse_lesions(&mask, phases, &opts)?;
    let parts = report.lesions.len();
    let Some(lesion) = report.lesions.into_iter().next() else {
        return Err(OutlineError::Refused {
            found: super::Found::Parenchyma,
            at_mm: g.centre_mm(),
            message: "the outline is empty".into(),
        });
    };
    let depth = liver.map(|_| depth_mm(&mask, &lesion));
    Ok(LesionRow { volume_ml, parts, lesion, depth_below_liver_surface_mm: depth, disclaimer: HINT_DISCLAIMER.into() })
}

/// Shortest distance (mm) from the lesion's voxels to a voxel outside liver ∪ lesion, in
/// the lesion's box grown by [`DEPTH_REACH_MM`] (so every point that close is seen).
fn depth_mm(mask: &Mask, lesion: &Lesion) -> f64 {
    let sp = mask.geometry.spacing_mm;
    let n = mask.geometry.shape;
    let bb = lesion.bounding_box;
    let lo: [usize; 3] = std::array::from_fn(|a| bb[a][0].saturating_sub((DEPTH_REACH_MM / sp[a]).ceil() as usize));
    let hi: [usize; 3] = std::array::from_fn(|a| (bb[a][1] + (DEPTH_REACH_MM / sp[a]).ceil() as usize).min(n[a]));
    let sub = mask.data.slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
    let d2 = squared_distance_mm2(&sub.mapv(|l| l == 0), sp);
    let best = ndarray::Zip::from(&sub).and(&d2).fold(f32::INFINITY, |m, &l, &d| if l == 2 { m.min(d) } else { m });
    // the distance runs between voxel centres; the surface lies half a voxel out from the
    // outside voxel's centre, which the reader cannot resolve finer anyway
    (best as f64).sqrt().min(DEPTH_REACH_MM)
}
