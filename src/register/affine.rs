//! Rigid and affine registration for studies taken on different days: the patient lies
//! differently, so the two scans differ by centimetres and a few degrees before any
//! breathing. Metric: normalised cross-correlation over the fixed image's body voxels
//! (NCC tolerates a global change of contrast between visits); optimiser: regular-step
//! gradient ascent (as ITK's), step halved whenever the metric stops improving, over a
//! pyramid of near-isotropic levels. Initialised by matching the bodies' centres of mass,
//! which puts shifts of several centimetres within the optimiser's reach.
//!
//! The transform maps a fixed point to the moving point that should look the same:
//! `y = A (x − c) + c + t` (LPS mm), so `moving(T(x)) ≈ fixed(x)` like the Demons fields.

use rayon::prelude::*;

use super::RegisterError;
use crate::volume::{invert3, mat_mul, mat_vec, CtVolume, Field, Geometry, Interp, Lps, Progress, Volume};

/// `y = matrix · (x − centre_mm) + centre_mm + translation_mm`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AffineTransform {
    pub matrix: [[f64; 3]; 3],
    pub translation_mm: [f64; 3],
    pub centre_mm: [f64; 3],
}

impl AffineTransform {
    pub fn identity(centre_mm: Lps) -> Self {
        AffineTransform { matrix: IDENTITY, translation_mm: [0.0; 3], centre_mm }
    }

    /// Rotation by `angles_rad` about x, then y, then z (LPS axes), about `centre_mm`,
    /// followed by `translation_mm`.
    pub fn rigid(angles_rad: [f64; 3], translation_mm: [f64; 3], centre_mm: Lps) -> Self {
        let [a, b, c] = angles_rad;
        let rx = [[1.0, 0.0, 0.0], [0.0, a.cos(), -a.sin()], [0.0, a.sin(), a.cos()]];
        let ry = [[b.cos(), 0.0, b.sin()], [0.0, 1.0, 0.0], [-b.sin(), 0.0, b.cos()]];
        let rz = [[c.cos(), -c.sin(), 0.0], [c.sin(), c.cos(), 0.0], [0.0, 0.0, 1.0]];
        AffineTransform { matrix: mat_mul(&rz, &mat_mul(&ry, &rx)), translation_mm, centre_mm }
    }

    pub fn apply(&self, x: Lps) -> Lps {
        let r = [x[0] - self.centre_mm[0], x[1] - self.centre_mm[1], x[2] - self.centre_mm[2]];
        let y = mat_vec(&self.matrix, r);
        [0, 1, 2].map(|a| y[a] + self.centre_mm[a] + self.translation_mm[a])
    }

    /// The inverse transform, `None` when the matrix is singular.
    pub fn inverse(&self) -> Option<AffineTransform> {
        let inv = invert3(&self.matrix)?;
        // x = A⁻¹ (y − c − t) + c  ⇒  centre c' = c + t, translation −t.
        let centre = [0, 1, 2].map(|a| self.centre_mm[a] + self.translation_mm[a]);
        Some(AffineTransform { matrix: inv, translation_mm: self.translation_mm.map(|t| -t), centre_mm: centre })
    }

    /// Rotation angle (degrees) of the matrix's closest rotation, for reports (rigid part).
    pub fn rotation_deg(&self) -> f64 {
        let m = &self.matrix;
        let tr = (m[0][0] + m[1][1] + m[2][2]).clamp(-1.0, 3.0);
        ((tr - 1.0) / 2.0).clamp(-1.0, 1.0).acos().to_degrees()
    }

    /// The displacement field `u(x) = T(x) − x` on `grid` (ITK convention), so an affine
    /// result composes with a Demons field.
    pub fn to_field(&self, grid: &Geometry) -> Field {
        let mut f = Field::zeros(grid.clone());
        let [_, ny, nx] = grid.shape;
        f.data.axis_iter_mut(ndarray::Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
            for j in 0..ny {
                for i in 0..nx {
                    let x = grid.index_to_world([i as f64, j as f64, k as f64]);
                    let y = self.apply(x);
                    for c in 0..3 {
                        slab[[j, i, c]] = (y[c] - x[c]) as f32;
                    }
                }
            }
        });
        f
    }
}

const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Rigid (6 parameters) or affine (12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Rigid,
    Affine,
}

