//! Treatment response between a baseline and a follow-up study (e.g. before and after
//! TACE): lesions matched across time through a registration, each lesion split into
//! viable (still enhancing in the arterial phase), necrotic and lipiodol parts, and the
//! RECIST 1.1 and mRECIST categories with the diameters they come from. A measurement aid
//! for the radiologist, labelled so; never a verdict.

use crate::io::phase::Phase;
use crate::lesion::{self, LesionError, LesionOptions, LesionReport};
use crate::volume::region::connected_components;
use crate::volume::{norm, sub, CtVolume, Geometry, Lps, Mask};

/// Labels of the parts volume.
pub const VIABLE: u8 = 4;
pub const NECROTIC: u8 = 5;
pub const LIPIODOL: u8 = 6;

pub const RESPONSE_DISCLAIMER: &str =
    "Response category computed from the masks as a measurement aid; the radiologist confirms or overrides it.";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseOptions {
    pub lesion: LesionOptions,
    /// Viable: arterial HU at least this much above the surrounding liver's median.
    pub viable_margin_hu: f64,
    /// Lipiodol: at least this HU in the median phase (iodised oil stays dense throughout;
    /// the median, so one phase blurred by resampling does not decide).
    pub lipiodol_hu: f64,
    /// Lesions whose centres land this close after registration may pair without overlap.
    pub match_distance_mm: f64,
    /// Overlap (fraction of the baseline lesion's mapped voxels) that pairs two lesions.
    pub min_overlap: f64,
    /// RECIST 1.1: measurable lesions are at least this long (mm)…
    pub min_target_mm: f64,
    /// …and at most this many per organ are targets (all of these are in the liver).
    pub max_targets: usize,
}

