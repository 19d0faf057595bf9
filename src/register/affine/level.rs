//! The images one pyramid level works on: the fixed and moving CT as smoothed, box-averaged
//! f32 grids with their index↔world maps and trilinear samples with gradients, the bodies'
//! centres of mass, and the fixed points the metric is summed over.

use rayon::prelude::*;

use super::IDENTITY;
use crate::volume::{invert3, mat_vec, CtVolume, Geometry, Lps, Volume};

/// A level's image as f32 with its index↔world maps.
pub(super) struct LevelImage {
    data: Vec<f32>,
    shape: [usize; 3],
    geometry: Geometry,
    /// world → continuous index (i, j, k): `to_index · (p − origin)`.
    to_index: [[f64; 3]; 3],
}

impl LevelImage {
    pub(super) fn new(v: &CtVolume, spacing_mm: f64) -> LevelImage {
        let g = &v.geometry;
        let n = |a: usize| ((g.shape[a] as f64 * g.spacing_mm[a] / spacing_mm).round() as usize).max(2);
        let target_spacing = [0, 1, 2].map(|a| {
            if n(a) >= g.shape[a] {
                g.spacing_mm[a]
            } else {
                g.shape[a] as f64 * g.spacing_mm[a] / n(a) as f64
            }
        });
        let shape = [0, 1, 2].map(|a| n(a).min(g.shape[a]));
        // Same corner (edge of the first voxel) and direction, coarser voxels.
        let first_edge = g.index_to_world([-0.5, -0.5, -0.5]);
        let mut geometry = g.clone();
        geometry.shape = shape;
        geometry.spacing_mm = target_spacing;
        geometry.origin_mm = first_edge;
        geometry.origin_mm = geometry.index_to_world([0.5, 0.5, 0.5]);
        let smoothed = if shape == g.shape { v.clone() } else { box_average(v, &geometry) };
        let mut data: Vec<f32> = smoothed.data.iter().map(|&h| h as f32).collect();
        binomial_smooth(&mut data, shape);
        let to_index = invert3(&geometry.index_to_world_matrix()).unwrap_or(IDENTITY);
        LevelImage { data, shape, geometry, to_index }
    }

    /// Trilinear value and world-space gradient at `p`, `None` outside the voxel centres.
    #[inline]
    pub(super) fn sample_grad(&self, p: Lps) -> Option<(f32, [f64; 3])> {
        let o = &self.geometry.origin_mm;
        let ijk = mat_vec(&self.to_index, [p[0] - o[0], p[1] - o[1], p[2] - o[2]]);
        let [nz, ny, nx] = self.shape;
        let (x, y, z) = (ijk[0], ijk[1], ijk[2]);
        if !(x >= 0.0 && y >= 0.0 && z >= 0.0 && x <= (nx - 1) as f64 && y <= (ny - 1) as f64 && z <= (nz - 1) as f64) {
            return None;
        }
        let (i0, j0, k0) = ((x as usize).min(nx - 2), (y as usize).min(ny - 2), (z as usize).min(nz - 2));
        let (fx, fy, fz) = ((x - i0 as f64) as f32, (y - j0 as f64) as f32, (z - k0 as f64) as f32);
        let at = |k: usize, j: usize, i: usize| self.data[(k * ny + j) * nx + i];
        let c000 = at(k0, j0, i0);
        let c001 = at(k0, j0, i0 + 1);
        let c010 = at(k0, j0 + 1, i0);
        let c011 = at(k0, j0 + 1, i0 + 1);
        let c100 = at(k0 + 1, j0, i0);
        let c101 = at(k0 + 1, j0, i0 + 1);
        let c110 = at(k0 + 1, j0 + 1, i0);
        let c111 = at(k0 + 1, j0 + 1, i0 + 1);
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let c00 = lerp(c000, c001, fx);
        let c01 = lerp(c010, c011, fx);
        let c10 = lerp(c100, c101, fx);
        let c11 = lerp(c110, c111, fx);
        let c0 = lerp(c00, c01, fy);
        let c1 = lerp(c10, c11, fy);
        let v = lerp(c0, c1, fz);
        // Derivatives of the trilinear interpolant along i, j, k …
        let di = lerp(lerp(c001 - c000, c011 - c010, fy), lerp(c101 - c100, c111 - c110, fy), fz) as f64;
        let dj = lerp(c01 - c00, c11 - c10, fz) as f64;
        let dk = (c1 - c0) as f64;
        // … to world: ∇_p m = (∂ijk/∂p)ᵀ ∇_ijk m.
        let m = &self.to_index;
        let g = [0, 1, 2].map(|a| m[0][a] * di + m[1][a] * dj + m[2][a] * dk);
        Some((v, g))
    }
}

