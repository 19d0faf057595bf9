//! The procedural tri-phase liver study: a deterministic synthetic abdomen CT (arterial,
//! portal venous, delayed) with known organ labels, four liver lesions of known kind, and a
//! known breathing deformation per moving phase. It exists so that every other module
//! (loading, phase naming, registration, segmentation, lesion analysis, the app) can be
//! run and tested end to end without patient data, and checked against ground truth.
//!
//! Anatomy is analytic (ellipsoids, superellipses, tubes) in LPS mm, so content does not
//! depend on the grid: a coarse grid samples the same body as a fine one. The three phases
//! sit on different grids (slice count, origin, pixel size), as real series do, so anything
//! linking them has to go through world coordinates.
//!
//! Deformation: each moving phase (arterial, delayed) shows the anatomy displaced by a
//! smooth field `v`: `moving(y) = anatomy(y + v(y))`. The ground-truth field in the
//! project's ITK convention, `moving(x + u(x)) ≈ fixed(x)` on the portal venous grid, is
//! then the solution of `u(x) = −v(x + u(x))`, found by fixed-point iteration.
//!
//! Owns: the anatomy and contrast model, `make_phantom`, and `write_demo_study` (DICOM via
//! `io::dicom_write`, masks and fields via `io::nifti`).

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use crate::io::dicom_write::{self, splitmix64, uid_from, SeriesMeta, WriteError};
use crate::io::nifti::{self, NiftiError};
use crate::io::phase::Phase;
use crate::volume::{CtVolume, Field, Geometry, Lps, Mask, Volume};

// The phantom renders the three contrast phases, `Phase::CONTRAST_ORDER`, and nothing else.

/// As a scanner would put it in a SeriesDescription.
fn upper_words(phase: Phase) -> &'static str {
    match phase {
        Phase::NonContrast => "NON CONTRAST",
        Phase::Arterial => "ARTERIAL",
        Phase::PortalVenous => "PORTAL VENOUS",
        Phase::Delayed => "DELAYED",
        Phase::Unknown => "UNKNOWN",
    }
}

/// AcquisitionTime (DICOM TM): typical delays after injection at 10:00:00.
/// Only called from `make_phantom`, which iterates `Phase::CONTRAST_ORDER`.
fn acquisition_time(phase: Phase) -> &'static str {
    match phase {
        Phase::Arterial => "100025",
        Phase::PortalVenous => "100105",
        Phase::Delayed => "100330",
        Phase::NonContrast | Phase::Unknown => unreachable!("the phantom renders contrast phases only"),
    }
}

/// Noise seed of a phase: 0, 1, 2 for the contrast phases (the values the phantom has
/// always used, so output is unchanged), distinct values for the others.
fn noise_index(phase: Phase) -> u64 {
    match phase {
        Phase::Arterial => 0,
        Phase::PortalVenous => 1,
        Phase::Delayed => 2,
        Phase::NonContrast => 3,
        Phase::Unknown => 4,
    }
}

/// The grids and settings of a phantom. Serde-friendly so the CLI can take it from a file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhantomOptions {
    /// The fixed grid: labels, anatomy and true fields live here.
    pub portal_venous_grid: Geometry,
    pub arterial_grid: Geometry,
    pub delayed_grid: Geometry,
    /// Noise seed; the same seed gives byte-identical volumes on any thread count.
    pub seed: u64,
    /// Standard deviation of the Gaussian image noise in HU.
    pub noise_sigma_hu: f32,
    /// Multiplies the breathing displacement (1 ⇒ peak about 7 mm; 0 ⇒ phases aligned).
    pub breathing_scale: f64,
    /// Samples per voxel along `[z, y, x]`, averaged: partial-volume edges. Along z it
    /// models the slice thickness, the dominant blur of axial CT; in-plane sampling costs
    /// as much again per factor, so the clinical-size default samples only z twice.
    pub supersample: [usize; 3],
    /// Which visit of the same patient: the baseline, or the follow-up after TACE (moved on
    /// the table, breathing differently, lesions changed; see [`PhantomOptions::follow_up`]).
    #[serde(default)]
    pub visit: Visit,
}

/// The visit a phantom study shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visit {
    #[default]
    Baseline,
    /// Two months after TACE of the HCC: the HCC has shrunk to a lipiodol core, necrosis
    /// and a viable rim; the hemangioma is gone (as if resected); a new HCC has appeared;
    /// cyst and metastasis unchanged. The patient lies shifted and turned
    /// ([`follow_up_pose`]) and breathes less deeply.
    FollowUp,
}

impl Default for PhantomOptions {
    /// A clinical-size study: 256 × 256 × 80 at 1.5 × 1.5 × 2.5 mm over x, y ∈ [−192, 192]
    /// and z ∈ [−300, −102.5] mm; arterial with 76 slices shifted 5 mm in z, delayed with
    /// 1.6 mm pixels.
    fn default() -> Self {
        PhantomOptions {
            portal_venous_grid: Geometry::axis_aligned([80, 256, 256], [2.5, 1.5, 1.5], [-191.25, -191.25, -300.0]),
            arterial_grid: Geometry::axis_aligned([76, 256, 256], [2.5, 1.5, 1.5], [-191.25, -191.25, -295.0]),
            delayed_grid: Geometry::axis_aligned([80, 256, 256], [2.5, 1.6, 1.6], [-203.2, -203.2, -300.0]),
            seed: 48,
            noise_sigma_hu: 8.0,
            breathing_scale: 1.0,
            supersample: [2, 1, 1],
            visit: Visit::Baseline,
        }
    }
}

impl PhantomOptions {
    /// The same body on a coarse grid (64 × 64 × 24 at 6 × 6 × 8 mm) for fast tests.
    pub fn small() -> Self {
        PhantomOptions {
            portal_venous_grid: Geometry::axis_aligned([24, 64, 64], [8.0, 6.0, 6.0], [-189.0, -189.0, -296.0]),
            arterial_grid: Geometry::axis_aligned([22, 64, 64], [8.0, 6.0, 6.0], [-189.0, -189.0, -291.0]),
            delayed_grid: Geometry::axis_aligned([24, 60, 60], [8.0, 6.4, 6.4], [-188.8, -188.8, -296.0]),
            seed: 48,
            noise_sigma_hu: 8.0,
            breathing_scale: 1.0,
            // coarse pixels: without in-plane averaging the small lesions alias badly
            supersample: [2, 2, 2],
            visit: Visit::Baseline,
        }
    }

    /// The follow-up visit of the same patient on the same grids as `self`, with its own
    /// noise and shallower breathing.
    pub fn follow_up(&self) -> Self {
        PhantomOptions {
            visit: Visit::FollowUp,
            seed: self.seed + 1,
            breathing_scale: self.breathing_scale * 0.6,
            ..self.clone()
        }
    }

    fn lesions(&self) -> &'static [LesionSpec] {
        match self.visit {
            Visit::Baseline => &LESIONS,
            Visit::FollowUp => &FOLLOW_UP_LESIONS,
        }
    }

    /// Scanner point of this visit → reference anatomy point.
    fn to_anatomy(&self, y: Lps) -> Lps {
        match self.visit {
            Visit::Baseline => y,
            Visit::FollowUp => follow_up_pose().apply(y),
        }
    }

    /// Only called for `Phase::CONTRAST_ORDER` (from `make_phantom` and `render_phase`).
    fn grid(&self, phase: Phase) -> &Geometry {
        match phase {
            Phase::Arterial => &self.arterial_grid,
            Phase::PortalVenous => &self.portal_venous_grid,
            Phase::Delayed => &self.delayed_grid,
            Phase::NonContrast | Phase::Unknown => unreachable!("the phantom renders contrast phases only"),
        }
    }
}

