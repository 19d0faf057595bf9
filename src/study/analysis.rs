//! Study-level recipes the CLI and the viewer share: bring every phase onto the mask's grid
//! (through a Demons registration onto the fixed phase, or by plain resampling), then
//! cluster the liver voxels across phases or measure the lesions. The algorithms live in
//! `register`, `cluster` and `lesion`; this module only chains them the one way both front
//! ends need, so the viewer and `hepaview cluster` / `report` give the same answer.

use std::sync::Arc;

use ndarray::{Array3, Axis, Zip};
use rayon::prelude::*;

use crate::cluster::{self, ClusterError, ClusterOptions, Clustering, FeatureOptions, KMeansOptions};
use crate::io::phase::Phase;
use crate::lesion::{self, LesionError, LesionOptions, LesionReport};
use crate::register::{self, RegisterError};
use crate::study::{Demons, Study};
use crate::volume::{CtVolume, Field, Geometry, Interp, Mask, Progress, Volume};

pub use crate::follow_up::Comparison;
pub use crate::register::aligned::AlignedPhase;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("registering {phase} onto {fixed}: {source}")]
    Register { phase: String, fixed: String, source: RegisterError },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Lesion(#[from] LesionError),
    #[error("the study has no phase that overlaps the mask's grid; check that the mask belongs to this study")]
    NoPhaseOnGrid,
    #[error(
        "no voxel of the region to cluster lies where every phase has data; check that the phases cover the liver"
    )]
    NotCovered,
    #[error("after alignment the two visits correlate only {ncc:.2} (NCC; need {MIN_VISIT_NCC}): they may be different patients or body regions, or the alignment failed")]
    VisitsDoNotMatch { ncc: f64 },
    #[error("{0}")]
    Response(String),
    #[error("cancelled")]
    Cancelled,
}

/// How phases get onto the mask's grid.
#[derive(Clone, Debug)]
pub enum Alignment {
    /// Demons onto the study's fixed phase first (what a multi-phase comparison needs,
    /// since the patient breathes between phases).
    Register(register::Params),
    /// Resample in world coordinates only: for phases already registered (the output of
    /// `hepaview register`) or a single phase.
    Resample,
}

/// Where a source grid has data, seen from `grid`, with each point moved by `field` (on
/// `grid`) first when given: `None` when every voxel is covered.
fn coverage(grid: &Geometry, src: &Geometry, field: Option<&Field>) -> Option<Mask> {
    let [nz, ny, nx] = grid.shape;
    let mut out = Array3::<u8>::zeros((nz, ny, nx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let mut p = grid.index_to_world([i as f64, j as f64, k as f64]);
                if let Some(f) = field {
                    for c in 0..3 {
                        p[c] += f.data[[k, j, i, c]] as f64;
                    }
                }
                slab[[j, i]] = src.contains_index(src.world_to_index(p)) as u8;
            }
        }
    });
    if out.iter().all(|&v| v == 1) {
        None
    } else {
        Some(Volume::new(out, grid.clone()))
    }
}

/// Coverage of `src` on `grid`, through `field` (on its own grid) when given.
fn coverage_on(grid: &Geometry, src: &Geometry, field: Option<&Field>) -> Option<Arc<Mask>> {
    match field {
        Some(f) if !f.geometry.same_grid(grid) => {
            coverage(&f.geometry, src, Some(f)).map(|c| Arc::new(c.resample_to(grid, Interp::Nearest, 0)))
        }
        f => coverage(grid, src, f).map(Arc::new),
    }
}

fn onto_grid(v: &Arc<CtVolume>, grid: &Geometry) -> Arc<CtVolume> {
    if v.geometry.same_grid(grid) {
        Arc::clone(v)
    } else {
        // −1024 (air) outside a phase's coverage: clusters and lesion statistics then see
        // no tissue there instead of an edge value repeated.
        Arc::new(v.resample_to(grid, Interp::Linear, -1024))
    }
}

