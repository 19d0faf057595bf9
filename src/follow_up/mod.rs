//! The follow-up feature: a later visit of the same patient read against the baseline (e.g.
//! after TACE). What it owns:
//! - [`response`]: measuring a visit, pairing its lesions with the baseline's, splitting
//!   each lesion into viable / necrotic / lipiodol parts, RECIST 1.1 and mRECIST;
//! - [`table`]: the lesion table across time points (lesions followed through the visits,
//!   new ones followed into later visits);
//! - [`carry`]: a baseline lesion's outline carried to a follow-up through the visits'
//!   alignment and outlined there from the carried position (or said not found);
//! - [`sim`]: a follow-up simulated from a real study, with known truth;
//! - the names of follow-up phases shown in a study ([`visit_description`],
//!   [`parse_visit_name`]): what a viewport's title shows; the study knows its visits as
//!   values (`study::visits`) and reads a name back only for phases that arrive without one.
//!
//! Aligning the visits and measuring them on one grid is `analysis`'s (`add_follow_up`,
//! `compare_aligned_visits`); the visits, their nudges, the comparison the viewer runs over
//! them and its reading are the study's (`study::visits`, `study::compare`,
//! `study::reading`); the panel (`app::follow_up`) only couples widgets to them.

pub mod carry;
pub mod response;
pub mod sim;
pub mod table;

use crate::io::phase::Phase;

/// Two visits compared: the cross-visit alignment and the response.
pub struct Comparison {
    /// Baseline world point → follow-up world point.
    pub transform: crate::register::affine::AffineTransform,
    pub rigid: crate::register::affine::AffineResult,
    pub affine: crate::register::affine::AffineResult,
    /// Demons on the baseline's liver after the affine alignment (the residual motion of a
    /// liver that lies differently); `None` when it could not run (no liver in the mask,
    /// or it failed), in which case lesions are paired through the affine alone.
    pub liver_demons: Option<crate::register::PhaseReport>,
    pub baseline: crate::follow_up::response::VisitMeasure,
    pub followup: crate::follow_up::response::VisitMeasure,
    pub pairs: Vec<crate::follow_up::response::Pairing>,
    pub response: crate::follow_up::response::Response,
}

/// Start of the description of a follow-up phase shown in a study beside the baseline's:
/// `"FOLLOW-UP <label> · <phase> · <series>"` ([`visit_description`]).
pub const VISIT_PREFIX: &str = "FOLLOW-UP ";

/// Between the parts of a follow-up phase's description.
const SEP: &str = " · ";

/// The description a follow-up phase gets when `study::analysis::add_follow_up` puts it in
/// the baseline's study: the visit's label, the phase it was (its phase itself is set to
/// Unknown there) and its series description.
pub fn visit_description(label: &str, phase: Phase, series: &str) -> String {
    format!("{VISIT_PREFIX}{label}{SEP}{phase}{SEP}{series}")
}

/// A follow-up phase's description read back ([`parse_visit_name`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VisitName<'a> {
    /// The visit's label (e.g. its date).
    pub label: &'a str,
    /// The phase it was before it joined the baseline's study (Unknown when not named).
    pub phase: Phase,
    /// `"FOLLOW-UP <label> · <phase>"` as written: what a viewport's title shows.
    pub title: &'a str,
}

/// The visit a phase belongs to, read from its description; `None` for a baseline phase.
/// The one place the follow-up description is parsed.
pub fn parse_visit_name(description: &str) -> Option<VisitName<'_>> {
    let rest = description.strip_prefix(VISIT_PREFIX)?;
    let mut parts = rest.split(SEP);
    let label = parts.next().unwrap_or_default();
    let phase_text = parts.next();
    let phase = phase_text.and_then(|s| s.parse().ok()).unwrap_or(Phase::Unknown);
    let title_len = VISIT_PREFIX.len() + label.len() + phase_text.map_or(0, |p| SEP.len() + p.len());
    Some(VisitName { label, phase, title: &description[..title_len] })
}

/// Whether a phase (by its description) belongs to a follow-up visit.
pub fn is_follow_up(description: &str) -> bool {
    parse_visit_name(description).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_names_read_back() {
        let d = visit_description("20240312", Phase::Arterial, "ART 1.25mm · B30f");
        let n = parse_visit_name(&d).unwrap();
        assert_eq!((n.label, n.phase, n.title), ("20240312", Phase::Arterial, "FOLLOW-UP 20240312 · arterial"));
        assert!(is_follow_up(&d));
        assert!(!is_follow_up("ART 1.25mm"));
        let bare = parse_visit_name("FOLLOW-UP visit 2").unwrap();
        assert_eq!((bare.label, bare.phase, bare.title), ("visit 2", Phase::Unknown, "FOLLOW-UP visit 2"));
    }
}