/// One contrast phase as a scanner would deliver it.
#[derive(Clone, Debug)]
pub struct PhantomPhase {
    pub name: Phase,
    pub volume: CtVolume,
    /// SeriesDescription, e.g. "LIVER ARTERIAL 2.5mm".
    pub description: String,
    /// AcquisitionTime as DICOM TM (`HHMMSS`).
    pub acquisition_time: String,
}

/// What kind of liver lesion, with the enhancement pattern the phantom gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionKind {
    /// Arterial hyper-enhancement, washout in portal venous and delayed, delayed capsule.
    Hcc,
    /// Peripheral nodular arterial enhancement, centripetal fill-in, iso to blood in delayed.
    Hemangioma,
    /// Water density in every phase, sharp edge.
    Cyst,
    /// Hypovascular centre in every phase with an arterial rim.
    Metastasis,
    /// An HCC after TACE: dense lipiodol core (≥ 300 HU in every phase), necrosis around
    /// it, and a rim of viable tumour with the HCC pattern.
    TreatedHcc,
}

/// Ground truth for one lesion.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionTruth {
    pub kind: LesionKind,
    pub centre_mm: Lps,
    pub radius_mm: f64,
    /// From the voxel count of this lesion in the label mask on the portal venous grid.
    pub volume_ml: f64,
    /// Viable, necrotic and lipiodol volumes (mL, voxel counts of the parts mask) of a
    /// treated lesion; `None` for untreated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_ml: Option<[f64; 3]>,
}

/// The whole synthetic study with its ground truth.
#[derive(Clone, Debug)]
pub struct Phantom {
    /// Arterial, portal venous, delayed.
    pub phases: Vec<PhantomPhase>,
    /// LiTS convention on the portal venous grid: 0 background, 1 liver (with the portal
    /// and hepatic vein branches inside it, as LiTS annotators draw it), 2 tumour.
    pub labels: Mask,
    /// Organ labels on the portal venous grid; see the `ANATOMY_*` constants.
    pub anatomy: Mask,
    pub lesions: Vec<LesionTruth>,
    /// `u` on the portal venous grid for each moving phase (arterial, delayed).
    pub true_fields: Vec<(Phase, Field)>,
    /// Treated-lesion parts on the portal venous grid (follow-up visit only): 0 elsewhere,
    /// then `response::VIABLE`, `NECROTIC`, `LIPIODOL`.
    pub parts: Option<Mask>,
}

impl Phantom {
    pub fn phase(&self, name: Phase) -> Option<&PhantomPhase> {
        self.phases.iter().find(|p| p.name == name)
    }

    pub fn true_field(&self, name: Phase) -> Option<&Field> {
        self.true_fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }
}

pub const ANATOMY_LIVER: u8 = 1;
pub const ANATOMY_LESION: u8 = 2;
pub const ANATOMY_SPLEEN: u8 = 3;
pub const ANATOMY_RIGHT_KIDNEY: u8 = 4;
pub const ANATOMY_LEFT_KIDNEY: u8 = 5;
pub const ANATOMY_AORTA: u8 = 6;
pub const ANATOMY_IVC: u8 = 7;
pub const ANATOMY_PORTAL_VEIN: u8 = 8;
pub const ANATOMY_HEPATIC_VEINS: u8 = 9;
pub const ANATOMY_BONE: u8 = 10;
pub const ANATOMY_BODY: u8 = 11;

/// Anatomy label names, indexed by label value.
pub const ANATOMY_NAMES: [&str; 12] = [
    "background",
    "liver",
    "lesion",
    "spleen",
    "right kidney",
    "left kidney",
    "aorta",
    "inferior vena cava",
    "portal vein",
    "hepatic veins",
    "bone",
    "body",
];

// ---------------------------------------------------------------------------------------
// Anatomy (LPS mm: +x patient left, +y posterior, +z superior)
// ---------------------------------------------------------------------------------------

struct LesionSpec {
    kind: LesionKind,
    centre: Lps,
    radius: f64,
}

/// Placed in liver parenchyma at least a few mm from the surface and from every vessel
/// (checked by `lesions_sit_in_parenchyma`), so their labels are whole spheres.
const LESIONS: [LesionSpec; 4] = [
    LesionSpec { kind: LesionKind::Hcc, centre: [-95.0, 10.0, -210.0], radius: 17.0 },
    LesionSpec { kind: LesionKind::Hemangioma, centre: [-80.0, -30.0, -160.0], radius: 13.0 },
    LesionSpec { kind: LesionKind::Cyst, centre: [-110.0, -15.0, -180.0], radius: 10.0 },
    LesionSpec { kind: LesionKind::Metastasis, centre: [30.0, -40.0, -162.0], radius: 11.0 },
];

/// Radii (mm) inside which a treated HCC is lipiodol, then necrosis; viable beyond.
const TREATED_LIPIODOL_R: f64 = 5.0;
const TREATED_NECROTIC_R: f64 = 8.0;

/// The follow-up: the HCC (17 mm) treated down to 12 mm, the hemangioma gone, cyst and
/// metastasis as before, a new 8 mm HCC in the right lobe (clear of vessels and of the old
/// HCC; checked by `lesions_sit_in_parenchyma`).
const FOLLOW_UP_LESIONS: [LesionSpec; 4] = [
    LesionSpec { kind: LesionKind::TreatedHcc, centre: [-95.0, 10.0, -210.0], radius: 12.0 },
    LesionSpec { kind: LesionKind::Cyst, centre: [-110.0, -15.0, -180.0], radius: 10.0 },
    LesionSpec { kind: LesionKind::Metastasis, centre: [30.0, -40.0, -162.0], radius: 11.0 },
    LesionSpec { kind: LesionKind::Hcc, centre: [-100.0, 30.0, -195.0], radius: 8.0 },
];

/// How the patient lies at the follow-up: follow-up scanner point → baseline scanner point
/// (turned 4° about the body axis and 2° about left-right, shifted 15, −10, 20 mm). The
/// truth a registration of the follow-up onto the baseline should find is its inverse.
pub fn follow_up_pose() -> crate::register::affine::AffineTransform {
    crate::register::affine::AffineTransform::rigid(
        [2f64.to_radians(), 0.0, 4f64.to_radians()],
        [15.0, -10.0, 20.0],
        [-40.0, 0.0, -190.0],
    )
}

/// A tube between two points with linearly varying radius.
struct Tube {
    a: Lps,
    b: Lps,
    ra: f64,
    rb: f64,
}

const fn tube(a: Lps, b: Lps, ra: f64, rb: f64) -> Tube {
    Tube { a, b, ra, rb }
}