/// Every phase of `study` with a known phase name, on `grid`. With
/// [`Alignment::Register`], the phases other than the fixed one are registered onto it
/// first (`mask`, on the fixed grid, focuses the registration). Unknown phases are left
/// out: a feature without a name means nothing to a radiologist.
pub fn align_phases(
    study: &Study,
    grid: &Geometry,
    alignment: &Alignment,
    mask: Option<&Mask>,
    progress: Progress,
) -> Result<Vec<AlignedPhase>, AnalysisError> {
    let fixed_i = study.fixed_index();
    let fixed = &study.phases[fixed_i];
    let todo: Vec<usize> =
        (0..study.phases.len()).filter(|&i| study.phases[i].phase() != Phase::Unknown || i == fixed_i).collect();
    let moving: Vec<usize> = todo.iter().copied().filter(|&i| i != fixed_i).collect();
    let share = 1.0 / moving.len().max(1) as f32;
    // `done`: phases registered so far, for the bar
    let resampled = |i: usize, done: usize| {
        let p = &study.phases[i];
        if !progress(done as f32 * share, &format!("resampling {}", p.phase())) {
            return Err(AnalysisError::Cancelled);
        }
        let (volume, coverage) = (onto_grid(&p.volume, grid), coverage_on(grid, &p.volume.geometry, None));
        Ok(AlignedPhase { phase: p.phase(), description: p.description.clone(), volume, registered: false, coverage })
    };
    let params = match alignment {
        Alignment::Register(params) => params,
        Alignment::Resample => {
            let out = todo.iter().map(|&i| resampled(i, 0)).collect::<Result<Vec<_>, _>>()?;
            return if out.is_empty() { Err(AnalysisError::NoPhaseOnGrid) } else { Ok(out) };
        }
    };
    // the fixed phase is resampled where it comes in display order, between registrations
    let fixed_at = moving.iter().filter(|&&i| i < fixed_i).count();
    let mut fixed_out = if fixed_at == 0 { Some(resampled(fixed_i, 0)?) } else { None };
    let mut registered = Vec::new();
    let name = |i: usize| study.phases[i].phase().as_str().to_string();
    let report = |n: usize, f: f32, m: &str| {
        progress(n as f32 * share + share * f, &format!("registering {}: {m}", name(moving[n])))
    };
    let mask_on_fixed = mask.filter(|m| m.geometry.same_grid(&fixed.volume.geometry));
    let demons = Demons::Full { params, mask: mask_on_fixed };
    study.register_phases(fixed_i, &moving, demons, &report, |i, reg| {
        let reg = reg.map_err(|e| match e {
            RegisterError::Cancelled => AnalysisError::Cancelled,
            source => AnalysisError::Register { phase: name(i), fixed: fixed.phase().as_str().into(), source },
        })?;
        let p = &study.phases[i];
        let volume = onto_grid(&Arc::new(reg.warped), grid);
        let coverage = coverage_on(grid, &p.volume.geometry, Some(&reg.field));
        registered.push(AlignedPhase {
            phase: p.phase(),
            description: p.description.clone(),
            volume,
            registered: true,
            coverage,
        });
        if registered.len() == fixed_at && fixed_out.is_none() {
            fixed_out = Some(resampled(fixed_i, fixed_at)?);
        }
        Ok::<(), AnalysisError>(())
    })?;
    // back in display order: the fixed phase among the registered ones
    let mut out = registered;
    out.insert(fixed_at.min(out.len()), fixed_out.ok_or(AnalysisError::Cancelled)?);
    Ok(out)
}

/// What the user chooses for a clustering.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterRecipe {
    pub k: usize,
    /// Mask labels that make up the region (LiTS: liver 1 and tumour 2).
    pub mask_labels: Vec<u8>,
    /// Grow the region by this much so the liver edge and capsule are included.
    pub margin_mm: f64,
    /// Iterations of the 3×3×3 majority filter (0: off).
    pub majority_iterations: usize,
    pub seed: u64,
}

impl Default for ClusterRecipe {
    fn default() -> Self {
        ClusterRecipe {
            k: cluster::DEFAULT_K,
            mask_labels: vec![1, 2],
            margin_mm: 0.0,
            majority_iterations: 0,
            seed: 0,
        }
    }
}

