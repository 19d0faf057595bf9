//! "Fill between slices": after a label was drawn on some slices of one orientation, the
//! empty slices between two drawn ones get a shape that morphs from one to the other.
//!
//! Each drawn slice becomes a signed distance map in mm (negative inside: minus the
//! distance to the nearest outside voxel; positive outside: the distance to the nearest
//! inside voxel). A gap slice at fraction `t` of the way from slice `a` to slice `b` gets
//! the voxels where `(1 − t)·sd_a + t·sd_b ≤ 0`. Equal shapes reproduce themselves,
//! nested shapes grow or shrink evenly, overlapping ones slide. (Shapes that do not
//! overlap at all split in the middle, a known limit of distance interpolation.)

use ndarray::Array2;
use rayon::prelude::*;

use super::super::{bad, EditDiff, EditError, Orientation, Paint, Recorder};
use super::check_geometry;
use super::distance::distance_sq_2d;
use crate::volume::Mask;

/// Fills, for label `paint.value`, every run of slices (of `orientation`) without the
/// label that lies between two slices with it. Voxels are painted only where the paint
/// rule allows; slices outside the first…last labelled slice are left alone.
pub fn interpolate_slices(mask: &mut Mask, orientation: Orientation, paint: &Paint) -> Result<EditDiff, EditError> {
    check_geometry(mask)?;
    let label = paint.value;
    if label == 0 {
        return Err(bad("label", 0, "choose the label to interpolate (not background)"));
    }
    let shape = mask.shape();
    let axis = orientation.axis();
    let (va, ua) = orientation.plane_axes();
    let (nv, nu) = (shape[va], shape[ua]);
    let (sv, su) = (mask.geometry.spacing_mm[va], mask.geometry.spacing_mm[ua]);
    let data: &[u8] = super::super::mask_slice_mut(mask);
    let at = |s: usize, v: usize, u: usize| {
        let [k, j, i] = orientation.voxel(s, v, u);
        (k * shape[1] + j) * shape[2] + i
    };

    let has_label: Vec<bool> = (0..shape[axis])
        .into_par_iter()
        .map(|s| (0..nv).any(|v| (0..nu).any(|u| data[at(s, v, u)] == label)))
        .collect();
    let drawn: Vec<usize> = (0..shape[axis]).filter(|&s| has_label[s]).collect();
    let gaps: Vec<(usize, usize)> = drawn.windows(2).filter(|w| w[1] > w[0] + 1).map(|w| (w[0], w[1])).collect();
    let mut ends: Vec<usize> = gaps.iter().flat_map(|&(a, b)| [a, b]).collect();
    ends.sort_unstable();
    ends.dedup();

    let data_ro = data;
    let sdf: Vec<(usize, Array2<f32>)> = ends
        .par_iter()
        .map(|&s| {
            let inside = Array2::from_shape_fn((nv, nu), |(v, u)| data_ro[at(s, v, u)] == label);
            let outside = inside.mapv(|b| !b);
            let d_out = distance_sq_2d(&inside, sv, su); // outside voxels: distance to the shape
            let d_in = distance_sq_2d(&outside, sv, su); // inside voxels: distance to the outside
            let sd = ndarray::Zip::from(&inside).and(&d_out).and(&d_in).map_collect(|&ins, &o, &i| {
                if ins {
                    // a slice that is all label has no outside: deep inside
                    -(if i.is_finite() { i.sqrt() } else { 1e6 })
                } else {
                    o.sqrt()
                }
            });
            (s, sd)
        })
        .collect();
    let sd_of = |s: usize| &sdf[sdf.binary_search_by_key(&s, |(k, _)| *k).unwrap_or(0)].1;

    let jobs: Vec<(usize, usize, usize)> = gaps.iter().flat_map(|&(a, b)| (a + 1..b).map(move |s| (a, b, s))).collect();
    let fills: Vec<(usize, Array2<bool>)> = jobs
        .par_iter()
        .map(|&(a, b, s)| {
            let t = (s - a) as f32 / (b - a) as f32;
            let fill = ndarray::Zip::from(sd_of(a)).and(sd_of(b)).map_collect(|&x, &y| (1.0 - t) * x + t * y <= 0.0);
            (s, fill)
        })
        .collect();

    let allowed = paint.table();
    let mut rec = Recorder::new(mask);
    for (s, fill) in fills {
        for ((v, u), &f) in fill.indexed_iter() {
            if f {
                let [k, j, i] = orientation.voxel(s, v, u);
                if allowed[rec.get(k, j, i) as usize] {
                    rec.set(k, j, i, label);
                }
            }
        }
    }
    Ok(rec.finish())
}
