//! The phantom's anatomy, analytic in reference LPS mm (+x patient left, +y posterior,
//! +z superior): body wall, spine, great vessels, liver (two lobes joined smoothly, with its
//! portal and hepatic veins), spleen, kidneys, stomach, bowel and lung bases, and the lesions
//! inside the liver. [`classify`] says which tissue is at a point; [`anatomy_label`] the
//! organ label it gets.

use super::lesions::{nodule_pattern, LesionSpec};
use super::{
    ANATOMY_AORTA, ANATOMY_BODY, ANATOMY_BONE, ANATOMY_HEPATIC_VEINS, ANATOMY_IVC, ANATOMY_LEFT_KIDNEY, ANATOMY_LESION,
    ANATOMY_LIVER, ANATOMY_PORTAL_VEIN, ANATOMY_RIGHT_KIDNEY, ANATOMY_SPLEEN,
};
use crate::volume::Lps;

/// A tube between two points with linearly varying radius.
pub(super) struct Tube {
    a: Lps,
    b: Lps,
    ra: f64,
    rb: f64,
}

pub(super) const fn tube(a: Lps, b: Lps, ra: f64, rb: f64) -> Tube {
    Tube { a, b, ra, rb }
}

pub(super) const AORTA: [Tube; 1] = [tube([18.0, 42.0, -400.0], [18.0, 42.0, 0.0], 12.0, 12.0)];
pub(super) const IVC: [Tube; 1] = [tube([-22.0, 38.0, -400.0], [-22.0, 38.0, 0.0], 11.0, 11.0)];
pub(super) const PORTAL: [Tube; 4] = [
    // splenic/mesenteric confluence to the hilum, then right and left branches
    tube([-5.0, 20.0, -245.0], [-40.0, 15.0, -195.0], 8.0, 7.5),
    tube([-40.0, 15.0, -195.0], [-95.0, 8.0, -182.0], 6.0, 4.0),
    tube([-40.0, 15.0, -195.0], [-10.0, -25.0, -170.0], 5.0, 3.5),
    tube([-5.0, 20.0, -245.0], [70.0, 35.0, -215.0], 5.0, 5.0),
];
pub(super) const HEPATIC: [Tube; 3] = [
    // right, middle, left hepatic veins converging on the IVC below the diaphragm
    tube([-22.0, 36.0, -135.0], [-108.0, 18.0, -185.0], 5.5, 3.5),
    tube([-22.0, 36.0, -135.0], [-55.0, -38.0, -188.0], 5.0, 3.0),
    tube([-22.0, 36.0, -135.0], [15.0, -45.0, -150.0], 4.5, 3.0),
];

/// Tissue classes; HU per phase come from `hu`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Tissue {
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
pub(super) fn sq(v: f64) -> f64 {
    v * v
}

/// Normalised ellipsoid radius: < 1 inside.
#[inline]
pub(super) fn ell(q: Lps, c: Lps, s: Lps) -> f64 {
    (sq((q[0] - c[0]) / s[0]) + sq((q[1] - c[1]) / s[1]) + sq((q[2] - c[2]) / s[2])).sqrt()
}

/// Normalised 2-D (axial) superellipse radius: < 1 inside.
#[inline]
pub(super) fn superellipse(x: f64, y: f64, a: f64, b: f64, n: f64) -> f64 {
    ((x / a).abs().powf(n) + (y / b).abs().powf(n)).powf(1.0 / n)
}

/// Distance from `q` to the tube's axis minus its radius there (< 0 inside).
pub(super) fn tube_sdf(q: Lps, t: &Tube) -> f64 {
    let ab = [t.b[0] - t.a[0], t.b[1] - t.a[1], t.b[2] - t.a[2]];
    let aq = [q[0] - t.a[0], q[1] - t.a[1], q[2] - t.a[2]];
    let len2 = sq(ab[0]) + sq(ab[1]) + sq(ab[2]);
    let s = ((aq[0] * ab[0] + aq[1] * ab[1] + aq[2] * ab[2]) / len2).clamp(0.0, 1.0);
    let d = (sq(aq[0] - s * ab[0]) + sq(aq[1] - s * ab[1]) + sq(aq[2] - s * ab[2])).sqrt();
    d - (t.ra + (t.rb - t.ra) * s)
}

pub(super) fn in_tubes(q: Lps, tubes: &[Tube]) -> bool {
    tubes.iter().any(|t| tube_sdf(q, t) < 0.0)
}

/// Polynomial smooth minimum: a union of two shapes with a fillet of width `k` mm.
pub(super) fn smin(a: f64, b: f64, k: f64) -> f64 {
    let h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0);
    b + (a - b) * h - k * h * (1.0 - h)
}

/// Approximate signed distance (mm) to the liver surface: a right lobe and a left lobe
/// joined smoothly, with a gentle lobulation so its outline is not a textbook ellipse.
pub(super) fn liver_sdf(q: Lps) -> f64 {
    const RIGHT_C: Lps = [-70.0, -2.0, -180.0];
    const RIGHT_S: Lps = [68.0, 72.0, 62.0];
    const LEFT_C: Lps = [10.0, -35.0, -160.0];
    const LEFT_S: Lps = [55.0, 35.0, 30.0];
    let right = (ell(q, RIGHT_C, RIGHT_S) - 1.0) * 62.0;
    let left = (ell(q, LEFT_C, LEFT_S) - 1.0) * 30.0;
    let lobulation = 2.5 * (0.06 * q[0] + 1.0).sin() * (0.05 * q[1] + 2.0).sin() * (0.07 * q[2] + 0.5).sin();
    smin(right, left, 12.0) + lobulation
}

pub(super) const BODY_YC: f64 = 5.0;
pub(super) const BODY_A: f64 = 165.0;
pub(super) const BODY_B: f64 = 125.0;
pub(super) const BODY_N: f64 = 2.5;

/// What tissue is at reference-frame point `q`. Structures are tested in priority order
/// (bone and great vessels over organs over the body wall), which is how overlaps of
/// the analytic shapes are resolved.
pub(super) fn classify(q: Lps, lesions: &[LesionSpec]) -> Tissue {
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

pub(super) fn anatomy_label(t: Tissue) -> u8 {
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
