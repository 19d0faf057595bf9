//! Polygon (lasso) fill in one slice: voxels whose centres lie inside the polygon
//! (even-odd rule) are painted. A centre exactly on a left or top edge counts as inside,
//! on a right or bottom edge as outside, so two polygons sharing an edge never both
//! paint a voxel and an axis-aligned rectangle paints exactly its area in voxels.

use super::super::{bad, EditDiff, EditError, Orientation, Paint, Recorder};
use super::{check_geometry, continuous_index};
use crate::volume::{Lps, Mask};

/// Fills `polygon` given in the plane's voxel coordinates `(u, v)` = (column, row) of
/// slice `slice` (see [`Orientation::plane_axes`]: axial u = i, v = j; coronal u = i,
/// v = k; sagittal u = j, v = k). Voxel centres sit at integer coordinates.
pub fn polygon_fill(
    mask: &mut Mask,
    orientation: Orientation,
    slice: usize,
    polygon: &[[f64; 2]],
    paint: &Paint,
) -> Result<EditDiff, EditError> {
    check_geometry(mask)?;
    let shape = mask.shape();
    let (va, ua) = orientation.plane_axes();
    if slice >= shape[orientation.axis()] {
        return Err(bad(
            "slice",
            slice,
            format!("the {} slices are numbered 0…{}", orientation.name(), shape[orientation.axis()] - 1),
        ));
    }
    if polygon.len() < 3 {
        return Err(bad("polygon", format!("{} points", polygon.len()), "a polygon needs at least 3 points"));
    }
    if polygon.iter().any(|p| !(p[0].is_finite() && p[1].is_finite())) {
        return Err(bad("polygon", "non-finite point", "every point must be a number"));
    }
    let (nv, nu) = (shape[va], shape[ua]);
    let vmin = polygon.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min).ceil().max(0.0) as usize;
    let vmax = polygon.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max).floor();
    let allowed = paint.table();
    let mut rec = Recorder::new(mask);
    if vmax < 0.0 {
        return Ok(rec.finish());
    }
    let vmax = (vmax as usize).min(nv.saturating_sub(1));
    let mut xs: Vec<f64> = Vec::new();
    for v in vmin..=vmax {
        let y = v as f64;
        xs.clear();
        for e in 0..polygon.len() {
            let a = polygon[e];
            let b = polygon[(e + 1) % polygon.len()];
            // half-open in y: an edge counts for rows y with min(ay, by) ≤ y < max(ay, by)
            if (a[1] > y) != (b[1] > y) {
                xs.push(a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            // columns u with x0 ≤ u < x1
            let u0 = pair[0].ceil().max(0.0);
            let u1 = (pair[1].ceil() - 1.0).min(nu as f64 - 1.0);
            if u1 < u0 {
                continue;
            }
            for u in u0 as usize..=u1 as usize {
                let [k, j, i] = orientation.voxel(slice, v, u);
                if allowed[rec.get(k, j, i) as usize] {
                    rec.set(k, j, i, paint.value);
                }
            }
        }
    }
    Ok(rec.finish())
}

/// Fills a polygon given in LPS mm (points clicked in a viewport of `orientation`). The
/// points are projected into the plane; the slice is the one nearest their mean.
pub fn polygon_fill_mm(
    mask: &mut Mask,
    orientation: Orientation,
    polygon_mm: &[Lps],
    paint: &Paint,
) -> Result<EditDiff, EditError> {
    check_geometry(mask)?;
    let (va, ua) = orientation.plane_axes();
    // (i, j, k) position of an array axis
    let pos = |axis: usize| 2 - axis;
    let mut uv = Vec::with_capacity(polygon_mm.len());
    let mut fixed = 0.0;
    for p in polygon_mm {
        let ijk = continuous_index(&mask.geometry, *p)?;
        uv.push([ijk[pos(ua)], ijk[pos(va)]]);
        fixed += ijk[pos(orientation.axis())];
    }
    if polygon_mm.is_empty() {
        return Err(bad("polygon", "0 points", "a polygon needs at least 3 points"));
    }
    let s = (fixed / polygon_mm.len() as f64).round();
    let n = mask.shape()[orientation.axis()];
    if !(s >= 0.0 && s < n as f64) {
        return Err(bad("polygon", format!("{} slice {s}", orientation.name()), "the polygon lies outside the image"));
    }
    polygon_fill(mask, orientation, s as usize, &uv, paint)
}