/// A [1 2 1]/4 filter along each axis (edges replicated): both images get the same mild
/// blur, so the trilinear interpolation of the moving one no longer favours positions on
/// its voxel grid (a bias of a few tenths of a voxel on sharp edges otherwise).
fn binomial_smooth(data: &mut [f32], shape: [usize; 3]) {
    let [nz, ny, nx] = shape;
    let strides = [nx * ny, nx, 1];
    for (axis, &stride) in strides.iter().enumerate() {
        let n = shape[axis];
        if n < 3 {
            continue;
        }
        let src = data.to_vec();
        data.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slab)| {
            for j in 0..ny {
                for i in 0..nx {
                    let idx = [k, j, i][axis];
                    let here = (k * ny + j) * nx + i;
                    let lo = if idx > 0 { here - stride } else { here };
                    let hi = if idx + 1 < n { here + stride } else { here };
                    slab[j * nx + i] = 0.25 * src[lo] + 0.5 * src[here] + 0.25 * src[hi];
                }
            }
        });
    }
    let _ = nz;
}

/// Mean of the source voxels whose centres fall in each coarse voxel (anti-aliasing before
/// subsampling), by accumulating every source voxel into the coarse voxel that holds it.
fn box_average(v: &CtVolume, coarse: &Geometry) -> CtVolume {
    let [cz, cy, cx] = coarse.shape;
    let g = &v.geometry;
    let map = invert3(&coarse.index_to_world_matrix()).unwrap_or(IDENTITY);
    let mut sum = vec![0f64; cz * cy * cx];
    let mut cnt = vec![0u32; cz * cy * cx];
    let [nz, ny, nx] = g.shape;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = g.index_to_world([i as f64, j as f64, k as f64]);
                let o = coarse.origin_mm;
                let c = mat_vec(&map, [p[0] - o[0], p[1] - o[1], p[2] - o[2]]);
                let (ci, cj, ck) = (c[0].round(), c[1].round(), c[2].round());
                if ci < 0.0 || cj < 0.0 || ck < 0.0 || ci >= cx as f64 || cj >= cy as f64 || ck >= cz as f64 {
                    continue;
                }
                let idx = (ck as usize * cy + cj as usize) * cx + ci as usize;
                sum[idx] += v.data[[k, j, i]] as f64;
                cnt[idx] += 1;
            }
        }
    }
    let data: Vec<i16> =
        sum.iter().zip(&cnt).map(|(&s, &n)| if n > 0 { (s / n as f64).round() as i16 } else { -1024 }).collect();
    Volume::new(
        ndarray::Array3::from_shape_vec((cz, cy, cx), data)
            .unwrap_or_else(|_| ndarray::Array3::from_elem((cz, cy, cx), -1024)),
        coarse.clone(),
    )
}

/// Centre of mass (mm) of the voxels above `threshold_hu`, `None` when there are none.
pub(super) fn centre_of_mass(v: &CtVolume, threshold_hu: f32) -> Option<Lps> {
    let [_, ny, nx] = v.geometry.shape;
    let (s, n) = v
        .data
        .outer_iter()
        .into_par_iter()
        .enumerate()
        .map(|(k, slab)| {
            let mut s = [0f64; 3];
            let mut n = 0usize;
            for j in 0..ny {
                for i in 0..nx {
                    if slab[[j, i]] as f32 > threshold_hu {
                        s[0] += i as f64;
                        s[1] += j as f64;
                        s[2] += k as f64;
                        n += 1;
                    }
                }
            }
            (s, n)
        })
        .reduce(|| ([0.0; 3], 0), |a, b| ([a.0[0] + b.0[0], a.0[1] + b.0[1], a.0[2] + b.0[2]], a.1 + b.1));
    (n > 0).then(|| v.geometry.index_to_world(s.map(|x| x / n as f64)))
}

/// Points of the fixed level to compare: body voxels, a regular subsample of at most
/// `max_points` (deterministic), with their values.
pub(super) fn fixed_points(f: &LevelImage, threshold_hu: f32, max_points: usize) -> (Vec<Lps>, Vec<f32>) {
    let [nz, ny, nx] = f.shape;
    // Not the outermost voxels: their smoothing saw replicated edges, not neighbours.
    let inner = |n: usize| {
        let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
        i > 0 && j > 0 && k > 0 && i + 1 < nx && j + 1 < ny && k + 1 < nz
    };
    let body: Vec<usize> = (0..nz * ny * nx).filter(|&i| f.data[i] > threshold_hu && inner(i)).collect();
    let stride = body.len().div_ceil(max_points.max(1)).max(1);
    let picked: Vec<usize> = body.into_iter().step_by(stride).collect();
    let pts = picked
        .iter()
        .map(|&n| f.geometry.index_to_world([(n % nx) as f64, ((n / nx) % ny) as f64, (n / (nx * ny)) as f64]))
        .collect();
    let vals = picked.iter().map(|&n| f.data[n]).collect();
    (pts, vals)
}
