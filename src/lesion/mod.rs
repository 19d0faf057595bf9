//! Lesion analysis: connected components of the tumour label, their measurements (volume,
//! RECIST long and short axis, longest 3-D diameter, centroid in LPS mm, whether they
//! touch the edge of the volume), HU statistics in each phase inside the lesion and in a
//! ring of liver around it, enhancement ratios, and a pattern **hint** with the evidence it
//! rests on (arterial phase hyper-enhancement, washout, capsule-like rim, near-water HU,
//! peripheral nodular enhancement with fill-in, rim enhancement with a hypo-enhancing
//! centre). The hint is for the radiologist, labelled so in every output; it is never a
//! diagnosis. No liver segment (Couinaud) is given: that needs landmarks this module does
//! not have.
//!
//! Conventions: the mask and every phase are on one grid (register/resample first); voxel
//! indices `(k, j, i)` of `[z, y, x]` arrays; distances in mm through the grid's spacing
//! and direction. Diameters are measured between voxel centres and then given one voxel's
//! extent along the measured direction, as a reader's callipers span the edge voxels.
//! "Axial" for RECIST means the slices of the array (k = const), which are axial for CT.
//! Reference values for the liver are medians (robust to vessels inside the ring).
//!
//! This file holds the report's types and the analysis of each component; `shape` the
//! RECIST and 3-D diameters, `hint` the pattern hint.

use std::borrow::Cow;

use ndarray::Array3;

use crate::io::phase::Phase;
use crate::volume::region::{squared_distance_mm2, std_slice, voxel_volume_ml};
use crate::volume::{CtVolume, Lps, Mask, SAME_GRID_MM};

mod hint;
mod shape;

pub use hint::pattern_hint;
pub use shape::measure_voxels;
use shape::{measure_shape, Frame};

/// Components of a label, where they live now (`hepaview::lesion::connected_components` is
/// how callers outside the crate have named them).
pub use crate::volume::region::{connected_components, Component};

/// Every hint says this.
pub const HINT_DISCLAIMER: &str = "Pattern hint from HU statistics for the radiologist; not a diagnosis.";

#[derive(Debug, thiserror::Error)]
pub enum LesionError {
    #[error("phase '{name}' is on a different grid from the mask ({detail}); resample or register it onto the mask's grid first")]
    GridMismatch { name: String, detail: String },
    #[error("the mask's grid is not usable: {0}")]
    BadGeometry(String),
    #[error("phase '{0}' is given twice; give each phase once")]
    DuplicatePhase(String),
    #[error("{what} = {value} is negative or not a number")]
    BadOption { what: &'static str, value: f64 },
}

/// What counts as a lesion and where to measure around it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionOptions {
    /// Mask label of tumour voxels (LiTS: 2).
    pub lesion_label: u8,
    /// Mask labels of liver parenchyma, for the ring around each lesion (LiTS: 1).
    pub liver_labels: Vec<u8>,
    /// Components smaller than this are left out (specks of an automatic mask).
    pub min_volume_ml: f64,
    /// The liver ring starts this far outside the lesion (skips the partial-volume edge)…
    pub ring_gap_mm: f64,
    /// …and is this thick.
    pub ring_width_mm: f64,
    /// Lesion voxels within this distance of the outside form the rim; the rest the core.
    pub rim_depth_mm: f64,
}

impl Default for LesionOptions {
    fn default() -> Self {
        LesionOptions {
            lesion_label: 2,
            liver_labels: vec![1],
            min_volume_ml: 0.05,
            ring_gap_mm: 1.0,
            ring_width_mm: 5.0,
            rim_depth_mm: 3.0,
        }
    }
}

/// Summary statistics of HU values.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HuStats {
    pub voxels: usize,
    pub mean_hu: f64,
    /// Population standard deviation (divides by n).
    pub sd_hu: f64,
    pub min_hu: f64,
    pub p10_hu: f64,
    pub p25_hu: f64,
    pub median_hu: f64,
    pub p75_hu: f64,
    pub p90_hu: f64,
    pub max_hu: f64,
}

