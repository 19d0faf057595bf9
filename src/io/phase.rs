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

    /// Lower-case ASCII name for file and folder names, e.g. "portal_venous".
    pub fn slug(self) -> &'static str {
        match self {
            Phase::NonContrast => "non_contrast",
            Phase::Arterial => "arterial",
            Phase::PortalVenous => "portal_venous",
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
            _ => {
                return Err(format!("unknown phase {s:?}; use one of: non-contrast, arterial, portal-venous, delayed"))
            }
        })
    }
}

/// Measured enhancement of one series, for when tags say nothing.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HuClues {
    /// Mean HU of the brightest round homogeneous vessel found (aorta, or portal vein
    /// when it is brighter); `None` when no enhanced vessel shows (non-contrast).
    pub aorta_hu: Option<f32>,
    /// Most common soft-tissue HU in the body (the liver dominates upper-abdomen slices).
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
    /// Set for MR, NM, SEG…: contrast phases are a CT notion here, so these stay unknown.
    pub not_ct: bool,
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
    desc.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
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
    for phrase in [
        "non contrast",
        "non-contrast",
        "noncontrast",
        "non con",
        "w/o",
        "pre contrast",
        "pre-contrast",
        "precontrast",
        "unenhanced",
    ] {
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

/// Phase suggested by measured enhancement of one series on its own: arterial when the
/// aorta outshines the parenchyma by far, portal venous when the parenchyma has taken up
/// contrast, delayed when both have faded, non-contrast when no vessel is enhanced.
/// Phases overlap between patients and injection protocols, so confidence stays low; when
/// several series of a study are measured, [`detect_phases`] ranks them against each other.
pub fn phase_from_hu(hu: &HuClues) -> (Phase, f32, String) {
    let l = hu.liver_hu;
    let Some(a) = hu.aorta_hu else {
        // unenhanced liver is 40–65 HU; brighter parenchyma means contrast is on board
        return if l < 75.0 {
            (Phase::NonContrast, 0.5, format!("measured: no enhanced vessel, soft tissue {l:.0} HU"))
        } else {
            (Phase::Delayed, 0.3, format!("measured: no distinct vessel, but soft tissue {l:.0} HU is enhanced"))
        };
    };
    let why = format!("measured aorta {a:.0} HU, soft tissue {l:.0} HU");
    if a < 90.0 {
        (Phase::NonContrast, 0.5, format!("{why}: blood not enhanced"))
    } else if a - l > 150.0 {
        (Phase::Arterial, 0.5, format!("{why}: aorta far above parenchyma"))
    } else if l >= 95.0 || a - l > 60.0 {
        (Phase::PortalVenous, 0.4, format!("{why}: parenchyma enhanced"))
    } else {
        (Phase::Delayed, 0.4, format!("{why}: vessels faded towards parenchyma"))
    }
}

/// Measures [`HuClues`] on a CT volume: in the middle half of the slices, bright round
/// homogeneous blobs 16–44 mm across (aorta, IVC, portal vein: not the vertebral body,
/// whose cortex makes it inhomogeneous, nor kidneys or bowel, which are not round); the
/// brightest per slice, median over slices. Soft tissue is the mode of 0…250 HU on the
/// patient's right of the midline, where the liver is.
pub fn measure_enhancement(vol: &crate::volume::CtVolume) -> HuClues {
    use rayon::prelude::*;
    let nz = vol.geometry.shape[0];
    let (sy, sx) = (vol.geometry.spacing_mm[1], vol.geometry.spacing_mm[2]);
    let ks: Vec<usize> = (nz / 4..(3 * nz / 4).max(nz / 4 + 1)).filter(|k| *k < nz).collect();
    let per_slice: Vec<(Option<f32>, Vec<u32>)> = ks
        .par_iter()
        .map(|&k| {
            let slab = vol.data.index_axis(ndarray::Axis(0), k);
            // The liver fills the patient's right upper abdomen: count soft tissue on the
            // right of the body's midline (world x below the body's mean x).
            let mut body_x = (0.0f64, 0usize);
            for ((j, i), &v) in slab.indexed_iter() {
                if v > -300 {
                    body_x.0 += vol.geometry.index_to_world([i as f64, j as f64, k as f64])[0];
                    body_x.1 += 1;
                }
            }
            let mid_x = body_x.0 / body_x.1.max(1) as f64;
            let mut hist = vec![0u32; 51];
            for ((j, i), &v) in slab.indexed_iter() {
                if (0..250).contains(&v) && vol.geometry.index_to_world([i as f64, j as f64, k as f64])[0] < mid_x {
                    hist[(v / 5) as usize] += 1;
                }
            }
            // Several thresholds: at a low one a bright aorta can merge with the vertebral
            // body it touches; at a high one a faded vessel vanishes.
            // the aorta, IVC and portal vein run within a few cm of the midline; ribs and
            // bowel loops further out are not candidates
            let near_midline = |j: f64, i: f64| (vol.geometry.index_to_world([i, j, k as f64])[0] - mid_x).abs() < 60.0;
            let mut best: Option<f32> = None;
            for lo in [80i16, 100, 150, 200, 250, 300] {
                if let Some(m) = brightest_round_blob(&slab, lo, sy, sx, &near_midline) {
                    best = Some(best.map_or(m, |b: f32| b.max(m)));
                }
            }
            (best, hist)
        })
        .collect();
    let mut vessel: Vec<f32> = per_slice.iter().filter_map(|(b, _)| *b).collect();
    vessel.sort_by(|a, b| a.total_cmp(b));
    // a vessel seen in under a fifth of the slices is more likely a stray blob
    let aorta_hu = (vessel.len() * 5 >= ks.len().max(1)).then(|| vessel[vessel.len() / 2]);
    let mut hist = vec![0u64; 51];
    for (_, h) in &per_slice {
        for (t, &c) in hist.iter_mut().zip(h) {
            *t += c as u64;
        }
    }
    // smooth over three bins so noise does not split the peak
    let mode = (1..50).max_by_key(|&b| hist[b - 1] + 2 * hist[b] + hist[b + 1]).unwrap_or(10);
    HuClues { aorta_hu, liver_hu: mode as f32 * 5.0 + 2.5 }
}

/// Cortical bone and excreted contrast: a blob walled by it is marrow or a collecting
/// system, not a vessel lumen.
const BONE_HU: i16 = 600;

/// Mean HU of the brightest round, homogeneous blob (16–44 mm across) of pixels in
/// `lo..600` HU on one slice, or `None`. The blob's mean must clear `lo` well, so the
/// threshold cut the lumen cleanly rather than through its edge, and few of its outside
/// neighbours may be bone-bright.
fn brightest_round_blob(
    slab: &ndarray::ArrayView2<i16>,
    lo: i16,
    sy: f64,
    sx: f64,
    near_midline: &dyn Fn(f64, f64) -> bool,
) -> Option<f32> {
    let (ny, nx) = slab.dim();
    let inside = |v: i16| (lo..BONE_HU).contains(&v);
    let mut seen = vec![false; ny * nx];
    let mut stack = Vec::new();
    let mut members = Vec::new();
    let mut best: Option<f32> = None;
    for start in 0..ny * nx {
        if seen[start] || !inside(slab[[start / nx, start % nx]]) {
            continue;
        }
        members.clear();
        stack.push(start);
        seen[start] = true;
        while let Some(p) = stack.pop() {
            members.push(p);
            let (j, i) = (p / nx, p % nx);
            let mut push = |q: usize| {
                if !seen[q] && inside(slab[[q / nx, q % nx]]) {
                    seen[q] = true;
                    stack.push(q);
                }
            };
            if i > 0 {
                push(p - 1);
            }
            if i + 1 < nx {
                push(p + 1);
            }
            if j > 0 {
                push(p - nx);
            }
            if j + 1 < ny {
                push(p + nx);
            }
        }
        let area = members.len() as f64 * sy * sx;
        if !(200.0..=1500.0).contains(&area) {
            continue;
        }
        // outside neighbours that are bone-bright
        let (mut rim, mut bony) = (0usize, 0usize);
        for &p in &members {
            let (j, i) = (p / nx, p % nx);
            for (dj, di) in [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)] {
                let (jj, ii) = (j as i64 + dj, i as i64 + di);
                if jj < 0 || ii < 0 || jj >= ny as i64 || ii >= nx as i64 {
                    continue;
                }
                let v = slab[[jj as usize, ii as usize]];
                if !inside(v) {
                    rim += 1;
                    if v >= BONE_HU {
                        bony += 1;
                    }
                }
            }
        }
        if bony * 10 > rim {
            continue;
        }
        let n = members.len() as f64;
        let (cj, ci) = members.iter().fold((0.0, 0.0), |(a, b), &p| (a + (p / nx) as f64, b + (p % nx) as f64));
        let (cj, ci) = (cj / n, ci / n);
        if !near_midline(cj, ci) {
            continue;
        }
        let r2 = members
            .iter()
            .map(|&p| ((p / nx) as f64 - cj).powi(2) * sy * sy + ((p % nx) as f64 - ci).powi(2) * sx * sx)
            .fold(0.0, f64::max);
        let circularity = area / (std::f64::consts::PI * r2.max(1e-9));
        let mean = members.iter().map(|&p| slab[[p / nx, p % nx]] as f64).sum::<f64>() / n;
        let sd = (members.iter().map(|&p| (slab[[p / nx, p % nx]] as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        if circularity > 0.55 && sd < 45.0 && mean > lo as f64 + 25.0 {
            best = Some(best.map_or(mean as f32, |b: f32| b.max(mean as f32)));
        }
    }
    best
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
        .map(|s| {
            if s.not_ct {
                return Some(PhaseCall { phase: Phase::Unknown, confidence: 0.0, reason: "not a CT series".into() });
            }
            phase_from_description(&s.description).map(|(phase, reason)| PhaseCall { phase, confidence: 0.9, reason })
        })
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
    // Series left undecided with measured HU: alone, by absolute thresholds; several, by
    // ranking them against each other, which does not depend on the injection protocol.
    let measured: Vec<usize> = (0..series.len()).filter(|&i| calls[i].is_none() && series[i].hu.is_some()).collect();
    let mut contrast: Vec<(usize, HuClues)> = Vec::new();
    for &i in &measured {
        let hu = series[i].hu.expect("filtered on is_some");
        match hu.aorta_hu {
            Some(a) if a >= 90.0 => contrast.push((i, hu)),
            None if hu.liver_hu >= 75.0 => contrast.push((i, hu)),
            _ => {
                let (phase, confidence, reason) = phase_from_hu(&hu);
                calls[i] = Some(PhaseCall { phase, confidence, reason });
            }
        }
    }
    if contrast.len() >= 2 {
        let gap = |h: &HuClues| h.aorta_hu.unwrap_or(0.0) - h.liver_hu;
        let claimed: Vec<Phase> = calls.iter().flatten().map(|c| c.phase).collect();
        contrast.sort_by(|a, b| gap(&b.1).total_cmp(&gap(&a.1)));
        let (ai, ahu) = contrast.remove(0);
        if !claimed.contains(&Phase::Arterial) {
            calls[ai] = Some(PhaseCall {
                phase: Phase::Arterial,
                confidence: 0.6,
                reason: format!("measured: largest aorta−parenchyma gap in the study ({:.0} HU)", gap(&ahu)),
            });
        } else {
            contrast.insert(0, (ai, ahu));
        }
        contrast.sort_by(|a, b| b.1.liver_hu.total_cmp(&a.1.liver_hu));
        for (rank, (i, hu)) in contrast.into_iter().enumerate() {
            let phase =
                if rank == 0 && !claimed.contains(&Phase::PortalVenous) { Phase::PortalVenous } else { Phase::Delayed };
            calls[i] = Some(PhaseCall {
                phase,
                confidence: 0.5,
                reason: format!("measured: parenchyma {:.0} HU, rank {} in the study", hu.liver_hu, rank + 1),
            });
        }
    } else if let Some((i, hu)) = contrast.pop() {
        let (phase, confidence, reason) = phase_from_hu(&hu);
        calls[i] = Some(PhaseCall { phase, confidence, reason });
    }
    let mut undecided: Vec<(usize, f64)> = series
        .iter()
        .enumerate()
        .filter(|(i, _)| calls[*i].is_none())
        .filter_map(|(i, s)| s.acquisition_time.as_deref().and_then(parse_time_s).map(|t| (i, t)))
        .collect();
    undecided.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    // Order means something only against another series: a lone series with a time is
    // not "the first contrast phase" just because nothing came before it.
    let timed_others = series
        .iter()
        .enumerate()
        .filter(|(i, s)| calls[*i].is_some() && s.acquisition_time.as_deref().and_then(parse_time_s).is_some())
        .count();
    if undecided.len() + timed_others >= 2 {
        let claimed: Vec<Phase> = calls.iter().flatten().map(|c| c.phase).collect();
        // Phases still free, in acquisition order; a time-ordered series takes the next free
        // phase that comes after every claimed phase acquired before it.
        let decided_times: Vec<(Phase, f64)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Some((calls[i].as_ref()?.phase, s.acquisition_time.as_deref().and_then(parse_time_s)?))
            })
            .collect();
        let mut free: Vec<Phase> = Phase::CONTRAST_ORDER.iter().copied().filter(|p| !claimed.contains(p)).collect();
        for (i, t) in undecided {
            let after = decided_times.iter().filter(|(_, dt)| *dt < t).map(|(p, _)| *p).max();
            let pos = free.iter().position(|p| after.is_none_or(|a| *p > a));
            if let Some(pos) = pos {
                let phase = free.remove(pos);
                calls[i] = Some(PhaseCall {
                    phase,
                    confidence: 0.5,
                    reason: format!(
                        "acquisition order ({}): next contrast phase",
                        series[i].acquisition_time.as_deref().unwrap_or("?")
                    ),
                });
            }
        }
    }
    calls
        .into_iter()
        .map(|c| {
            c.unwrap_or(PhaseCall {
                phase: Phase::Unknown,
                confidence: 0.0,
                reason: "no words, agent, time or HU to go by".into(),
            })
        })
        .collect()
}

/// The tag evidence of a planned DICOM series.
pub fn clues_from_series(s: &super::dicom::SeriesInfo) -> SeriesClues {
    SeriesClues {
        // one acquisition of a series whose words name the whole series: its HU decide
        description: if s.acquisition.is_some() { String::new() } else { s.description.clone() },
        contrast_agent: s.contrast_agent.clone(),
        acquisition_time: s.acquisition_time.clone(),
        hu: None,
        not_ct: !s.modality.is_empty() && s.modality != "CT",
    }
}

/// Names the phases of a study: tags first; series the tags leave unknown are decoded and
/// their enhancement measured (so a study with good tags costs no pixel decoding).
/// A series that fails to decode stays unknown, with the reason.
pub fn detect_study_phases(study: &super::dicom::StudyInfo) -> Vec<PhaseCall> {
    detect_study_phases_sampled(study, None)
}

/// [`detect_study_phases`], measuring the pixels of at most `max_slices` slices of a series
/// the tags leave unnamed (evenly spaced over its middle half, where the liver and the
/// great vessels are): `hepaview info` reads headers and a few slices, never whole series.
pub fn detect_study_phases_sampled(study: &super::dicom::StudyInfo, max_slices: Option<usize>) -> Vec<PhaseCall> {
    let mut clues: Vec<SeriesClues> = study.series.iter().map(clues_from_series).collect();
    let first = detect_phases(&clues);
    if first.iter().all(|c| c.phase != Phase::Unknown) {
        return first;
    }
    let mut failures = Vec::new();
    for (i, call) in first.iter().enumerate() {
        if call.phase == Phase::Unknown && !clues[i].not_ct {
            let series = match max_slices {
                Some(n) => middle_slices(&study.series[i], n),
                None => study.series[i].clone(),
            };
            match super::dicom::load_series(&series, &super::dicom::no_progress) {
                Ok((vol, _)) => clues[i].hu = Some(measure_enhancement(&vol)),
                Err(e) => failures.push((i, e.to_string())),
            }
        }
    }
    let mut calls = detect_phases(&clues);
    for (i, why) in failures {
        calls[i].reason = format!("{}; pixels could not be measured: {why}", calls[i].reason);
    }
    calls
}

/// `series` cut to at most `n` slices evenly spaced over its length (the same in-plane
/// grid; the slice spacing scaled to match), for measuring, not for showing:
/// [`measure_enhancement`] then reads the middle half of them, as it would of the whole.
fn middle_slices(series: &super::dicom::SeriesInfo, n: usize) -> super::dicom::SeriesInfo {
    let total = series.frames.len();
    if total <= n || n == 0 {
        return series.clone();
    }
    let (lo, hi) = (0, total);
    let picks: Vec<usize> = (0..n).map(|t| lo + t * (hi - lo) / n).collect();
    let mut s = series.clone();
    s.frames = picks.iter().map(|&k| series.frames[k].clone()).collect();
    s.slice_offsets_mm = picks.iter().filter_map(|&k| series.slice_offsets_mm.get(k).copied()).collect();
    s.geometry.shape[0] = s.frames.len();
    s.geometry.spacing_mm[0] *= ((hi - lo) as f64 / n as f64).max(1.0);
    s.resampled = false;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clue(desc: &str, time: &str) -> SeriesClues {
        SeriesClues {
            description: desc.into(),
            contrast_agent: Some("OMNIPAQUE 350".into()),
            acquisition_time: Some(time.into()),
            ..Default::default()
        }
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
        assert_eq!(
            c.iter().map(|c| c.phase).collect::<Vec<_>>(),
            vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed]
        );
    }

    #[test]
    fn order_respects_named_phases() {
        // PV named; an earlier unnamed one is arterial, a later one delayed
        let s = vec![clue("PV", "100105"), clue("x", "100025"), clue("y", "100330")];
        let c = detect_phases(&s);
        assert_eq!(
            c.iter().map(|c| c.phase).collect::<Vec<_>>(),
            vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed]
        );
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
        let hu = |a: Option<f32>, l: f32| Some(HuClues { aorta_hu: a, liver_hu: l });
        let one = |h| detect_phases(&[SeriesClues { hu: h, ..Default::default() }])[0].phase;
        assert_eq!(one(hu(Some(320.0), 70.0)), Phase::Arterial);
        assert_eq!(one(hu(Some(170.0), 110.0)), Phase::PortalVenous);
        assert_eq!(one(hu(None, 55.0)), Phase::NonContrast);
        assert_eq!(one(hu(Some(120.0), 90.0)), Phase::Delayed);
        // several measured series are ranked against each other: a strong PV bolus
        // (aorta 230) is still portal venous beside a stronger arterial series
        let s: Vec<SeriesClues> =
            [hu(Some(230.0), 100.0), hu(Some(330.0), 72.0), hu(Some(140.0), 86.0), hu(None, 55.0)]
                .into_iter()
                .map(|h| SeriesClues { hu: h, ..Default::default() })
                .collect();
        let got: Vec<Phase> = detect_phases(&s).iter().map(|c| c.phase).collect();
        assert_eq!(got, vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed, Phase::NonContrast]);
    }

    #[test]
    fn a_lone_series_is_not_ordered() {
        let c = detect_phases(&[clue("Abdomen", "112936")]);
        assert_eq!(c[0].phase, Phase::Unknown, "{c:?}");
        let mut mr = clue("T1 post", "1200");
        mr.not_ct = true;
        let c = detect_phases(&[mr, clue("x", "1300")]);
        assert_eq!(c[0].phase, Phase::Unknown);
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
