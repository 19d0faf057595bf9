//! Naming the contrast phase of each series of a study: NonContrast, Arterial,
//! PortalVenous or Delayed, with a confidence and the reason, so the user can see why and
//! override it.
//!
//! Evidence, strongest first: words in SeriesDescription (sites write "ART", "PV",
//! "DELAY 3 MIN", "PLAIN"…); ContrastBolusAgent present or absent; the acquisition-time
//! order of the contrast series; and, where tags say nothing, measured HU of aorta and
//! portal vein (see [`HuClues`]). Each series is decided once; the time order only fills
//! phases that words did not already claim.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    NonContrast,
    Arterial,
    PortalVenous,
    Delayed,
    Unknown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::NonContrast => "non-contrast",
            Phase::Arterial => "arterial",
            Phase::PortalVenous => "portal venous",
            Phase::Delayed => "delayed",
            Phase::Unknown => "unknown",
        }
    }

    /// Phases after contrast, in the order they are acquired.
    pub const CONTRAST_ORDER: [Phase; 3] = [Phase::Arterial, Phase::PortalVenous, Phase::Delayed];
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_lowercase().replace(['-', '_', ' '], "");
        Ok(match t.as_str() {
            "nc" | "noncontrast" | "plain" | "native" | "pre" => Phase::NonContrast,
            "a" | "art" | "arterial" | "ap" => Phase::Arterial,
            "pv" | "portal" | "portalvenous" | "venous" => Phase::PortalVenous,
            "d" | "del" | "delayed" | "equilibrium" => Phase::Delayed,
            _ => return Err(format!("unknown phase {s:?}; use one of: non-contrast, arterial, portal-venous, delayed")),
        })
    }
}

/// Measured enhancement of one series, for when tags say nothing.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HuClues {
    pub aorta_hu: f32,
    pub portal_vein_hu: f32,
    pub liver_hu: f32,
}

/// What the tags of one series say.
#[derive(Clone, Debug, Default)]
pub struct SeriesClues {
    pub description: String,
    pub contrast_agent: Option<String>,
    /// Acquisition time, `HHMMSS[.frac]`.
    pub acquisition_time: Option<String>,
    pub hu: Option<HuClues>,
}

/// The decision for one series.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PhaseCall {
    pub phase: Phase,
    /// 0…1: 0.9 for explicit words, 0.6–0.7 for order or measured HU, 0 for unknown.
    pub confidence: f32,
    pub reason: String,
}