/// k-means of the region's voxels with one HU feature per phase; clusters numbered by
/// increasing portal-venous HU (the first phase's when there is none) so colours are
/// stable from run to run.
pub fn cluster_phases(
    phases: &[AlignedPhase],
    mask: &Mask,
    recipe: &ClusterRecipe,
    progress: Progress,
) -> Result<Clustering, AnalysisError> {
    let region = cluster_region(phases, mask, recipe)?;
    let named: Vec<(&str, &CtVolume)> = phases.iter().map(|p| (p.phase.as_str(), p.volume.as_ref())).collect();
    let features = cluster::build_features(&named, &region, &FeatureOptions { mask_labels: vec![1], margin_mm: 0.0 })?;
    let order = features.feature_index(Phase::PortalVenous.as_str()).or(Some(0));
    let opts = ClusterOptions {
        kmeans: KMeansOptions { k: recipe.k, seed: recipe.seed, ..Default::default() },
        order_by_feature: order,
        majority_iterations: recipe.majority_iterations,
    };
    cluster::cluster_voxels(&features, &opts, progress).map_err(|e| match e {
        ClusterError::Cancelled => AnalysisError::Cancelled,
        e => AnalysisError::Cluster(e),
    })
}

/// The region to cluster as a 0/1 mask: the recipe's labels grown by its margin, less the
/// voxels some phase does not cover (so k-means spends no cluster on filled-in values).
pub fn cluster_region(phases: &[AlignedPhase], mask: &Mask, recipe: &ClusterRecipe) -> Result<Mask, AnalysisError> {
    let region = cluster::region_mask(mask, &recipe.mask_labels, recipe.margin_mm)?;
    let mut m = Volume::new(region.mapv(u8::from), mask.geometry.clone());
    for c in phases.iter().filter_map(|p| p.coverage.as_deref()).filter(|c| c.geometry.shape == mask.geometry.shape) {
        Zip::from(&mut m.data).and(&c.data).for_each(|v, &c| *v &= c);
    }
    if !m.data.iter().any(|&v| v == 1) {
        return Err(AnalysisError::NotCovered);
    }
    Ok(m)
}

/// Lesion measurements of `mask` in every aligned phase.
pub fn measure_lesions(
    phases: &[AlignedPhase],
    mask: &Mask,
    opts: &LesionOptions,
) -> Result<LesionReport, AnalysisError> {
    let named: Vec<(Phase, &CtVolume)> = phases.iter().map(|p| (p.phase, p.volume.as_ref())).collect();
    Ok(lesion::analyse_lesions(mask, &named, opts)?)
}

/// The follow-up's reference image aligned onto the baseline's: rigid from the centres of
/// mass, then affine from the rigid result; the better of the two by NCC is the transform
/// (affine can lose on few structures or noise). Refuses when even that correlates below
/// [`MIN_VISIT_NCC`]. `progress` sees fractions 0..1 of this step.
fn align_visits(
    fixed: &CtVolume,
    moving: &CtVolume,
    fixed_name: &str,
    follow_label: &str,
    progress: Progress,
) -> Result<
    (
        crate::register::affine::AffineResult,
        crate::register::affine::AffineResult,
        crate::register::affine::AffineTransform,
    ),
    AnalysisError,
> {
    use crate::register::affine::{register_affine, AffineParams, Model};
    let reg_err = |source| match source {
        RegisterError::Cancelled => AnalysisError::Cancelled,
        source => {
            AnalysisError::Register { phase: format!("follow-up ({follow_label})"), fixed: fixed_name.into(), source }
        }
    };
    let p1 = |f: f32, m: &str| progress(0.55 * f, &format!("aligning the visits: {m}"));
    let rigid = register_affine(fixed, moving, &AffineParams::default(), None, &p1).map_err(reg_err)?;
    let affine_params =
        AffineParams { model: Model::Affine, level_spacing_mm: vec![4.0, 2.0], ..AffineParams::default() };
    let p2 = |f: f32, m: &str| progress(0.55 + 0.45 * f, &format!("aligning the visits: {m}"));
    let affine = register_affine(fixed, moving, &affine_params, Some(rigid.transform), &p2).map_err(reg_err)?;
    let (best_ncc, transform) = if affine.ncc_after > rigid.ncc_after {
        (affine.ncc_after, affine.transform)
    } else {
        (rigid.ncc_after, rigid.transform)
    };
    if best_ncc < MIN_VISIT_NCC {
        return Err(AnalysisError::VisitsDoNotMatch { ncc: best_ncc });
    }
    Ok((rigid, affine, transform))
}

