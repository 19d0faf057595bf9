//! The one image type every module speaks: a 3-D array in `[z, y, x]` order placed in the
//! patient frame (LPS millimetres, the DICOM frame) by a [`Geometry`].
//!
//! Owns index⇄world mapping, resampling onto another geometry (trilinear, nearest) and
//! reslicing an arbitrary plane (MPR). Nothing here knows about files; conversions to and
//! from RAS happen in `io` only. [`region`] holds the region helpers the modules above share
//! (one voxel box, connected components, distance transform, dilation in mm, voxel volume);
//! [`random`] the one seeded generator (SplitMix64) every random draw is built on.

use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;

pub mod key;
pub mod progress;
pub mod random;
pub mod region;

pub use key::next_key;
pub use progress::{no_progress, Progress};

/// A point or vector in LPS millimetres: `[x (→L), y (→P), z (→S)]`.
pub type Lps = [f64; 3];

/// Corners of two grids closer than this (mm) are the same grid ([`Geometry::same_grid`]).
pub const SAME_GRID_MM: f64 = 0.01;

/// Where a voxel grid sits in the patient frame.
///
/// `world = origin + Σ_axis direction[axis] · spacing[axis] · index[axis]`, with the index
/// given as `(i, j, k)` = (column, row, slice), i.e. `x, y, z` of the `[z, y, x]` array.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    /// Number of voxels `[nz, ny, nx]`.
    pub shape: [usize; 3],
    /// Voxel size `[sz, sy, sx]` in mm (array order).
    pub spacing_mm: [f64; 3],
    /// LPS position of the centre of voxel `(0, 0, 0)`.
    pub origin_mm: Lps,
    /// Unit direction of increasing `i`, `j`, `k` (x, y, z axes of the array) in LPS:
    /// `direction[0]` is the row direction (DICOM ImageOrientationPatient[0..3]),
    /// `direction[1]` the column direction, `direction[2]` the slice direction.
    pub direction: [Lps; 3],
}