impl Default for ResponseOptions {
    fn default() -> Self {
        ResponseOptions {
            lesion: LesionOptions::default(),
            viable_margin_hu: 10.0,
            lipiodol_hu: 300.0,
            match_distance_mm: 20.0,
            min_overlap: 0.1,
            min_target_mm: 10.0,
            max_targets: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Lesion(#[from] LesionError),
    #[error("the {visit} study has no arterial phase: viable tumour and mRECIST need one; RECIST 1.1 and volumes are still given")]
    NoArterial { visit: String },
}

/// One visit: its label mask and its phases, all on the mask's grid.
pub struct Visit<'a> {
    /// e.g. the study date.
    pub label: String,
    pub mask: &'a Mask,
    pub phases: Vec<(Phase, &'a CtVolume)>,
}

/// A lesion's parts at one visit.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    pub viable_ml: f64,
    pub necrotic_ml: f64,
    pub lipiodol_ml: f64,
    /// Longest axial diameter of the viable part (mRECIST), 0 when none.
    pub viable_long_axis_mm: f64,
    pub viable_slice: Option<usize>,
    /// Arterial median of the surrounding liver the split was judged against.
    pub liver_arterial_median_hu: Option<f64>,
}

/// Everything measured of one visit.
pub struct VisitMeasure {
    pub report: LesionReport,
    /// Per lesion (same order as `report.lesions`); `None` without an arterial phase.
    pub parts: Vec<Option<Parts>>,
    /// Per lesion, its lipiodol (mL): measured with any phases, since dense oil needs no
    /// arterial phase to be seen (the same figure as `parts` when those exist).
    pub lipiodol_ml: Vec<f64>,
    /// 0 outside lesions, [`VIABLE`], [`NECROTIC`] or [`LIPIODOL`] inside.
    pub parts_mask: Mask,
    /// Voxels of each lesion (same order).
    pub voxels: Vec<Vec<usize>>,
}

/// Measures every lesion of a visit and splits it into parts.
pub fn measure_visit(v: &Visit, opts: &ResponseOptions) -> Result<VisitMeasure, ResponseError> {
    let report = lesion::analyse_lesions(v.mask, &v.phases, &opts.lesion)?;
    let voxel_ml = crate::volume::region::voxel_volume_ml(&v.mask.geometry);
    let min_voxels = (opts.lesion.min_volume_ml / voxel_ml - 1e-9).ceil().max(1.0) as usize;
    let (comps, _) = connected_components(v.mask, opts.lesion.lesion_label, min_voxels);
    let mut parts_mask = Mask::filled(v.mask.geometry.clone(), 0);
    let arterial = v.phases.iter().find(|(p, _)| *p == Phase::Arterial).map(|(_, c)| *c);
    let mut parts = Vec::new();
    let mut lipiodol_ml = Vec::new();
    for (l, c) in report.lesions.iter().zip(&comps) {
        let Some(art) = arterial else {
            // no arterial phase: viable and necrotic cannot be told apart, lipiodol can
            let all: Vec<&CtVolume> = v.phases.iter().map(|(_, c)| *c).collect();
            let mut n = 0usize;
            let mut out = parts_mask.data.as_slice_mut();
            for &i in &c.voxels {
                let mut hus: Vec<f64> =
                    all.iter().map(|vol| vol.data.as_slice().map(|s| s[i] as f64).unwrap_or(f64::NAN)).collect();
                hus.sort_by(f64::total_cmp);
                if !hus.is_empty() && hus[hus.len() / 2] >= opts.lipiodol_hu {
                    n += 1;
                    if let Some(o) = out.as_deref_mut() {
                        o[i] = LIPIODOL;
                    }
                }
            }
            lipiodol_ml.push(n as f64 * voxel_ml);
            parts.push(None);
            continue;
        };
        let liver = l
            .phases
            .iter()
            .find(|s| s.phase == Phase::Arterial)
            .and_then(|s| s.liver_ring.as_ref())
            .map(|r| r.median_hu);
        let flat_art = art.data.as_slice();
        let others: Vec<&CtVolume> = v.phases.iter().map(|(_, c)| *c).collect();
        let mut p = Parts { liver_arterial_median_hu: liver, ..Default::default() };
        let mut viable = Vec::new();
        let mut out = parts_mask.data.as_slice_mut();
        let mut labels: Vec<u8> = c
            .voxels
            .iter()
            .map(|&i| {
                let mut hus: Vec<f64> =
                    others.iter().map(|vol| vol.data.as_slice().map(|s| s[i] as f64).unwrap_or(f64::NAN)).collect();
                hus.sort_by(f64::total_cmp);
                let a = flat_art.map(|s| s[i] as f64).unwrap_or(f64::NAN);
                if hus[hus.len() / 2] >= opts.lipiodol_hu {
                    LIPIODOL
                } else if liver.is_some_and(|m| a >= m + opts.viable_margin_hu) {
                    VIABLE
                } else {
                    NECROTIC
                }
            })
            .collect();
        // Touching lipiodol (a shared voxel face), its blooming (and the blur of resampling) lifts every phase, so
        // arterial enhancement there cannot be judged: count it as treated, not viable.
        let lipiodol: std::collections::HashSet<usize> =
            c.voxels.iter().zip(&labels).filter(|(_, &l)| l == LIPIODOL).map(|(&i, _)| i).collect();
        if !lipiodol.is_empty() {
            for (n, &i) in c.voxels.iter().enumerate() {
                if labels[n] == VIABLE && face_neighbours(i, v.mask.geometry.shape).any(|j| lipiodol.contains(&j)) {
                    labels[n] = NECROTIC;
                }
            }
        }
        for (&i, &label) in c.voxels.iter().zip(&labels) {
            if let Some(o) = out.as_deref_mut() {
                o[i] = label;
            }
            match label {
                VIABLE => {
                    viable.push(i);
                    p.viable_ml += voxel_ml
                }
                LIPIODOL => p.lipiodol_ml += voxel_ml,
                _ => p.necrotic_ml += voxel_ml,
            }
        }
        let (recist, _) = lesion::measure_voxels(&viable, &v.mask.geometry)?;
        p.viable_long_axis_mm = recist.long_axis_mm;
        p.viable_slice = (!viable.is_empty()).then_some(recist.slice);
        lipiodol_ml.push(p.lipiodol_ml);
        parts.push(Some(p));
    }
    let voxels = comps.into_iter().map(|c| c.voxels).collect();
    Ok(VisitMeasure { report, parts, lipiodol_ml, parts_mask, voxels })
}

/// Linear indices of the up-to-6 face neighbours of voxel `i` inside a grid of `shape`.
fn face_neighbours(i: usize, shape: [usize; 3]) -> impl Iterator<Item = usize> {
    let [nz, ny, nx] = shape;
    let (k, j, ii) = (i / (ny * nx), (i / nx) % ny, i % nx);
    let steps: [(bool, usize); 6] = [
        (k > 0, i.wrapping_sub(ny * nx)),
        (k + 1 < nz, i + ny * nx),
        (j > 0, i.wrapping_sub(nx)),
        (j + 1 < ny, i + nx),
        (ii > 0, i.wrapping_sub(1)),
        (ii + 1 < nx, i + 1),
    ];
    steps.into_iter().filter_map(|(ok, n)| ok.then_some(n))
}

/// A baseline lesion and what became of it, or a new one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pairing {
    /// Lesion id at baseline (1 = largest), `None` for a new lesion.
    pub baseline: Option<usize>,
    /// Lesion id at follow-up, `None` when it disappeared.
    pub followup: Option<usize>,
    /// Fraction of the baseline lesion's voxels that land in the follow-up lesion.
    pub overlap: f64,
    /// Distance between the mapped baseline centroid and the follow-up centroid (mm).
    pub distance_mm: Option<f64>,
}

/// Pairs lesions: each baseline lesion's voxels are carried into the follow-up through
/// `to_followup` (baseline world point → follow-up world point); pairs by overlap first,
/// then by centroid distance, one to one.
pub fn match_lesions(
    base: &VisitMeasure,
    base_geometry: &Geometry,
    follow: &VisitMeasure,
    follow_geometry: &Geometry,
    to_followup: &dyn Fn(Lps) -> Lps,
    opts: &ResponseOptions,
) -> Vec<Pairing> {
    let [_, ny, nx] = base_geometry.shape;
    let [fz, fy, fx] = follow_geometry.shape;
    // follow-up lesion id of each voxel
    let mut owner = vec![0u16; fz * fy * fx];
    for (n, vox) in follow.voxels.iter().enumerate() {
        for &i in vox {
            owner[i] = (n + 1) as u16;
        }
    }
    let mut candidates: Vec<(usize, usize, f64, f64)> = Vec::new();
    for (b, vox) in base.voxels.iter().enumerate() {
        let mut hits = vec![0usize; follow.voxels.len() + 1];
        // every voxel of small lesions, a regular subsample of large ones
        let stride = (vox.len() / 20_000).max(1);
        let mut n = 0usize;
        for &i in vox.iter().step_by(stride) {
            let (k, j, ii) = (i / (ny * nx), (i / nx) % ny, i % nx);
            let y = to_followup(base_geometry.index_to_world([ii as f64, j as f64, k as f64]));
            let idx = follow_geometry.world_to_index(y);
            n += 1;
            let r = idx.map(|x| x.round());
            if r.iter().all(|&x| x >= 0.0) && (r[0] as usize) < fx && (r[1] as usize) < fy && (r[2] as usize) < fz {
                hits[owner[(r[2] as usize * fy + r[1] as usize) * fx + r[0] as usize] as usize] += 1;
            }
        }
        let centre = to_followup(base.report.lesions[b].centroid_mm);
        for (f, l) in follow.report.lesions.iter().enumerate() {
            let overlap = hits[f + 1] as f64 / n.max(1) as f64;
            let d = norm(sub(centre, l.centroid_mm));
            if overlap >= opts.min_overlap || d <= opts.match_distance_mm {
                candidates.push((b, f, overlap, d));
            }
        }
    }
    candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.3.total_cmp(&b.3)));
    let mut base_used = vec![false; base.voxels.len()];
    let mut follow_used = vec![false; follow.voxels.len()];
    let mut pairs = Vec::new();
    for (b, f, overlap, d) in candidates {
        if !base_used[b] && !follow_used[f] {
            base_used[b] = true;
            follow_used[f] = true;
            pairs.push(Pairing { baseline: Some(b + 1), followup: Some(f + 1), overlap, distance_mm: Some(d) });
        }
    }
    for (b, used) in base_used.iter().enumerate() {
        if !used {
            pairs.push(Pairing { baseline: Some(b + 1), followup: None, overlap: 0.0, distance_mm: None });
        }
    }
    for (f, used) in follow_used.iter().enumerate() {
        if !used {
            pairs.push(Pairing { baseline: None, followup: Some(f + 1), overlap: 0.0, distance_mm: None });
        }
    }
    pairs.sort_by_key(|p| (p.baseline.unwrap_or(usize::MAX), p.followup.unwrap_or(0)));
    pairs
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Category {
    /// Complete response.
    CR,
    /// Partial response.
    PR,
    /// Stable disease.
    SD,
    /// Progressive disease.
    PD,
}

