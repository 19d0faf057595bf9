//! Direct volume rendering (DVR) of a CT phase, its CPU side: what the GPU is given and how
//! it reads it. No wgpu here; the pipelines and textures are `app::gpu::dvr`'s
//! (`shaders/dvr.wgsl`).
//!
//! - [`DvrVolume`]: the CT box-averaged down to at most [`MAX_DIM`] voxels per axis and
//!   stored as half floats (HU), ready for a filterable `R16Float` 3D texture;
//! - [`TransferPreset`] and [`transfer_table`]: HU → display colour and opacity per mm;
//! - [`DvrParams`]: what a frame asks of the volume; [`march_size`]: the march target's size.
//!
//! Compositing with the surfaces: the opaque surfaces (tumours, vessel meshes) are drawn
//! first; rays stop at their depth, so they hide the volume behind them and the volume in
//! front of them covers them, depth-correctly. The see-through liver and the slice planes
//! are drawn after the volume, over it, as if the volume lay behind them (a translucent
//! surface has no single depth to stop at; where vessels run inside the liver, which is
//! what TACE planning looks at, this is also the right order).
//!
//! Speed (lavapipe's cost is per ray sample): rays skip bricks of [`BRICK`]³ voxels whose
//! largest HU the transfer function makes transparent (empty-space skipping: air, fat and
//! unenhanced soft tissue under the vessels/bone preset), stop once nearly opaque, and
//! while the camera moves are marched at half the view's resolution and scaled up.

use ndarray::Axis;
use rayon::prelude::*;

use crate::volume::{invert3, mat_vec, CtVolume, Geometry};

/// Largest texture side uploaded: more would not be interactive on a software rasteriser.
pub const MAX_DIM: usize = 256;

/// HU range the transfer table spans; below and above, its end entries hold.
pub const TABLE_HU: [f32; 2] = [-200.0, 1800.0];
/// Entries in the transfer table (4 HU apart).
pub const TABLE_ENTRIES: usize = 501;

/// Side of the empty-space-skipping bricks, voxels.
pub const BRICK: usize = 8;

/// Transfer functions the view offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransferPreset {
    /// Soft tissue transparent; contrast-filled vessels (~150–400 HU) dark red to
    /// red-white; bone white. For the arterial phase: the hepatic arteries and aorta.
    #[default]
    VesselsBone,
    /// Fat transparent, soft tissue faint and warm, enhancing organs and vessels stronger,
    /// bone white.
    SoftTissue,
}

impl TransferPreset {
    pub const ALL: [TransferPreset; 2] = [TransferPreset::VesselsBone, TransferPreset::SoftTissue];

    pub fn name(self) -> &'static str {
        match self {
            TransferPreset::VesselsBone => "vessels/bone",
            TransferPreset::SoftTissue => "soft tissue",
        }
    }

    /// HU at and below which the preset is transparent (rays skip bricks whose largest HU
    /// is below it).
    pub fn transparent_below_hu(self) -> f32 {
        let pts = self.points();
        match pts.iter().position(|p| p[4] > 0.0) {
            Some(0) | None => f32::NEG_INFINITY,
            Some(i) => pts[i - 1][0],
        }
    }

    /// Control points `(HU, r, g, b, opacity per mm)`, increasing HU, linear in between.
    pub fn points(self) -> &'static [[f32; 5]] {
        match self {
            TransferPreset::VesselsBone => &[
                [-200.0, 0.0, 0.0, 0.0, 0.0],
                [140.0, 0.55, 0.05, 0.05, 0.0],
                [180.0, 0.75, 0.1, 0.08, 0.12],
                [280.0, 0.92, 0.25, 0.18, 0.3],
                [400.0, 1.0, 0.75, 0.65, 0.45],
                [650.0, 1.0, 0.97, 0.92, 0.7],
                [1800.0, 1.0, 1.0, 1.0, 0.85],
            ],
            TransferPreset::SoftTissue => &[
                [-200.0, 0.0, 0.0, 0.0, 0.0],
                [-60.0, 0.7, 0.55, 0.35, 0.0],
                [20.0, 0.8, 0.45, 0.35, 0.004],
                [70.0, 0.85, 0.42, 0.36, 0.012],
                [130.0, 0.92, 0.52, 0.45, 0.04],
                [250.0, 1.0, 0.7, 0.6, 0.2],
                [500.0, 1.0, 0.95, 0.9, 0.5],
                [1800.0, 1.0, 1.0, 1.0, 0.8],
            ],
        }
    }
}