impl Geometry {
    /// An axis-aligned grid (identity direction).
    pub fn axis_aligned(shape: [usize; 3], spacing_mm: [f64; 3], origin_mm: Lps) -> Self {
        Geometry { shape, spacing_mm, origin_mm, direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Slices `k0..k0 + n` as a grid of their own (same voxels, same world positions).
    pub fn slab(&self, k0: usize, n: usize) -> Geometry {
        let shift = k0 as f64 * self.spacing_mm[0];
        let origin_mm = [0, 1, 2].map(|c| self.origin_mm[c] + self.direction[2][c] * shift);
        Geometry { shape: [n, self.shape[1], self.shape[2]], origin_mm, ..self.clone() }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spacing in `(i, j, k)` = `(x, y, z)` order.
    fn spacing_ijk(&self) -> [f64; 3] {
        [self.spacing_mm[2], self.spacing_mm[1], self.spacing_mm[0]]
    }

    /// The 3×3 matrix `M` with `world = origin + M · (i, j, k)`; rows are LPS components.
    pub fn index_to_world_matrix(&self) -> [[f64; 3]; 3] {
        let s = self.spacing_ijk();
        let mut m = [[0.0; 3]; 3];
        for (axis, dir) in self.direction.iter().enumerate() {
            for (row, &d) in dir.iter().enumerate() {
                m[row][axis] = d * s[axis];
            }
        }
        m
    }

    /// World (LPS mm) of a continuous index `(i, j, k)`.
    pub fn index_to_world(&self, ijk: [f64; 3]) -> Lps {
        let m = self.index_to_world_matrix();
        let mut w = self.origin_mm;
        for (row, wr) in w.iter_mut().enumerate() {
            *wr += m[row][0] * ijk[0] + m[row][1] * ijk[1] + m[row][2] * ijk[2];
        }
        w
    }

    /// Continuous index `(i, j, k)` of a world point. Uses the inverse of the index→world
    /// matrix, so non-orthogonal grids (gantry tilt kept as shear) map correctly too.
    pub fn world_to_index(&self, p: Lps) -> [f64; 3] {
        let inv = invert3(&self.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
        let d = [p[0] - self.origin_mm[0], p[1] - self.origin_mm[1], p[2] - self.origin_mm[2]];
        mat_vec(&inv, d)
    }

    /// True when `ijk` (continuous) lies within the voxel centres' box.
    pub fn contains_index(&self, ijk: [f64; 3]) -> bool {
        let n = [self.shape[2], self.shape[1], self.shape[0]];
        (0..3).all(|a| ijk[a] >= -0.5 && ijk[a] <= n[a] as f64 - 0.5)
    }

    /// World positions of the 8 corner voxel centres (for comparing grids).
    pub fn corners(&self) -> [Lps; 8] {
        let n = [
            self.shape[2].saturating_sub(1) as f64,
            self.shape[1].saturating_sub(1) as f64,
            self.shape[0].saturating_sub(1) as f64,
        ];
        let mut out = [[0.0; 3]; 8];
        for (c, o) in out.iter_mut().enumerate() {
            let ijk = [
                if c & 1 != 0 { n[0] } else { 0.0 },
                if c & 2 != 0 { n[1] } else { 0.0 },
                if c & 4 != 0 { n[2] } else { 0.0 },
            ];
            *o = self.index_to_world(ijk);
        }
        out
    }

    /// Centre of the grid in LPS mm.
    pub fn centre_mm(&self) -> Lps {
        self.index_to_world([
            (self.shape[2] as f64 - 1.0) / 2.0,
            (self.shape[1] as f64 - 1.0) / 2.0,
            (self.shape[0] as f64 - 1.0) / 2.0,
        ])
    }

    /// The same grid: equal shapes and every corner within [`SAME_GRID_MM`], so one can be
    /// read voxel by voxel against the other without resampling. The one test every
    /// module uses.
    pub fn same_grid(&self, other: &Geometry) -> bool {
        self.shape == other.shape && self.max_corner_distance_mm(other) <= SAME_GRID_MM
    }

    /// Largest absolute difference between the corner positions of two grids, in mm
    /// (∞ when the shapes differ).
    pub fn max_corner_distance_mm(&self, other: &Geometry) -> f64 {
        if self.shape != other.shape {
            return f64::INFINITY;
        }
        self.corners()
            .iter()
            .zip(other.corners().iter())
            .map(|(a, b)| (0..3).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max))
            .fold(0.0, f64::max)
    }

    /// Checks what a grid needs to be usable: positive finite spacing, independent axes.
    pub fn validate(&self) -> Result<(), String> {
        if self.shape.contains(&0) {
            return Err(format!("empty grid {:?}", self.shape));
        }
        for s in self.spacing_mm {
            if !(s.is_finite() && s > 1e-6) {
                return Err(format!("voxel size {:?} mm is zero, negative or not a number", self.spacing_mm));
            }
        }
        for d in &self.direction {
            let n = norm(*d);
            if !(n.is_finite() && (n - 1.0).abs() < 1e-3) {
                return Err(format!("direction {d:?} is not a unit vector"));
            }
        }
        let det = det3(&self.index_to_world_matrix());
        if !(det.is_finite() && det.abs() > 1e-9) {
            return Err("axes are parallel (singular orientation)".into());
        }
        Ok(())
    }
}

/// A voxel volume in the patient frame. CT is `Volume<i16>` (HU), masks `Volume<u8>`.
#[derive(Clone, Debug)]
pub struct Volume<T> {
    pub data: Array3<T>,
    pub geometry: Geometry,
}

/// CT in Hounsfield units.
pub type CtVolume = Volume<i16>;
/// Label mask (0 = background).
pub type Mask = Volume<u8>;

impl<T: Clone> Volume<T> {
    /// Pairs data with a geometry; the geometry's shape is taken from the array.
    pub fn new(data: Array3<T>, mut geometry: Geometry) -> Self {
        let s = data.shape();
        geometry.shape = [s[0], s[1], s[2]];
        Volume { data, geometry }
    }

    /// A volume filled with `value` on `geometry`.
    pub fn filled(geometry: Geometry, value: T) -> Self {
        let data = Array3::from_elem(geometry.shape, value);
        Volume { data, geometry }
    }

    pub fn shape(&self) -> [usize; 3] {
        self.geometry.shape
    }
}

/// A displacement field on a grid: `data[[k, j, i, c]]` is component `c` (LPS x, y, z) of
/// `u` in mm at voxel `(i, j, k)`, in ITK's convention `moving(x + u(x)) ≈ fixed(x)`.
#[derive(Clone, Debug)]
pub struct Field {
    pub data: ndarray::Array4<f32>,
    pub geometry: Geometry,
}

impl Field {
    /// The zero field on `geometry`.
    pub fn zeros(geometry: Geometry) -> Self {
        let [nz, ny, nx] = geometry.shape;
        Field { data: ndarray::Array4::zeros([nz, ny, nx, 3]), geometry }
    }
}

/// A sample type that can be interpolated (via f32) and written back.
pub trait Sample: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Sample for i16 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(v: f32) -> Self {
        v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
    }
}
impl Sample for u8 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(v: f32) -> Self {
        v.round().clamp(0.0, 255.0) as u8
    }
}
impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

/// How to read between voxel centres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Interp {
    /// Nearest voxel: for label masks, or to see raw voxels.
    Nearest,
    /// Trilinear: for intensities.
    Linear,
}