/// One target lesion in a category's evidence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub baseline_id: usize,
    /// The follow-up lesion; the first fragment when the lesion split.
    pub followup_id: Option<usize>,
    /// Every follow-up fragment of a lesion split by hand (RECIST 1.1: their longest
    /// diameters are added); empty or one id otherwise.
    #[serde(default)]
    pub followup_fragments: Vec<usize>,
    pub baseline_mm: f64,
    pub followup_mm: f64,
    pub baseline_slice: Option<usize>,
    pub followup_slice: Option<usize>,
}

/// A RECIST-style category with what it was computed from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    pub category: Category,
    pub targets: Vec<Target>,
    pub baseline_sum_mm: f64,
    pub followup_sum_mm: f64,
    /// Percent change of the sum (negative = shrinking).
    pub change_percent: f64,
    pub new_lesions: usize,
    pub reason: String,
}

/// The RECIST 1.1 rule on sums of diameters (mm), with its reason: PD on any new lesion or
/// a rise of ≥ 20 % and ≥ 5 mm, CR when every target is gone, PR on a fall of ≥ 30 %, SD
/// otherwise (and when there is no target at baseline). mRECIST applies the same rule to
/// the viable parts' diameters.
pub fn recist_category(baseline_sum_mm: f64, followup_sum_mm: f64, new_lesions: usize) -> Category {
    categorise_sums(baseline_sum_mm, followup_sum_mm, new_lesions, baseline_sum_mm > 0.0, "diameters").0
}