impl HuStats {
    /// Statistics of `values` (sorted in place); `None` when empty. Percentiles are linear
    /// between order statistics, as NumPy's default.
    pub fn of(values: &mut [f32]) -> Option<HuStats> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable_by(f32::total_cmp);
        let n = values.len();
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let q = |p: f64| {
            let x = p * (n - 1) as f64;
            let lo = x.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let f = x - lo as f64;
            values[lo] as f64 * (1.0 - f) + values[hi] as f64 * f
        };
        Some(HuStats {
            voxels: n,
            mean_hu: mean,
            sd_hu: var.sqrt(),
            min_hu: values[0] as f64,
            p10_hu: q(0.10),
            p25_hu: q(0.25),
            median_hu: q(0.5),
            p75_hu: q(0.75),
            p90_hu: q(0.90),
            max_hu: values[n - 1] as f64,
        })
    }
}

/// HU of one lesion in one phase, beside the liver around it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseStats {
    pub phase: Phase,
    /// The whole lesion.
    pub lesion: HuStats,
    /// Lesion voxels deeper than `rim_depth_mm` (absent in lesions too thin to have one).
    pub core: Option<HuStats>,
    /// Lesion voxels within `rim_depth_mm` of the outside.
    pub rim: HuStats,
    /// Liver voxels `ring_gap_mm`..`ring_gap_mm + ring_width_mm` outside the lesion
    /// (absent when the mask has no liver there).
    pub liver_ring: Option<HuStats>,
    /// Lesion mean − liver ring mean.
    pub lesion_minus_liver_hu: Option<f64>,
    /// Lesion mean / liver ring mean (absent when the ring mean is under 10 HU).
    pub lesion_to_liver_ratio: Option<f64>,
    /// Lesion mean in this phase − in the non-contrast phase, when there is one.
    pub lesion_enhancement_hu: Option<f64>,
    /// Liver ring mean in this phase − in the non-contrast phase, when there is one.
    pub liver_enhancement_hu: Option<f64>,
}

/// RECIST axes in the axial slice where the lesion is longest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recist {
    pub long_axis_mm: f64,
    /// Longest diameter perpendicular to the long axis, same slice.
    pub short_axis_mm: f64,
    /// Slice index `k` of the measurement.
    pub slice: usize,
    /// Centres of the end voxels (LPS mm).
    pub long_axis_ends_mm: [Lps; 2],
    pub short_axis_ends_mm: [Lps; 2],
}

/// The kind of pattern the HU evidence resembles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// Arterial phase hyper-enhancement and washout (LI-RADS major features).
    HccLike,
    /// Peripheral nodular arterial enhancement that fills in.
    HemangiomaLike,
    /// Near-water HU, no enhancement.
    CystLike,
    /// Rim enhancement around a centre that stays hypo-enhancing (targetoid).
    MetastasisLike,
    /// None of the above, or not enough phases / no liver reference.
    Indeterminate,
}

/// The features the hint is built from; `None` where the phases needed are missing.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// Non-rim arterial phase hyper-enhancement: core median ≥ liver median + 20 HU.
    pub arterial_hyperenhancement: Option<bool>,
    /// Rim ≥ core + 30 HU and ≥ liver + 10 HU in the arterial phase.
    pub arterial_rim_enhancement: Option<bool>,
    /// Core median ≤ liver median − 5 HU in the portal venous or delayed phase, after
    /// arterial enhancement at least as strong as the liver's.
    pub washout: Option<bool>,
    /// Rim ≥ core + 10 HU in the portal venous or delayed phase but not in the arterial.
    pub capsule_like_rim: Option<bool>,
    /// Median within −20..25 HU in every phase, varying by ≤ 15 HU across phases.
    pub near_water_no_enhancement: Option<bool>,
    /// Arterial rim p90 ≥ liver + 40 HU with rim median ≤ liver + 10 HU (discontinuous
    /// nodules), then the core gains ≥ 30 HU by the last phase and ends near or above liver.
    pub peripheral_nodular_fill_in: Option<bool>,
    /// Core below liver − 15 HU in every phase.
    pub core_hypo_in_every_phase: Option<bool>,
}

