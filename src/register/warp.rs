//! Displacement fields in LPS millimetres (the public convention, ITK's:
//! `moving(x + u(x)) ≈ fixed(x)`, `u` on the fixed grid): warping volumes and masks, moving
//! fields between grids, composing, inverting, and the Jacobian determinant.

use super::kernels;
use crate::volume::{invert3, mat_vec, Field, Geometry, Interp, Mask, Sample, Volume};
use ndarray::{Array3, Array4};
use rayon::prelude::*;

/// The field in voxel units of its own grid (`d = M⁻¹ u`, M = index-to-world matrix).
pub fn to_voxels(field: &Field) -> Vec<f32> {
    let inv = invert3(&field.geometry.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
    let src = field.data.as_slice().expect("fields are standard-layout");
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(3).zip(src.par_chunks(3)).for_each(|(o, u)| {
        let d = mat_vec(&inv, [u[0] as f64, u[1] as f64, u[2] as f64]);
        o.copy_from_slice(&[d[0] as f32, d[1] as f32, d[2] as f32]);
    });
    out
}

/// A field in millimetres from one in voxel units of `geometry`.
pub fn from_voxels(disp: &[f32], geometry: &Geometry) -> Field {
    let m = geometry.index_to_world_matrix();
    let [nz, ny, nx] = geometry.shape;
    let mut data = Array4::<f32>::zeros([nz, ny, nx, 3]);
    data.as_slice_mut().expect("fresh array").par_chunks_mut(3).zip(disp.par_chunks(3)).for_each(|(o, d)| {
        let u = mat_vec(&m, [d[0] as f64, d[1] as f64, d[2] as f64]);
        o.copy_from_slice(&[u[0] as f32, u[1] as f32, u[2] as f32]);
    });
    Field { data, geometry: geometry.clone() }
}

/// Affine map from voxel indices of `target` to continuous indices of `source`.
fn index_map(source: &Geometry, target: &Geometry) -> ([[f64; 3]; 3], [f64; 3]) {
    let inv = invert3(&source.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
    let a = crate::volume::mat_mul(&inv, &target.index_to_world_matrix());
    let d0 = [
        target.origin_mm[0] - source.origin_mm[0],
        target.origin_mm[1] - source.origin_mm[1],
        target.origin_mm[2] - source.origin_mm[2],
    ];
    (a, mat_vec(&inv, d0))
}

/// A grid over the same extent as `g` (same origin and direction) with a spacing of at
/// least `spacing_mm` along each axis (an axis already coarser keeps its own): the last
/// sample lies at or just past the far edge of `g`, so every point of `g` is inside it.
/// For writing displacement fields smaller: a field smooth over several millimetres loses
/// little on a 4 mm grid and is 30–60 times smaller than on a CT's voxels.
pub fn coarser_grid(g: &Geometry, spacing_mm: f64) -> Geometry {
    let mut out = g.clone();
    for a in 0..3 {
        let sp = g.spacing_mm[a];
        if spacing_mm > sp && g.shape[a] > 1 {
            let extent = (g.shape[a] - 1) as f64 * sp;
            out.shape[a] = (extent / spacing_mm - 1e-9).ceil() as usize + 1;
            out.spacing_mm[a] = spacing_mm;
        }
    }
    out
}

/// The field resampled onto `target` (trilinear; beyond its grid the border vector is
/// kept, since a smooth field is better extended than cut to zero).
pub fn resample_field(field: &Field, target: &Geometry) -> Field {
    if &field.geometry == target {
        return field.clone();
    }
    let (a, b) = index_map(&field.geometry, target);
    let src = field.data.as_slice().expect("standard layout");
    let shape = field.geometry.shape;
    let [nz, ny, nx] = target.shape;
    let mut data = Array4::<f32>::zeros([nz, ny, nx, 3]);
    data.as_slice_mut().expect("fresh").par_chunks_mut(ny * nx * 3).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = [i as f64, j as f64, k as f64];
                let q = [0, 1, 2].map(|r| b[r] + a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2]);
                let v = kernels::sample3(src, shape, q[0] as f32, q[1] as f32, q[2] as f32);
                slab[(j * nx + i) * 3..(j * nx + i) * 3 + 3].copy_from_slice(&v);
            }
        }
    });
    Field { data, geometry: target.clone() }
}