const AORTA: [Tube; 1] = [tube([18.0, 42.0, -400.0], [18.0, 42.0, 0.0], 12.0, 12.0)];
const IVC: [Tube; 1] = [tube([-22.0, 38.0, -400.0], [-22.0, 38.0, 0.0], 11.0, 11.0)];
const PORTAL: [Tube; 4] = [
    // splenic/mesenteric confluence to the hilum, then right and left branches
    tube([-5.0, 20.0, -245.0], [-40.0, 15.0, -195.0], 8.0, 7.5),
    tube([-40.0, 15.0, -195.0], [-95.0, 8.0, -182.0], 6.0, 4.0),
    tube([-40.0, 15.0, -195.0], [-10.0, -25.0, -170.0], 5.0, 3.5),
    tube([-5.0, 20.0, -245.0], [70.0, 35.0, -215.0], 5.0, 5.0),
];
const HEPATIC: [Tube; 3] = [
    // right, middle, left hepatic veins converging on the IVC below the diaphragm
    tube([-22.0, 36.0, -135.0], [-108.0, 18.0, -185.0], 5.5, 3.5),
    tube([-22.0, 36.0, -135.0], [-55.0, -38.0, -188.0], 5.0, 3.0),
    tube([-22.0, 36.0, -135.0], [15.0, -45.0, -150.0], 4.5, 3.0),
];

/// Tissue classes; HU per phase come from `hu`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tissue {
    Air,
    SubcutFat,
    Muscle,
    Fat,
    Bowel,
    Bone(f32),
    Disc,
    Canal,
    Aorta,
    Ivc,
    Portal,
    Hepatic,
    Liver,
    Spleen {
        arc: f32,
    },
    KidneyCortex {
        right: bool,
    },
    KidneyMedulla {
        right: bool,
    },
    RenalSinus {
        right: bool,
    },
    StomachWall,
    StomachFluid,
    Gas,
    Lung,
    /// `rel` = distance from the centre / radius; `nodule` ∈ [0, 1] angular pattern.
    Lesion {
        index: usize,
        rel: f32,
        nodule: f32,
    },
}

#[inline]
fn sq(v: f64) -> f64 {
    v * v
}

/// Normalised ellipsoid radius: < 1 inside.
#[inline]
fn ell(q: Lps, c: Lps, s: Lps) -> f64 {
    (sq((q[0] - c[0]) / s[0]) + sq((q[1] - c[1]) / s[1]) + sq((q[2] - c[2]) / s[2])).sqrt()
}

/// Normalised 2-D (axial) superellipse radius: < 1 inside.
#[inline]
fn superellipse(x: f64, y: f64, a: f64, b: f64, n: f64) -> f64 {
    ((x / a).abs().powf(n) + (y / b).abs().powf(n)).powf(1.0 / n)
}

/// Distance from `q` to the tube's axis minus its radius there (< 0 inside).
fn tube_sdf(q: Lps, t: &Tube) -> f64 {
    let ab = [t.b[0] - t.a[0], t.b[1] - t.a[1], t.b[2] - t.a[2]];
    let aq = [q[0] - t.a[0], q[1] - t.a[1], q[2] - t.a[2]];
    let len2 = sq(ab[0]) + sq(ab[1]) + sq(ab[2]);
    let s = ((aq[0] * ab[0] + aq[1] * ab[1] + aq[2] * ab[2]) / len2).clamp(0.0, 1.0);
    let d = (sq(aq[0] - s * ab[0]) + sq(aq[1] - s * ab[1]) + sq(aq[2] - s * ab[2])).sqrt();
    d - (t.ra + (t.rb - t.ra) * s)
}

fn in_tubes(q: Lps, tubes: &[Tube]) -> bool {
    tubes.iter().any(|t| tube_sdf(q, t) < 0.0)
}

/// Polynomial smooth minimum: a union of two shapes with a fillet of width `k` mm.
fn smin(a: f64, b: f64, k: f64) -> f64 {
    let h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0);
    b + (a - b) * h - k * h * (1.0 - h)
}

/// Approximate signed distance (mm) to the liver surface: a right lobe and a left lobe
/// joined smoothly, with a gentle lobulation so its outline is not a textbook ellipse.
fn liver_sdf(q: Lps) -> f64 {
    const RIGHT_C: Lps = [-70.0, -2.0, -180.0];
    const RIGHT_S: Lps = [68.0, 72.0, 62.0];
    const LEFT_C: Lps = [10.0, -35.0, -160.0];
    const LEFT_S: Lps = [55.0, 35.0, 30.0];
    let right = (ell(q, RIGHT_C, RIGHT_S) - 1.0) * 62.0;
    let left = (ell(q, LEFT_C, LEFT_S) - 1.0) * 30.0;
    let lobulation = 2.5 * (0.06 * q[0] + 1.0).sin() * (0.05 * q[1] + 2.0).sin() * (0.07 * q[2] + 0.5).sin();
    smin(right, left, 12.0) + lobulation
}

const BODY_YC: f64 = 5.0;
const BODY_A: f64 = 165.0;
const BODY_B: f64 = 125.0;
const BODY_N: f64 = 2.5;

