//! A follow-up visit simulated from a real study, with known truth (issue 10's "pair made
//! from hcc048-pv"): a lesion is implanted deep in the real liver of every phase, and the
//! follow-up is the same study with the lesion treated (shrunk to a lipiodol core, necrosis
//! and a viable rim) and the patient lying differently (a known rigid transform).
//!
//! Real data sets come without tumour outlines, so the truth is made, not traced: the
//! lesion's outline and parts are the masks the images were made from, and the volumes,
//! diameters and categories in [`PairTruth`] are counted on those masks.
//!
//! The lesion replaces the liver's value but keeps its texture (the deviation from the
//! phase's liver median, clipped to ±2 robust SD, so vessels inside the lesion are flattened
//! rather than carried through as "enhancing tumour"). Phases are placed through their true
//! breathing fields where the study has them (`triphase-hcc048`), so the lesion sits at the
//! same anatomy in every phase; a phase without a field gets the lesion at the same world
//! point.

use super::response::{recist_category, Category, LIPIODOL, NECROTIC, VIABLE};
use crate::edit::tools::{fill_holes, keep_largest_component, open_label, region_grow, Grow, GrowCriterion, Reach};
use crate::edit::{EditError, Paint, PaintOver};
use crate::io::phase::Phase;
use crate::register::affine::{resample_affine, AffineTransform};
use crate::volume::{norm, CtVolume, Field, Lps, Mask, Volume};

/// Liver label (1) and lesion label (2) of the masks written beside the images.
pub const LIVER: u8 = 1;
pub const LESION: u8 = 2;

/// One phase of the source study.
pub struct SimPhase<'a> {
    pub phase: Phase,
    pub volume: &'a CtVolume,
    /// The phase's true displacement onto the reference phase (ITK convention:
    /// `phase(x + u(x)) ≈ reference(x)`, x on the reference grid), when known.
    pub true_field: Option<&'a Field>,
}

#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Longest in-plane size of the follow-up lesion over the baseline's (0.65: a partial
    /// response by RECIST 1.1).
    pub shrink: f64,
    /// Where a baseline point lies at the follow-up (the patient moved on the table).
    pub baseline_to_followup: AffineTransform,
    /// Where the lesion's viable rim faces (LPS unit vector): residual tumour at one margin,
    /// as after TACE, so mRECIST measures less than RECIST.
    pub viable_towards: Lps,
}

impl SimOptions {
    /// Turned 2°, −1°, 5° about x, y, z through `centre_mm` and shifted 22, −15, 12 mm:
    /// centimetres and degrees, as between two visits.
    pub fn new(centre_mm: Lps) -> Self {
        SimOptions {
            shrink: 0.65,
            baseline_to_followup: AffineTransform::rigid(
                [2f64.to_radians(), -1f64.to_radians(), 5f64.to_radians()],
                [22.0, -15.0, 12.0],
                centre_mm,
            ),
            viable_towards: [0.6, -0.8, 0.0],
        }
    }
}

/// What the follow-up was made to be: every figure counted on the masks that made the images.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairTruth {
    pub liver_ml: f64,
    pub lesion_centre_mm: Lps,
    pub baseline_semi_axes_mm: [f64; 3],
    pub followup_semi_axes_mm: [f64; 3],
    pub lipiodol_radius_mm: f64,
    pub baseline_ml: f64,
    pub followup_ml: f64,
    pub viable_ml: f64,
    pub necrotic_ml: f64,
    pub lipiodol_ml: f64,
    /// Longest axial diameters (RECIST 1.1), measured on the truth masks.
    pub baseline_long_axis_mm: f64,
    pub followup_long_axis_mm: f64,
    /// Longest axial diameter of the viable part (mRECIST); all of the baseline is viable.
    pub followup_viable_long_axis_mm: f64,
    pub recist: Category,
    pub mrecist: Category,
    /// Points in LPS mm: a baseline point p lies at `baseline_to_followup(p)` at the follow-up.
    pub baseline_to_followup: AffineTransform,
    /// Per phase: the liver's median and robust SD (HU) the lesion's values were set from.
    pub phase_liver_hu: Vec<(Phase, f64, f64)>,
}

