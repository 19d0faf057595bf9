//! Multi-resolution levels on the fixed grid. Every level shares the fixed grid's
//! direction, so moving between levels is a per-axis scale of positions and of
//! displacements (in voxels), whatever the direction matrix is.

use super::kernels::{self, Shape};
use super::smooth::gaussian_smooth;
use crate::volume::{CtVolume, Geometry};
use rayon::prelude::*;

/// A grid derived from the full-resolution one: shape, spacing `[sz, sy, sx]` mm, and the
/// offset `[oz, oy, ox]` mm of voxel 0 from the full grid's voxel 0 along each axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub shape: Shape,
    pub spacing_mm: [f64; 3],
    pub offset_mm: [f64; 3],
}

impl Level {
    pub fn full(g: &Geometry) -> Level {
        Level { shape: g.shape, spacing_mm: g.spacing_mm, offset_mm: [0.0; 3] }
    }

    /// A coarser grid whose voxels are about `factor` × the finest spacing on every axis
    /// (never finer than the input), so a 0.7 × 0.7 × 2.5 mm scan gets near-isotropic
    /// coarse levels: xy shrinks first, z only once xy has caught up.
    pub fn shrunk(g: &Geometry, factor: f64) -> Level {
        let s_min = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
        let mut l = Level::full(g);
        for a in 0..3 {
            let target = (s_min * factor).max(g.spacing_mm[a]);
            let n = ((g.shape[a] as f64 * g.spacing_mm[a] / target).round() as usize).max(1);
            let s = g.spacing_mm[a] * g.shape[a] as f64 / n as f64;
            l.shape[a] = n;
            l.spacing_mm[a] = s;
            l.offset_mm[a] = 0.5 * (s - g.spacing_mm[a]);
        }
        l
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The level as a geometry in the patient frame.
    pub fn geometry(&self, full: &Geometry) -> Geometry {
        let mut origin = full.origin_mm;
        // direction[0] is the x (i) axis, whose spacing/offset sit at index 2
        for (axis, dir) in full.direction.iter().enumerate() {
            let off = self.offset_mm[2 - axis];
            for c in 0..3 {
                origin[c] += dir[c] * off;
            }
        }
        Geometry { shape: self.shape, spacing_mm: self.spacing_mm, origin_mm: origin, direction: full.direction }
    }

    /// Continuous index in `src` of voxel index `idx` of `self`, per axis `[z, y, x]`.
    fn map_axis(&self, src: &Level, axis: usize, idx: usize) -> f32 {
        ((self.offset_mm[axis] + idx as f64 * self.spacing_mm[axis] - src.offset_mm[axis]) / src.spacing_mm[axis])
            as f32
    }
}

/// Resamples a scalar image on `src` onto `dst` (trilinear, border replicated), smoothing
/// first with σ = ½ · shrink voxels on axes that shrink (anti-aliasing).
pub fn downsample(img: &[f32], src: &Level, dst: &Level, scratch: &mut Vec<f32>) -> Vec<f32> {
    if src == dst {
        return img.to_vec();
    }
    let mut sigma = [0.0; 3];
    for a in 0..3 {
        let ratio = dst.spacing_mm[a] / src.spacing_mm[a];
        sigma[a] = if ratio > 1.01 { 0.5 * ratio } else { 0.0 };
    }
    let smoothed;
    let from: &[f32] = if sigma.iter().any(|&s| s > 0.0) {
        let mut s = img.to_vec();
        gaussian_smooth(&mut s, src.shape, 1, sigma, scratch);
        smoothed = s;
        &smoothed
    } else {
        img
    };
    resample_scalar(from, src, dst)
}

/// A CT volume on a coarser grid of the same extent, voxels about `voxel_mm` on the axes
/// finer than that (as [`Level::shrunk`]), smoothed against aliasing first: for registering
/// at a fraction of the cost where millimetres suffice. Finer already: returned as it is.
pub fn coarsened(vol: &CtVolume, voxel_mm: f64) -> CtVolume {
    let g = &vol.geometry;
    let finest = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
    // NaN spacing counts as no spacing: nothing to coarsen
    if finest.is_nan() || finest <= 0.0 || voxel_mm <= finest {
        return vol.clone();
    }
    let (full, small) = (Level::full(g), Level::shrunk(g, voxel_mm / finest));
    let img: Vec<f32> = vol.data.iter().map(|&v| v as f32).collect();
    let out = downsample(&img, &full, &small, &mut Vec::new());
    let data = ndarray::Array3::from_shape_vec(
        small.shape,
        out.into_iter().map(|v| v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16).collect(),
    )
    .expect("level shape");
    CtVolume::new(data, small.geometry(g))
}

fn resample_scalar(img: &[f32], src: &Level, dst: &Level) -> Vec<f32> {
    let [_, ny, nx] = dst.shape;
    let xs: Vec<f32> = (0..nx).map(|i| dst.map_axis(src, 2, i)).collect();
    let ys: Vec<f32> = (0..ny).map(|j| dst.map_axis(src, 1, j)).collect();
    let mut out = vec![0f32; dst.len()];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        let z = dst.map_axis(src, 0, k);
        for (j, &y) in ys.iter().enumerate() {
            for (i, &x) in xs.iter().enumerate() {
                slab[j * nx + i] = kernels::sample(img, src.shape, x, y, z);
            }
        }
    });
    out
}