impl<T: Sample> Volume<T> {
    /// Value at a continuous index `(i, j, k)`, or `None` outside the grid.
    pub fn sample_index(&self, ijk: [f64; 3], interp: Interp) -> Option<f32> {
        if !self.geometry.contains_index(ijk) {
            return None;
        }
        let [nz, ny, nx] = self.geometry.shape;
        match interp {
            Interp::Nearest => {
                let i = (ijk[0].round() as isize).clamp(0, nx as isize - 1) as usize;
                let j = (ijk[1].round() as isize).clamp(0, ny as isize - 1) as usize;
                let k = (ijk[2].round() as isize).clamp(0, nz as isize - 1) as usize;
                Some(self.data[[k, j, i]].to_f32())
            }
            Interp::Linear => Some(trilinear(&self.data, ijk)),
        }
    }

    /// Value at a world point (LPS mm), or `None` outside the grid.
    pub fn sample_world(&self, p: Lps, interp: Interp) -> Option<f32> {
        self.sample_index(self.geometry.world_to_index(p), interp)
    }

    /// Resamples this volume onto `target`; points outside this volume get `fill`.
    /// Parallel over target slices; the affine map is applied incrementally per row.
    pub fn resample_to(&self, target: &Geometry, interp: Interp, fill: T) -> Volume<T> {
        let [nz, ny, nx] = target.shape;
        let mut out = Array3::from_elem([nz, ny, nx], fill);
        // index_src = A · index_tgt + b, composed once.
        let t = target.index_to_world_matrix();
        let inv = invert3(&self.geometry.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
        let a = mat_mul(&inv, &t);
        let d0 = [
            target.origin_mm[0] - self.geometry.origin_mm[0],
            target.origin_mm[1] - self.geometry.origin_mm[1],
            target.origin_mm[2] - self.geometry.origin_mm[2],
        ];
        let b = mat_vec(&inv, d0);
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
            for j in 0..ny {
                let base = [
                    b[0] + a[0][1] * j as f64 + a[0][2] * k as f64,
                    b[1] + a[1][1] * j as f64 + a[1][2] * k as f64,
                    b[2] + a[2][1] * j as f64 + a[2][2] * k as f64,
                ];
                for i in 0..nx {
                    let ijk =
                        [base[0] + a[0][0] * i as f64, base[1] + a[1][0] * i as f64, base[2] + a[2][0] * i as f64];
                    if let Some(v) = self.sample_index(ijk, interp) {
                        slab[[j, i]] = T::from_f32(v);
                    }
                }
            }
        });
        Volume { data: out, geometry: target.clone() }
    }
}

/// A plane to cut through a volume: its centre, two in-plane unit axes (screen right and
/// screen down, LPS), the pixel size and the output size.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plane {
    pub centre_mm: Lps,
    pub right: Lps,
    pub down: Lps,
    pub pixel_mm: f64,
    pub width: usize,
    pub height: usize,
}