/// The transfer function as [`TABLE_ENTRIES`] `[r, g, b, opacity per mm]` entries evenly
/// spaced over [`TABLE_HU`].
pub fn transfer_table(preset: TransferPreset) -> Vec<[f32; 4]> {
    let pts = preset.points();
    (0..TABLE_ENTRIES)
        .map(|n| {
            let hu = TABLE_HU[0] + (TABLE_HU[1] - TABLE_HU[0]) * n as f32 / (TABLE_ENTRIES - 1) as f32;
            classify(pts, hu)
        })
        .collect()
}

/// Colour and opacity per mm of `hu` under the control points `pts`.
fn classify(pts: &[[f32; 5]], hu: f32) -> [f32; 4] {
    let first = pts[0];
    let last = pts[pts.len() - 1];
    let at = |p: [f32; 5]| [p[1], p[2], p[3], p[4]];
    if hu <= first[0] {
        return at(first);
    }
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if hu <= b[0] {
            let f = (hu - a[0]) / (b[0] - a[0]).max(1e-6);
            return [0, 1, 2, 3].map(|c| a[c + 1] + f * (b[c + 1] - a[c + 1]));
        }
    }
    at(last)
}

/// Colour and opacity per mm of `hu` under `preset` (as the shader reads the table).
pub fn transfer(preset: TransferPreset, hu: f32) -> [f32; 4] {
    classify(preset.points(), hu)
}

/// What the DVR pass needs from the frame's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DvrParams {
    /// Which uploaded [`DvrVolume`] (its `key`).
    pub volume_key: u64,
    pub preset: TransferPreset,
    /// Gradient (headlight) shading; six more samples per visible sample.
    pub shading: bool,
    /// Multiplies every opacity's effect (1: as the preset says).
    pub opacity: f32,
    /// Skip bricks the preset makes transparent (off only to measure what it saves).
    pub skip_empty: bool,
}

impl DvrParams {
    pub fn new(volume_key: u64) -> DvrParams {
        DvrParams { volume_key, preset: TransferPreset::default(), shading: true, opacity: 1.0, skip_empty: true }
    }
}

/// A CT volume prepared for the GPU: averaged over blocks of voxels until no side exceeds
/// [`MAX_DIM`], as half floats in `[z][y][x]` order.
#[derive(Clone, Debug)]
pub struct DvrVolume {
    /// The phase's key (the upload is cached by it).
    pub key: u64,
    /// The grid of the averaged voxels (block centres, block spacing).
    pub geometry: Geometry,
    /// HU as IEEE half-float bits.
    pub texels: Vec<u16>,
    /// Largest HU that trilinear sampling can read inside each [`BRICK`]³ brick (its voxels
    /// and the one-voxel border around them), `[z][y][x]` over [`DvrVolume::brick_dims`].
    pub brick_max: Vec<f32>,
}

impl DvrVolume {
    /// `ct` averaged over `f`-voxel blocks per axis, `f = ceil(n / max_dim)`.
    pub fn from_ct(ct: &CtVolume, key: u64, max_dim: usize) -> DvrVolume {
        let [nz, ny, nx] = ct.geometry.shape;
        let max_dim = max_dim.max(1);
        let f = [nz, ny, nx].map(|n| n.div_ceil(max_dim).max(1));
        let out = [nz.div_ceil(f[0]), ny.div_ceil(f[1]), nx.div_ceil(f[2])];
        let plane = out[1] * out[2];
        let mut texels = vec![0u16; out[0] * plane];
        texels.par_chunks_mut(plane.max(1)).enumerate().for_each(|(k, slab)| {
            let mut sums = vec![(0.0f32, 0u32); plane];
            for z in k * f[0]..((k + 1) * f[0]).min(nz) {
                for (y, row) in ct.data.index_axis(Axis(0), z).outer_iter().enumerate() {
                    let base = (y / f[1]) * out[2];
                    for (x, &v) in row.iter().enumerate() {
                        let s = &mut sums[base + x / f[2]];
                        s.0 += v as f32;
                        s.1 += 1;
                    }
                }
            }
            for (t, (sum, n)) in slab.iter_mut().zip(sums) {
                *t = f16_bits(if n > 0 { sum / n as f32 } else { -1024.0 });
            }
        });
        let mut geometry = ct.geometry.clone();
        // the first block's centre, and blocks `f` voxels apart
        geometry.origin_mm =
            ct.geometry.index_to_world([(f[2] - 1) as f64 * 0.5, (f[1] - 1) as f64 * 0.5, (f[0] - 1) as f64 * 0.5]);
        geometry.spacing_mm = [0, 1, 2].map(|a| ct.geometry.spacing_mm[a] * f[a] as f64);
        geometry.shape = out;
        let brick_max = brick_max(&texels, out);
        DvrVolume { key, geometry, texels, brick_max }
    }