/// The two visits: images per phase on the source's grids, masks on the reference grid.
pub struct SimulatedPair {
    pub baseline: Vec<(Phase, CtVolume)>,
    /// Liver 1, lesion 2.
    pub baseline_mask: Mask,
    pub followup: Vec<(Phase, CtVolume)>,
    pub followup_mask: Mask,
    /// [`VIABLE`], [`NECROTIC`], [`LIPIODOL`] inside the follow-up lesion.
    pub followup_parts: Mask,
    pub truth: PairTruth,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the liver could not be grown from {seed_mm:.1?} mm: {source}; give a seed point inside the liver (LPS mm) with --liver-seed")]
    Grow { seed_mm: Lps, source: EditError },
    #[error("the liver grown from {seed_mm:.1?} mm is {liver_ml:.0} mL, not a liver (expected 500–4000 mL); give a seed point inside the liver parenchyma (LPS mm) with --liver-seed")]
    NotALiver { seed_mm: Lps, liver_ml: f64 },
    #[error("the liver is at most {depth_mm:.1} mm deep; a lesion of at least 10 mm with 5 mm of liver around it needs 12 mm")]
    TooThin { depth_mm: f64 },
    #[error("the study has no phases")]
    NoPhases,
    #[error("the mask and the reference phase are on different grids")]
    GridMismatch,
    #[error("--shrink {0}: give a factor between 0.2 and 1")]
    Shrink(f64),
}

/// The liver on `reference` (portal venous, ideally): grown from `seed_mm` over 60–200 HU,
/// opened by 4 mm (cuts thin bridges to the heart and kidney), largest component, holes
/// filled (vessels and lesions inside it).
pub fn grow_liver(reference: &CtVolume, seed_mm: Lps) -> Result<Mask, SimError> {
    let err = |source| SimError::Grow { seed_mm, source };
    let mut mask: Mask = Volume::filled(reference.geometry.clone(), 0u8);
    let paint = Paint::new(LIVER, PaintOver::Everything);
    let grow = Grow {
        criterion: GrowCriterion::HuRange { lo_hu: 60.0, hi_hu: 200.0 },
        reach: Reach::Volume,
        max_voxels: 20_000_000,
    };
    region_grow(&mut mask, Some(reference), seed_mm, &grow, &paint).map_err(err)?;
    open_label(&mut mask, 4.0, &paint).map_err(err)?;
    keep_largest_component(&mut mask, &paint).map_err(err)?;
    fill_holes(&mut mask, Reach::Volume, &paint).map_err(err)?;
    let liver_ml = count_ml(&mask, |l| l == LIVER);
    if !(500.0..=4000.0).contains(&liver_ml) {
        return Err(SimError::NotALiver { seed_mm, liver_ml });
    }
    Ok(mask)
}

/// A seed for [`grow_liver`] from a rough liver outline (e.g. the U-Net's): its deepest
/// voxel whose HU lies well inside the grow range, so the seed is parenchyma, not a vessel
/// or a tumour. `None` when the outline holds no such voxel.
pub fn liver_seed(reference: &CtVolume, rough_liver: &Mask) -> Option<Lps> {
    if rough_liver.geometry.shape != reference.geometry.shape {
        return None;
    }
    deepest_where(rough_liver, |l| l == LIVER, |idx| (80..=180).contains(&reference.data[idx])).map(|(p, _)| p)
}

fn count_ml(mask: &Mask, pred: impl Fn(u8) -> bool) -> f64 {
    mask.data.iter().filter(|&&l| pred(l)).count() as f64 * crate::volume::region::voxel_volume_ml(&mask.geometry)
}

