//! The phantom's lesions: the four of the baseline (HCC, hemangioma, cyst, metastasis),
//! the follow-up's after treatment (the HCC shrunk to a lipiodol core, necrosis and a viable
//! rim; the hemangioma gone; a new HCC), how the patient lies at the follow-up, and the
//! hemangioma's peripheral nodules.

use super::LesionKind;
use crate::volume::Lps;

/// A lesion of the phantom: its kind, centre (reference anatomy, LPS mm) and radius (mm).
pub(super) struct LesionSpec {
    pub(super) kind: LesionKind,
    pub(super) centre: Lps,
    pub(super) radius: f64,
}

/// Placed in liver parenchyma at least a few mm from the surface and from every vessel
/// (checked by `lesions_sit_in_parenchyma`), so their labels are whole spheres.
pub(super) const LESIONS: [LesionSpec; 4] = [
    LesionSpec { kind: LesionKind::Hcc, centre: [-95.0, 10.0, -210.0], radius: 17.0 },
    LesionSpec { kind: LesionKind::Hemangioma, centre: [-80.0, -30.0, -160.0], radius: 13.0 },
    LesionSpec { kind: LesionKind::Cyst, centre: [-110.0, -15.0, -180.0], radius: 10.0 },
    LesionSpec { kind: LesionKind::Metastasis, centre: [30.0, -40.0, -162.0], radius: 11.0 },
];

/// Radii (mm) inside which a treated HCC is lipiodol, then necrosis; viable beyond.
pub(super) const TREATED_LIPIODOL_R: f64 = 5.0;
pub(super) const TREATED_NECROTIC_R: f64 = 8.0;

/// The follow-up: the HCC (17 mm) treated down to 12 mm, the hemangioma gone, cyst and
/// metastasis as before, a new 8 mm HCC in the right lobe (clear of vessels and of the old
/// HCC; checked by `lesions_sit_in_parenchyma`).
pub(super) const FOLLOW_UP_LESIONS: [LesionSpec; 4] = [
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

/// Peripheral nodules of a hemangioma: 1 near one of a few fixed directions, 0 between.
pub(super) fn nodule_pattern(d: Lps, r: f64) -> f32 {
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
