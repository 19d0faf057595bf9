//! Registration of a contrast phase onto the fixed (portal venous) phase: global
//! translation by phase correlation, then multi-resolution Demons (Thirion, symmetric or
//! diffeomorphic), with warping, field algebra and the metrics that say how well it went.
//!
//! Fields follow ITK's convention (`moving(x + u(x)) ≈ fixed(x)`, `u` in LPS mm on the fixed
//! grid). Everything here is a pure function over `Volume`s.

pub mod affine;
pub mod aligned;
pub mod compare;
mod demons;
pub mod histogram;
pub mod kernels;
pub mod metrics;
pub mod prealign;
pub mod pyramid;
pub mod smooth;
pub mod warp;

pub use demons::LevelStats;
pub use warp::{compose, invert, jacobian, resample_field, warp_volume};

use crate::volume::region::VoxelBox;
use crate::volume::{invert3, mat_mul, mat_vec, CtVolume, Field, Geometry, Interp, Mask, Volume};
use ndarray::Array3;
use pyramid::Level;
use rayon::prelude::*;
use std::time::Instant;

pub use crate::volume::no_progress;
use crate::volume::Progress;

/// Which Demons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Thirion's original forces from the fixed image's gradient, additive update. Fast,
    /// but folds where the images disagree strongly.
    Thirion,
    /// Symmetric (ESM) forces from both gradients, additive update (ITK's
    /// FastSymmetricForces).
    Symmetric,
    /// Symmetric forces, update composed through its exponential (Vercauteren): the field
    /// stays invertible.
    Diffeomorphic,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Thirion, Variant::Symmetric, Variant::Diffeomorphic];

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Thirion => "thirion",
            Variant::Symmetric => "symmetric",
            Variant::Diffeomorphic => "diffeomorphic",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "thirion" | "demons" => Ok(Variant::Thirion),
            "symmetric" | "fastsymmetric" | "fastsym" => Ok(Variant::Symmetric),
            "diffeomorphic" | "diffeo" => Ok(Variant::Diffeomorphic),
            _ => Err(format!("unknown Demons variant '{s}': use thirion, symmetric or diffeomorphic")),
        }
    }
}

/// One pyramid level: voxels about `factor` × the finest spacing, up to `iterations`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LevelPlan {
    pub factor: f64,
    pub iterations: usize,
}

/// Settings of a registration. `Default` is what a user gets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Params {
    pub variant: Variant,
    /// Coarse to fine.
    pub levels: Vec<LevelPlan>,
    /// Gaussian σ (mm) applied to the whole field each iteration (diffusion-like), used
    /// when `sigma_diffusion_vox` is `None`.
    pub sigma_diffusion_mm: f64,
    /// Gaussian σ (mm) applied to each update (fluid-like); 0 = off.
    pub sigma_fluid_mm: f64,
    /// When set, the field smoothing is this many voxels of each level instead of
    /// `sigma_diffusion_mm` (ITK's convention: coarse levels smooth more in mm).
    #[serde(default)]
    pub sigma_diffusion_vox: Option<f64>,
    /// Largest step per iteration, in voxels of the finest axis of each level.
    pub max_step_vox: f32,
    /// A level stops early once its mean squared difference fell by less than this
    /// fraction over 5 iterations.
    pub stop_relative: f32,
    /// Quantiles matched between the phases' histograms (0 = no matching).
    pub histogram_points: usize,
    /// Start from the translation found by phase correlation.
    pub prealign: bool,
    /// With a mask, run Demons only on the mask's box grown by this much (mm): the forces
    /// act inside the mask alone, so the rest of the grid adds cost, not information.
    /// Beyond the box the field continues its border values. `None`: the whole body box.
    #[serde(default)]
    pub mask_box_margin_mm: Option<f64>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            variant: Variant::Diffeomorphic,
            levels: vec![
                LevelPlan { factor: 4.0, iterations: 50 },
                LevelPlan { factor: 2.0, iterations: 25 },
                LevelPlan { factor: 1.0, iterations: 10 },
            ],
            sigma_diffusion_mm: 4.0,
            sigma_fluid_mm: 0.0,
            // Smoothing in voxels of each level, as ITK: the coarse levels, which find the
            // large breathing motion, smooth more in mm than the fine ones that refine it.
            sigma_diffusion_vox: Some(3.0),
            max_step_vox: 0.5,
            // Noise keeps the squared difference from falling steadily, so an early stop on
            // it ends levels before the field has converged (measured): off by default.
            stop_relative: 0.0,
            histogram_points: 7,
            prealign: true,
            mask_box_margin_mm: Some(20.0),
        }
    }
}

