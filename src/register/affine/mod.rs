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
//!
//! This file holds the transform, the parameters and the coarse-to-fine loop; `level` the
//! images each level samples, `step` the Gauss–Newton normal equations and the update.

use rayon::prelude::*;

use super::RegisterError;
use crate::volume::{invert3, mat_mul, mat_vec, CtVolume, Field, Geometry, Interp, Lps, Mask, Progress, Volume};

mod level;
mod step;

use level::{centre_of_mass, fixed_points, LevelImage};
use step::{normal_equations, solve_damped, update_size_mm, updated};

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

/// `mask` (on its own grid) resampled onto `grid` through `t` (a point of `grid` → a point
/// of the mask's world), nearest neighbour, 0 outside: a follow-up's own mask carried onto
/// the baseline's grid the way [`resample_affine`] carries its phases.
pub fn resample_mask_affine(mask: &Mask, grid: &Geometry, t: &AffineTransform) -> Mask {
    let [nz, ny, nx] = grid.shape;
    let mut out = ndarray::Array3::<u8>::zeros((nz, ny, nx));
    out.axis_iter_mut(ndarray::Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let y = t.apply(grid.index_to_world([i as f64, j as f64, k as f64]));
                if let Some(v) = mask.sample_world(y, Interp::Nearest) {
                    slab[[j, i]] = v as u8;
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