fn categorise_sums(b: f64, f: f64, new_lesions: usize, has_targets: bool, what: &str) -> (Category, String) {
    let change = if b > 0.0 { 100.0 * (f - b) / b } else { 0.0 };
    if new_lesions > 0 {
        (Category::PD, format!("{new_lesions} new lesion(s)"))
    } else if !has_targets {
        (Category::SD, format!("no measurable target lesion (≥ 10 mm {what}) at baseline"))
    } else if f == 0.0 {
        (Category::CR, format!("every target's {what} is gone"))
    } else if change >= 20.0 && f - b >= 5.0 {
        (Category::PD, format!("sum of {what} grew {change:.0} % ({:.1} mm)", f - b))
    } else if change <= -30.0 {
        (Category::PR, format!("sum of {what} fell {:.0} %", -change))
    } else {
        (Category::SD, format!("sum of {what} changed {change:+.0} %, between -30 % and +20 %"))
    }
}

fn categorise(targets: Vec<Target>, new_lesions: usize, what: &str) -> Assessment {
    let b: f64 = targets.iter().map(|t| t.baseline_mm).sum();
    let f: f64 = targets.iter().map(|t| t.followup_mm).sum();
    let change = if b > 0.0 { 100.0 * (f - b) / b } else { 0.0 };
    let (category, reason) = categorise_sums(b, f, new_lesions, !targets.is_empty(), what);
    Assessment {
        category,
        targets,
        baseline_sum_mm: b,
        followup_sum_mm: f,
        change_percent: change,
        new_lesions,
        reason,
    }
}