/// Why a registration could not run.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the moving phase ({moving}) and the fixed phase ({fixed}) do not overlap enough to register: {overlap_percent:.1} % of the fixed volume lies inside the moving one (need at least 10 %). Check that both series come from the same study and frame of reference.")]
    NoOverlap { fixed: String, moving: String, overlap_percent: f64 },
    #[error("the voxel sizes differ too much to register ({fixed} vs {moving} mm); resample one series or pick phases acquired with similar slice thickness")]
    SpacingMismatch { fixed: String, moving: String },
    #[error("the {which} image is constant ({value} HU everywhere it overlaps): nothing to register")]
    Constant { which: &'static str, value: f32 },
    #[error("the {which} study has no voxels above {threshold_hu} HU (no body to align); check that it is a CT")]
    NoBody { which: &'static str, threshold_hu: f32 },
    #[error("after the {model} alignment the studies overlap in only {points} compared points; they may be different patients or body regions, or the alignment failed (nudge it by hand and retry)")]
    NoCommonPoints { model: String, points: usize },
    #[error("invalid registration settings: {0}")]
    BadParams(String),
    #[error("registration cancelled")]
    Cancelled,
}

impl Params {
    pub fn validate(&self) -> Result<(), RegisterError> {
        let bad = |m: &str| Err(RegisterError::BadParams(m.to_string()));
        if self.levels.is_empty() {
            return bad("at least one pyramid level is needed");
        }
        if self.levels.iter().any(|l| !(l.factor >= 1.0 && l.factor <= 64.0)) {
            return bad("level factors must lie in 1..=64");
        }
        if !(self.sigma_diffusion_mm >= 0.0
            && self.sigma_diffusion_mm <= 50.0
            && self.sigma_fluid_mm >= 0.0
            && self.sigma_fluid_mm <= 50.0)
        {
            return bad("smoothing σ must lie in 0..=50 mm");
        }
        if !(self.max_step_vox > 0.0 && self.max_step_vox <= 5.0) {
            return bad("the maximum step must lie in (0, 5] voxels");
        }
        Ok(())
    }
}

fn sigma_vox(sigma_mm: f64, spacing_mm: [f64; 3]) -> [f64; 3] {
    spacing_mm.map(|s| sigma_mm / s)
}

/// Registers `moving` onto `fixed`; both must already lie on the same grid (the fixed
/// one) with comparable intensities. `mask` (on that grid, non-zero = inside) limits where
/// forces act; `init` is a starting field (mm, any grid). Returns the field on the fixed
/// grid and how each level went.
pub fn register_images(
    fixed: &Volume<f32>,
    moving: &Volume<f32>,
    mask: Option<&Mask>,
    init: Option<&Field>,
    params: &Params,
    progress: Progress,
) -> Result<(Field, Vec<LevelStats>), RegisterError> {
    params.validate()?;
    let g = &fixed.geometry;
    if moving.geometry.shape != g.shape {
        return Err(RegisterError::BadParams(
            "register_images needs both images on the same grid; resample the moving one first".into(),
        ));
    }
    let full = Level::full(g);
    let f_full = fixed.data.as_slice().ok_or_else(|| RegisterError::BadParams("fixed image not contiguous".into()))?;
    let m_full =
        moving.data.as_slice().ok_or_else(|| RegisterError::BadParams("moving image not contiguous".into()))?;
    let mask_full = mask.map(|m| m.data.as_slice().expect("masks are contiguous"));
    let levels: Vec<Level> = params.levels.iter().map(|l| Level::shrunk(g, l.factor)).collect();
    let work: Vec<f64> = levels.iter().zip(&params.levels).map(|(l, p)| (l.len() * p.iterations) as f64).collect();
    let total_work: f64 = work.iter().sum::<f64>().max(1.0);

    let mut scratch = Vec::new();
    let mut ws = demons::Workspace::default();
    let mut disp: Vec<f32> = Vec::new();
    let mut prev: Option<Level> = None;
    let mut stats = Vec::new();
    let mut done_work = 0f64;
    for (li, (level, plan)) in levels.iter().zip(&params.levels).enumerate() {
        let f_l = pyramid::downsample(f_full, &full, level, &mut scratch);
        let m_l = pyramid::downsample(m_full, &full, level, &mut scratch);
        let mask_l =
            mask_full.map(|m| if *level == full { m.to_vec() } else { pyramid::downsample_mask(m, &full, level) });
        disp = match (&prev, init) {
            (Some(p), _) => pyramid::transfer_field(&disp, p, level),
            (None, Some(init)) => warp::to_voxels(&resample_field(init, &level.geometry(g))),
            (None, None) => vec![0.0; level.len() * 3],
        };
        let settings = demons::LevelSettings {
            variant: params.variant,
            iterations: plan.iterations,
            spacing_xyz: [level.spacing_mm[2] as f32, level.spacing_mm[1] as f32, level.spacing_mm[0] as f32],
            sigma_diffusion_vox: match params.sigma_diffusion_vox {
                Some(v) => [v; 3],
                None => sigma_vox(params.sigma_diffusion_mm, level.spacing_mm),
            },
            sigma_fluid_vox: sigma_vox(params.sigma_fluid_mm, level.spacing_mm),
            max_step_vox: params.max_step_vox,
            stop_relative: params.stop_relative,
        };
        let msg = format!(
            "Demons level {}/{} ({}×{}×{})",
            li + 1,
            levels.len(),
            level.shape[2],
            level.shape[1],
            level.shape[0]
        );
        let per_iter = (level.len() as f64) / total_work;
        let start = done_work;
        let mut on_iter = |it: usize| progress(((start + per_iter * it as f64 * 1.0) as f32).min(1.0), &msg);
        let st =
            demons::run_level(&f_l, &m_l, mask_l.as_deref(), level.shape, &mut disp, &settings, &mut ws, &mut on_iter)
                .ok_or(RegisterError::Cancelled)?;
        stats.push(st);
        done_work += work[li] / total_work;
        prev = Some(level.clone());
    }
    let last = prev.expect("at least one level");
    if last != full {
        disp = pyramid::transfer_field(&disp, &last, &full);
    }
    Ok((warp::from_voxels(&disp, g), stats))
}

/// What a phase registration measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseReport {
    pub params: Params,
    /// Translation found by phase correlation (LPS mm), if used.
    pub prealign_mm: Option<[f64; 3]>,
    /// Intensity map applied to the moving phase before Demons.
    pub histogram_map: Option<histogram::IntensityMap>,
    pub levels: Vec<LevelStats>,
    /// Over the evaluation mask (the mask given, or the body: fixed > −400 HU where the
    /// moving phase has data), HU after histogram matching.
    pub rmsd_before_hu: f64,
    pub rmsd_after_hu: f64,
    pub ncc_before: f64,
    pub ncc_after: f64,
    pub folding: metrics::Folding,
    /// Largest displacement (mm) inside the evaluation mask.
    pub max_displacement_mm: f64,
    pub evaluation_voxels: usize,
    pub seconds: f64,
}