/// What tissue is at reference-frame point `q`. Structures are tested in priority order
/// (bone and great vessels over organs over the body wall), which is how overlaps of
/// the analytic shapes are resolved.
fn classify(q: Lps, lesions: &[LesionSpec]) -> Tissue {
    let [x, y, z] = q;
    let yb = y - BODY_YC;
    let body = superellipse(x, yb, BODY_A, BODY_B, BODY_N);
    if body > 1.0 {
        return Tissue::Air;
    }

    // Spine: vertebral body with cortical shell and discs, canal, posterior arch.
    let vb = ((x / 22.0).powi(2) + ((y - 62.0) / 18.0).powi(2)).sqrt();
    if vb < 1.0 {
        if (z + 300.0).rem_euclid(32.0) < 6.0 {
            return Tissue::Disc;
        }
        return if vb > 0.86 { Tissue::Bone(700.0) } else { Tissue::Bone(250.0) };
    }
    let rc = (x * x + (y - 92.0) * (y - 92.0)).sqrt();
    if rc < 9.0 {
        return Tissue::Canal;
    }
    let arch = rc < 15.0
        || (x.abs() < 4.0 && (92.0..126.0).contains(&y))
        || ((y - 90.0).abs() < 4.0 && x.abs() < 40.0 && (z + 300.0).rem_euclid(32.0) > 10.0);
    if arch && y > 70.0 {
        return Tissue::Bone(450.0);
    }

    if in_tubes(q, &AORTA) {
        return Tissue::Aorta;
    }
    if in_tubes(q, &IVC) {
        return Tissue::Ivc;
    }

    for (c, right) in [([-75.0, 65.0, -245.0], true), ([78.0, 62.0, -232.0], false)] {
        let e = ell(q, c, [28.0, 24.0, 55.0]);
        if e < 1.0 {
            let medial = if right { x > c[0] + 4.0 } else { x < c[0] - 4.0 };
            return if e > 0.78 {
                Tissue::KidneyCortex { right }
            } else if e < 0.55 && medial {
                Tissue::RenalSinus { right }
            } else {
                Tissue::KidneyMedulla { right }
            };
        }
    }

    for (index, l) in lesions.iter().enumerate() {
        let d = [x - l.centre[0], y - l.centre[1], z - l.centre[2]];
        let r = (sq(d[0]) + sq(d[1]) + sq(d[2])).sqrt();
        if r < l.radius {
            return Tissue::Lesion { index, rel: (r / l.radius) as f32, nodule: nodule_pattern(d, r) };
        }
    }

    let liver = liver_sdf(q);
    // hepatic veins end a little outside the liver only where they join the IVC
    if liver < 12.0 && in_tubes(q, &HEPATIC) {
        return Tissue::Hepatic;
    }
    if in_tubes(q, &PORTAL) {
        return Tissue::Portal;
    }
    if liver < 0.0 {
        return Tissue::Liver;
    }

    if ell(q, [88.0, 35.0, -165.0], [28.0, 45.0, 55.0]) < 1.0 {
        let arc = (0.35 * (x + y) + 2.0 * (0.1 * z).sin()).sin() as f32;
        return Tissue::Spleen { arc };
    }

    let st = ell(q, [72.0, -22.0, -150.0], [35.0, 30.0, 40.0]);
    if st < 1.0 {
        // supine: swallowed gas floats anteriorly (−y)
        return if st > 0.9 {
            Tissue::StomachWall
        } else if y < -37.0 {
            Tissue::Gas
        } else {
            Tissue::StomachFluid
        };
    }

    // Body wall: subcutaneous fat, then a muscle layer with ribs in it.
    let fat_inset = superellipse(x, yb, BODY_A - 15.0, BODY_B - 15.0, BODY_N);
    if fat_inset > 1.0 {
        return Tissue::SubcutFat;
    }
    let muscle_inset = superellipse(x, yb, BODY_A - 28.0, BODY_B - 28.0, BODY_N);
    if muscle_inset > 1.0 {
        let rib_band = superellipse(x, yb, BODY_A - 18.0, BODY_B - 18.0, BODY_N) < 1.0
            && superellipse(x, yb, BODY_A - 25.0, BODY_B - 25.0, BODY_N) > 1.0;
        // ribs slope down anteriorly and stop short of the anterior midline
        if rib_band && z > -250.0 && (yb > -60.0 || x.abs() > 60.0) && (z + 0.3 * y).rem_euclid(30.0) < 9.0 {
            return Tissue::Bone(450.0);
        }
        return Tissue::Muscle;
    }
    // Lung bases behind and above the liver dome and spleen (they move with breathing,
    // which makes the diaphragm visible in the difference of phases).
    for c in [[-85.0, 30.0, -55.0], [85.0, 30.0, -70.0]] {
        if ell(q, c, [70.0, 75.0, 80.0]) < 1.0 {
            return Tissue::Lung;
        }
    }
    for cx in [-38.0, 38.0] {
        if sq((x - cx) / 24.0) + sq((y - 100.0) / 20.0) < 1.0 {
            return Tissue::Muscle;
        }
        if z < -215.0 && sq((x - cx * 1.1) / 15.0) + sq((y - 62.0) / 15.0) < 1.0 {
            return Tissue::Muscle; // psoas
        }
    }
    // Mesentery and bowel: a smooth pseudo-random mix of fat and soft tissue.
    let s = (0.07 * x + 0.3 * (0.05 * z).sin()).sin() * (0.06 * y + 1.3).sin() + 0.5 * (0.045 * z + 0.04 * x).sin();
    if s > 0.2 {
        Tissue::Fat
    } else {
        Tissue::Bowel
    }
}

/// Peripheral nodules of a hemangioma: 1 near one of a few fixed directions, 0 between.
fn nodule_pattern(d: Lps, r: f64) -> f32 {
    const DIRS: [Lps; 6] = [
        [0.8, 0.6, 0.0],
        [-0.6, 0.8, 0.0],
        [0.0, -0.8, 0.6],
        [-0.7, -0.3, -0.648],
        [0.3, 0.0, -0.954],
        [-0.3, 0.2, 0.933],
    ];
    if r < 1e-9 {
        return 0.0;
    }
    let best = DIRS.iter().map(|n| (d[0] * n[0] + d[1] * n[1] + d[2] * n[2]) / r).fold(-1.0, f64::max);
    (((best - 0.85) / 0.1).clamp(0.0, 1.0)) as f32
}