/// Per-lesion change.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionChange {
    pub pairing: Pairing,
    pub baseline_ml: f64,
    pub followup_ml: f64,
    pub change_percent: Option<f64>,
    pub baseline_parts: Option<Parts>,
    pub followup_parts: Option<Parts>,
    /// Lipiodol of the follow-up lesion (mL), also when its parts are not measurable.
    #[serde(default)]
    pub followup_lipiodol_ml: Option<f64>,
}

/// `pairs` with baseline lesion `b` split into the follow-up lesions `fragments` (a
/// treated tumour breaking into parts, as the radiologist reads it): each fragment pairs
/// with `b`; a fragment's former partner and `b`'s former partners that are not fragments
/// lose their pairing (gone / new). `n_base` / `n_follow`: lesion counts, so every lesion
/// keeps a row.
pub fn split_lesion(pairs: &[Pairing], b: usize, fragments: &[usize], n_base: usize, n_follow: usize) -> Vec<Pairing> {
    let mut out: Vec<Pairing> = pairs
        .iter()
        .filter(|p| p.baseline != Some(b) && !p.followup.is_some_and(|f| fragments.contains(&f)))
        .cloned()
        .collect();
    for &f in fragments {
        out.push(Pairing { baseline: Some(b), followup: Some(f), overlap: 0.0, distance_mm: None });
    }
    if fragments.is_empty() {
        out.push(Pairing { baseline: Some(b), followup: None, overlap: 0.0, distance_mm: None });
    }
    for b2 in 1..=n_base {
        if !out.iter().any(|p| p.baseline == Some(b2)) {
            out.push(Pairing { baseline: Some(b2), followup: None, overlap: 0.0, distance_mm: None });
        }
    }
    for f2 in 1..=n_follow {
        if !out.iter().any(|p| p.followup == Some(f2)) {
            out.push(Pairing { baseline: None, followup: Some(f2), overlap: 0.0, distance_mm: None });
        }
    }
    out.sort_by_key(|p| (p.baseline.unwrap_or(usize::MAX), p.followup.unwrap_or(0)));
    out
}

/// Re-pairs baseline lesion `b` with follow-up lesion `f` (or with none: gone); the lesion
/// `f` was paired with becomes gone, the one `b` had becomes new.
pub fn repair(
    pairs: &[Pairing],
    n_base: usize,
    n_follow: usize,
    b: usize,
    f: Option<usize>,
    base: &VisitMeasure,
    follow: &VisitMeasure,
) -> Vec<Pairing> {
    // a one-fragment split is exactly this re-pairing; only the distance is added here
    let mut out = split_lesion(pairs, b, f.as_slice(), n_base, n_follow);
    if let (Some(f), Some(p)) = (f, out.iter_mut().find(|p| p.baseline == Some(b))) {
        p.distance_mm =
            Some(norm(sub(base.report.lesions[b - 1].centroid_mm, follow.report.lesions[f - 1].centroid_mm)));
    }
    out
}

/// The patient-level response.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Response {
    pub baseline: String,
    pub followup: String,
    pub lesions: Vec<LesionChange>,
    pub total_baseline_ml: f64,
    pub total_followup_ml: f64,
    pub viable_baseline_ml: Option<f64>,
    pub viable_followup_ml: Option<f64>,
    pub recist: Assessment,
    /// `None` without an arterial phase in both visits.
    pub mrecist: Option<Assessment>,
    pub disclaimer: String,
}

