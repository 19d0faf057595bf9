//! The pattern hint: which of the known enhancement patterns (cyst, HCC, haemangioma,
//! metastasis) a lesion's per-phase HU statistics match, with the evidence and findings it
//! rests on. A hint for the radiologist, never a diagnosis.

use super::{Evidence, PatternHint, PatternKind, PhaseStats, HINT_DISCLAIMER};
use crate::io::phase::Phase;

/// HU thresholds of the hint (medians; noise of a few HU averages out over a lesion).
const APHE_HU: f64 = 20.0;
const RIM_OVER_CORE_ARTERIAL_HU: f64 = 30.0;
const RIM_OVER_LIVER_ARTERIAL_HU: f64 = 10.0;
const WASHOUT_HU: f64 = 5.0;
const CAPSULE_RIM_OVER_CORE_HU: f64 = 10.0;
const WATER_LOW_HU: f64 = -20.0;
const WATER_HIGH_HU: f64 = 25.0;
const NO_ENHANCEMENT_RANGE_HU: f64 = 15.0;
const NODULE_P90_OVER_LIVER_HU: f64 = 40.0;
const FILL_IN_GAIN_HU: f64 = 30.0;
const FILL_IN_NEAR_LIVER_HU: f64 = 10.0;
const HYPO_CORE_HU: f64 = 15.0;