/// A registered phase: the field (on the fixed grid), the moving CT warped onto the fixed
/// grid, and the report.
pub struct PhaseRegistration {
    pub field: Field,
    pub warped: CtVolume,
    pub report: PhaseReport,
}

const AIR_HU: f32 = -1024.0;
const MAX_HU: f32 = 3071.0;

/// Continuous index in `src` for each voxel of `dst`: `src_idx = a · dst_idx + b`.
fn affine_index_map(src: &Geometry, dst: &Geometry) -> ([[f64; 3]; 3], [f64; 3]) {
    let inv = invert3(&src.index_to_world_matrix()).unwrap_or([[0.0; 3]; 3]);
    let a = mat_mul(&inv, &dst.index_to_world_matrix());
    let d0 =
        [dst.origin_mm[0] - src.origin_mm[0], dst.origin_mm[1] - src.origin_mm[1], dst.origin_mm[2] - src.origin_mm[2]];
    (a, mat_vec(&inv, d0))
}

/// The moving CT on the fixed grid, clamped to [−1024, 3071] HU, border replicated beyond
/// its own grid (so no artificial edge appears where its coverage ends), and a mask of
/// where it really has data.
fn moving_on_fixed(moving: &CtVolume, fixed: &Geometry) -> (Vec<f32>, Vec<u8>) {
    let src: Vec<f32> = moving.data.iter().map(|&v| (v as f32).clamp(AIR_HU, MAX_HU)).collect();
    let (a, b) = affine_index_map(&moving.geometry, fixed);
    let [_, ny, nx] = fixed.shape;
    let ms = moving.geometry.shape;
    let mut out = vec![0f32; fixed.len()];
    let mut valid = vec![0u8; fixed.len()];
    out.par_chunks_mut(ny * nx).zip(valid.par_chunks_mut(ny * nx)).enumerate().for_each(|(k, (o, v))| {
        for j in 0..ny {
            for i in 0..nx {
                let p = [i as f64, j as f64, k as f64];
                let q = [0, 1, 2].map(|r| b[r] + a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2]);
                o[j * nx + i] = kernels::sample(&src, ms, q[0] as f32, q[1] as f32, q[2] as f32);
                let inside = (0..3).all(|r| q[r] >= -0.5 && q[r] <= ms[2 - r] as f64 - 0.5);
                v[j * nx + i] = inside as u8;
            }
        }
    });
    (out, valid)
}