/// `moving` resampled through the field onto the field's grid: `out(x) = moving(x + u(x))`.
/// Points that land outside `moving` get `fill`. Use `Interp::Linear` for CT and
/// `Interp::Nearest` for label masks.
pub fn warp_volume<T: Sample>(moving: &Volume<T>, field: &Field, interp: Interp, fill: T) -> Volume<T> {
    let target = &field.geometry;
    let inv = invert3(&moving.geometry.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
    let m = target.index_to_world_matrix();
    let [nz, ny, nx] = target.shape;
    let mut out = Array3::from_elem([nz, ny, nx], fill);
    let u = field.data.as_slice().expect("standard layout");
    out.as_slice_mut().expect("fresh").par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = (k * ny + j) * nx + i;
                let w = mat_vec(&m, [i as f64, j as f64, k as f64]);
                let d = [
                    w[0] + target.origin_mm[0] + u[p * 3] as f64 - moving.geometry.origin_mm[0],
                    w[1] + target.origin_mm[1] + u[p * 3 + 1] as f64 - moving.geometry.origin_mm[1],
                    w[2] + target.origin_mm[2] + u[p * 3 + 2] as f64 - moving.geometry.origin_mm[2],
                ];
                if let Some(v) = moving.sample_index(mat_vec(&inv, d), interp) {
                    slab[j * nx + i] = T::from_f32(v);
                }
            }
        }
    });
    Volume { data: out, geometry: target.clone() }
}

/// `u` at the world point `p` (trilinear), or `None` outside the field's grid.
pub fn displacement_at(field: &Field, p: crate::volume::Lps) -> Option<crate::volume::Lps> {
    let q = field.geometry.world_to_index(p);
    if !field.geometry.contains_index(q) {
        return None;
    }
    let u = kernels::sample3(field.data.as_slice()?, field.geometry.shape, q[0] as f32, q[1] as f32, q[2] as f32);
    Some([u[0] as f64, u[1] as f64, u[2] as f64])
}

/// A label mask warped like [`warp_volume`], but label-wise linear: each label's indicator
/// is interpolated trilinearly and the label with the largest weight wins (background
/// included). Boundaries come out smooth and sub-voxel placed, where nearest neighbour
/// would staircase them, and no label can appear that is not among the 8 neighbours, as
/// interpolating label *values* would produce (a 1/3 boundary blending into 2). Ties go to
/// the lower label; points outside `moving` are background.
pub fn warp_labels_linear(moving: &Mask, field: &Field) -> Mask {
    let target = &field.geometry;
    let inv = invert3(&moving.geometry.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
    let m = target.index_to_world_matrix();
    let [nz, ny, nx] = target.shape;
    let [mz, my, mx] = moving.geometry.shape;
    let mut out = Array3::<u8>::zeros([nz, ny, nx]);
    let u = field.data.as_slice().expect("standard layout");
    out.as_slice_mut().expect("fresh").par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = (k * ny + j) * nx + i;
                let w = mat_vec(&m, [i as f64, j as f64, k as f64]);
                let d =
                    [0, 1, 2].map(|c| w[c] + target.origin_mm[c] + u[p * 3 + c] as f64 - moving.geometry.origin_mm[c]);
                let q = mat_vec(&inv, d);
                if !moving.geometry.contains_index(q) {
                    continue;
                }
                // corners clamped to the grid, as the trilinear CT sampler does at its border
                let base = [0, 1, 2].map(|a| q[a].floor());
                let frac = [0, 1, 2].map(|a| q[a] - base[a]);
                let hi = [mx, my, mz];
                let mut labels = [0u8; 8];
                let mut weights = [0f64; 8];
                let mut n = 0;
                for corner in 0..8 {
                    let off = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
                    let idx =
                        [0, 1, 2].map(|a| ((base[a] as isize + off[a] as isize).clamp(0, hi[a] as isize - 1)) as usize);
                    let wgt = (0..3).map(|a| if off[a] == 1 { frac[a] } else { 1.0 - frac[a] }).product::<f64>();
                    let l = moving.data[[idx[2], idx[1], idx[0]]];
                    match labels[..n].iter().position(|&x| x == l) {
                        Some(at) => weights[at] += wgt,
                        None => {
                            labels[n] = l;
                            weights[n] = wgt;
                            n += 1;
                        }
                    }
                }
                let mut best = 0;
                for c in 1..n {
                    if weights[c] > weights[best] + 1e-12
                        || ((weights[c] - weights[best]).abs() <= 1e-12 && labels[c] < labels[best])
                    {
                        best = c;
                    }
                }
                slab[j * nx + i] = labels[best];
            }
        }
    });
    Volume { data: out, geometry: target.clone() }
}