/// Builds the hint from the per-phase statistics (any order; any subset of phases).
pub fn pattern_hint(phases: &[PhaseStats]) -> PatternHint {
    let get = |p: Phase| phases.iter().find(|s| s.phase == p);
    let core = |s: &PhaseStats| s.core.as_ref().unwrap_or(&s.lesion).median_hu;
    let liver = |s: &PhaseStats| s.liver_ring.as_ref().map(|r| r.median_hu);
    let mut findings = Vec::new();
    let mut ev = Evidence::default();

    // near water and flat across phases: needs no liver reference
    let contrast: Vec<&PhaseStats> = phases.iter().filter(|s| s.phase != Phase::Unknown).collect();
    if !contrast.is_empty() {
        let meds: Vec<f64> = contrast.iter().map(|s| s.lesion.median_hu).collect();
        let (lo, hi) = meds.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| (a.min(m), b.max(m)));
        let water = lo >= WATER_LOW_HU && hi <= WATER_HIGH_HU;
        let flat = hi - lo <= NO_ENHANCEMENT_RANGE_HU;
        let per: Vec<String> =
            contrast.iter().map(|s| format!("{} {:.0}", s.phase.as_str(), s.lesion.median_hu)).collect();
        findings.push(format!("lesion median HU by phase: {}", per.join(", ")));
        ev.near_water_no_enhancement = Some(water && flat && contrast.len() >= 2);
        if water && flat && contrast.len() >= 2 {
            findings.push(format!("near-water density ({lo:.0}..{hi:.0} HU) that does not change across phases (range {:.0} HU): no enhancement", hi - lo));
        }
    }

    let art = get(Phase::Arterial);
    let late: Vec<&PhaseStats> = [Phase::PortalVenous, Phase::Delayed].iter().filter_map(|&p| get(p)).collect();
    if let Some(a) = art {
        if let Some(la) = liver(a) {
            let c = core(a);
            let aphe = c - la >= APHE_HU;
            ev.arterial_hyperenhancement = Some(aphe);
            findings.push(format!(
                "arterial: core median {c:.0} HU vs liver {la:.0} HU ({:+.0} HU){}",
                c - la,
                if aphe { ": arterial phase hyper-enhancement (APHE)" } else { "" }
            ));
            let rim = a.rim.median_hu;
            let rim_enh =
                a.core.is_some() && rim - c >= RIM_OVER_CORE_ARTERIAL_HU && rim - la >= RIM_OVER_LIVER_ARTERIAL_HU;
            ev.arterial_rim_enhancement = Some(rim_enh);
            if rim_enh {
                findings.push(format!(
                    "arterial: rim median {rim:.0} HU over core {c:.0} HU and liver {la:.0} HU: rim enhancement"
                ));
            }
            // discontinuous peripheral nodules: a bright tail in the rim, rim median low
            let nodular = a.rim.p90_hu - la >= NODULE_P90_OVER_LIVER_HU && rim - la <= RIM_OVER_LIVER_ARTERIAL_HU;
            if let Some(last) = late.last() {
                if let Some(ll) = liver(last) {
                    let gain = core(last) - c;
                    let fills = gain >= FILL_IN_GAIN_HU && core(last) >= ll - FILL_IN_NEAR_LIVER_HU;
                    ev.peripheral_nodular_fill_in = Some(nodular && fills);
                    if nodular {
                        findings.push(format!(
                            "arterial: peripheral bright nodules (rim p90 {:.0} HU vs liver {la:.0} HU) with rim median {rim:.0} HU: discontinuous peripheral enhancement",
                            a.rim.p90_hu
                        ));
                    }
                    if fills {
                        findings.push(format!(
                            "core fills in: {c:.0} HU arterial → {:.0} HU {} (liver {ll:.0} HU)",
                            core(last),
                            last.phase.as_str()
                        ));
                    }
                }
            }
            // washout: lower than liver later, after at least liver-like arterial enhancement
            let mut wash = None;
            for s in &late {
                if let Some(l) = liver(s) {
                    let w = core(s) <= l - WASHOUT_HU && c >= la - WASHOUT_HU;
                    wash = Some(wash.unwrap_or(false) || w);
                    findings.push(format!(
                        "{}: core median {:.0} HU vs liver {l:.0} HU ({:+.0} HU){}",
                        s.phase.as_str(),
                        core(s),
                        core(s) - l,
                        if w && aphe { ": washout" } else { "" }
                    ));
                }
            }
            ev.washout = wash;
            // capsule: rim brighter than core late, not early
            if a.core.is_some() && !late.is_empty() {
                let early_rim = rim - c >= CAPSULE_RIM_OVER_CORE_HU;
                let late_rim = late.iter().find(|s| s.rim.median_hu - core(s) >= CAPSULE_RIM_OVER_CORE_HU);
                ev.capsule_like_rim = Some(late_rim.is_some() && !early_rim);
                if let (Some(s), false) = (late_rim, early_rim) {
                    findings.push(format!(
                        "{}: rim median {:.0} HU over core {:.0} HU, not so in the arterial phase: capsule-like rim",
                        s.phase.as_str(),
                        s.rim.median_hu,
                        core(s)
                    ));
                }
            }
            // a centre that stays below liver in every phase
            let all: Vec<(f64, f64)> =
                std::iter::once(a).chain(late.iter().copied()).filter_map(|s| liver(s).map(|l| (core(s), l))).collect();
            ev.core_hypo_in_every_phase = Some(all.len() >= 2 && all.iter().all(|(c, l)| *c <= l - HYPO_CORE_HU));
        } else {
            findings.push("no liver around the lesion in the mask: no liver reference for enhancement".into());
        }
    } else {
        findings.push("no arterial phase: enhancement pattern not assessed".into());
    }

    let yes = |b: Option<bool>| b == Some(true);
    let (kind, summary) = if yes(ev.near_water_no_enhancement) {
        (PatternKind::CystLike, "cyst-like: no enhancement, near-water HU".to_string())
    } else if yes(ev.arterial_hyperenhancement) && yes(ev.washout) {
        let capsule = if yes(ev.capsule_like_rim) { " + capsule-like rim" } else { "" };
        (PatternKind::HccLike, format!("HCC-like: APHE + washout{capsule}"))
    } else if yes(ev.peripheral_nodular_fill_in) {
        (PatternKind::HemangiomaLike, "hemangioma-like: peripheral nodular enhancement, fills in".to_string())
    } else if yes(ev.arterial_rim_enhancement) && yes(ev.core_hypo_in_every_phase) {
        (
            PatternKind::MetastasisLike,
            "metastasis-like: rim enhancement around a centre that stays hypo-enhancing".to_string(),
        )
    } else {
        (PatternKind::Indeterminate, "indeterminate: the HU pattern matches none of the hints".to_string())
    };
    PatternHint {
        kind,
        summary: format!("{summary} (hint, not a diagnosis)"),
        evidence: ev,
        findings,
        disclaimer: HINT_DISCLAIMER.into(),
    }
}