/// The visit transform between two visits, as [`add_follow_up`] and [`compare_visits`] find
/// it: the follow-up's reference image (its fixed phase) aligned onto the baseline's (rigid,
/// then affine). It maps a baseline point (LPS mm) to where the same anatomy lies at the
/// follow-up.
pub fn visit_transform(
    baseline_fixed: &CtVolume,
    follow_fixed: &CtVolume,
    follow_label: &str,
    progress: Progress,
) -> Result<crate::register::affine::AffineTransform, AnalysisError> {
    Ok(align_visits(baseline_fixed, follow_fixed, "baseline", follow_label, progress)?.2)
}

/// One visit's lesions measured and split into parts, from its phases on its mask's grid.
fn measure_visit_phases(
    label: &str,
    ps: &[AlignedPhase],
    mask: &Mask,
    opts: &crate::follow_up::response::ResponseOptions,
) -> Result<crate::follow_up::response::VisitMeasure, AnalysisError> {
    let v = crate::follow_up::response::Visit {
        label: label.into(),
        mask,
        phases: ps.iter().map(|p| (p.phase, p.volume.as_ref())).collect(),
    };
    crate::follow_up::response::measure_visit(&v, opts).map_err(|e| match e {
        crate::follow_up::response::ResponseError::Lesion(l) => AnalysisError::Lesion(l),
        other => AnalysisError::Response(other.to_string()),
    })
}

/// A visit's reference image: its portal venous phase, else its first.
fn reference_phase(ps: &[AlignedPhase]) -> Option<Arc<CtVolume>> {
    ps.iter().find(|p| p.phase == Phase::PortalVenous).or(ps.first()).map(|p| Arc::clone(&p.volume))
}

/// `p + u(p)`: where a point lies in the image the field was found for (`p` itself
/// without a field, or outside its grid).
fn through_field(field: Option<&Field>, p: crate::volume::Lps) -> crate::volume::Lps {
    match field.and_then(|f| crate::register::warp::displacement_at(f, p)) {
        Some(u) => crate::volume::add(p, u),
        None => p,
    }
}

/// Demons of `moving` onto `fixed` (both on `base_mask`'s grid) where the baseline mask
/// has liver or lesion: the residual motion of a liver that lies differently on another
/// day. `(None, None)` when there is no liver or it failed (pairing then rests on the
/// alignment alone, and callers say so); only a cancel is an error.
fn demons_on_liver(
    fixed: &CtVolume,
    moving: &CtVolume,
    base_mask: &Mask,
    progress: Progress,
) -> Result<(Option<Field>, Option<crate::register::PhaseReport>), AnalysisError> {
    let liver: Mask = Volume::new(base_mask.data.mapv(|l| (l > 0) as u8), base_mask.geometry.clone());
    if !liver.data.iter().any(|&l| l != 0)
        || fixed.geometry != base_mask.geometry
        || moving.geometry != base_mask.geometry
    {
        return Ok((None, None));
    }
    let sub = |f: f32, m: &str| progress(f, &format!("Demons on the liver: {m}"));
    match crate::register::register_ct(fixed, moving, Some(&liver), &crate::register::Params::default(), &sub) {
        Ok(r) => Ok((Some(r.field), Some(r.report))),
        Err(crate::register::RegisterError::Cancelled) => Err(AnalysisError::Cancelled),
        Err(_) => Ok((None, None)),
    }
}

/// NCC below which two visits are taken not to show the same body after alignment.
pub const MIN_VISIT_NCC: f64 = 0.5;