/// The field of "first `b`, then `a`": `c(x) = b(x) + a(x + b(x))`, on `b`'s grid.
pub fn compose(a: &Field, b: &Field) -> Field {
    let a_on_b = resample_field(a, &b.geometry);
    let da = to_voxels(&a_on_b);
    let db = to_voxels(b);
    let mut out = vec![0f32; db.len()];
    kernels::compose(&da, &db, b.geometry.shape, &mut out);
    from_voxels(&out, &b.geometry)
}

/// The inverse field `v` with `v(x) = −u(x + v(x))` by fixed-point iteration, so that
/// warping by `u` then `v` is the identity where the field is invertible. Returns the
/// field and the largest residual (mm) left.
pub fn invert(field: &Field, iterations: usize) -> (Field, f32) {
    let shape = field.geometry.shape;
    let u = to_voxels(field);
    let mut v: Vec<f32> = u.iter().map(|x| -x).collect();
    let mut next = vec![0f32; v.len()];
    let [_, ny, nx] = shape;
    let mut residual_vox = f32::INFINITY;
    for _ in 0..iterations.max(1) {
        // next(p) = −u(p + v(p)); residual = |v − next|
        let res: f32 = next
            .par_chunks_mut(ny * nx * 3)
            .enumerate()
            .map(|(k, slab)| {
                let mut r = 0f32;
                for j in 0..ny {
                    for i in 0..nx {
                        let q = ((k * ny + j) * nx + i) * 3;
                        let s = kernels::sample3(&u, shape, i as f32 + v[q], j as f32 + v[q + 1], k as f32 + v[q + 2]);
                        let o = (j * nx + i) * 3;
                        for c in 0..3 {
                            slab[o + c] = -s[c];
                            r = r.max((v[q + c] + s[c]).abs());
                        }
                    }
                }
                r
            })
            .reduce(|| 0.0, f32::max);
        std::mem::swap(&mut v, &mut next);
        residual_vox = res;
        if res < 1e-3 {
            break;
        }
    }
    let max_spacing = field.geometry.spacing_mm.iter().cloned().fold(0.0, f64::max) as f32;
    (from_voxels(&v, &field.geometry), residual_vox * max_spacing)
}