fn describe(g: &Geometry) -> String {
    format!(
        "{}×{}×{} voxels of {:.2}×{:.2}×{:.2} mm",
        g.shape[2], g.shape[1], g.shape[0], g.spacing_mm[2], g.spacing_mm[1], g.spacing_mm[0]
    )
}

/// Registers a moving CT phase onto the fixed one, the whole recipe: resample onto the
/// fixed grid, clamp air, match histograms, pre-align by phase correlation, pyramid Demons,
/// then warp the original moving CT and measure. `mask` (fixed grid) focuses the forces and
/// is where metrics are taken; without it the body is used for metrics.
pub fn register_ct(
    fixed: &CtVolume,
    moving: &CtVolume,
    mask: Option<&Mask>,
    params: &Params,
    progress: Progress,
) -> Result<PhaseRegistration, RegisterError> {
    let t0 = Instant::now();
    params.validate()?;
    let g = &fixed.geometry;
    if let Some(m) = mask {
        if m.geometry.shape != g.shape {
            return Err(RegisterError::BadParams(format!(
                "the mask ({}) is not on the fixed grid ({})",
                describe(&m.geometry),
                describe(g)
            )));
        }
    }
    let ratio = (0..3)
        .map(|a| fixed.geometry.spacing_mm[a] / moving.geometry.spacing_mm[a])
        .fold(1.0f64, |r, x| r.max(x).max(1.0 / x));
    if !ratio.is_finite() || ratio > 6.0 {
        return Err(RegisterError::SpacingMismatch { fixed: describe(g), moving: describe(&moving.geometry) });
    }
    if !progress(0.0, "Resampling the moving phase onto the fixed grid") {
        return Err(RegisterError::Cancelled);
    }
    let f: Vec<f32> = fixed.data.iter().map(|&v| (v as f32).clamp(AIR_HU, MAX_HU)).collect();
    let (mut m, valid) = moving_on_fixed(moving, g);
    let overlap = valid.iter().filter(|&&v| v != 0).count();
    let overlap_percent = 100.0 * overlap as f64 / g.len().max(1) as f64;
    if overlap_percent < 10.0 {
        return Err(RegisterError::NoOverlap {
            fixed: describe(g),
            moving: describe(&moving.geometry),
            overlap_percent,
        });
    }
    for (which, img) in [("fixed", &f), ("moving", &m)] {
        let (lo, hi) = img
            .iter()
            .zip(&valid)
            .filter(|(_, &v)| v != 0)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (&x, _)| (lo.min(x), hi.max(x)));
        if hi - lo < 1.0 {
            return Err(RegisterError::Constant { which, value: lo });
        }
    }

    // Evaluation mask: the one given, else the body where the moving phase has data.
    let eval: Vec<u8> = match mask {
        Some(mk) => mk.data.iter().zip(&valid).map(|(&a, &v)| (a != 0 && v != 0) as u8).collect(),
        None => f.iter().zip(&valid).map(|(&x, &v)| (x > -400.0 && v != 0) as u8).collect(),
    };

    // Contrast changes enhancing tissue, not air: histograms over voxels above −900 HU in
    // both images, so reconstruction-circle padding and different fields of view (which
    // differ between series of one study) do not bend the map; air stays air.
    let tissue: Vec<u8> =
        valid.iter().zip(f.iter().zip(&m)).map(|(&v, (&a, &b))| (v != 0 && a > -900.0 && b > -900.0) as u8).collect();
    let hist = if params.histogram_points > 0 {
        histogram::histogram_map(&m, &f, Some(&tissue), params.histogram_points).map(|mut map| {
            if map.knots.first().is_some_and(|k| k.0 > AIR_HU) {
                map.knots.insert(0, (AIR_HU, AIR_HU));
            }
            map
        })
    } else {
        None
    };
    drop(tissue);
    if let Some(map) = &hist {
        histogram::apply_map(&mut m, map);
    }
    let rmsd_before = metrics::rmsd(&f, &m, Some(&eval));
    let ncc_before = metrics::ncc(&f, &m, Some(&eval));

    let fixed_f = Volume::new(Array3::from_shape_vec(g.shape, f).expect("shape"), g.clone());
    let moving_f = Volume::new(Array3::from_shape_vec(g.shape, m).expect("shape"), g.clone());
    let prealign_mm = if params.prealign {
        if !progress(0.02, "Global alignment (phase correlation)") {
            return Err(RegisterError::Cancelled);
        }
        prealign_translation(&fixed_f, &moving_f)
    } else {
        None
    };
    let init = prealign_mm.map(|t| {
        let mut field = Field::zeros(Geometry { shape: [2, 2, 2], ..g.clone() });
        for c in 0..3 {
            field.data.index_axis_mut(ndarray::Axis(3), c).fill(t[c] as f32);
        }
        field
    });

    let sub = |frac: f32, msg: &str| progress(0.03 + 0.9 * frac, msg);
    // Demons runs on the box holding the body (plus a margin); air around it carries no
    // force, only cost. The field outside the box continues its border values. With a mask
    // the forces act only inside it, so the box shrinks to the mask's (plus room for the
    // field to settle): Demons on the liver costs what the liver's box costs.
    let mut roi = body_box(&fixed_f, &moving_f, &valid, 15.0);
    // the field is smoothed with σ up to the coarsest level's: a box edge nearer than a
    // few σ would bend it inside the mask
    let coarsest = params.levels.iter().map(|l| l.factor).fold(1.0, f64::max);
    let finest_mm = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
    let sigma_coarse_mm = params.sigma_diffusion_vox.map_or(params.sigma_diffusion_mm, |v| v * coarsest * finest_mm);
    let margin = params.mask_box_margin_mm.map(|m| m.max(3.0 * sigma_coarse_mm));
    if let Some(b) = mask.zip(margin).and_then(|(m, margin)| mask_box(m, margin)) {
        for a in 0..3 {
            roi.lo[a] = roi.lo[a].max(b.lo[a]);
            roi.hi[a] = roi.hi[a].min(b.hi[a]).max(roi.lo[a] + 1);
        }
    }
    // for tuning: HEPAVIEW_PROFILE=1 (or HEPAVIEW_LOG=debug) shows it through the binary's logger
    log::debug!("Demons box {roi:?} of {:?}", g.shape);
    let field = if roi.is_whole(g.shape) {
        let (field, levels) = register_images(&fixed_f, &moving_f, mask, init.as_ref(), params, &sub)?;
        (field, levels)
    } else {
        let mask_c = mask.map(|mk| roi.crop(mk));
        let (field_c, levels) =
            register_images(&roi.crop(&fixed_f), &roi.crop(&moving_f), mask_c.as_ref(), init.as_ref(), params, &sub)?;
        (resample_field(&field_c, g), levels)
    };
    let (field, levels) = field;

    if !progress(0.95, "Warping and measuring") {
        return Err(RegisterError::Cancelled);
    }
    let d = warp::to_voxels(&field);
    let mut warped_f = vec![0f32; g.len()];
    kernels::warp_image(moving_f.data.as_slice().expect("layout"), &d, g.shape, &mut warped_f);
    let ff = fixed_f.data.as_slice().expect("layout");
    let rmsd_after = metrics::rmsd(ff, &warped_f, Some(&eval));
    let ncc_after = metrics::ncc(ff, &warped_f, Some(&eval));
    let eval_mask = Volume::new(Array3::from_shape_vec(g.shape, eval).expect("shape"), g.clone());
    let folding = metrics::folding(&jacobian(&field), Some(&eval_mask));
    let max_displacement_mm = field
        .data
        .as_slice()
        .expect("layout")
        .par_chunks(3)
        .zip(eval_mask.data.as_slice().expect("layout").par_iter())
        .filter(|(_, &e)| e != 0)
        .map(|(u, _)| ((u[0] * u[0] + u[1] * u[1] + u[2] * u[2]) as f64).sqrt())
        .reduce(|| 0.0, f64::max);
    let warped = warp_volume(moving, &field, Interp::Linear, AIR_HU as i16);
    let evaluation_voxels = eval_mask.data.iter().filter(|&&v| v != 0).count();
    progress(1.0, "Done");
    Ok(PhaseRegistration {
        field,
        warped,
        report: PhaseReport {
            params: params.clone(),
            prealign_mm,
            histogram_map: hist,
            levels,
            rmsd_before_hu: rmsd_before,
            rmsd_after_hu: rmsd_after,
            ncc_before,
            ncc_after,
            folding,
            max_displacement_mm,
            evaluation_voxels,
            seconds: t0.elapsed().as_secs_f64(),
        },
    })
}

