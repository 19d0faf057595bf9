//! The editing tools. Each is a function over `&mut Mask` (plus `&CtVolume` where HU
//! matter) that returns the [`EditDiff`] of what it changed and leaves the mask untouched
//! when it returns an error. Sizes are in mm through the grid's spacing, so a 10 mm
//! brush is 10 mm across on any voxel size.
//!
//! - `brush`: round or square brush and eraser, 2-D in a plane or 3-D, optionally gated
//!   by an HU range (threshold brush); lines of dabs for a mouse drag.
//! - `grow`: flood fill (same label) and region growing (HU around the seed or in a
//!   range), in one slice or in 3-D, with a cap on the region size.
//! - `polygon`: fill a polygon in a slice.
//! - `interpolate`: fill the slices between edited slices by signed-distance
//!   interpolation (a morphing shape, as "fill between slices").
//! - `region`: a region computed elsewhere (a lesion outlined from a click) painted in.
//! - `morph`: smoothing, opening and closing, keep largest component, remove islands,
//!   fill holes.

mod brush;
mod distance;
mod grow;
mod interpolate;
mod morph;
mod polygon;
mod region;

pub use brush::{paint_dab, paint_line, Brush, BrushExtent, BrushShape, HuRange};
pub use grow::{region_grow, Grow, GrowCriterion, GrowResult, Reach};
pub use interpolate::interpolate_slices;
pub use morph::{close_label, fill_holes, keep_largest_component, open_label, remove_islands, smooth_label, Smoothing};
pub use polygon::{polygon_fill, polygon_fill_mm};
pub use region::paint_region;

use super::EditError;
use crate::volume::{CtVolume, Geometry, Lps, Mask};

/// The CT must share the mask's grid: the tools read HU voxel by voxel.
pub(crate) fn check_same_grid(mask: &Mask, ct: &CtVolume) -> Result<(), EditError> {
    let (a, b) = (&mask.geometry, &ct.geometry);
    if a.shape != b.shape || ct.data.dim() != (a.shape[0], a.shape[1], a.shape[2]) {
        return Err(EditError::GridMismatch { detail: format!("mask {:?} voxels, CT {:?}", a.shape, b.shape) });
    }
    let tol = a.spacing_mm.iter().fold(f64::INFINITY, |m, &s| m.min(s)) * 1e-3;
    let d = a.max_corner_distance_mm(b);
    if d > tol.max(1e-4) {
        return Err(EditError::GridMismatch { detail: format!("corners differ by up to {d:.3} mm") });
    }
    Ok(())
}

pub(crate) fn check_geometry(mask: &Mask) -> Result<(), EditError> {
    mask.geometry.validate().map_err(EditError::BadGeometry)?;
    let [nz, ny, nx] = mask.geometry.shape;
    if mask.data.dim() != (nz, ny, nx) {
        return Err(EditError::BadGeometry(format!(
            "voxel array {:?} does not match the grid {:?}",
            mask.data.dim(),
            mask.geometry.shape
        )));
    }
    Ok(())
}

/// Continuous index `(i, j, k)` of a point, refusing non-finite input.
pub(crate) fn continuous_index(g: &Geometry, p: Lps) -> Result<[f64; 3], EditError> {
    if !p.iter().all(|v| v.is_finite()) {
        return Err(super::bad("point", format!("{p:?}"), "the position is not a number"));
    }
    Ok(g.world_to_index(p))
}

/// The voxel `[k, j, i]` nearest to `p`, or an error when `p` is outside the grid.
pub(crate) fn voxel_at(g: &Geometry, p: Lps) -> Result<[usize; 3], EditError> {
    let ijk = continuous_index(g, p)?;
    if !g.contains_index(ijk) {
        return Err(EditError::OutsideGrid { point_mm: p, index: ijk, shape: g.shape });
    }
    let [nz, ny, nx] = g.shape;
    let r = |v: f64, n: usize| (v.round().max(0.0) as usize).min(n - 1);
    Ok([r(ijk[2], nz), r(ijk[1], ny), r(ijk[0], nx)])
}