/// Aligns the follow-up's portal venous (or fixed) phase onto the baseline's (rigid, then
/// affine), then measures both visits, pairs their lesions and assesses the response.
/// `*_phases` are each visit's phases on its own mask's grid.
#[allow(clippy::too_many_arguments)]
pub fn compare_visits(
    base_label: &str,
    base_phases: &[AlignedPhase],
    base_mask: &Mask,
    follow_label: &str,
    follow_phases: &[AlignedPhase],
    follow_mask: &Mask,
    opts: &crate::follow_up::response::ResponseOptions,
    progress: Progress,
) -> Result<Comparison, AnalysisError> {
    let (Some(fixed), Some(moving)) = (reference_phase(base_phases), reference_phase(follow_phases)) else {
        return Err(AnalysisError::NoPhaseOnGrid);
    };
    let aligning = |f: f32, m: &str| progress(0.5 * f, m);
    let (rigid, affine, transform) =
        align_visits(&fixed, &moving, &format!("baseline ({base_label})"), follow_label, &aligning)?;
    // then Demons on the liver, on the follow-up brought onto the baseline's grid
    let aligned = crate::register::affine::resample_affine(&moving, &fixed.geometry, &transform);
    let demons = |f: f32, m: &str| progress(0.5 + 0.25 * f, m);
    let (field, liver_demons) = demons_on_liver(&fixed, &aligned, base_mask, &demons)?;
    if !progress(0.75, "measuring lesions") {
        return Err(AnalysisError::Cancelled);
    }
    let visit = |label: &str, ps: &[AlignedPhase], mask: &Mask| measure_visit_phases(label, ps, mask, opts);
    let baseline = visit(base_label, base_phases, base_mask)?;
    let followup = visit(follow_label, follow_phases, follow_mask)?;
    // a baseline point x lies at x + u(x) in the affinely aligned follow-up, so at T(x + u(x))
    let to_followup = |p: crate::volume::Lps| transform.apply(through_field(field.as_ref(), p));
    let pairs = crate::follow_up::response::match_lesions(
        &baseline,
        &base_mask.geometry,
        &followup,
        &follow_mask.geometry,
        &to_followup,
        opts,
    );
    let response = crate::follow_up::response::assess(base_label, &baseline, follow_label, &followup, &pairs, opts);
    Ok(Comparison { transform, rigid, affine, liver_demons, baseline, followup, pairs, response })
}

/// Adds a follow-up visit to `study` for side-by-side reading: the follow-up's portal
/// venous (or first) phase is aligned onto the baseline's fixed phase (rigid, then affine),
/// and each follow-up phase is resampled through that transform onto the baseline's fixed
/// grid, so the viewer's world-linked navigation shows the same anatomy in both visits.
/// Each follow-up phase goes right after the baseline phase of the same kind, named
/// "FOLLOW-UP <label> · <phase> · <series>" ([`crate::follow_up::visit_description`]), with
/// its phase set to Unknown so that registration, clustering and lesion measurement keep
/// working on the baseline's phases only.
pub fn add_follow_up(
    study: &mut Study,
    follow: &Study,
    label: &str,
    progress: Progress,
) -> Result<crate::register::affine::AffineTransform, AnalysisError> {
    use crate::follow_up::is_follow_up;
    use crate::io::phase::PhaseCall;
    use crate::register::affine::resample_affine;
    let fixed = Arc::clone(&study.phases[study.fixed_index()].volume);
    let reference = Arc::clone(&follow.phases[follow.fixed_index()].volume);
    let aligning = |f: f32, m: &str| progress(0.9 * f, m);
    let (rigid, affine, t) = align_visits(&fixed, &reference, "baseline", label, &aligning)?;
    let ncc = affine.ncc_after.max(rigid.ncc_after);
    for (n, p) in follow.phases.iter().enumerate() {
        if !progress(0.9 + 0.1 * n as f32 / follow.phases.len() as f32, "resampling the follow-up") {
            return Err(AnalysisError::Cancelled);
        }
        let volume = Arc::new(resample_affine(&p.volume, &fixed.geometry, &t));
        let image = crate::study::PhaseImage {
            call: PhaseCall {
                phase: Phase::Unknown,
                confidence: p.call.confidence,
                reason: format!("follow-up {}: {}, aligned to the baseline (affine, NCC {:.3})", label, p.phase(), ncc),
            },
            description: crate::follow_up::visit_description(label, p.phase(), &p.description),
            source: p.source.clone(),
            volume,
            key: crate::study::next_key(),
        };
        // right after the last baseline phase of the same kind
        let at = study
            .phases
            .iter()
            .rposition(|b| b.phase() == p.phase() && !is_follow_up(&b.description))
            .map(|i| i + 1)
            .unwrap_or(study.phases.len());
        let at = (at..study.phases.len())
            .find(|&i| !is_follow_up(&study.phases[i].description))
            .unwrap_or(study.phases.len());
        study.phases.insert(at, image);
    }
    Ok(t)
}