fn tokens(desc: &str) -> Vec<String> {
    desc.to_lowercase().split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// Phase named by words in a SeriesDescription, with the words that decided it.
pub fn phase_from_description(desc: &str) -> Option<(Phase, String)> {
    let lower = desc.to_lowercase();
    let t = tokens(desc);
    let has = |w: &str| t.iter().any(|x| x == w);
    let found = |p: Phase, w: &str| Some((p, format!("description {desc:?} says {w:?}")));
    // "late arterial" is arterial, not late/delayed
    for phrase in ["late arterial", "late art", "early arterial"] {
        if lower.contains(phrase) {
            return found(Phase::Arterial, phrase);
        }
    }
    for phrase in ["non contrast", "non-contrast", "noncontrast", "non con", "w/o", "pre contrast", "pre-contrast", "precontrast", "unenhanced"] {
        if lower.contains(phrase) {
            return found(Phase::NonContrast, phrase);
        }
    }
    for w in ["plain", "native", "nc", "pre", "ncct", "noncon", "nativ", "sin", "unenh"] {
        if has(w) {
            return found(Phase::NonContrast, w);
        }
    }
    for w in ["delayed", "delay", "del", "dly", "equilibrium", "equil", "eq", "late", "excretory", "urographic"] {
        if has(w) {
            return found(Phase::Delayed, w);
        }
    }
    if lower.contains("portal") {
        return found(Phase::PortalVenous, "portal");
    }
    for w in ["pv", "pvp", "venous", "ven", "portovenous", "vp"] {
        if has(w) {
            return found(Phase::PortalVenous, w);
        }
    }
    for w in ["arterial", "art", "ap", "hap", "lap", "eap", "arteriel", "angio", "cta"] {
        if has(w) {
            return found(Phase::Arterial, w);
        }
    }
    if lower.contains("arteri") {
        return found(Phase::Arterial, "arteri…");
    }
    None
}

/// Phase suggested by measured enhancement: arterial when the aorta outshines the portal
/// vein, portal venous when the portal vein has caught up, delayed when both have faded
/// towards the liver, non-contrast when blood is unenhanced.
pub fn phase_from_hu(hu: &HuClues) -> (Phase, f32, String) {
    let HuClues { aorta_hu: a, portal_vein_hu: p, liver_hu: l } = *hu;
    let why = format!("measured aorta {a:.0} HU, portal vein {p:.0} HU, liver {l:.0} HU");
    if a < 80.0 {
        (Phase::NonContrast, 0.7, format!("{why}: blood not enhanced"))
    } else if a > p + 60.0 && a > 180.0 {
        (Phase::Arterial, 0.7, format!("{why}: aorta well above portal vein"))
    } else if p >= 140.0 || (p > l + 40.0 && a > 150.0) {
        (Phase::PortalVenous, 0.6, format!("{why}: portal vein enhanced, aorta no brighter"))
    } else {
        (Phase::Delayed, 0.5, format!("{why}: vessels faded towards liver"))
    }
}

/// Seconds since midnight of `HHMMSS[.frac]` (or `HH:MM:SS`).
pub fn parse_time_s(t: &str) -> Option<f64> {
    let t: String = t.chars().filter(|c| *c != ':').collect();
    if t.len() < 4 {
        return None;
    }
    let h: f64 = t.get(0..2)?.parse().ok()?;
    let m: f64 = t.get(2..4)?.parse().ok()?;
    let s: f64 = t.get(4..).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).unwrap_or(Some(0.0))?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Names the phase of each series of one study (same order as `series`).
pub fn detect_phases(series: &[SeriesClues]) -> Vec<PhaseCall> {
    let mut calls: Vec<Option<PhaseCall>> = series
        .iter()
        .map(|s| phase_from_description(&s.description).map(|(phase, reason)| PhaseCall { phase, confidence: 0.9, reason }))
        .collect();
    let any_agent = series.iter().any(|s| s.contrast_agent.is_some());
    // A series without an agent in a study where others have one was taken before injection.
    for (i, s) in series.iter().enumerate() {
        if calls[i].is_none() && any_agent && s.contrast_agent.is_none() {
            calls[i] = Some(PhaseCall {
                phase: Phase::NonContrast,
                confidence: 0.6,
                reason: "no ContrastBolusAgent while other series of the study have one".into(),
            });
        }
    }
    // Contrast series left undecided: measured HU where available, else acquisition order.
    for (i, s) in series.iter().enumerate() {
        if calls[i].is_none() {
            if let Some(hu) = &s.hu {
                let (phase, confidence, reason) = phase_from_hu(hu);
                calls[i] = Some(PhaseCall { phase, confidence, reason });
            }
        }
    }
    let mut undecided: Vec<(usize, f64)> = series
        .iter()
        .enumerate()
        .filter(|(i, _)| calls[*i].is_none())
        .filter_map(|(i, s)| s.acquisition_time.as_deref().and_then(parse_time_s).map(|t| (i, t)))
        .collect();
    undecided.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    if !undecided.is_empty() {
        let claimed: Vec<Phase> = calls.iter().flatten().map(|c| c.phase).collect();
        // Phases still free, in acquisition order; a time-ordered series takes the next free
        // phase that comes after every claimed phase acquired before it.
        let decided_times: Vec<(Phase, f64)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((calls[i].as_ref()?.phase, s.acquisition_time.as_deref().and_then(parse_time_s)?)))
            .collect();
        let mut free: Vec<Phase> = Phase::CONTRAST_ORDER.iter().copied().filter(|p| !claimed.contains(p)).collect();
        for (i, t) in undecided {
            let after = decided_times.iter().filter(|(_, dt)| *dt < t).map(|(p, _)| *p).max();
            let pos = free.iter().position(|p| after.is_none_or(|a| *p > a));
            if let Some(pos) = pos {
                let phase = free.remove(pos);
                calls[i] = Some(PhaseCall { phase, confidence: 0.5, reason: format!("acquisition order ({}): next contrast phase", series[i].acquisition_time.as_deref().unwrap_or("?")) });
            }
        }
    }
    calls
        .into_iter()
        .map(|c| c.unwrap_or(PhaseCall { phase: Phase::Unknown, confidence: 0.0, reason: "no words, agent, time or HU to go by".into() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clue(desc: &str, time: &str) -> SeriesClues {
        SeriesClues { description: desc.into(), contrast_agent: Some("OMNIPAQUE 350".into()), acquisition_time: Some(time.into()), hu: None }
    }

    #[test]
    fn words_decide() {
        for (d, p) in [
            ("LIVER ART 2.5mm", Phase::Arterial),
            ("LIVER PV 2.5mm", Phase::PortalVenous),
            ("LIVER DELAYED 2.5mm", Phase::Delayed),
            ("Late Arterial", Phase::Arterial),
            ("ABD PLAIN", Phase::NonContrast),
            ("non-contrast 5mm", Phase::NonContrast),
            ("Portal venous phase", Phase::PortalVenous),
            ("EQUILIBRIUM 3 MIN", Phase::Delayed),
            ("AP liver", Phase::Arterial),
            ("PRE", Phase::NonContrast),
            ("NC 1.25", Phase::NonContrast),
        ] {
            assert_eq!(phase_from_description(d).map(|x| x.0), Some(p), "{d}");
        }
        assert_eq!(phase_from_description("Recon 3: LIVER 2 PHASE (C/A/P)"), None);
        assert_eq!(phase_from_description("Abdomen 5.0 B30f"), None);
    }

    #[test]
    fn time_order_fills_unnamed_series() {
        let s = vec![clue("Abdomen 1", "100105"), clue("Abdomen 2", "100025"), clue("Abdomen 3", "100330")];
        let c = detect_phases(&s);
        assert_eq!(c.iter().map(|c| c.phase).collect::<Vec<_>>(), vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed]);
    }

    #[test]
    fn order_respects_named_phases() {
        // PV named; an earlier unnamed one is arterial, a later one delayed
        let s = vec![clue("PV", "100105"), clue("x", "100025"), clue("y", "100330")];
        let c = detect_phases(&s);
        assert_eq!(c.iter().map(|c| c.phase).collect::<Vec<_>>(), vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed]);
    }

    #[test]
    fn missing_agent_is_non_contrast() {
        let mut s = vec![clue("a", "100000"), clue("b", "100100")];
        s[0].contrast_agent = None;
        let c = detect_phases(&s);
        assert_eq!(c[0].phase, Phase::NonContrast);
        assert_eq!(c[1].phase, Phase::Arterial);
    }

    #[test]
    fn hu_when_tags_are_silent() {
        let s = vec![SeriesClues { hu: Some(HuClues { aorta_hu: 320.0, portal_vein_hu: 120.0, liver_hu: 70.0 }), ..Default::default() }];
        assert_eq!(detect_phases(&s)[0].phase, Phase::Arterial);
        assert_eq!(phase_from_hu(&HuClues { aorta_hu: 170.0, portal_vein_hu: 190.0, liver_hu: 110.0 }).0, Phase::PortalVenous);
        assert_eq!(phase_from_hu(&HuClues { aorta_hu: 40.0, portal_vein_hu: 40.0, liver_hu: 55.0 }).0, Phase::NonContrast);
        assert_eq!(phase_from_hu(&HuClues { aorta_hu: 120.0, portal_vein_hu: 115.0, liver_hu: 95.0 }).0, Phase::Delayed);
    }

    #[test]
    fn nothing_known_is_unknown() {
        let c = detect_phases(&[SeriesClues::default()]);
        assert_eq!(c[0].phase, Phase::Unknown);
        assert_eq!(c[0].confidence, 0.0);
    }

    #[test]
    fn overrides_parse() {
        assert_eq!("portal-venous".parse::<Phase>().unwrap(), Phase::PortalVenous);
        assert!("banana".parse::<Phase>().is_err());
    }
}