/// RECIST 1.1, mRECIST and volumes from two measured visits and their pairing.
pub fn assess(
    base_label: &str,
    base: &VisitMeasure,
    follow_label: &str,
    follow: &VisitMeasure,
    pairs: &[Pairing],
    opts: &ResponseOptions,
) -> Response {
    let new_lesions = pairs.iter().filter(|p| p.baseline.is_none()).count();
    // a lesion split by hand pairs with several follow-up fragments
    let fragments_of = |b: usize| -> Vec<usize> {
        pairs.iter().filter(|p| p.baseline == Some(b)).filter_map(|p| p.followup).collect()
    };
    let follow_of = |b: usize| fragments_of(b).first().copied();
    // Targets: the largest measurable baseline lesions (ids are ordered by size).
    let measurable: Vec<usize> = base
        .report
        .lesions
        .iter()
        .filter(|l| l.recist.long_axis_mm >= opts.min_target_mm)
        .map(|l| l.id)
        .take(opts.max_targets)
        .collect();
    let recist_targets = measurable
        .iter()
        .map(|&b| {
            let f = follow_of(b);
            let frags = fragments_of(b);
            let bl = &base.report.lesions[b - 1];
            let fl = f.map(|f| &follow.report.lesions[f - 1]);
            Target {
                baseline_id: b,
                followup_id: f,
                baseline_mm: bl.recist.long_axis_mm,
                followup_mm: frags.iter().map(|&f| follow.report.lesions[f - 1].recist.long_axis_mm).sum(),
                followup_fragments: frags,
                baseline_slice: Some(bl.recist.slice),
                followup_slice: fl.map(|l| l.recist.slice),
            }
        })
        .collect();
    let recist = categorise(recist_targets, new_lesions, "longest diameters");
    let has_parts = base.parts.iter().all(|p| p.is_some()) && follow.parts.iter().all(|p| p.is_some());
    let mrecist = has_parts.then(|| {
        let targets = measurable
            .iter()
            .filter_map(|&b| {
                let bp = base.parts[b - 1].as_ref()?;
                // mRECIST measures only lesions with a viable part at baseline
                (bp.viable_long_axis_mm >= opts.min_target_mm).then(|| {
                    let f = follow_of(b);
                    let frags = fragments_of(b);
                    let fp = f.and_then(|f| follow.parts[f - 1].as_ref());
                    Target {
                        baseline_id: b,
                        followup_id: f,
                        baseline_mm: bp.viable_long_axis_mm,
                        followup_mm: frags
                            .iter()
                            .filter_map(|&f| follow.parts[f - 1].as_ref())
                            .map(|p| p.viable_long_axis_mm)
                            .sum(),
                        followup_fragments: frags,
                        baseline_slice: bp.viable_slice,
                        followup_slice: fp.and_then(|p| p.viable_slice),
                    }
                })
            })
            .collect();
        categorise(targets, new_lesions, "viable (arterially enhancing) diameters")
    });
    let lesions: Vec<LesionChange> = pairs
        .iter()
        .map(|p| {
            let bml = p.baseline.map(|b| base.report.lesions[b - 1].volume_ml).unwrap_or(0.0);
            let fml = p.followup.map(|f| follow.report.lesions[f - 1].volume_ml).unwrap_or(0.0);
            // a split lesion's change is that of all its fragments together
            let all_fml: f64 = match p.baseline {
                Some(b) => fragments_of(b).iter().map(|&f| follow.report.lesions[f - 1].volume_ml).sum(),
                None => fml,
            };
            LesionChange {
                pairing: p.clone(),
                baseline_ml: bml,
                followup_ml: fml,
                change_percent: (bml > 0.0).then(|| 100.0 * (all_fml - bml) / bml),
                baseline_parts: p.baseline.and_then(|b| base.parts[b - 1].clone()),
                followup_parts: p.followup.and_then(|f| follow.parts[f - 1].clone()),
                followup_lipiodol_ml: p.followup.and_then(|f| follow.lipiodol_ml.get(f - 1).copied()),
            }
        })
        .collect();
    let sum_viable = |m: &VisitMeasure| m.parts.iter().map(|p| p.as_ref().map(|p| p.viable_ml)).sum::<Option<f64>>();
    Response {
        baseline: base_label.into(),
        followup: follow_label.into(),
        total_baseline_ml: base.report.lesions.iter().map(|l| l.volume_ml).sum(),
        total_followup_ml: follow.report.lesions.iter().map(|l| l.volume_ml).sum(),
        viable_baseline_ml: sum_viable(base),
        viable_followup_ml: sum_viable(follow),
        lesions,
        recist,
        mrecist,
        disclaimer: RESPONSE_DISCLAIMER.into(),
    }
}
