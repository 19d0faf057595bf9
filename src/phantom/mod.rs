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
//! `io::dicom_write`, masks and fields via `io::nifti`), one file per job: `anatomy` (the
//! analytic body), `lesions` (baseline and follow-up lesions, the follow-up pose),
//! `contrast` (phase names, timing and HU per tissue), `breathing` (the moving phases'
//! deformation), `render` (voxels, labels, fields) and `demo` (the study on disk).

mod anatomy;
mod breathing;
mod contrast;
mod demo;
mod lesions;
mod render;

pub use breathing::{breathing_v, true_u};
pub use demo::{write_demo_study, write_demo_study_with_progress, DemoError, DemoFiles};
pub use lesions::follow_up_pose;
pub use render::make_phantom;

use crate::io::phase::Phase;
use crate::volume::{CtVolume, Field, Geometry, Lps, Mask};
use lesions::{LesionSpec, FOLLOW_UP_LESIONS, LESIONS};

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

#[cfg(test)]
mod tests {
    use super::anatomy::{classify, liver_sdf, tube_sdf, Tissue, AORTA, HEPATIC, IVC, PORTAL};
    use super::contrast::hu;
    use super::*;
    use ndarray::Axis;

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