/// Hounsfield units of a tissue in a phase (before noise). Values are typical clinical
/// means for a late-arterial / portal venous (70 s) / delayed (3.5 min) protocol.
fn hu(t: Tissue, phase: Phase, lesions: &[LesionSpec]) -> f32 {
    use Phase::*;
    // Only reached from `render_phase` (CONTRAST_ORDER phases) and tests with those phases.
    let p = |a: f32, pv: f32, d: f32| match phase {
        Arterial => a,
        PortalVenous => pv,
        Delayed => d,
        NonContrast | Unknown => unreachable!("the phantom renders contrast phases only"),
    };
    match t {
        Tissue::Air | Tissue::Gas => -1000.0,
        Tissue::Lung => -850.0,
        Tissue::SubcutFat => -105.0,
        Tissue::Fat => -95.0,
        Tissue::Muscle => p(50.0, 58.0, 55.0),
        Tissue::Bowel => p(35.0, 55.0, 48.0),
        Tissue::Bone(v) => v,
        Tissue::Disc => 85.0,
        Tissue::Canal => 12.0,
        Tissue::Aorta => p(300.0, 170.0, 120.0),
        Tissue::Ivc => p(90.0, 150.0, 115.0),
        Tissue::Portal => p(130.0, 190.0, 130.0),
        Tissue::Hepatic => p(60.0, 170.0, 125.0),
        Tissue::Liver => p(75.0, 110.0, 90.0),
        // arciform (zebra) enhancement in the arterial phase, homogeneous later
        Tissue::Spleen { arc } => p(125.0 + 40.0 * arc, 120.0, 95.0),
        Tissue::KidneyCortex { .. } => p(190.0, 170.0, 130.0),
        Tissue::KidneyMedulla { .. } => p(70.0, 155.0, 135.0),
        Tissue::RenalSinus { .. } => -60.0,
        Tissue::StomachWall => p(70.0, 95.0, 80.0),
        Tissue::StomachFluid => 10.0,
        Tissue::Lesion { index, rel, nodule } => {
            lesion_hu(lesions[index].kind, lesions[index].radius as f32, rel, nodule, phase)
        }
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Only reached through `hu`, i.e. for `Phase::CONTRAST_ORDER` phases.
fn lesion_hu(kind: LesionKind, radius_mm: f32, rel: f32, nodule: f32, phase: Phase) -> f32 {
    use Phase::*;
    // depth below the lesion surface in mm
    let depth = (1.0 - rel) * radius_mm;
    match kind {
        LesionKind::Hcc => {
            let capsule = depth < 2.0;
            match (phase, capsule) {
                (Arterial, false) => 135.0,
                (Arterial, true) => 95.0,
                (PortalVenous, false) => 92.0,
                (PortalVenous, true) => 108.0,
                (Delayed, false) => 70.0,
                (Delayed, true) => 118.0,
                (NonContrast | Unknown, _) => unreachable!("the phantom renders contrast phases only"),
            }
        }
        LesionKind::Hemangioma => match phase {
            // nodules in the outer third reach blood-pool density
            Arterial => 50.0 + 220.0 * nodule * smoothstep(0.6, 0.75, rel),
            // enhancement has filled in from the periphery to about half the radius
            PortalVenous => 60.0 + 110.0 * smoothstep(0.35, 0.55, rel.max(nodule * rel * 1.5)),
            Delayed => 120.0,
            NonContrast | Unknown => unreachable!("the phantom renders contrast phases only"),
        },
        LesionKind::Cyst => 5.0,
        LesionKind::TreatedHcc => {
            let r = rel * radius_mm;
            if r < TREATED_LIPIODOL_R as f32 {
                620.0
            } else if r < TREATED_NECROTIC_R as f32 {
                match phase {
                    Arterial => 22.0,
                    PortalVenous => 26.0,
                    _ => 28.0,
                }
            } else {
                lesion_hu(LesionKind::Hcc, radius_mm, 0.5, 0.0, phase)
            }
        }
        LesionKind::Metastasis => {
            let rim = depth < 3.0;
            match (phase, rim) {
                (Arterial, true) => 125.0,
                (PortalVenous, true) => 115.0,
                (Delayed, true) => 95.0,
                (Arterial, false) => 35.0,
                (PortalVenous, false) => 50.0,
                (Delayed, false) => 55.0,
                (NonContrast | Unknown, _) => unreachable!("the phantom renders contrast phases only"),
            }
        }
    }
}

fn anatomy_label(t: Tissue) -> u8 {
    match t {
        Tissue::Air => 0,
        Tissue::Liver => ANATOMY_LIVER,
        Tissue::Lesion { .. } => ANATOMY_LESION,
        Tissue::Spleen { .. } => ANATOMY_SPLEEN,
        Tissue::KidneyCortex { right: true }
        | Tissue::KidneyMedulla { right: true }
        | Tissue::RenalSinus { right: true } => ANATOMY_RIGHT_KIDNEY,
        Tissue::KidneyCortex { right: false }
        | Tissue::KidneyMedulla { right: false }
        | Tissue::RenalSinus { right: false } => ANATOMY_LEFT_KIDNEY,
        Tissue::Aorta => ANATOMY_AORTA,
        Tissue::Ivc => ANATOMY_IVC,
        Tissue::Portal => ANATOMY_PORTAL_VEIN,
        Tissue::Hepatic => ANATOMY_HEPATIC_VEINS,
        Tissue::Bone(_) | Tissue::Disc => ANATOMY_BONE,
        Tissue::SubcutFat
        | Tissue::Muscle
        | Tissue::Fat
        | Tissue::Bowel
        | Tissue::Canal
        | Tissue::StomachWall
        | Tissue::StomachFluid
        | Tissue::Gas
        | Tissue::Lung => ANATOMY_BODY,
    }
}

// ---------------------------------------------------------------------------------------
// Breathing
// ---------------------------------------------------------------------------------------

/// A Gaussian bump of displacement: `amp · exp(−|q − centre|² / 2σ²)`.
struct Bump {
    centre: Lps,
    sigma: f64,
    amp: Lps,
}

/// Mostly cranio-caudal, centred near the liver dome; peak |v| ≈ 7 mm (arterial) and
/// 6.5 mm (delayed). Broad bumps keep |∇v| < 0.1, so `x ↦ x + v(x)` is invertible.
const ARTERIAL_BUMPS: [Bump; 2] = [
    Bump { centre: [-60.0, 0.0, -130.0], sigma: 70.0, amp: [0.5, 1.5, 6.5] },
    Bump { centre: [50.0, 20.0, -170.0], sigma: 80.0, amp: [0.0, 0.5, 2.0] },
];
const DELAYED_BUMPS: [Bump; 2] = [
    Bump { centre: [-70.0, 5.0, -140.0], sigma: 60.0, amp: [-0.5, -1.0, -5.5] },
    Bump { centre: [0.0, 0.0, -210.0], sigma: 90.0, amp: [0.0, 0.8, -1.5] },
];

/// The analytic displacement `v` of a phase: `moving(y) = anatomy(y + v(y))`. Zero for the
/// portal venous (fixed) phase, and for phases the phantom does not render (non-contrast,
/// unknown), which have no breathing model.
pub fn breathing_v(phase: Phase, scale: f64, y: Lps) -> Lps {
    let bumps: &[Bump] = match phase {
        Phase::Arterial => &ARTERIAL_BUMPS,
        Phase::PortalVenous | Phase::NonContrast | Phase::Unknown => return [0.0; 3],
        Phase::Delayed => &DELAYED_BUMPS,
    };
    let mut v = [0.0; 3];
    for b in bumps {
        let r2 = sq(y[0] - b.centre[0]) + sq(y[1] - b.centre[1]) + sq(y[2] - b.centre[2]);
        let w = scale * (-r2 / (2.0 * b.sigma * b.sigma)).exp();
        for (vc, ac) in v.iter_mut().zip(b.amp) {
            *vc += w * ac;
        }
    }
    v
}

/// The ITK-convention displacement `u(x)` (fixed → moving) at a fixed-frame point: the
/// solution of `u = −v(x + u)`. Fixed-point iteration converges because `v` is a
/// contraction (Lipschitz constant < 0.1), gaining about one decimal per step.
pub fn true_u(phase: Phase, scale: f64, x: Lps) -> Lps {
    let mut u = [0.0; 3];
    for _ in 0..40 {
        let v = breathing_v(phase, scale, [x[0] + u[0], x[1] + u[1], x[2] + u[2]]);
        let next = [-v[0], -v[1], -v[2]];
        let change = (0..3).map(|c| (next[c] - u[c]).abs()).fold(0.0, f64::max);
        u = next;
        // 1e-7 mm is below f32 resolution at these magnitudes
        if change < 1e-7 {
            break;
        }
    }
    u
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// A standard normal deviate that depends only on its arguments (splitmix64 hash of the
/// seed, phase and voxel index, then Box–Muller), so noise does not depend on the order
/// or the thread voxels are computed in.
fn gaussian(seed: u64, phase: u64, k: usize, j: usize, i: usize) -> f32 {
    let mut h = splitmix64(seed);
    for v in [phase, k as u64, j as u64, i as u64] {
        h = splitmix64(h ^ v);
    }
    let h2 = splitmix64(h);
    // 53-bit uniforms in (0, 1]
    let u1 = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (h2 >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn render_phase(opts: &PhantomOptions, phase: Phase) -> CtVolume {
    let grid = opts.grid(phase).clone();
    let [nz, ny, nx] = grid.shape;
    let offsets = |n: usize| -> Vec<f64> {
        let n = n.max(1);
        (0..n).map(|s| (s as f64 + 0.5) / n as f64 - 0.5).collect()
    };
    let (oz, oy, ox) = (offsets(opts.supersample[0]), offsets(opts.supersample[1]), offsets(opts.supersample[2]));
    let inv_n = 1.0 / (oz.len() * oy.len() * ox.len()) as f32;
    let mut data = Array3::<i16>::zeros([nz, ny, nx]);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let mut acc = 0.0f32;
                for &dk in &oz {
                    for &dj in &oy {
                        for &di in &ox {
                            let y = grid.index_to_world([i as f64 + di, j as f64 + dj, k as f64 + dk]);
                            let v = breathing_v(phase, opts.breathing_scale, y);
                            let q = opts.to_anatomy([y[0] + v[0], y[1] + v[1], y[2] + v[2]]);
                            acc += hu(classify(q, opts.lesions()), phase, opts.lesions());
                        }
                    }
                }
                let mut val = acc * inv_n;
                // air outside the patient stays exactly −1000, as scanners clip it
                if val > -999.0 {
                    val += opts.noise_sigma_hu * gaussian(opts.seed, noise_index(phase), k, j, i);
                }
                slab[[j, i]] = val.round().clamp(-1024.0, 3071.0) as i16;
            }
        }
    });
    Volume::new(data, grid)
}

/// Labels (LiTS), anatomy, and per-lesion voxel counts on the portal venous grid,
/// sampled at voxel centres.
/// Labels (LiTS), anatomy, treated-lesion parts, per-lesion voxel counts and per-lesion
/// part counts (viable, necrotic, lipiodol) on the portal venous grid, sampled at voxel
/// centres.
#[allow(clippy::type_complexity)]
fn render_labels(opts: &PhantomOptions) -> (Mask, Mask, Mask, Vec<usize>, Vec<[usize; 3]>) {
    let grid = &opts.portal_venous_grid;
    let lesions = opts.lesions();
    let [nz, ny, nx] = grid.shape;
    let mut labels = Array3::<u8>::zeros([nz, ny, nx]);
    let mut anatomy = Array3::<u8>::zeros([nz, ny, nx]);
    let mut parts = Array3::<u8>::zeros([nz, ny, nx]);
    let counts: Vec<([usize; 4], [[usize; 3]; 4])> = labels
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(anatomy.axis_iter_mut(Axis(0)).into_par_iter())
        .zip(parts.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .map(|(k, ((mut lab, mut ana), mut par))| {
            let mut counts = [0usize; 4];
            let mut part_counts = [[0usize; 3]; 4];
            for j in 0..ny {
                for i in 0..nx {
                    let q = opts.to_anatomy(grid.index_to_world([i as f64, j as f64, k as f64]));
                    let t = classify(q, lesions);
                    ana[[j, i]] = anatomy_label(t);
                    lab[[j, i]] = match t {
                        Tissue::Lesion { index, rel, .. } => {
                            counts[index] += 1;
                            if lesions[index].kind == LesionKind::TreatedHcc {
                                let r = rel as f64 * lesions[index].radius;
                                let part = if r < TREATED_LIPIODOL_R {
                                    2
                                } else if r < TREATED_NECROTIC_R {
                                    1
                                } else {
                                    0
                                };
                                part_counts[index][part] += 1;
                                par[[j, i]] =
                                    [crate::response::VIABLE, crate::response::NECROTIC, crate::response::LIPIODOL]
                                        [part];
                            }
                            2
                        }
                        Tissue::Liver => 1,
                        Tissue::Portal | Tissue::Hepatic if liver_sdf(q) < 0.0 => 1,
                        _ => 0,
                    };
                }
            }
            (counts, part_counts)
        })
        .collect();
    let mut total = vec![0usize; lesions.len()];
    let mut part_total = vec![[0usize; 3]; lesions.len()];
    for (c, pc) in &counts {
        for l in 0..lesions.len() {
            total[l] += c[l];
            for p in 0..3 {
                part_total[l][p] += pc[l][p];
            }
        }
    }
    (
        Volume::new(labels, grid.clone()),
        Volume::new(anatomy, grid.clone()),
        Volume::new(parts, grid.clone()),
        total,
        part_total,
    )
}

fn render_field(grid: &Geometry, phase: Phase, scale: f64) -> Field {
    let [nz, ny, nx] = grid.shape;
    let mut data = Array4::<f32>::zeros([nz, ny, nx, 3]);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let u = true_u(phase, scale, grid.index_to_world([i as f64, j as f64, k as f64]));
                for c in 0..3 {
                    slab[[j, i, c]] = u[c] as f32;
                }
            }
        }
    });
    Field { data, geometry: grid.clone() }
}