/// The voxel of `mask` deepest inside the labels `inside` picks (largest distance to any
/// other voxel) among those `accept` takes, and that depth (mm).
fn deepest_where(
    mask: &Mask,
    inside: impl Fn(u8) -> bool,
    accept: impl Fn((usize, usize, usize)) -> bool,
) -> Option<(Lps, f64)> {
    let outside = mask.data.mapv(|l| !inside(l));
    let d2 = crate::volume::region::squared_distance_mm2(&outside, mask.geometry.spacing_mm);
    let ((k, j, i), &best) =
        d2.indexed_iter().filter(|&(idx, &d)| d > 0.0 && accept(idx)).max_by(|a, b| a.1.total_cmp(b.1))?;
    Some((mask.geometry.index_to_world([i as f64, j as f64, k as f64]), (best as f64).sqrt()))
}

/// The lesion: an ellipsoid, and after treatment its parts.
#[derive(Clone, Copy)]
struct Lesion {
    centre: Lps,
    semi_axes: [f64; 3],
    /// `Some((lipiodol radius, viable direction))` after treatment.
    treated: Option<(f64, Lps)>,
}

/// Width (mm) of the lesion's soft edge, so the implanted boundary looks like a real one.
const EDGE_MM: f64 = 1.5;
/// Inside this normalised radius a treated lesion is necrotic (beyond its lipiodol core).
const NECROTIC_CORE: f64 = 0.65;
/// The viable rim covers directions within acos(0.3) ≈ 73° of `viable_towards`.
const VIABLE_COS: f64 = 0.3;
const LIPIODOL_HU: f64 = 600.0;
const NECROSIS_HU: f64 = 25.0;

impl Lesion {
    fn rel(&self, p: Lps) -> [f64; 3] {
        [0, 1, 2].map(|a| (p[a] - self.centre[a]) / self.semi_axes[a])
    }

    /// 0…1: how much of the voxel at `p` is lesion.
    fn weight(&self, p: Lps) -> f64 {
        let d = norm(self.rel(p));
        let mean_r = self.semi_axes.iter().sum::<f64>() / 3.0;
        ((1.0 - d) * mean_r / EDGE_MM + 0.5).clamp(0.0, 1.0)
    }

    fn part(&self, p: Lps) -> u8 {
        let Some((core_r, towards)) = self.treated else { return VIABLE };
        let off = [0, 1, 2].map(|a| p[a] - self.centre[a]);
        if norm(off) <= core_r {
            return LIPIODOL;
        }
        let rel = self.rel(p);
        let d = norm(rel);
        let cos = if d > 0.0 { (rel[0] * towards[0] + rel[1] * towards[1] + rel[2] * towards[2]) / d } else { 0.0 };
        if d >= NECROTIC_CORE && cos >= VIABLE_COS {
            VIABLE
        } else {
            NECROTIC
        }
    }

    /// The HU the lesion has at `p` in a phase whose liver median is `liver_hu`.
    fn target_hu(&self, p: Lps, phase: Phase, liver_hu: f64) -> f64 {
        match self.part(p) {
            LIPIODOL => LIPIODOL_HU,
            NECROTIC => NECROSIS_HU,
            // HCC: arterial hyperenhancement, washout in the portal venous and delayed phases
            _ => {
                liver_hu
                    + match phase {
                        Phase::Arterial => 55.0,
                        Phase::PortalVenous => -20.0,
                        Phase::Delayed => -30.0,
                        Phase::NonContrast => -10.0,
                        Phase::Unknown => -20.0,
                    }
            }
        }
    }

    /// A box (LPS mm, min and max corners) holding the lesion and its soft edge.
    fn bounds(&self, margin_mm: f64) -> (Lps, Lps) {
        let m = EDGE_MM + margin_mm;
        (
            [0, 1, 2].map(|a| self.centre[a] - self.semi_axes[a] - m),
            [0, 1, 2].map(|a| self.centre[a] + self.semi_axes[a] + m),
        )
    }
}