/// Nearest-neighbour resampling of a mask.
pub fn downsample_mask(mask: &[u8], src: &Level, dst: &Level) -> Vec<u8> {
    let [_, ny, nx] = dst.shape;
    let near =
        |axis: usize, idx: usize| (dst.map_axis(src, axis, idx).round().max(0.0) as usize).min(src.shape[axis] - 1);
    let xs: Vec<usize> = (0..nx).map(|i| near(2, i)).collect();
    let ys: Vec<usize> = (0..ny).map(|j| near(1, j)).collect();
    let mut out = vec![0u8; dst.len()];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        let kk = near(0, k);
        for (j, &jj) in ys.iter().enumerate() {
            for (i, &ii) in xs.iter().enumerate() {
                slab[j * nx + i] = mask[(kk * src.shape[1] + jj) * src.shape[2] + ii];
            }
        }
    });
    out
}

/// Carries a displacement field in voxels of `src` onto `dst` (trilinear, border
/// replicated) and rescales it to voxels of `dst`.
pub fn transfer_field(disp: &[f32], src: &Level, dst: &Level) -> Vec<f32> {
    let [_, ny, nx] = dst.shape;
    let xs: Vec<f32> = (0..nx).map(|i| dst.map_axis(src, 2, i)).collect();
    let ys: Vec<f32> = (0..ny).map(|j| dst.map_axis(src, 1, j)).collect();
    // component c is along x, y, z = array axes 2, 1, 0
    let scale = [
        (src.spacing_mm[2] / dst.spacing_mm[2]) as f32,
        (src.spacing_mm[1] / dst.spacing_mm[1]) as f32,
        (src.spacing_mm[0] / dst.spacing_mm[0]) as f32,
    ];
    let mut out = vec![0f32; dst.len() * 3];
    out.par_chunks_mut(ny * nx * 3).enumerate().for_each(|(k, slab)| {
        let z = dst.map_axis(src, 0, k);
        for (j, &y) in ys.iter().enumerate() {
            for (i, &x) in xs.iter().enumerate() {
                let v = kernels::sample3(disp, src.shape, x, y, z);
                let o = (j * nx + i) * 3;
                slab[o] = v[0] * scale[0];
                slab[o + 1] = v[1] * scale[1];
                slab[o + 2] = v[2] * scale[2];
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarsened_volume_keeps_its_extent_and_its_values() {
        let g = Geometry::axis_aligned([10, 64, 64], [2.5, 0.75, 0.75], [-24.0, -24.0, -100.0]);
        // a bright block in the middle of soft tissue
        let data = ndarray::Array3::from_shape_fn((10, 64, 64), |(_, j, i)| {
            if (16..48).contains(&j) && (16..48).contains(&i) {
                200i16
            } else {
                40
            }
        });
        let v = CtVolume::new(data, g.clone());
        let c = coarsened(&v, 3.0);
        assert_eq!(c.geometry.shape, [8, 16, 16]);
        assert!(c.geometry.spacing_mm.iter().all(|&s| (s - 3.0).abs() < 0.2), "{:?}", c.geometry.spacing_mm);
        // the same box in space: first and last voxel edges where the original's are
        for a in 0..3 {
            let extent = |g: &Geometry| g.shape[a] as f64 * g.spacing_mm[a];
            assert!((extent(&c.geometry) - extent(&g)).abs() < 1e-9);
        }
        let lo = g.index_to_world([-0.5; 3]);
        let clo = c.geometry.index_to_world([-0.5; 3]);
        assert!((0..3).all(|k| (lo[k] - clo[k]).abs() < 1e-9), "{lo:?} vs {clo:?}");
        assert_eq!(c.data[[4, 8, 8]], 200, "inside the block");
        assert_eq!(c.data[[4, 1, 1]], 40, "tissue away from it");
        let fine = coarsened(&v, 0.5);
        assert_eq!(fine.geometry.shape, g.shape, "already finer: unchanged");
    }

    #[test]
    fn anisotropic_scan_shrinks_in_plane_first() {
        let g = Geometry::axis_aligned([89, 512, 512], [2.5, 0.703125, 0.703125], [0.0; 3]);
        let l4 = Level::shrunk(&g, 4.0);
        assert_eq!(l4.shape, [79, 128, 128]);
        let l2 = Level::shrunk(&g, 2.0);
        assert_eq!(l2.shape, [89, 256, 256]);
        assert_eq!(Level::shrunk(&g, 1.0), Level::full(&g));
        // the coarse grid covers the same extent: centre of the volume maps to itself
        let c_full = 255.5 * 0.703125;
        let c_l4 = l4.offset_mm[2] + 63.5 * l4.spacing_mm[2];
        assert!((c_full - c_l4).abs() < 1e-9);
    }

    #[test]
    fn a_constant_field_survives_a_round_trip_through_levels() {
        let g = Geometry::axis_aligned([10, 20, 20], [2.0, 1.0, 1.0], [0.0; 3]);
        let (full, coarse) = (Level::full(&g), Level::shrunk(&g, 2.0));
        // 1 mm along x = 1 full voxel
        let d: Vec<f32> = (0..full.len()).flat_map(|_| [1.0f32, 0.0, 0.0]).collect();
        let c = transfer_field(&d, &full, &coarse);
        assert!(c.chunks(3).all(|v| (v[0] - 0.5).abs() < 1e-6));
        let back = transfer_field(&c, &coarse, &full);
        assert!(back.chunks(3).all(|v| (v[0] - 1.0).abs() < 1e-6));
    }
}
