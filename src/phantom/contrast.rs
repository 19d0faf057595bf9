//! The phantom's contrast protocol: what each phase is called and when it is acquired, and
//! the Hounsfield units of every tissue in each phase (late arterial, portal venous at 70 s,
//! delayed at 3.5 min), lesions included. The phantom renders the three contrast phases,
//! `Phase::CONTRAST_ORDER`, and nothing else.

use super::anatomy::Tissue;
use super::lesions::{LesionSpec, TREATED_LIPIODOL_R, TREATED_NECROTIC_R};
use super::LesionKind;
use crate::io::phase::Phase;

/// As a scanner would put it in a SeriesDescription.
pub(super) fn upper_words(phase: Phase) -> &'static str {
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
pub(super) fn acquisition_time(phase: Phase) -> &'static str {
    match phase {
        Phase::Arterial => "100025",
        Phase::PortalVenous => "100105",
        Phase::Delayed => "100330",
        Phase::NonContrast | Phase::Unknown => unreachable!("the phantom renders contrast phases only"),
    }
}

/// Noise seed of a phase: 0, 1, 2 for the contrast phases (the values the phantom has
/// always used, so output is unchanged), distinct values for the others.
pub(super) fn noise_index(phase: Phase) -> u64 {
    match phase {
        Phase::Arterial => 0,
        Phase::PortalVenous => 1,
        Phase::Delayed => 2,
        Phase::NonContrast => 3,
        Phase::Unknown => 4,
    }
}

/// Hounsfield units of a tissue in a phase (before noise). Values are typical clinical
/// means for a late-arterial / portal venous (70 s) / delayed (3.5 min) protocol.
pub(super) fn hu(t: Tissue, phase: Phase, lesions: &[LesionSpec]) -> f32 {
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

pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Only reached through `hu`, i.e. for `Phase::CONTRAST_ORDER` phases.
pub(super) fn lesion_hu(kind: LesionKind, radius_mm: f32, rel: f32, nodule: f32, phase: Phase) -> f32 {
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