    /// Bricks per axis `(x, y, z)`.
    pub fn brick_dims(&self) -> [u32; 3] {
        self.dims().map(|n| n.div_ceil(BRICK as u32).max(1))
    }

    /// Texture size `(x, y, z)`.
    pub fn dims(&self) -> [u32; 3] {
        let [nz, ny, nx] = self.geometry.shape;
        [nx as u32, ny as u32, nz as u32]
    }

    /// World (LPS mm) → texture coordinates (0…1 over the voxels' box): rows `[A | b]`.
    /// `None` when the geometry cannot be inverted.
    pub fn world_to_tex(&self) -> Option<[[f64; 4]; 3]> {
        let g = &self.geometry;
        let inv = invert3(&g.index_to_world_matrix())?;
        let b = mat_vec(&inv, g.origin_mm);
        let dims = self.dims();
        let mut m = [[0.0; 4]; 3];
        for r in 0..3 {
            let n = dims[r].max(1) as f64;
            m[r] = [inv[r][0] / n, inv[r][1] / n, inv[r][2] / n, (-b[r] + 0.5) / n];
        }
        Some(m)
    }

    /// The ray step: one voxel along the finest axis.
    pub fn step_mm(&self) -> f64 {
        self.geometry.spacing_mm.iter().copied().fold(f64::INFINITY, f64::min).max(0.1)
    }

    /// HU at texel `(i, j, k)` (tests).
    pub fn hu_at(&self, i: usize, j: usize, k: usize) -> f32 {
        let [_, ny, nx] = self.geometry.shape;
        f16_to_f32(self.texels[(k * ny + j) * nx + i])
    }
}

/// The largest value per brick of `texels` (`shape` `[z, y, x]`), each brick widened by a
/// voxel on every side (what trilinear sampling inside it can read).
fn brick_max(texels: &[u16], shape: [usize; 3]) -> Vec<f32> {
    let [nz, ny, nx] = shape;
    let [bz, by, bx] = shape.map(|n| n.div_ceil(BRICK).max(1));
    let range = |b: usize, n: usize| (b * BRICK).saturating_sub(1)..((b + 1) * BRICK + 1).min(n);
    (0..bz)
        .into_par_iter()
        .flat_map_iter(|k| {
            (0..by).flat_map(move |j| {
                (0..bx).map(move |i| {
                    let mut m = f32::NEG_INFINITY;
                    for z in range(k, nz) {
                        for y in range(j, ny) {
                            for x in range(i, nx) {
                                m = m.max(f16_to_f32(texels[(z * ny + y) * nx + x]));
                            }
                        }
                    }
                    m
                })
            })
        })
        .collect()
}

/// IEEE half-float bits of `x`, rounded to nearest (HU fit easily; no NaN expected).
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = b & 0x7f_ffff;
    if x.is_nan() {
        return 0x7e00;
    }
    if exp >= 31 {
        return sign | 0x7c00;
    }
    if exp <= 0 {
        if exp < -10 {
            return sign;
        }
        // subnormal: the implicit bit made explicit, shifted into place
        let m = mant | 0x80_0000;
        let shift = (14 - exp) as u32;
        let half = 1u32 << (shift - 1);
        let r = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | r as u16;
    }
    // round to nearest even on the 13 dropped bits; a carry may bump the exponent
    let r = mant + 0xfff + ((mant >> 13) & 1);
    let v = ((exp as u32) << 10) + (r >> 13);
    if v >= 0x7c00 {
        sign | 0x7c00
    } else {
        sign | v as u16
    }
}