/// What to run; the defaults suit two abdominal CTs of one patient taken on different days.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AffineParams {
    pub model: Model,
    /// Pyramid spacings (mm), coarse to fine; each level runs at most `iterations`.
    pub level_spacing_mm: Vec<f64>,
    pub iterations: usize,
    /// Fixed voxels above this HU are the points compared (the body, not the air).
    pub body_threshold_hu: f32,
    /// At most this many points per level (a regular subsample; enough for 12 parameters).
    pub max_points: usize,
    /// First step of each level, as a fraction of the level spacing (mm-equivalent).
    pub step_fraction: f64,
    /// A level ends when its step falls below this (mm-equivalent).
    pub min_step_mm: f64,
    /// Rotation/scale parameters are scaled by this radius (mm) so a step moves points at
    /// that distance from the centre about as far as a translation step.
    pub radius_mm: f64,
    /// Start from the bodies' centres of mass (else from the identity).
    pub init_centre_of_mass: bool,
}

impl Default for AffineParams {
    fn default() -> Self {
        AffineParams {
            model: Model::Rigid,
            level_spacing_mm: vec![8.0, 4.0, 2.0],
            iterations: 100,
            body_threshold_hu: -500.0,
            max_points: 300_000,
            step_fraction: 0.5,
            min_step_mm: 0.005,
            radius_mm: 100.0,
            init_centre_of_mass: true,
        }
    }
}

/// The result and how it went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AffineResult {
    pub transform: AffineTransform,
    pub ncc_before: f64,
    pub ncc_after: f64,
    /// Iterations per level, coarse to fine.
    pub iterations: Vec<usize>,
    pub seconds: f64,
}

/// A level's image as f32 with its index↔world maps.
struct LevelImage {
    data: Vec<f32>,
    shape: [usize; 3],
    geometry: Geometry,
    /// world → continuous index (i, j, k): `to_index · (p − origin)`.
    to_index: [[f64; 3]; 3],
}