/// Builds the whole phantom. Deterministic: the same options give byte-identical output.
pub fn make_phantom(opts: &PhantomOptions) -> Phantom {
    let phases = Phase::CONTRAST_ORDER
        .iter()
        .map(|&name| PhantomPhase {
            name,
            volume: render_phase(opts, name),
            description: format!("LIVER {} {}mm", upper_words(name), opts.grid(name).spacing_mm[0]),
            acquisition_time: acquisition_time(name).to_string(),
        })
        .collect();
    let grid = &opts.portal_venous_grid;
    let (labels, anatomy, parts, counts, part_counts) = render_labels(opts);
    let voxel_ml = grid.spacing_mm.iter().product::<f64>() / 1000.0;
    // centres in this visit's scanner frame
    let to_scanner = |c: Lps| match opts.visit {
        Visit::Baseline => c,
        Visit::FollowUp => follow_up_pose().inverse().map(|t| t.apply(c)).unwrap_or(c),
    };
    let lesions = opts
        .lesions()
        .iter()
        .zip(counts.iter().zip(&part_counts))
        .map(|(l, (&n, pc))| LesionTruth {
            kind: l.kind,
            centre_mm: to_scanner(l.centre),
            radius_mm: l.radius,
            volume_ml: n as f64 * voxel_ml,
            parts_ml: (l.kind == LesionKind::TreatedHcc).then(|| pc.map(|c| c as f64 * voxel_ml)),
        })
        .collect();
    let true_fields =
        [Phase::Arterial, Phase::Delayed].iter().map(|&p| (p, render_field(grid, p, opts.breathing_scale))).collect();
    let parts = (opts.visit == Visit::FollowUp).then_some(parts);
    Phantom { phases, labels, anatomy, lesions, true_fields, parts }
}

// ---------------------------------------------------------------------------------------
// Demo study on disk
// ---------------------------------------------------------------------------------------

/// Where `write_demo_study` put everything.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoFiles {
    pub root: PathBuf,
    /// One DICOM series folder's files per phase, in slice order.
    pub dicom: Vec<(Phase, Vec<PathBuf>)>,
    pub labels: PathBuf,
    pub anatomy: PathBuf,
    pub true_fields: Vec<(Phase, PathBuf)>,
    pub lesions_json: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{}: already exists; the demo study is only written where nothing would be overwritten, so pick a new or empty folder", path.display())]
    Exists { path: PathBuf },
    #[error("{}: folder is not empty; a DICOM reader scanning it would mix other files into the demo series, so pick a new or empty folder", path.display())]
    NotEmpty { path: PathBuf },
    #[error("cannot write {}: {source}; check the path, free space and write permission", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Dicom(#[from] WriteError),
    #[error(transparent)]
    Nifti(#[from] NiftiError),
}

/// Writes the phantom as a study a user would get from PACS plus its ground truth:
/// `out/dicom/<phase>/NNNN.dcm` (three series of one study), `out/labels.nii.gz`,
/// `out/anatomy.nii.gz`, `out/true_field_{arterial,delayed}.nii.gz`, `out/lesions.json`.
/// Checks every target first and writes nothing if any exists.
pub fn write_demo_study(out: &Path, opts: &PhantomOptions) -> Result<DemoFiles, DemoError> {
    write_demo_study_with_progress(out, opts, &|_, _| {})
}