/// The bounding box of a mask's non-zero voxels grown by `margin_mm`; `None` when empty.
pub fn mask_box(mask: &Mask, margin_mm: f64) -> Option<VoxelBox> {
    let shape = mask.geometry.shape;
    let VoxelBox { lo, hi } = VoxelBox::enclosing(mask.data.view(), |v| v != 0)?;
    let mut out = VoxelBox { lo: [0; 3], hi: shape };
    for a in 0..3 {
        let grow = (margin_mm / mask.geometry.spacing_mm[a]).ceil() as usize;
        out.lo[a] = lo[a].saturating_sub(grow);
        out.hi[a] = (hi[a] + grow).min(shape[a]);
    }
    Some(out)
}

/// The bounding box of voxels denser than −500 HU in either image (where the moving one
/// has data), grown by `margin_mm`; the whole grid when nothing qualifies.
pub fn body_box(fixed: &Volume<f32>, moving: &Volume<f32>, valid: &[u8], margin_mm: f64) -> VoxelBox {
    let shape = fixed.geometry.shape;
    let [nz, ny, nx] = shape;
    let (f, m) = (fixed.data.as_slice().expect("layout"), moving.data.as_slice().expect("layout"));
    let per_slab: Vec<Option<([usize; 3], [usize; 3])>> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let mut b: Option<([usize; 3], [usize; 3])> = None;
            for j in 0..ny {
                for i in 0..nx {
                    let p = (k * ny + j) * nx + i;
                    if valid[p] != 0 && (f[p] > -500.0 || m[p] > -500.0) {
                        let e = b.get_or_insert(([k, j, i], [k, j, i]));
                        e.0 = [e.0[0].min(k), e.0[1].min(j), e.0[2].min(i)];
                        e.1 = [e.1[0].max(k), e.1[1].max(j), e.1[2].max(i)];
                    }
                }
            }
            b
        })
        .collect();
    let Some((lo, hi)) = per_slab.into_iter().flatten().reduce(|a, b| {
        (
            [a.0[0].min(b.0[0]), a.0[1].min(b.0[1]), a.0[2].min(b.0[2])],
            [a.1[0].max(b.1[0]), a.1[1].max(b.1[1]), a.1[2].max(b.1[2])],
        )
    }) else {
        return VoxelBox { lo: [0; 3], hi: shape };
    };
    let mut out = VoxelBox { lo: [0; 3], hi: shape };
    for a in 0..3 {
        let grow = (margin_mm / fixed.geometry.spacing_mm[a]).ceil() as usize;
        out.lo[a] = lo[a].saturating_sub(grow);
        out.hi[a] = (hi[a] + 1 + grow).min(shape[a]);
    }
    out
}

/// Translation (LPS mm) with `moving(x + t) ≈ fixed(x)` by phase correlation on a ~6 mm
/// grid, or `None` when the correlation peak is too weak to trust or the shift implausible.
pub fn prealign_translation(fixed: &Volume<f32>, moving: &Volume<f32>) -> Option<[f64; 3]> {
    let g = &fixed.geometry;
    let full = Level::full(g);
    let s_min = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
    let coarse = Level::shrunk(g, (6.0 / s_min).max(1.0));
    let mut scratch = Vec::new();
    let f = pyramid::downsample(fixed.data.as_slice()?, &full, &coarse, &mut scratch);
    let m = pyramid::downsample(moving.data.as_slice()?, &full, &coarse, &mut scratch);
    let (t, peak) = prealign::phase_correlation(&f, &m, coarse.shape);
    // a shift beyond a quarter of the extent on any axis is a wrong peak, not a breath
    let plausible = (0..3).all(|a| t[a].abs() <= coarse.shape[2 - a] as f64 / 4.0);
    if peak < 0.02 || !plausible {
        return None;
    }
    let mm = mat_vec(&coarse.geometry(g).index_to_world_matrix(), t);
    Some(mm)
}