impl LevelImage {
    fn new(v: &CtVolume, spacing_mm: f64) -> LevelImage {
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
    fn sample_grad(&self, p: Lps) -> Option<(f32, [f64; 3])> {
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
fn centre_of_mass(v: &CtVolume, threshold_hu: f32) -> Option<Lps> {
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
fn fixed_points(f: &LevelImage, threshold_hu: f32, max_points: usize) -> (Vec<Lps>, Vec<f32>) {
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

/// The moving values through `t` fitted to the fixed ones by an intensity line
/// (`m ≈ a·f + b`, least squares; the contrast differs between visits), and the
/// Gauss–Newton normal equations of that fit in the update parameters: rotation vector ω
/// (rigid) or matrix increment (affine, row-major), then translation. Returns NCC,
/// `H = JᵀJ` (row-major) and `g = Jᵀ(a·f + b − m)`. Points mapped outside the moving image
/// are left out.
struct Normal {
    ncc: f64,
    h: Vec<f64>,
    g: Vec<f64>,
    points: usize,
}

fn n_params(model: Model) -> usize {
    if model == Model::Rigid {
        6
    } else {
        12
    }
}

/// ∂m/∂p at one point (`gm` = world gradient of the moving image, `r` = x − centre).
#[inline]
fn jacobian_row(model: Model, rt: &[[f64; 3]; 3], gm: [f64; 3], r: [f64; 3], row: &mut [f64; 12]) {
    let np = n_params(model);
    match model {
        Model::Rigid => {
            // y = R (I + [ω]×) r + …  ⇒  ∂m/∂ω = r × (Rᵀ ∇m)
            let q = mat_vec(rt, gm);
            row[0] = r[1] * q[2] - r[2] * q[1];
            row[1] = r[2] * q[0] - r[0] * q[2];
            row[2] = r[0] * q[1] - r[1] * q[0];
        }
        Model::Affine => {
            for a in 0..3 {
                for b in 0..3 {
                    row[3 * a + b] = gm[a] * r[b];
                }
            }
        }
    }
    row[np - 3..np].copy_from_slice(&gm);
}

fn normal_equations(t: &AffineTransform, pts: &[Lps], fvals: &[f32], m: &LevelImage, model: Model) -> Option<Normal> {
    let samples: Vec<Option<(f32, [f64; 3])>> = pts.par_iter().map(|&x| m.sample_grad(t.apply(x))).collect();
    let (mut n, mut sf, mut sm) = (0usize, 0f64, 0f64);
    for (s, &f) in samples.iter().zip(fvals) {
        if let Some((v, _)) = s {
            n += 1;
            sf += f as f64;
            sm += *v as f64;
        }
    }
    if n < 100 {
        return None;
    }
    let (mf, mm) = (sf / n as f64, sm / n as f64);
    let (mut sff, mut smm, mut sfm) = (0f64, 0f64, 0f64);
    for (s, &f) in samples.iter().zip(fvals) {
        if let Some((v, _)) = s {
            let (a, b) = (f as f64 - mf, *v as f64 - mm);
            sff += a * a;
            smm += b * b;
            sfm += a * b;
        }
    }
    if sff <= 0.0 || smm <= 0.0 {
        return None;
    }
    let ncc = sfm / (sff * smm).sqrt();
    let slope = sfm / sff;
    let np = n_params(model);
    let rt = transpose(&t.matrix);
    // Sums over fixed chunks, added in order: rayon's fold splits where work stealing
    // happens to, so its float sums (and the affine, in the last digits) changed from run
    // to run; the same inputs must give the same bits.
    const CHUNK: usize = 4096;
    let partial: Vec<(Vec<f64>, Vec<f64>)> = samples
        .par_chunks(CHUNK)
        .zip(pts.par_chunks(CHUNK))
        .zip(fvals.par_chunks(CHUNK))
        .map(|((ss, xs), fs)| {
            let (mut h, mut g) = (vec![0f64; np * np], vec![0f64; np]);
            for ((s, &x), &f) in ss.iter().zip(xs).zip(fs) {
                if let Some((v, gm)) = s {
                    let target = mm + slope * (f as f64 - mf);
                    let res = target - *v as f64;
                    let r = [x[0] - t.centre_mm[0], x[1] - t.centre_mm[1], x[2] - t.centre_mm[2]];
                    let mut row = [0f64; 12];
                    jacobian_row(model, &rt, *gm, r, &mut row);
                    for a in 0..np {
                        g[a] += row[a] * res;
                        for b in a..np {
                            h[a * np + b] += row[a] * row[b];
                        }
                    }
                }
            }
            (h, g)
        })
        .collect();
    let (mut h, mut g) = (vec![0f64; np * np], vec![0f64; np]);
    for (h2, g2) in &partial {
        h.iter_mut().zip(h2).for_each(|(a, b)| *a += b);
        g.iter_mut().zip(g2).for_each(|(a, b)| *a += b);
    }
    for a in 0..np {
        for b in 0..a {
            h[a * np + b] = h[b * np + a];
        }
    }
    Some(Normal { ncc, h, g, points: n })
}

/// Solves `(H + λ·diag(H)) x = g` by Gaussian elimination with partial pivoting.
fn solve_damped(h: &[f64], g: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let n = g.len();
    let mut a: Vec<f64> = h.to_vec();
    for i in 0..n {
        a[i * n + i] *= 1.0 + lambda;
    }
    let mut b = g.to_vec();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[p * n + c].abs() < 1e-12 {
            return None;
        }
        if p != c {
            for k in 0..n {
                a.swap(c * n + k, p * n + k);
            }
            b.swap(c, p);
        }
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c * n + k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c * n + c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

fn transpose(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    [[m[0][0], m[1][0], m[2][0]], [m[0][1], m[1][1], m[2][1]], [m[0][2], m[1][2], m[2][2]]]
}

/// Rotation matrix of the rotation vector `w` (Rodrigues).
fn rodrigues(w: [f64; 3]) -> [[f64; 3]; 3] {
    let th = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
    if th < 1e-12 {
        return IDENTITY;
    }
    let k = w.map(|x| x / th);
    let (s, c) = th.sin_cos();
    let kx = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
    let kx2 = mat_mul(&kx, &kx);
    let mut r = IDENTITY;
    for a in 0..3 {
        for b in 0..3 {
            r[a][b] += s * kx[a][b] + (1.0 - c) * kx2[a][b];
        }
    }
    r
}

/// `t` updated by `d` (rotation vector or matrix increment, then translation).
fn updated(t: &AffineTransform, d: &[f64], model: Model) -> AffineTransform {
    let np = d.len();
    let mut out = *t;
    match model {
        Model::Rigid => out.matrix = mat_mul(&t.matrix, &rodrigues([d[0], d[1], d[2]])),
        Model::Affine => {
            for a in 0..3 {
                for b in 0..3 {
                    out.matrix[a][b] += d[3 * a + b];
                }
            }
        }
    }
    for a in 0..3 {
        out.translation_mm[a] += d[np - 3 + a];
    }
    out
}

/// How far an update moves points, in mm: translation plus the linear part at `radius`.
fn update_size_mm(d: &[f64], radius: f64) -> f64 {
    let np = d.len();
    let lin: f64 = d[..np - 3].iter().map(|x| x * x).sum::<f64>().sqrt() * radius;
    let tr: f64 = d[np - 3..].iter().map(|x| x * x).sum::<f64>().sqrt();
    lin + tr
}

/// Registers `moving` onto `fixed` with a rigid or affine transform, from `init` (or the
/// centres of mass), coarse to fine.
pub fn register_affine(
    fixed: &CtVolume,
    moving: &CtVolume,
    params: &AffineParams,
    init: Option<AffineTransform>,
    progress: Progress,
) -> Result<AffineResult, RegisterError> {
    let t0 = std::time::Instant::now();
    if params.level_spacing_mm.is_empty()
        || params.iterations == 0
        || params.max_points < 100
        || params.radius_mm.is_nan()
        || params.radius_mm <= 0.0
        || params.min_step_mm.is_nan()
        || params.min_step_mm <= 0.0
    {
        return Err(RegisterError::BadParams(
            "affine: give at least one level, iterations ≥ 1, max_points ≥ 100, radius and min step > 0".into(),
        ));
    }
    let cf = centre_of_mass(fixed, params.body_threshold_hu)
        .ok_or(RegisterError::NoBody { which: "fixed", threshold_hu: params.body_threshold_hu })?;
    let mut t = match init {
        Some(t) => t,
        None => {
            let mut t = AffineTransform::identity(cf);
            if params.init_centre_of_mass {
                let cm = centre_of_mass(moving, params.body_threshold_hu)
                    .ok_or(RegisterError::NoBody { which: "moving", threshold_hu: params.body_threshold_hu })?;
                t.translation_mm = [0, 1, 2].map(|a| cm[a] - cf[a]);
            }
            t
        }
    };
    let mut ncc_before = f64::NAN;
    let mut ncc_after = f64::NAN;
    let mut iterations = Vec::new();
    let n_levels = params.level_spacing_mm.len();
    for (li, &spacing) in params.level_spacing_mm.iter().enumerate() {
        let f = LevelImage::new(fixed, spacing);
        let m = LevelImage::new(moving, spacing);
        let (pts, vals) = fixed_points(&f, params.body_threshold_hu, params.max_points);
        let Some(mut cur) = normal_equations(&t, &pts, &vals, &m, params.model) else {
            return Err(RegisterError::NoCommonPoints {
                model: format!("{:?}", params.model).to_lowercase(),
                points: 0,
            });
        };
        if cur.points < pts.len() / 10 {
            return Err(RegisterError::NoCommonPoints {
                model: format!("{:?}", params.model).to_lowercase(),
                points: cur.points,
            });
        }
        if li == 0 {
            ncc_before = cur.ncc;
        }
        // Levenberg–Marquardt: damping down after a step that raised NCC, up otherwise.
        let mut lambda = 1e-3;
        let mut it = 0;
        while it < params.iterations {
            it += 1;
            if !progress(
                (li as f32 + it as f32 / params.iterations as f32) / n_levels as f32,
                &format!("{:?} level {}/{n_levels}: NCC {:.4}", params.model, li + 1, cur.ncc),
            ) {
                return Err(RegisterError::Cancelled);
            }
            let Some(d) = solve_damped(&cur.h, &cur.g, lambda) else { break };
            // Never jump further than a level voxel at once: keeps the linearisation valid.
            let size = update_size_mm(&d, params.radius_mm);
            let limit = params.step_fraction * spacing * 2.0;
            let d: Vec<f64> = if size > limit { d.iter().map(|x| x * limit / size).collect() } else { d };
            let cand = updated(&t, &d, params.model);
            match normal_equations(&cand, &pts, &vals, &m, params.model) {
                Some(next) if next.ncc > cur.ncc => {
                    t = cand;
                    cur = next;
                    lambda = (lambda / 3.0).max(1e-7);
                    if update_size_mm(&d, params.radius_mm) < params.min_step_mm {
                        break;
                    }
                }
                _ => {
                    lambda *= 4.0;
                    if lambda > 1e6 {
                        break;
                    }
                }
            }
        }
        iterations.push(it);
        ncc_after = cur.ncc;
    }
    Ok(AffineResult { transform: t, ncc_before, ncc_after, iterations, seconds: t0.elapsed().as_secs_f64() })
}

/// NCC between `fixed` and `moving` through `t` over the fixed body voxels, on a level of
/// `spacing_mm` (the residual a report gives; 0 mm = the native grids).
pub fn ncc_at(
    fixed: &CtVolume,
    moving: &CtVolume,
    t: &AffineTransform,
    spacing_mm: f64,
    body_threshold_hu: f32,
) -> Option<f64> {
    let f = LevelImage::new(fixed, spacing_mm);
    let m = LevelImage::new(moving, spacing_mm);
    let (pts, vals) = fixed_points(&f, body_threshold_hu, usize::MAX);
    normal_equations(t, &pts, &vals, &m, Model::Rigid).map(|n| n.ncc)
}

/// `moving` resampled onto `grid` through `t` (trilinear; −1024 HU outside it).
pub fn resample_affine(moving: &CtVolume, grid: &Geometry, t: &AffineTransform) -> CtVolume {
    let [nz, ny, nx] = grid.shape;
    let mut out = ndarray::Array3::<i16>::from_elem((nz, ny, nx), -1024);
    out.axis_iter_mut(ndarray::Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let y = t.apply(grid.index_to_world([i as f64, j as f64, k as f64]));
                if let Some(v) = moving.sample_world(y, Interp::Linear) {
                    slab[[j, i]] = v.round().clamp(-32768.0, 32767.0) as i16;
                }
            }
        }
    });
    Volume::new(out, grid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth blob image on an anisotropic grid.
    fn blob() -> CtVolume {
        let g = Geometry::axis_aligned([30, 40, 44], [4.0, 3.0, 2.5], [-55.0, -60.0, -60.0]);
        let mut v = CtVolume::filled(g.clone(), -1000);
        for k in 0..30 {
            for j in 0..40 {
                for i in 0..44 {
                    let p = g.index_to_world([i as f64, j as f64, k as f64]);
                    let r2 = (p[0] / 40.0).powi(2) + (p[1] / 30.0).powi(2) + (p[2] / 35.0).powi(2);
                    let inner = ((p[0] - 10.0).powi(2) + (p[1] + 5.0).powi(2) + (p[2] - 8.0).powi(2)) / 150.0;
                    v.data[[k, j, i]] = (-1000.0 * (1.0 - (-r2 * r2).exp()) + 300.0 * (-inner).exp()) as i16;
                }
            }
        }
        v
    }

    #[test]
    fn normal_equations_match_finite_differences() {
        let f = blob();
        let fl = LevelImage::new(&f, 2.5);
        let (pts, vals) = fixed_points(&fl, -800.0, 100_000);
        let t = AffineTransform {
            translation_mm: [1.3, -0.7, 2.1],
            ..AffineTransform::rigid([0.05, -0.03, 0.08], [0.0; 3], [2.0, 1.0, -3.0])
        };
        // the intensity line at t, held fixed while p moves
        let base: Vec<f64> = pts.iter().map(|&x| fl.sample_grad(t.apply(x)).unwrap().0 as f64).collect();
        let n = base.len() as f64;
        let (mf, mm) = (vals.iter().map(|&v| v as f64).sum::<f64>() / n, base.iter().sum::<f64>() / n);
        let sfm: f64 = vals.iter().zip(&base).map(|(&f, m)| (f as f64 - mf) * (m - mm)).sum();
        let sff: f64 = vals.iter().map(|&f| (f as f64 - mf).powi(2)).sum();
        let target: Vec<f64> = vals.iter().map(|&f| mm + sfm / sff * (f as f64 - mf)).collect();
        for model in [Model::Rigid, Model::Affine] {
            let nrm = normal_equations(&t, &pts, &vals, &fl, model).unwrap();
            let np = nrm.g.len();
            for p in 0..np {
                let h = 1e-4;
                let ssd = |sign: f64| {
                    let mut d = vec![0.0; np];
                    d[p] = sign * h;
                    let u = updated(&t, &d, model);
                    pts.iter()
                        .zip(&target)
                        .map(|(&x, tg)| (tg - fl.sample_grad(u.apply(x)).unwrap().0 as f64).powi(2))
                        .sum::<f64>()
                };
                let fd = (ssd(1.0) - ssd(-1.0)) / (2.0 * h);
                let analytic = -2.0 * nrm.g[p];
                // relative to this parameter, or to the largest one for a near-zero entry
                let scale = nrm.g.iter().map(|g| 2.0 * g.abs()).fold(0.0, f64::max);
                assert!(
                    (fd - analytic).abs() <= 0.02 * fd.abs().max(analytic.abs()) + 1e-3 * scale,
                    "{model:?} parameter {p}: analytic {analytic} vs numeric {fd}"
                );
            }
        }
    }
}