/// A pattern hint: what it resembles, why (with numbers), and the disclaimer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatternHint {
    pub kind: PatternKind,
    /// e.g. "HCC-like: APHE + washout + capsule-like rim".
    pub summary: String,
    pub evidence: Evidence,
    /// Plain-language observations with their figures.
    pub findings: Vec<String>,
    pub disclaimer: String,
}

/// One lesion: measurements, HU per phase, pattern hint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lesion {
    /// 1 = largest.
    pub id: usize,
    pub voxel_count: usize,
    pub volume_ml: f64,
    pub centroid_mm: Lps,
    pub recist: Recist,
    pub longest_diameter_3d_mm: f64,
    pub longest_diameter_3d_ends_mm: [Lps; 2],
    /// Some voxel lies on the border of the volume: the lesion may extend beyond the
    /// scan, so its size is a lower bound.
    pub touches_edge: bool,
    /// Voxel index range per axis `[z, y, x]`, end exclusive.
    pub bounding_box: [[usize; 2]; 3],
    pub phases: Vec<PhaseStats>,
    pub pattern: PatternHint,
}

/// Every lesion of a mask.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionReport {
    pub lesions: Vec<Lesion>,
    pub options: LesionOptions,
    /// Components left out as smaller than `min_volume_ml`.
    pub dropped_small: usize,
    pub disclaimer: String,
}

fn check_options(o: &LesionOptions) -> Result<(), LesionError> {
    for (what, value) in [
        ("min_volume_ml", o.min_volume_ml),
        ("ring_gap_mm", o.ring_gap_mm),
        ("ring_width_mm", o.ring_width_mm),
        ("rim_depth_mm", o.rim_depth_mm),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(LesionError::BadOption { what, value });
        }
    }
    Ok(())
}