impl Plane {
    /// World position of output pixel `(u, v)` (u right, v down).
    pub fn pixel_to_world(&self, u: f64, v: f64) -> Lps {
        let du = (u - (self.width as f64 - 1.0) / 2.0) * self.pixel_mm;
        let dv = (v - (self.height as f64 - 1.0) / 2.0) * self.pixel_mm;
        [
            self.centre_mm[0] + self.right[0] * du + self.down[0] * dv,
            self.centre_mm[1] + self.right[1] * du + self.down[1] * dv,
            self.centre_mm[2] + self.right[2] * du + self.down[2] * dv,
        ]
    }
}

/// Cuts `plane` out of `vol` (MPR); pixels outside the volume are `None`.
pub fn reslice<T: Sample>(vol: &Volume<T>, plane: &Plane, interp: Interp) -> Array2<Option<f32>> {
    let mut out = Array2::from_elem([plane.height, plane.width], None);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(v, mut row)| {
        for u in 0..plane.width {
            row[u] = vol.sample_world(plane.pixel_to_world(u as f64, v as f64), interp);
        }
    });
    out
}

fn trilinear<T: Sample>(data: &Array3<T>, ijk: [f64; 3]) -> f32 {
    let (nz, ny, nx) = data.dim();
    let clampf = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
    let x = clampf(ijk[0], nx);
    let y = clampf(ijk[1], ny);
    let z = clampf(ijk[2], nz);
    let (x0, y0, z0) = (x.floor() as usize, y.floor() as usize, z.floor() as usize);
    let (x1, y1, z1) = ((x0 + 1).min(nx - 1), (y0 + 1).min(ny - 1), (z0 + 1).min(nz - 1));
    let (fx, fy, fz) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32, (z - z0 as f64) as f32);
    let g = |k: usize, j: usize, i: usize| data[[k, j, i]].to_f32();
    let c00 = g(z0, y0, x0) * (1.0 - fx) + g(z0, y0, x1) * fx;
    let c01 = g(z0, y1, x0) * (1.0 - fx) + g(z0, y1, x1) * fx;
    let c10 = g(z1, y0, x0) * (1.0 - fx) + g(z1, y0, x1) * fx;
    let c11 = g(z1, y1, x0) * (1.0 - fx) + g(z1, y1, x1) * fx;
    let c0 = c00 * (1.0 - fy) + c01 * fy;
    let c1 = c10 * (1.0 - fy) + c11 * fy;
    c0 * (1.0 - fz) + c1 * fz
}

// --- small 3×3 linear algebra (f64; geometry is never hot enough to need SIMD) ---