/// The f32 value of half-float bits.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32;
    sign * match exp {
        0 => mant * 2f32.powi(-24),
        31 => f32::INFINITY,
        e => (1.0 + mant / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The march target's size: the view's, halved while the camera moves.
pub fn march_size(size_px: [u32; 2], interactive: bool) -> [u32; 2] {
    if interactive {
        size_px.map(|s| s.div_ceil(2).max(1))
    } else {
        size_px.map(|s| s.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Lps, Volume};
    use ndarray::Array3;

    #[test]
    fn half_floats_round_trip_hu() {
        for hu in [-1024.0f32, -1000.0, -0.5, 0.0, 0.25, 1.0, 57.0, 300.0, 1500.5, 3071.0] {
            let back = f16_to_f32(f16_bits(hu));
            // 11 significant bits: within half a unit in the last place
            assert!((back - hu).abs() <= hu.abs() / 2048.0 + 1e-6, "{hu} -> {back}");
        }
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(1e6), 0x7c00);
        assert!((f16_to_f32(f16_bits(1e-5)) - 1e-5).abs() < 1e-7, "subnormal");
    }

    #[test]
    fn presets_hide_soft_tissue_and_show_vessels_and_bone() {
        let p = TransferPreset::VesselsBone;
        for hu in [-1000.0, -100.0, 40.0, 110.0] {
            assert_eq!(transfer(p, hu)[3], 0.0, "{hu} HU must be transparent");
        }
        let vessel = transfer(p, 300.0);
        assert!(vessel[3] > 0.2 && vessel[0] > vessel[1] + 0.3, "contrast is red and visible: {vessel:?}");
        let bone = transfer(p, 1000.0);
        assert!(bone[3] > vessel[3] && bone[1] > 0.9 && bone[2] > 0.9, "bone white: {bone:?}");
        let s = TransferPreset::SoftTissue;
        assert_eq!(transfer(s, -100.0)[3], 0.0, "fat transparent");
        assert!(transfer(s, 60.0)[3] > 0.0 && transfer(s, 60.0)[3] < transfer(s, 200.0)[3]);
        // the table samples the same function
        let t = transfer_table(p);
        let at =
            |hu: f32| ((hu - TABLE_HU[0]) / (TABLE_HU[1] - TABLE_HU[0]) * (TABLE_ENTRIES - 1) as f32).round() as usize;
        assert_eq!(t[at(300.0)], vessel);
        assert_eq!(t[at(1000.0)], bone);
    }

    #[test]
    fn downsampling_averages_blocks_and_keeps_the_box() {
        // 10 x 6 x 4 (x, y, z) at 1 x 2 x 3 mm; max side 4 -> blocks of 3 x 2 x 1
        let g = Geometry::axis_aligned([4, 6, 10], [3.0, 2.0, 1.0], [10.0, 20.0, 30.0]);
        let data = Array3::from_shape_fn(g.shape, |(k, j, i)| (100 * k + 10 * j + i) as i16);
        let ct = Volume::new(data, g.clone());
        let v = DvrVolume::from_ct(&ct, 5, 4);
        assert_eq!(v.geometry.shape, [4, 3, 4]);
        assert_eq!(v.dims(), [4, 3, 4]);
        assert_eq!(v.geometry.spacing_mm, [3.0, 4.0, 3.0]);
        // block (0, 0, 0) = x 0..3, y 0..2, z 0: mean of i 0..2 and j 0..1
        assert!((v.hu_at(0, 0, 0) - (1.0 + 5.0)).abs() < 0.01, "{}", v.hu_at(0, 0, 0));
        // the last block in x holds one voxel (i = 9)
        assert!((v.hu_at(3, 2, 1) - (100.0 + 45.0 + 9.0)).abs() < 0.1, "{}", v.hu_at(3, 2, 1));
        // block centres: texture coordinate of the first voxel centre of the original grid
        // edge is 0, of the far edge 1 (same box up to the partial last block)
        let m = v.world_to_tex().unwrap();
        let tex = |p: Lps| [0, 1, 2].map(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3]);
        let corner = g.index_to_world([-0.5, -0.5, -0.5]);
        let t = tex(corner);
        assert!(t.iter().all(|c| c.abs() < 1e-9), "{t:?}");
        let c = tex(v.geometry.index_to_world([1.0, 1.0, 1.0]));
        assert!(
            (c[0] - 1.5 / 4.0).abs() < 1e-9 && (c[1] - 1.5 / 3.0).abs() < 1e-9 && (c[2] - 1.5 / 4.0).abs() < 1e-9,
            "{c:?}"
        );
        assert_eq!(v.step_mm(), 3.0);
        // each brick's maximum covers its voxels and a one-voxel border
        assert_eq!(v.brick_dims(), [1, 1, 1]);
        let top = (0..4)
            .flat_map(|k| (0..3).flat_map(move |j| (0..4).map(move |i| (i, j, k))))
            .map(|(i, j, k)| v.hu_at(i, j, k))
            .fold(f32::MIN, f32::max);
        assert_eq!(v.brick_max, vec![top]);
        let wide = Volume::new(
            Array3::from_shape_fn((1, 1, 20), |(_, _, i)| if i == 8 { 500 } else { 0 }),
            Geometry::axis_aligned([1, 1, 20], [1.0; 3], [0.0; 3]),
        );
        let w = DvrVolume::from_ct(&wide, 1, 256);
        assert_eq!(w.brick_max, vec![500.0, 500.0, 0.0], "voxel 8 borders brick 0 and lies in brick 1");
        assert_eq!(TransferPreset::VesselsBone.transparent_below_hu(), 140.0);
        // a small volume is not touched
        let same = DvrVolume::from_ct(&ct, 5, 256);
        assert_eq!(same.geometry, g);
        assert_eq!(same.hu_at(7, 3, 2), 237.0);
    }
}