/// Finds, measures and describes every lesion of `mask` (label `opts.lesion_label`), with
/// HU statistics from each of `phases` (all on the mask's grid).
pub fn analyse_lesions(
    mask: &Mask,
    phases: &[(Phase, &CtVolume)],
    opts: &LesionOptions,
) -> Result<LesionReport, LesionError> {
    check_options(opts)?;
    let frame = Frame::new(&mask.geometry)?;
    let dims = |d: (usize, usize, usize)| [d.0, d.1, d.2];
    if dims(mask.data.dim()) != mask.geometry.shape {
        return Err(LesionError::BadGeometry(format!(
            "the mask's voxel array is {:?} but its geometry says {:?}",
            dims(mask.data.dim()),
            mask.geometry.shape
        )));
    }
    for (n, (p, v)) in phases.iter().enumerate() {
        if v.geometry.shape != mask.geometry.shape || dims(v.data.dim()) != mask.geometry.shape {
            return Err(LesionError::GridMismatch {
                name: p.as_str().into(),
                detail: format!("shape {:?} vs mask {:?} ([z, y, x])", v.geometry.shape, mask.geometry.shape),
            });
        }
        let d = v.geometry.max_corner_distance_mm(&mask.geometry);
        if d.is_nan() || d > SAME_GRID_MM {
            return Err(LesionError::GridMismatch {
                name: p.as_str().into(),
                detail: format!("corners differ by up to {d:.3} mm"),
            });
        }
        if phases[..n].iter().any(|(q, _)| q == p) {
            return Err(LesionError::DuplicatePhase(p.as_str().into()));
        }
    }
    let voxel_ml = voxel_volume_ml(&mask.geometry);
    let min_voxels = (opts.min_volume_ml / voxel_ml - 1e-9).ceil().max(1.0) as usize;
    let (comps, dropped_small) = connected_components(mask, opts.lesion_label, min_voxels);
    let labels = std_slice(&mask.data);
    let data: Vec<(Phase, Cow<'_, [i16]>)> = phases.iter().map(|(p, v)| (*p, std_slice(&v.data))).collect();
    let mut liver = [false; 256];
    for &l in &opts.liver_labels {
        liver[l as usize] = true;
    }
    let lesions = comps
        .iter()
        .enumerate()
        .map(|(n, c)| analyse_one(n + 1, c, mask, &labels, &liver, &data, &frame, voxel_ml, opts))
        .collect();
    Ok(LesionReport { lesions, options: opts.clone(), dropped_small, disclaimer: HINT_DISCLAIMER.into() })
}

#[allow(clippy::too_many_arguments)]
fn analyse_one(
    id: usize,
    comp: &Component,
    mask: &Mask,
    labels: &[u8],
    liver: &[bool; 256],
    phases: &[(Phase, Cow<'_, [i16]>)],
    frame: &Frame,
    voxel_ml: f64,
    opts: &LesionOptions,
) -> Lesion {
    let shape = mask.geometry.shape;
    let [nz, ny, nx] = shape;
    let sp = mask.geometry.spacing_mm;
    let unravel = |v: usize| (v / (ny * nx), (v / nx) % ny, v % nx);
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let mut sum = [0.0f64; 3];
    for &v in &comp.voxels {
        let (k, j, i) = unravel(v);
        for (a, x) in [k, j, i].into_iter().enumerate() {
            lo[a] = lo[a].min(x);
            hi[a] = hi[a].max(x + 1);
        }
        sum[0] += i as f64;
        sum[1] += j as f64;
        sum[2] += k as f64;
    }
    let count = comp.voxels.len() as f64;
    let centroid = {
        let ijk = [sum[0] / count, sum[1] / count, sum[2] / count];
        let mut w = frame.origin;
        for r in 0..3 {
            w[r] += frame.m[r][0] * ijk[0] + frame.m[r][1] * ijk[1] + frame.m[r][2] * ijk[2];
        }
        w
    };
    let touches_edge = lo.contains(&0) || hi[0] == nz || hi[1] == ny || hi[2] == nx;
    let geo = measure_shape(comp, shape, frame);

    // a box around the lesion wide enough for the ring, with distances inside it
    let reach = opts.ring_gap_mm + opts.ring_width_mm;
    let n = [nz, ny, nx];
    let pad: [usize; 3] = std::array::from_fn(|a| (reach / sp[a]).ceil() as usize + 1);
    let b0: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(pad[a]));
    let b1: [usize; 3] = std::array::from_fn(|a| (hi[a] + pad[a]).min(n[a]));
    let mut inside = Array3::from_elem((b1[0] - b0[0], b1[1] - b0[1], b1[2] - b0[2]), false);
    for &v in &comp.voxels {
        let (k, j, i) = unravel(v);
        inside[[k - b0[0], j - b0[1], i - b0[2]]] = true;
    }
    // distance of outside voxels to the lesion, and of lesion voxels to the outside
    let to_lesion = squared_distance_mm2(&inside, sp);
    let outside = inside.map(|&b| !b);
    let to_outside = squared_distance_mm2(&outside, sp);
    let rim2 = (opts.rim_depth_mm * opts.rim_depth_mm) as f32;
    let (g2, r2) = ((opts.ring_gap_mm * opts.ring_gap_mm) as f32, (reach * reach) as f32);
    let mut core_idx = Vec::new();
    let mut rim_idx = Vec::new();
    let mut ring_idx = Vec::new();
    for ((k, j, i), &d) in to_lesion.indexed_iter() {
        let v = ((k + b0[0]) * ny + j + b0[1]) * nx + i + b0[2];
        if inside[[k, j, i]] {
            // lesion voxels at the edge of the volume may continue beyond it: the border
            // counts as outside for the rim only through the voxels we can see
            if to_outside[[k, j, i]] <= rim2 {
                rim_idx.push(v);
            } else {
                core_idx.push(v);
            }
        } else if d > g2 && d <= r2 && liver[labels[v] as usize] {
            ring_idx.push(v);
        }
    }
    let stats = |data: &[i16], idx: &[usize]| {
        let mut vals: Vec<f32> = idx.iter().map(|&v| data[v] as f32).collect();
        HuStats::of(&mut vals)
    };
    let mut per_phase: Vec<PhaseStats> = phases
        .iter()
        .filter_map(|(p, data)| {
            let lesion = stats(data, &comp.voxels)?;
            let rim = stats(data, &rim_idx).unwrap_or_else(|| lesion.clone());
            let core = stats(data, &core_idx);
            let ring = stats(data, &ring_idx);
            let minus = ring.as_ref().map(|r| lesion.mean_hu - r.mean_hu);
            let ratio = ring.as_ref().filter(|r| r.mean_hu.abs() >= 10.0).map(|r| lesion.mean_hu / r.mean_hu);
            Some(PhaseStats {
                phase: *p,
                lesion,
                core,
                rim,
                liver_ring: ring,
                lesion_minus_liver_hu: minus,
                lesion_to_liver_ratio: ratio,
                lesion_enhancement_hu: None,
                liver_enhancement_hu: None,
            })
        })
        .collect();
    if let Some(nc) = per_phase.iter().find(|s| s.phase == Phase::NonContrast).cloned() {
        for s in per_phase.iter_mut().filter(|s| s.phase != Phase::NonContrast) {
            s.lesion_enhancement_hu = Some(s.lesion.mean_hu - nc.lesion.mean_hu);
            s.liver_enhancement_hu = match (&s.liver_ring, &nc.liver_ring) {
                (Some(a), Some(b)) => Some(a.mean_hu - b.mean_hu),
                _ => None,
            };
        }
    }
    // phases in acquisition order
    per_phase.sort_by_key(|s| s.phase);
    let pattern = pattern_hint(&per_phase);
    Lesion {
        id,
        voxel_count: comp.voxels.len(),
        volume_ml: count * voxel_ml,
        centroid_mm: centroid,
        recist: geo.recist,
        longest_diameter_3d_mm: geo.longest_3d.0,
        longest_diameter_3d_ends_mm: [geo.longest_3d.1, geo.longest_3d.2],
        touches_edge,
        bounding_box: [[lo[0], hi[0]], [lo[1], hi[1]], [lo[2], hi[2]]],
        phases: per_phase,
        pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{norm, sub, Geometry, Volume};

    /// A ball of radius `r_mm` at `c_mm` rasterised (voxel centres) on `g`, label 2, in a
    /// liver (label 1) filling the rest.
    fn ball(g: &Geometry, c_mm: Lps, r_mm: f64) -> Mask {
        let mut m = Volume::filled(g.clone(), 1u8);
        for ((k, j, i), v) in m.data.indexed_iter_mut() {
            if norm(sub(g.index_to_world([i as f64, j as f64, k as f64]), c_mm)) <= r_mm {
                *v = 2;
            }
        }
        m
    }

    #[test]
    fn ball_measurements_on_an_oblique_flipped_grid() {
        // rotated 30° in-plane and with x flipped: distances must go through direction
        let (c30, s30) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let g = Geometry {
            shape: [30, 50, 50],
            spacing_mm: [1.5, 0.8, 0.8],
            origin_mm: [10.0, -20.0, -30.0],
            direction: [[-c30, s30, 0.0], [s30, c30, 0.0], [0.0, 0.0, 1.0]],
        };
        let centre = g.index_to_world([24.3, 25.1, 14.6]);
        let r = 12.0;
        let m = ball(&g, centre, r);
        let rep = analyse_lesions(&m, &[], &LesionOptions::default()).unwrap();
        assert_eq!(rep.lesions.len(), 1);
        let l = &rep.lesions[0];
        let voxel = 1.5;
        assert!((l.longest_diameter_3d_mm - 2.0 * r).abs() <= voxel, "3-D {}", l.longest_diameter_3d_mm);
        assert!((l.recist.long_axis_mm - 2.0 * r).abs() <= 0.8 + 1e-9, "long {}", l.recist.long_axis_mm);
        assert!((l.recist.short_axis_mm - 2.0 * r).abs() <= 0.8 * 1.5, "short {}", l.recist.short_axis_mm);
        assert!(norm(sub(l.centroid_mm, centre)) < 0.5, "centroid {:?} vs {centre:?}", l.centroid_mm);
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * r.powi(3) / 1000.0;
        assert!((l.volume_ml / sphere - 1.0).abs() < 0.03, "{} ml vs {sphere}", l.volume_ml);
        assert!(!l.touches_edge);
        // no phases: no statistics, pattern indeterminate
        assert!(l.phases.is_empty());
        assert_eq!(l.pattern.kind, PatternKind::Indeterminate);
    }

    #[test]
    fn recist_of_an_ellipse_finds_both_axes() {
        // an elliptic cylinder: 40 mm along x, 20 mm along y, 4 slices
        let g = Geometry::axis_aligned([4, 40, 60], [2.0, 1.0, 1.0], [0.0; 3]);
        let mut m = Volume::filled(g.clone(), 1u8);
        for ((_, j, i), v) in m.data.indexed_iter_mut() {
            let (x, y) = (i as f64 - 30.0, j as f64 - 20.0);
            if (x / 20.0).powi(2) + (y / 10.0).powi(2) <= 1.0 {
                *v = 2;
            }
        }
        let rep = analyse_lesions(&m, &[], &LesionOptions::default()).unwrap();
        let r = &rep.lesions[0].recist;
        assert!((r.long_axis_mm - 40.0).abs() <= 1.0, "{r:?}");
        assert!((r.short_axis_mm - 20.0).abs() <= 1.0, "{r:?}");
        // the long axis runs along x
        let d = sub(r.long_axis_ends_mm[1], r.long_axis_ends_mm[0]);
        assert!(d[0].abs() > 10.0 * d[1].abs(), "{d:?}");
        // the slab spans all 4 slices, and slices are the edge of the volume
        assert!(rep.lesions[0].touches_edge);
        assert!((rep.lesions[0].longest_diameter_3d_mm - (40.0f64.powi(2) + 6.0f64.powi(2)).sqrt()).abs() <= 2.0);
    }

    #[test]
    fn hu_stats_percentiles() {
        let mut v: Vec<f32> = (0..=100).map(|x| x as f32).collect();
        let s = HuStats::of(&mut v).unwrap();
        assert_eq!((s.median_hu, s.p10_hu, s.p90_hu, s.min_hu, s.max_hu), (50.0, 10.0, 90.0, 0.0, 100.0));
        assert!((s.mean_hu - 50.0).abs() < 1e-12);
        assert!(HuStats::of(&mut []).is_none());
    }

    #[test]
    fn bad_input_is_an_error() {
        let g = Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]);
        let m = Volume::filled(g.clone(), 0u8);
        let other = Volume::filled(Geometry::axis_aligned([4, 4, 5], [1.0; 3], [0.0; 3]), 0i16);
        assert!(matches!(
            analyse_lesions(&m, &[(Phase::Arterial, &other)], &LesionOptions::default()),
            Err(LesionError::GridMismatch { .. })
        ));
        let shifted = Volume::filled(Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0, 0.0, 3.0]), 0i16);
        assert!(matches!(
            analyse_lesions(&m, &[(Phase::Arterial, &shifted)], &LesionOptions::default()),
            Err(LesionError::GridMismatch { .. })
        ));
        let same = Volume::filled(g.clone(), 0i16);
        assert!(matches!(
            analyse_lesions(&m, &[(Phase::Arterial, &same), (Phase::Arterial, &same)], &LesionOptions::default()),
            Err(LesionError::DuplicatePhase(_))
        ));
        let bad = LesionOptions { ring_width_mm: f64::NAN, ..Default::default() };
        assert!(matches!(analyse_lesions(&m, &[], &bad), Err(LesionError::BadOption { .. })));
        let mut flat = m.clone();
        flat.geometry.spacing_mm[0] = 0.0;
        assert!(matches!(analyse_lesions(&flat, &[], &LesionOptions::default()), Err(LesionError::BadGeometry(_))));
        // a voxel array that disagrees with its geometry
        let broken = Volume { data: Array3::<u8>::zeros((2, 2, 2)), geometry: g.clone() };
        assert!(matches!(analyse_lesions(&broken, &[], &LesionOptions::default()), Err(LesionError::BadGeometry(_))));
        let broken_phase = Volume { data: Array3::<i16>::zeros((2, 2, 2)), geometry: g.clone() };
        assert!(matches!(
            analyse_lesions(&m, &[(Phase::Delayed, &broken_phase)], &LesionOptions::default()),
            Err(LesionError::GridMismatch { .. })
        ));
        // no lesion at all is not an error: an empty report
        assert!(analyse_lesions(&m, &[(Phase::Arterial, &same)], &LesionOptions::default())
            .unwrap()
            .lesions
            .is_empty());
    }
}