pub fn dot(a: Lps, b: Lps) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Lps, b: Lps) -> Lps {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub fn norm(a: Lps) -> f64 {
    dot(a, a).sqrt()
}

pub fn add(a: Lps, b: Lps) -> Lps {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn sub(a: Lps, b: Lps) -> Lps {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// The covariance of points (mm): their second moments about their mean, divided by n.
pub fn covariance3(pts: &[[f64; 3]]) -> [[f64; 3]; 3] {
    let n = pts.len() as f64;
    let mean: [f64; 3] = std::array::from_fn(|a| pts.iter().map(|p| p[a]).sum::<f64>() / n);
    let mut c = [[0.0; 3]; 3];
    for p in pts {
        for a in 0..3 {
            for b in 0..3 {
                c[a][b] += (p[a] - mean[a]) * (p[b] - mean[b]) / n;
            }
        }
    }
    c
}

pub fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

pub fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = det3(m);
    if !(det.is_finite() && det.abs() > 1e-12) {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // cofactor transpose
            let (a1, a2) = ((j + 1) % 3, (j + 2) % 3);
            let (b1, b2) = ((i + 1) % 3, (i + 2) % 3);
            *v = (m[a1][b1] * m[a2][b2] - m[a1][b2] * m[a2][b1]) * inv_det;
        }
    }
    Some(r)
}

pub fn mat_vec(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}

pub fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oblique() -> Geometry {
        let c = 30f64.to_radians().cos();
        let s = 30f64.to_radians().sin();
        Geometry {
            shape: [7, 9, 11],
            spacing_mm: [2.5, 0.8, 0.7],
            origin_mm: [-10.0, 20.0, -300.0],
            direction: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    #[test]
    fn index_world_round_trip_oblique() {
        let g = oblique();
        let p = g.index_to_world([3.0, 4.5, 2.25]);
        let back = g.world_to_index(p);
        for (a, b) in back.iter().zip([3.0, 4.5, 2.25]) {
            assert!((a - b).abs() < 1e-9, "{back:?}");
        }
        // one step in k moves 2.5 mm along the slice direction
        let d = sub(g.index_to_world([0.0, 0.0, 1.0]), g.index_to_world([0.0, 0.0, 0.0]));
        assert!((norm(d) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn resample_onto_itself_is_identity() {
        let g = oblique();
        let data = Array3::from_shape_fn(g.shape, |(k, j, i)| (k * 100 + j * 10 + i) as i16);
        let v = Volume::new(data.clone(), g.clone());
        for interp in [Interp::Nearest, Interp::Linear] {
            let r = v.resample_to(&g, interp, -1);
            assert_eq!(r.data, data);
        }
    }

    #[test]
    fn linear_resample_of_a_ramp_is_exact() {
        // a linear function of world position is reproduced exactly by trilinear sampling
        let g = Geometry::axis_aligned([6, 8, 10], [2.0, 1.0, 1.0], [0.0, 0.0, 0.0]);
        let f = |p: Lps| (p[0] * 1.0 + p[1] * 2.0 + p[2] * 3.0) as f32;
        let data = Array3::from_shape_fn(g.shape, |(k, j, i)| f(g.index_to_world([i as f64, j as f64, k as f64])));
        let v = Volume::new(data, g.clone());
        let t = Geometry::axis_aligned([4, 5, 6], [1.3, 0.7, 0.9], [1.1, 1.2, 1.5]);
        let r = v.resample_to(&t, Interp::Linear, f32::NAN);
        for ((k, j, i), &val) in r.data.indexed_iter() {
            let want = f(t.index_to_world([i as f64, j as f64, k as f64]));
            assert!((val - want).abs() < 1e-3, "at {k},{j},{i}: {val} vs {want}");
        }
    }

    #[test]
    fn outside_gets_fill() {
        let g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        let v = Volume::filled(g, 5u8);
        let far = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [100.0; 3]);
        assert!(v.resample_to(&far, Interp::Nearest, 0).data.iter().all(|&x| x == 0));
    }

    #[test]
    fn axial_reslice_matches_slice() {
        let g = Geometry::axis_aligned([5, 6, 7], [2.0, 1.0, 1.0], [0.0; 3]);
        let data = Array3::from_shape_fn(g.shape, |(k, j, i)| (k * 100 + j * 10 + i) as i16);
        let v = Volume::new(data.clone(), g.clone());
        let plane = Plane {
            centre_mm: g.index_to_world([3.0, 2.5, 2.0]),
            right: [1.0, 0.0, 0.0],
            down: [0.0, 1.0, 0.0],
            pixel_mm: 1.0,
            width: 7,
            height: 6,
        };
        let s = reslice(&v, &plane, Interp::Nearest);
        for ((j, i), val) in s.indexed_iter() {
            assert_eq!(*val, Some(data[[2, j, i]] as f32));
        }
    }

    #[test]
    fn degenerate_geometry_is_rejected() {
        let mut g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        g.spacing_mm[2] = 0.0;
        assert!(g.validate().is_err());
        let mut g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        g.direction[1] = [1.0, 0.0, 0.0];
        assert!(g.validate().is_err());
    }

    proptest! {
        #[test]
        fn invert3_inverts(a in prop::array::uniform9(-5.0f64..5.0)) {
            let m = [[a[0], a[1], a[2]], [a[3], a[4], a[5]], [a[6], a[7], a[8]]];
            prop_assume!(det3(&m).abs() > 0.1);
            let inv = invert3(&m).unwrap();
            let id = mat_mul(&m, &inv);
            for i in 0..3 { for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                prop_assert!((id[i][j] - want).abs() < 1e-6);
            }}
        }
    }
}