/// [`write_demo_study`], saying each step as it starts (fraction 0…1 and what): the
/// full-size study takes a quarter of a minute, most of it making the phantom.
pub fn write_demo_study_with_progress(
    out: &Path,
    opts: &PhantomOptions,
    progress: &dyn Fn(f32, &str),
) -> Result<DemoFiles, DemoError> {
    let labels_path = out.join("labels.nii.gz");
    let anatomy_path = out.join("anatomy.nii.gz");
    let field_paths: Vec<(Phase, PathBuf)> = [Phase::Arterial, Phase::Delayed]
        .iter()
        .map(|&p| (p, out.join(format!("true_field_{}.nii.gz", p.slug()))))
        .collect();
    let lesions_path = out.join("lesions.json");
    for p in [&labels_path, &anatomy_path, &lesions_path].into_iter().chain(field_paths.iter().map(|(_, p)| p)) {
        if p.exists() {
            return Err(DemoError::Exists { path: p.clone() });
        }
    }
    for phase in Phase::CONTRAST_ORDER {
        let dir = out.join("dicom").join(phase.slug());
        if let Ok(mut entries) = std::fs::read_dir(&dir) {
            if entries.next().is_some() {
                return Err(DemoError::NotEmpty { path: dir });
            }
        }
    }

    progress(0.0, "making the phantom (anatomy, lesions, breathing, three phases)");
    let phantom = make_phantom(opts);
    let seed = format!("hepaview-phantom/{}", opts.seed);
    let study_uid = uid_from(&format!("{seed}/study"));
    let for_uid = uid_from(&format!("{seed}/frame-of-reference"));
    let mut dicom = Vec::new();
    for (n, phase) in phantom.phases.iter().enumerate() {
        let meta = SeriesMeta {
            patient_name: "PHANTOM^HEPAVIEW".into(),
            // one patient across visits (the follow-up's noise seed is the baseline's + 1)
            patient_id: format!("HV-PHANTOM-{}", (opts.seed - (opts.visit == Visit::FollowUp) as u64) % 1_000_000),
            patient_birth_date: "19620514".into(),
            patient_sex: "M".into(),
            study_uid: study_uid.clone(),
            study_date: if opts.visit == Visit::FollowUp { "20260316".into() } else { "20260115".into() },
            study_time: "095800".into(),
            study_id: "1".into(),
            accession_number: format!("HV{:08}", opts.seed % 100_000_000),
            series_uid: uid_from(&format!("{seed}/series/{}", phase.name.slug())),
            series_number: 3 + n as u32,
            series_description: phase.description.clone(),
            acquisition_time: phase.acquisition_time.clone(),
            contrast_agent: Some("IOPAMIDOL 370".into()),
            frame_of_reference_uid: for_uid.clone(),
            manufacturer: "Hepaview phantom".into(),
            uid_seed: seed.clone(),
            kvp: 120.0,
        };
        let dir = out.join("dicom").join(phase.name.slug());
        progress(0.6 + 0.1 * n as f32, &format!("writing the {} phase as DICOM", phase.name));
        let files = dicom_write::write_ct_series(&phase.volume, &meta, &dir)?;
        dicom.push((phase.name, files));
    }

    progress(0.9, "writing the labels, anatomy and true fields");
    nifti::write_volume(&phantom.labels, &labels_path)?;
    if let Some(parts) = &phantom.parts {
        nifti::write_volume(parts, &out.join("parts.nii.gz"))?;
        let truth = serde_json::json!({
            "visit": "follow_up",
            "follow_up_to_baseline": follow_up_pose(),
            "baseline_to_follow_up": follow_up_pose().inverse(),
            "note": "rigid pose of the follow-up (points in LPS mm); parts.nii.gz labels 4 viable, 5 necrotic, 6 lipiodol",
        });
        let path = out.join("follow_up_truth.json");
        let bytes = serde_json::to_vec_pretty(&truth)
            .map_err(|e| DemoError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        dicom_write::write_new_file(&path, &bytes).map_err(|e| match e {
            WriteError::Exists { path } => DemoError::Exists { path },
            WriteError::Io { path, source } => DemoError::Io { path, source },
            other => DemoError::Dicom(other),
        })?;
    }
    nifti::write_volume(&phantom.anatomy, &anatomy_path)?;
    for (phase, path) in &field_paths {
        if let Some(field) = phantom.true_field(*phase) {
            nifti::write_field(field, path)?;
        }
    }
    let json = serde_json::to_vec_pretty(&phantom.lesions)
        .map_err(|e| DemoError::Io { path: lesions_path.clone(), source: std::io::Error::other(e) })?;
    dicom_write::write_new_file(&lesions_path, &json).map_err(|e| match e {
        WriteError::Exists { path } => DemoError::Exists { path },
        WriteError::Io { path, source } => DemoError::Io { path, source },
        other => DemoError::Dicom(other),
    })?;

    progress(1.0, "written");
    Ok(DemoFiles {
        root: out.to_path_buf(),
        dicom,
        labels: labels_path,
        anatomy: anatomy_path,
        true_fields: field_paths,
        lesions_json: lesions_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(bytes: impl Iterator<Item = u8>) -> u64 {
        bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// Issue 27: writing the demo says each step as it starts, in order, to the end.
    #[test]
    fn writing_the_demo_reports_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let seen = std::sync::Mutex::new(Vec::<(f32, String)>::new());
        write_demo_study_with_progress(dir.path(), &PhantomOptions::small(), &|f, m| {
            seen.lock().unwrap().push((f, m.to_string()))
        })
        .unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[1].0 > w[0].0), "{seen:?}");
        assert!(seen.iter().filter(|(_, m)| m.contains("DICOM")).count() == 3, "{seen:?}");
        assert_eq!(seen.last().map(|s| s.0), Some(1.0));
    }

    fn small() -> &'static Phantom {
        static P: std::sync::OnceLock<Phantom> = std::sync::OnceLock::new();
        P.get_or_init(|| make_phantom(&PhantomOptions::small()))
    }

    #[test]
    fn true_field_inverts_the_breathing() {
        for phase in [Phase::Arterial, Phase::Delayed] {
            for x in [
                [-60.0, 0.0, -130.0],
                [-95.0, 10.0, -210.0],
                [30.0, -40.0, -162.0],
                [0.0, 0.0, -300.0],
                [150.0, 100.0, -110.0],
            ] {
                let u = true_u(phase, 1.0, x);
                let y = [x[0] + u[0], x[1] + u[1], x[2] + u[2]];
                let v = breathing_v(phase, 1.0, y);
                let err = (0..3).map(|c| (y[c] + v[c] - x[c]).abs()).fold(0.0, f64::max);
                assert!(err < 0.01, "{phase:?} at {x:?}: residual {err} mm");
            }
        }
        // the stored f32 field satisfies it too
        let p = small();
        for (phase, field) in &p.true_fields {
            let g = &field.geometry;
            for (k, j, i) in [(0, 0, 0), (12, 30, 20), (23, 63, 63), (20, 32, 25)] {
                let x = g.index_to_world([i as f64, j as f64, k as f64]);
                let u: Vec<f64> = (0..3).map(|c| field.data[[k, j, i, c]] as f64).collect();
                let y = [x[0] + u[0], x[1] + u[1], x[2] + u[2]];
                let v = breathing_v(*phase, 1.0, y);
                let err = (0..3).map(|c| (y[c] + v[c] - x[c]).abs()).fold(0.0, f64::max);
                assert!(err < 0.01, "{phase:?} voxel {k},{j},{i}: residual {err} mm");
            }
        }
    }

    #[test]
    fn breathing_peaks_between_five_and_eight_mm_and_jacobian_stays_positive() {
        let p = small();
        for (phase, field) in &p.true_fields {
            let peak = field
                .data
                .lanes(Axis(3))
                .into_iter()
                .map(|u| (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt())
                .fold(0.0f32, f32::max);
            assert!((5.0..=8.0).contains(&peak), "{phase:?}: peak {peak} mm");
        }
        // Jacobian of x ↦ x + u(x) by central differences on a fine analytic stencil
        for phase in [Phase::Arterial, Phase::Delayed] {
            let mut min_det = f64::INFINITY;
            let h = 1.0;
            for xi in (-180..=180).step_by(30) {
                for yi in (-180..=180).step_by(30) {
                    for zi in (-300..=-100).step_by(20) {
                        let x = [xi as f64, yi as f64, zi as f64];
                        let mut m = [[0.0; 3]; 3];
                        for a in 0..3 {
                            let mut xp = x;
                            let mut xm = x;
                            xp[a] += h;
                            xm[a] -= h;
                            let (up, um) = (true_u(phase, 1.0, xp), true_u(phase, 1.0, xm));
                            for c in 0..3 {
                                m[c][a] = (c == a) as u8 as f64 + (up[c] - um[c]) / (2.0 * h);
                            }
                        }
                        min_det = min_det.min(crate::volume::det3(&m));
                    }
                }
            }
            assert!(min_det > 0.8, "{phase:?}: min Jacobian {min_det}");
        }
    }

    #[test]
    fn lesions_sit_in_parenchyma() {
        for (set, l) in
            LESIONS.iter().map(|l| (&LESIONS, l)).chain(FOLLOW_UP_LESIONS.iter().map(|l| (&FOLLOW_UP_LESIONS, l)))
        {
            // sample the sphere's surface, with a 2 mm margin
            for a in 0..12 {
                for b in 0..7 {
                    let th = std::f64::consts::PI * (b as f64 + 0.5) / 7.0;
                    let ph = std::f64::consts::TAU * a as f64 / 12.0;
                    let r = l.radius + 2.0;
                    let q = [
                        l.centre[0] + r * th.sin() * ph.cos(),
                        l.centre[1] + r * th.sin() * ph.sin(),
                        l.centre[2] + r * th.cos(),
                    ];
                    assert!(liver_sdf(q) < 0.0, "{:?}: surface point {q:?} outside the liver", l.kind);
                    for t in AORTA.iter().chain(&IVC).chain(&PORTAL).chain(&HEPATIC) {
                        assert!(tube_sdf(q, t) > 0.0, "{:?} touches a vessel at {q:?}", l.kind);
                    }
                    assert_eq!(classify(q, set), Tissue::Liver, "{:?}: neighbour {q:?} is not parenchyma", l.kind);
                }
            }
        }
    }

    #[test]
    fn labels_and_truth_are_consistent() {
        let p = small();
        assert_eq!(p.labels.geometry, PhantomOptions::small().portal_venous_grid);
        assert_eq!(p.lesions.len(), 4);
        for l in &p.lesions {
            let ijk = p.labels.geometry.world_to_index(l.centre_mm);
            let at = |ijk: [f64; 3]| {
                p.labels.data[[ijk[2].round() as usize, ijk[1].round() as usize, ijk[0].round() as usize]]
            };
            assert_eq!(at(ijk), 2, "{:?} centre not labelled tumour", l.kind);
            let sphere_ml = 4.0 / 3.0 * std::f64::consts::PI * l.radius_mm.powi(3) / 1000.0;
            assert!(
                (l.volume_ml / sphere_ml - 1.0).abs() < 0.5,
                "{:?}: {} ml vs sphere {sphere_ml} ml",
                l.kind,
                l.volume_ml
            );
        }
        let count = |m: &Mask, v: u8| m.data.iter().filter(|&&x| x == v).count();
        let liver_ml = count(&p.labels, 1) as f64 * 6.0 * 6.0 * 8.0 / 1000.0;
        assert!((1000.0..2600.0).contains(&liver_ml), "liver {liver_ml} ml");
        for label in 1..=11u8 {
            assert!(count(&p.anatomy, label) > 0, "anatomy label {label} ({}) missing", ANATOMY_NAMES[label as usize]);
        }
        // every tumour voxel is a lesion in the anatomy too
        for (l, a) in p.labels.data.iter().zip(p.anatomy.data.iter()) {
            assert_eq!(*l == 2, *a == ANATOMY_LESION);
        }
    }

    #[test]
    fn contrast_follows_the_protocol() {
        // noise-free means from the model at known points
        let at = |q: Lps, ph| hu(classify(q, &LESIONS), ph, &LESIONS);
        let aorta = [18.0, 42.0, -200.0];
        let liver = [-60.0, 30.0, -150.0];
        assert_eq!(classify(liver, &LESIONS), Tissue::Liver);
        assert!(at(aorta, Phase::Arterial) > 250.0 && at(aorta, Phase::Delayed) < at(aorta, Phase::PortalVenous));
        let hcc = LESIONS[0].centre;
        assert!(at(hcc, Phase::Arterial) > at(liver, Phase::Arterial) + 40.0);
        assert!(at(hcc, Phase::PortalVenous) < at(liver, Phase::PortalVenous));
        assert!(at(hcc, Phase::Delayed) < at(liver, Phase::Delayed));
        let cyst = LESIONS[2].centre;
        assert!(Phase::CONTRAST_ORDER.iter().all(|&ph| at(cyst, ph).abs() < 10.0));

        // the rendered portal venous volume has those means too, with noise of ~8 HU
        let p = small();
        let pv = &p.phase(Phase::PortalVenous).unwrap().volume;
        let vals: Vec<f32> = pv
            .data
            .iter()
            .zip(p.anatomy.data.iter())
            .filter(|(_, &a)| a == ANATOMY_LIVER)
            .map(|(&v, _)| v as f32)
            .collect();
        let mean = vals.iter().sum::<f32>() / vals.len() as f32;
        assert!((mean - 110.0).abs() < 8.0, "PV liver mean {mean}");
    }

    #[test]
    fn grids_differ_per_phase() {
        let p = small();
        let shapes: Vec<_> = p.phases.iter().map(|ph| ph.volume.geometry.clone()).collect();
        assert_ne!(shapes[0], shapes[1]);
        assert_ne!(shapes[2], shapes[1]);
        let names: Vec<_> = p.phases.iter().map(|ph| ph.name.slug()).collect();
        assert_eq!(names, ["arterial", "portal_venous", "delayed"]);
        assert!(p.phases[0].acquisition_time < p.phases[1].acquisition_time);
        assert!(p.phases[1].acquisition_time < p.phases[2].acquisition_time);
    }

    #[test]
    fn deterministic_across_runs_and_thread_counts() {
        let digest = |p: &Phantom| {
            let mut h = Vec::new();
            for ph in &p.phases {
                h.push(fnv(ph.volume.data.iter().flat_map(|v| v.to_le_bytes())));
            }
            h.push(fnv(p.labels.data.iter().copied()));
            h.push(fnv(p.anatomy.data.iter().copied()));
            for (_, f) in &p.true_fields {
                h.push(fnv(f.data.iter().flat_map(|v| v.to_le_bytes())));
            }
            h
        };
        let a = digest(small());
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = one.install(|| digest(&make_phantom(&PhantomOptions::small())));
        assert_eq!(a, b);
        let mut other = PhantomOptions::small();
        other.seed += 1;
        let c = digest(&make_phantom(&other));
        assert_ne!(a[0], c[0], "the seed should change the noise");
        assert_eq!(a[3], c[3], "labels do not depend on the noise seed");
    }
}