/// `mask` carried onto a grid through an affine transform (nearest neighbour), as
/// [`add_follow_up`] carries a follow-up's phases; it lives beside `resample_affine`.
pub use crate::register::affine::resample_mask_affine;

/// The visit transform with the follow-up image turned by `turn_deg` about the head-foot
/// axis through `pivot_mm` (positive: from patient left towards posterior, clockwise on an
/// axial view seen from the feet) and then shifted by `shift_mm` (baseline LPS mm), by hand:
/// `T'(x) = T(R⁻¹(x − pivot − shift) + pivot)`, so the image resampled through `T'` is the
/// old one turned, then shifted.
pub fn nudge_visit_transform(
    t: &crate::register::affine::AffineTransform,
    shift_mm: crate::volume::Lps,
    turn_deg: f64,
    pivot_mm: crate::volume::Lps,
) -> crate::register::affine::AffineTransform {
    use crate::volume::{mat_mul, mat_vec};
    let (c, s) = (turn_deg.to_radians().cos(), turn_deg.to_radians().sin());
    let r_inv = [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]];
    let a = mat_mul(&t.matrix, &r_inv);
    // T'(x) = A R⁻¹ (x − p − s) + A (p − c) + c + t, written as A'(x − c) + c + t'
    let u = mat_vec(&a, [0, 1, 2].map(|i| t.centre_mm[i] - pivot_mm[i] - shift_mm[i]));
    let v = mat_vec(&t.matrix, [0, 1, 2].map(|i| pivot_mm[i] - t.centre_mm[i]));
    crate::register::affine::AffineTransform {
        matrix: a,
        translation_mm: [0, 1, 2].map(|i| u[i] + v[i] + t.translation_mm[i]),
        centre_mm: t.centre_mm,
    }
}

/// What [`compare_aligned_visits`] gives: both visits measured, their lesions paired and
/// the response assessed.
pub struct AlignedComparison {
    /// As [`Comparison::liver_demons`]: the follow-up's residual motion within the liver.
    pub liver_demons: Option<crate::register::PhaseReport>,
    pub baseline: crate::follow_up::response::VisitMeasure,
    pub followup: crate::follow_up::response::VisitMeasure,
    pub pairs: Vec<crate::follow_up::response::Pairing>,
    pub response: crate::follow_up::response::Response,
}

/// [`compare_visits`] for a follow-up already resampled onto the baseline's grid (the
/// viewer's follow-up phases, through the visit transform and any nudge by hand): no
/// second alignment, lesions paired in the shared world coordinates. Both masks and every
/// phase are on the same grid.
#[allow(clippy::too_many_arguments)]
pub fn compare_aligned_visits(
    base_label: &str,
    base_phases: &[AlignedPhase],
    base_mask: &Mask,
    follow_label: &str,
    follow_phases: &[AlignedPhase],
    follow_mask: &Mask,
    opts: &crate::follow_up::response::ResponseOptions,
    progress: Progress,
) -> Result<AlignedComparison, AnalysisError> {
    let visit = |label: &str, ps: &[AlignedPhase], mask: &Mask| measure_visit_phases(label, ps, mask, opts);
    // the visit alignment put both on one grid; Demons on the liver finds what it left
    let (field, liver_demons) = match (reference_phase(base_phases), reference_phase(follow_phases)) {
        (Some(f), Some(m)) => demons_on_liver(&f, &m, base_mask, &|x: f32, msg: &str| progress(0.4 * x, msg))?,
        _ => (None, None),
    };
    if !progress(0.4, &format!("measuring the lesions of {base_label}")) {
        return Err(AnalysisError::Cancelled);
    }
    let baseline = visit(base_label, base_phases, base_mask)?;
    if !progress(0.7, &format!("measuring the lesions of {follow_label}")) {
        return Err(AnalysisError::Cancelled);
    }
    let followup = visit(follow_label, follow_phases, follow_mask)?;
    let to_followup = |p: crate::volume::Lps| through_field(field.as_ref(), p);
    let pairs = crate::follow_up::response::match_lesions(
        &baseline,
        &base_mask.geometry,
        &followup,
        &follow_mask.geometry,
        &to_followup,
        opts,
    );
    let response = crate::follow_up::response::assess(base_label, &baseline, follow_label, &followup, &pairs, opts);
    Ok(AlignedComparison { liver_demons, baseline, followup, pairs, response })
}