/// Jacobian determinant of `x ↦ x + u(x)` on the field's grid (1 = volume kept, < 1
/// shrinks, ≤ 0 folds).
pub fn jacobian(field: &Field) -> Volume<f32> {
    let d = to_voxels(field);
    let j = kernels::jacobian(&d, field.geometry.shape);
    Volume::new(Array3::from_shape_vec(field.geometry.shape, j).expect("shape matches"), field.geometry.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        Geometry {
            shape: [8, 10, 12],
            spacing_mm: [2.5, 0.8, 0.7],
            origin_mm: [-10.0, 5.0, 30.0],
            direction: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    fn smooth_field(g: &Geometry) -> Field {
        let mut f = Field::zeros(g.clone());
        for ((k, j, i, c), v) in f.data.indexed_iter_mut() {
            *v = 0.6 * ((i as f32 * 0.3 + c as f32).sin() + (j as f32 * 0.2).cos() * (k as f32 * 0.4).sin());
        }
        f
    }

    #[test]
    fn voxel_round_trip_is_exact() {
        let f = smooth_field(&geometry());
        let back = from_voxels(&to_voxels(&f), &f.geometry);
        for (a, b) in f.data.iter().zip(back.data.iter()) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn a_translation_field_warps_like_resampling() {
        let g = Geometry::axis_aligned([6, 8, 10], [2.0, 1.0, 1.0], [0.0; 3]);
        let img = Volume::new(Array3::from_shape_fn(g.shape, |(k, j, i)| (i * 10 + j * 3 + k) as f32), g.clone());
        let mut f = Field::zeros(g.clone());
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(2.0); // 2 mm along x = 2 voxels
        let w = warp_volume(&img, &f, Interp::Linear, -1.0);
        assert_eq!(w.data[[1, 2, 3]], img.data[[1, 2, 5]]);
        assert_eq!(w.data[[1, 2, 9]], -1.0, "points beyond the moving grid get the fill");
    }

    #[test]
    fn inverse_composes_to_identity() {
        let f = smooth_field(&geometry());
        let (inv, residual) = invert(&f, 50);
        assert!(residual < 0.01, "residual {residual} mm");
        let id = compose(&f, &inv); // φ_u ∘ φ_v = id by construction
                                    // away from the border (replicated samples there are not exact)
        for k in 2..6 {
            for j in 2..8 {
                for i in 2..10 {
                    for c in 0..3 {
                        assert!(id.data[[k, j, i, c]].abs() < 0.02, "{:?}", id.data[[k, j, i, c]]);
                    }
                }
            }
        }
    }

    #[test]
    fn label_wise_linear_warp_keeps_labels_and_places_boundaries_between_voxels() {
        let g = Geometry::axis_aligned([3, 4, 12], [1.0, 1.0, 1.0], [0.0; 3]);
        // 1 | 3 with a boundary between i = 5 and 6: value interpolation would make 2 there
        let mask = Volume::new(Array3::from_shape_fn(g.shape, |(_, _, i)| if i < 6 { 1u8 } else { 3 }), g.clone());
        let mut f = Field::zeros(g.clone());
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(0.4);
        let w = warp_labels_linear(&mask, &f);
        assert!(w.data.iter().all(|&l| l == 1 || l == 3 || l == 0), "only labels of the input");
        // x + 0.4 < 5.5 stays 1: i = 5 samples 5.4 (weight of 1: 0.6) -> 1
        assert_eq!(w.data[[1, 1, 5]], 1);
        assert_eq!(w.data[[1, 1, 6]], 3);
        // a shift of 0.6 moves the boundary by one voxel, where nearest would too, but
        // 0.5 exactly is a tie that goes to the lower label
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(0.6);
        assert_eq!(warp_labels_linear(&mask, &f).data[[1, 1, 5]], 3);
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(0.5);
        assert_eq!(warp_labels_linear(&mask, &f).data[[1, 1, 5]], 1);
        // beyond the moving grid: background
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(4.0);
        assert_eq!(warp_labels_linear(&mask, &f).data[[1, 1, 11]], 0);
    }

    #[test]
    fn label_wise_linear_warp_of_a_thin_structure_beats_value_interpolation() {
        // a one-voxel line of label 2 in background, moved 0.4 voxel across: interpolating
        // label values makes 0.8 and 1.2, i.e. a label 1 that was never drawn
        let g = Geometry::axis_aligned([1, 9, 9], [1.0, 1.0, 1.0], [0.0; 3]);
        let mask = Volume::new(Array3::from_shape_fn(g.shape, |(_, j, _)| if j == 4 { 2u8 } else { 0 }), g.clone());
        let mut f = Field::zeros(g.clone());
        f.data.index_axis_mut(ndarray::Axis(3), 1).fill(0.4);
        let by_value = warp_volume(&mask, &f, Interp::Linear, 0u8);
        assert!(by_value.data.iter().any(|&l| l == 1), "value interpolation invents label 1");
        let w = warp_labels_linear(&mask, &f);
        let rows: Vec<usize> = (0..9).filter(|&j| w.data[[0, j, 4]] == 2).collect();
        assert_eq!(rows, vec![4], "the line stays one voxel thick at the nearer row");
        let total = w.data.iter().filter(|&&l| l == 2).count();
        assert_eq!(total, 9);
    }

    #[test]
    fn displacement_at_interpolates_inside_and_is_none_outside() {
        let g = Geometry::axis_aligned([4, 4, 4], [2.0, 1.0, 1.0], [10.0, 0.0, 0.0]);
        let mut f = Field::zeros(g.clone());
        for ((_, _, i, c), v) in f.data.indexed_iter_mut() {
            *v = if c == 0 { i as f32 } else { 0.0 };
        }
        let u = displacement_at(&f, [11.5, 1.0, 2.0]).unwrap();
        assert!((u[0] - 1.5).abs() < 1e-6 && u[1] == 0.0 && u[2] == 0.0, "{u:?}");
        assert!(displacement_at(&f, [0.0, 1.0, 2.0]).is_none());
    }
}