/// The reference point a phase voxel at `y` shows: `x` with `x + u(x) = y` (fixed point;
/// the breathing fields are smooth, |∇u| ≪ 1, so a few steps converge far below a voxel).
fn reference_point(field: Option<&Field>, y: Lps) -> Lps {
    let Some(f) = field else { return y };
    let mut x = y;
    for _ in 0..8 {
        let u = crate::register::warp::displacement_at(f, x).unwrap_or([0.0; 3]);
        x = [y[0] - u[0], y[1] - u[1], y[2] - u[2]];
    }
    x
}

/// The phase's liver median and robust SD (1.4826 × MAD): liver voxels of the reference
/// grid (every other one) looked up where the phase shows them.
fn liver_stats(phase: &SimPhase, liver: &Mask) -> (f64, f64) {
    let g = &liver.geometry;
    let mut vals = Vec::new();
    for ((k, j, i), &l) in liver.data.indexed_iter() {
        if l != LIVER || (i + j + k) % 2 != 0 || k % 2 != 0 {
            continue;
        }
        let x = g.index_to_world([i as f64, j as f64, k as f64]);
        let u = phase.true_field.and_then(|f| crate::register::warp::displacement_at(f, x)).unwrap_or([0.0; 3]);
        if let Some(v) =
            phase.volume.sample_world([x[0] + u[0], x[1] + u[1], x[2] + u[2]], crate::volume::Interp::Nearest)
        {
            vals.push(v as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let m = median(&mut vals);
    let mut dev: Vec<f64> = vals.iter().map(|v| (v - m).abs()).collect();
    (m, 1.4826 * median(&mut dev))
}

/// `volume` with `lesion` implanted (its values replaced, texture kept).
fn implant(p: &SimPhase, lesion: &Lesion, liver_hu: f64, liver_sd: f64) -> CtVolume {
    let mut out = p.volume.clone();
    let g = &out.geometry;
    // the lesion's box in the phase's index space, grown by the field's largest displacement
    let reach = p.true_field.map_or(0.0, |f| f.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 * 3f64.sqrt());
    let (lo, hi) = lesion.bounds(reach + 1.0);
    let mut imin = [usize::MAX; 3];
    let mut imax = [0usize; 3];
    for c in 0..8 {
        let corner = [
            if c & 1 == 0 { lo[0] } else { hi[0] },
            if c & 2 == 0 { lo[1] } else { hi[1] },
            if c & 4 == 0 { lo[2] } else { hi[2] },
        ];
        let q = g.world_to_index(corner);
        for a in 0..3 {
            let n = g.shape[2 - a];
            imin[a] = imin[a].min(q[a].floor().clamp(0.0, n as f64 - 1.0) as usize);
            imax[a] = imax[a].max(q[a].ceil().clamp(0.0, n as f64 - 1.0) as usize);
        }
    }
    let tex = 2.0 * liver_sd.max(1.0);
    for k in imin[2]..=imax[2] {
        for j in imin[1]..=imax[1] {
            for i in imin[0]..=imax[0] {
                let y = g.index_to_world([i as f64, j as f64, k as f64]);
                let x = reference_point(p.true_field, y);
                let w = lesion.weight(x);
                if w <= 0.0 {
                    continue;
                }
                let v = &mut out.data[[k, j, i]];
                let orig = *v as f64;
                let hu = lesion.target_hu(x, p.phase, liver_hu) + (orig - liver_hu).clamp(-tex, tex);
                *v = ((1.0 - w) * orig + w * hu).round().clamp(-32768.0, 32767.0) as i16;
            }
        }
    }
    out
}

/// Liver mask with the lesion (label 2) and, when treated, the parts volume.
fn lesion_masks(liver: &Mask, lesion: &Lesion) -> (Mask, Mask) {
    let mut mask = liver.clone();
    let mut parts = Mask::filled(liver.geometry.clone(), 0);
    let g = &liver.geometry;
    for ((k, j, i), l) in mask.data.indexed_iter_mut() {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        if lesion.weight(p) >= 0.5 {
            *l = LESION;
            parts.data[[k, j, i]] = lesion.part(p);
        }
    }
    (mask, parts)
}

fn long_axis_mm(mask: &Mask, pred: impl Fn(u8) -> bool) -> f64 {
    let voxels: Vec<usize> = mask.data.iter().enumerate().filter(|(_, &l)| pred(l)).map(|(i, _)| i).collect();
    crate::lesion::measure_voxels(&voxels, &mask.geometry).map(|(r, _)| r.long_axis_mm).unwrap_or(0.0)
}

/// Both visits made from `phases` (one of them on `liver`'s grid: the reference) with the
/// lesion at the liver's deepest point.
pub fn simulate_follow_up(phases: &[SimPhase], liver: &Mask, opts: &SimOptions) -> Result<SimulatedPair, SimError> {
    if phases.is_empty() {
        return Err(SimError::NoPhases);
    }
    if !(0.2..=1.0).contains(&opts.shrink) {
        return Err(SimError::Shrink(opts.shrink));
    }
    if !phases.iter().any(|p| p.volume.geometry.same_grid(&liver.geometry)) {
        return Err(SimError::GridMismatch);
    }
    let (centre, depth) = deepest_where(liver, |l| l != 0, |_| true).ok_or(SimError::TooThin { depth_mm: 0.0 })?;
    if depth < 12.0 {
        return Err(SimError::TooThin { depth_mm: depth });
    }
    // an HCC of up to 44 × 36 × 32 mm, with 5 mm of liver left around it
    let scale = ((depth - 5.0) / 22.0).min(1.0);
    let r0 = [22.0 * scale, 18.0 * scale, 16.0 * scale];
    let r1 = r0.map(|r| r * opts.shrink);
    let core_r = 0.4 * r1.iter().fold(f64::INFINITY, |m, &r| m.min(r));
    let t = opts.viable_towards;
    let tn = norm(t).max(1e-9);
    let base_lesion = Lesion { centre, semi_axes: r0, treated: None };
    let follow_lesion = Lesion { centre, semi_axes: r1, treated: Some((core_r, t.map(|v| v / tn))) };

    let stats: Vec<(f64, f64)> = phases.iter().map(|p| liver_stats(p, liver)).collect();
    let to_native = opts.baseline_to_followup.inverse().ok_or(SimError::GridMismatch)?;
    let mut baseline = Vec::new();
    let mut followup = Vec::new();
    for (p, &(hu, sd)) in phases.iter().zip(&stats) {
        baseline.push((p.phase, implant(p, &base_lesion, hu, sd)));
        let native = implant(p, &follow_lesion, hu, sd);
        followup.push((p.phase, resample_affine(&native, &native.geometry, &to_native)));
    }
    let (baseline_mask, _) = lesion_masks(liver, &base_lesion);
    let (follow_native, parts_native) = lesion_masks(liver, &follow_lesion);
    let followup_mask = crate::register::affine::resample_mask_affine(&follow_native, &liver.geometry, &to_native);
    let followup_parts = crate::register::affine::resample_mask_affine(&parts_native, &liver.geometry, &to_native);

    let b_long = long_axis_mm(&baseline_mask, |l| l == LESION);
    let f_long = long_axis_mm(&follow_native, |l| l == LESION);
    let v_long = long_axis_mm(&parts_native, |l| l == VIABLE);
    let truth = PairTruth {
        liver_ml: count_ml(liver, |l| l == LIVER),
        lesion_centre_mm: centre,
        baseline_semi_axes_mm: r0,
        followup_semi_axes_mm: r1,
        lipiodol_radius_mm: core_r,
        baseline_ml: count_ml(&baseline_mask, |l| l == LESION),
        // a rigid move keeps volumes: counted on the native grid, without resampling loss
        followup_ml: count_ml(&follow_native, |l| l == LESION),
        viable_ml: count_ml(&parts_native, |l| l == VIABLE),
        necrotic_ml: count_ml(&parts_native, |l| l == NECROTIC),
        lipiodol_ml: count_ml(&parts_native, |l| l == LIPIODOL),
        baseline_long_axis_mm: b_long,
        followup_long_axis_mm: f_long,
        followup_viable_long_axis_mm: v_long,
        recist: recist_category(b_long, f_long, 0),
        mrecist: recist_category(b_long, v_long, 0),
        baseline_to_followup: opts.baseline_to_followup,
        phase_liver_hu: phases.iter().zip(&stats).map(|(p, &(m, s))| (p.phase, m, s)).collect(),
    };
    Ok(SimulatedPair { baseline, baseline_mask, followup, followup_mask, followup_parts, truth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// Liver ellipsoid (65 × 60 × 45 mm semi-axes, 735 mL) in fat, with a ±8 HU texture.
    fn study() -> (CtVolume, CtVolume) {
        let g = Geometry::axis_aligned([40, 140, 140], [2.5, 1.0, 1.0], [-70.0, -70.0, -50.0]);
        let mut art = CtVolume::filled(g.clone(), -100);
        let mut pv = CtVolume::filled(g.clone(), -100);
        for ((k, j, i), v) in pv.data.indexed_iter_mut() {
            let p = g.index_to_world([i as f64, j as f64, k as f64]);
            if (p[0] / 65.0).powi(2) + (p[1] / 60.0).powi(2) + (p[2] / 45.0).powi(2) <= 1.0 {
                let tex = ((i * 7 + j * 13 + k * 29) % 17) as i16 - 8;
                *v = 100 + tex;
                art.data[[k, j, i]] = 75 + tex;
            }
        }
        (art, pv)
    }

    fn ellipsoid_ml(r: [f64; 3]) -> f64 {
        4.0 / 3.0 * std::f64::consts::PI * r[0] * r[1] * r[2] / 1000.0
    }

    #[test]
    fn the_pair_holds_the_lesion_it_was_made_with_and_the_response_measures_it() {
        let (art, pv) = study();
        let liver = grow_liver(&pv, [10.0, 10.0, 0.0]).unwrap();
        let liver_ml = count_ml(&liver, |l| l == LIVER);
        assert!((liver_ml / ellipsoid_ml([65.0, 60.0, 45.0]) - 1.0).abs() < 0.03, "{liver_ml}");
        let phases = [
            SimPhase { phase: Phase::Arterial, volume: &art, true_field: None },
            SimPhase { phase: Phase::PortalVenous, volume: &pv, true_field: None },
        ];
        let opts = SimOptions::new(pv.geometry.centre_mm());
        let pair = simulate_follow_up(&phases, &liver, &opts).unwrap();
        let t = &pair.truth;
        assert_eq!(t.baseline_semi_axes_mm, [22.0, 18.0, 16.0], "deep enough for the largest lesion");
        assert!((t.baseline_ml / ellipsoid_ml(t.baseline_semi_axes_mm) - 1.0).abs() < 0.03, "{t:?}");
        assert!((t.followup_ml / ellipsoid_ml(t.followup_semi_axes_mm) - 1.0).abs() < 0.03, "{t:?}");
        assert!((t.viable_ml + t.necrotic_ml + t.lipiodol_ml - t.followup_ml).abs() < 1e-9);
        assert!(
            (t.lipiodol_ml / (4.0 / 3.0 * std::f64::consts::PI * t.lipiodol_radius_mm.powi(3) / 1000.0) - 1.0).abs()
                < 0.15,
            "{t:?}"
        );
        assert!(t.viable_ml > 0.2 * t.followup_ml && t.necrotic_ml > 0.2 * t.followup_ml, "{t:?}");
        assert_eq!((t.recist, t.mrecist), (Category::PR, Category::PR), "{t:?}");
        assert!(t.followup_viable_long_axis_mm < t.followup_long_axis_mm, "the rim covers one margin only: {t:?}");

        // the images: HCC enhancement pattern at baseline, lipiodol where the pose put the core
        let at = |v: &CtVolume, p: Lps| v.sample_world(p, crate::volume::Interp::Nearest).unwrap() as f64;
        let c = t.lesion_centre_mm;
        let (base_art, base_pv) = (&pair.baseline[0].1, &pair.baseline[1].1);
        assert!((at(base_art, c) - (75.0 + 55.0)).abs() <= 17.0 && (at(base_pv, c) - (100.0 - 20.0)).abs() <= 17.0);
        assert_eq!(
            at(base_pv, [50.0, -30.0, 0.0]),
            at(&pv, [50.0, -30.0, 0.0]),
            "liver away from the lesion untouched"
        );
        let moved_c = opts.baseline_to_followup.apply(c);
        assert!(pair.followup.iter().all(|(_, v)| at(v, moved_c) >= 300.0), "lipiodol at the moved centre");

        // measured back on the baseline grid (the true pose undone), the parts come out as made
        let back = |v: &CtVolume| resample_affine(v, &v.geometry, &opts.baseline_to_followup);
        let (fa, fp) = (back(&pair.followup[0].1), back(&pair.followup[1].1));
        let fmask = crate::register::affine::resample_mask_affine(
            &pair.followup_mask,
            &liver.geometry,
            &opts.baseline_to_followup,
        );
        let visit = crate::follow_up::response::Visit {
            label: "follow-up".into(),
            mask: &fmask,
            phases: vec![(Phase::Arterial, &fa), (Phase::PortalVenous, &fp)],
        };
        let m =
            crate::follow_up::response::measure_visit(&visit, &crate::follow_up::response::ResponseOptions::default())
                .unwrap();
        assert_eq!(m.report.lesions.len(), 1);
        let p = m.parts[0].clone().unwrap();
        let close = |a: f64, b: f64, tol: f64| (a / b - 1.0).abs() < tol;
        assert!(close(p.viable_ml + p.necrotic_ml + p.lipiodol_ml, t.followup_ml, 0.05), "{p:?} vs {t:?}");
        assert!(
            close(p.viable_ml, t.viable_ml, 0.05)
                && close(p.necrotic_ml, t.necrotic_ml, 0.05)
                && close(p.lipiodol_ml, t.lipiodol_ml, 0.1),
            "{p:?} vs {t:?}"
        );
    }

    #[test]
    fn bad_settings_and_thin_livers_are_refused_with_a_reason() {
        let (art, pv) = study();
        let liver = grow_liver(&pv, [10.0, 10.0, 0.0]).unwrap();
        let phases = [SimPhase { phase: Phase::PortalVenous, volume: &pv, true_field: None }];
        let opts = SimOptions { shrink: 1.5, ..SimOptions::new(pv.geometry.centre_mm()) };
        assert!(matches!(simulate_follow_up(&phases, &liver, &opts), Err(SimError::Shrink(_))));
        let wrong_grid = [SimPhase {
            phase: Phase::Arterial,
            volume: &art.resample_to(
                &Geometry::axis_aligned([20, 70, 70], [5.0, 2.0, 2.0], [-70.0, -70.0, -50.0]),
                crate::volume::Interp::Linear,
                -100,
            ),
            true_field: None,
        }];
        assert!(matches!(
            simulate_follow_up(&wrong_grid, &liver, &SimOptions::new([0.0; 3])),
            Err(SimError::GridMismatch)
        ));
        // a seed in the fat grows nothing liver-like
        let e = grow_liver(&pv, [-68.0, -68.0, -48.0]).unwrap_err();
        assert!(e.to_string().contains("--liver-seed"), "{e}");
        // a slab of liver 16 mm thick has no room for a measurable lesion
        let mut thin = liver.clone();
        for ((k, _, _), l) in thin.data.indexed_iter_mut() {
            if !(18..=24).contains(&k) {
                *l = 0;
            }
        }
        assert!(matches!(
            simulate_follow_up(&phases, &thin, &SimOptions::new([0.0; 3])),
            Err(SimError::TooThin { .. })
        ));
    }
}
