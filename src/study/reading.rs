//! The radiologist's reading of the last comparison of the follow-up visits: each visit's
//! response with its lesion pairs as matched and as re-paired or split by hand, the
//! categories as read, the lesion table across time points, and the reports written from
//! it. The comparison itself is `study::compare`'s; the panel shows this and passes the
//! radiologist's choices in.

use std::path::PathBuf;
use std::sync::Arc;

use super::analysis::AlignedPhase;
use super::compare::{parts_overlay, CompareOutcome, VisitOutcome};
use super::visits::Visit;
use crate::follow_up::response::{self, Category, Pairing, Response, ResponseOptions, VisitMeasure};
use crate::follow_up::table::{self, Row, TimePoint};
use crate::study::next_key;
use crate::volume::Mask;

/// One visit's response against the baseline.
pub struct VisitResult {
    pub label: String,
    pub followup: VisitMeasure,
    /// Pairs as matched automatically, and as now (after re-pairing by hand).
    pub auto_pairs: Vec<Pairing>,
    pub pairs: Vec<Pairing>,
    pub response: Response,
    /// Where the follow-up mask came from.
    pub mask_note: String,
    /// What Demons on the liver found after the visit alignment (lesions are paired
    /// through it), or why it did not run.
    pub liver_note: String,
    /// The radiologist's reading, when it differs from the computed category.
    pub recist_override: Option<Category>,
    pub mrecist_override: Option<Category>,
    /// The follow-up's phases and mask on the baseline mask's grid (for the report's key
    /// images).
    pub phases: Vec<AlignedPhase>,
    pub mask: Arc<Mask>,
    /// What the visit's viewports show once compared: its liver, and each lesion split into
    /// viable, necrotic and lipiodol parts ([`response::VIABLE`] …), on the baseline grid;
    /// with its GPU cache key.
    pub parts_overlay: Arc<Mask>,
    pub parts_key: u64,
}

/// The last comparison.
pub struct Comparison {
    pub baseline_label: String,
    pub baseline: VisitMeasure,
    pub baseline_phases: Vec<AlignedPhase>,
    pub baseline_mask: Arc<Mask>,
    pub visits: Vec<VisitResult>,
    /// The alignment of a visit changed since: the figures describe the old one.
    pub stale: bool,
}

impl Comparison {
    /// A finished comparison `o` read afresh, keeping the categories the radiologist read
    /// in `old` (the previous comparison) for the visits it had.
    pub fn from_outcome(o: CompareOutcome, baseline_label: String, old: Option<&Comparison>) -> Comparison {
        let mut visits = Vec::new();
        for VisitOutcome { comparison: c, mask, note, label, phases } in o.visits {
            let old = old.and_then(|old| old.visits.iter().find(|r| r.label == label));
            let (recist_override, mrecist_override) =
                old.map(|r| (r.recist_override, r.mrecist_override)).unwrap_or_default();
            let liver_note = match &c.liver_demons {
                Some(d) => format!(
                    "Demons on the liver: RMSD {:.0} -> {:.0} HU, up to {:.1} mm; lesions paired through it",
                    d.rmsd_before_hu, d.rmsd_after_hu, d.max_displacement_mm
                ),
                None => "Demons on the liver did not run: lesions paired through the visit alignment alone".into(),
            };
            let parts_overlay = Arc::new(parts_overlay(&mask, &c.followup.parts_mask));
            visits.push(VisitResult {
                label,
                followup: c.followup,
                auto_pairs: c.pairs.clone(),
                pairs: c.pairs,
                response: c.response,
                mask_note: note,
                liver_note,
                recist_override,
                mrecist_override,
                phases,
                mask,
                parts_overlay,
                parts_key: next_key(),
            });
        }
        Comparison {
            baseline_label,
            baseline: o.baseline,
            baseline_phases: o.baseline_phases,
            baseline_mask: o.baseline_mask,
            visits,
            stale: false,
        }
    }

    /// Time point names: the baseline, then each visit.
    pub fn time_points(&self) -> Vec<String> {
        std::iter::once(self.baseline_label.clone()).chain(self.visits.iter().map(|v| v.label.clone())).collect()
    }

    /// The lesion table: baseline lesions followed through each visit, then each visit's
    /// new lesions ([`table::lesion_rows`]).
    pub fn rows(&self) -> Vec<Row> {
        let visits: Vec<TimePoint<'_>> = self
            .visits
            .iter()
            .map(|v| TimePoint { label: &v.label, followup: &v.followup, pairs: &v.pairs, auto_pairs: &v.auto_pairs })
            .collect();
        table::lesion_rows(&self.baseline, &visits)
    }

    /// Pairs baseline lesion `b` of visit `vi` with follow-up lesion `f` (or none) and
    /// assesses the response again.
    pub fn repair(&mut self, vi: usize, b: usize, f: Option<usize>, opts: &ResponseOptions) {
        let Some(v) = self.visits.get_mut(vi) else { return };
        let (nb, nf) = (self.baseline.report.lesions.len(), v.followup.report.lesions.len());
        if b == 0 || b > nb || f.is_some_and(|f| f == 0 || f > nf) {
            return;
        }
        v.pairs = response::repair(&v.pairs, nb, nf, b, f, &self.baseline, &v.followup);
        let label = v.response.baseline.clone();
        v.response = response::assess(&label, &self.baseline, &v.label, &v.followup, &v.pairs, opts);
    }

    /// Splits baseline lesion `b` of visit `vi` into the follow-up lesions `fragments` and
    /// assesses the response again.
    pub fn split(&mut self, vi: usize, b: usize, fragments: &[usize], opts: &ResponseOptions) {
        let Some(v) = self.visits.get_mut(vi) else { return };
        let (nb, nf) = (self.baseline.report.lesions.len(), v.followup.report.lesions.len());
        if b == 0 || b > nb || fragments.iter().any(|&f| f == 0 || f > nf) {
            return;
        }
        v.pairs = response::split_lesion(&v.pairs, b, fragments, nb, nf);
        let label = v.response.baseline.clone();
        v.response = response::assess(&label, &self.baseline, &v.label, &v.followup, &v.pairs, opts);
    }

    /// Visit `vi` back to the automatic pairing, assessed again.
    pub fn automatic_pairing(&mut self, vi: usize, opts: &ResponseOptions) {
        let Some(v) = self.visits.get_mut(vi) else { return };
        v.pairs = v.auto_pairs.clone();
        let label = v.response.baseline.clone();
        v.response = response::assess(&label, &self.baseline, &v.label, &v.followup, &v.pairs, opts);
    }

    /// Writes one report per visit into `report_dir` (a sub-folder per visit when there are
    /// several), with the categories as read and each visit's alignment (from `visits`, by
    /// label); never over a file. Returns the HTML files written.
    pub fn save_reports(&self, visits: &[Visit], report_dir: &str) -> Result<Vec<PathBuf>, String> {
        let dir = PathBuf::from(report_dir.trim());
        if report_dir.trim().is_empty() {
            return Err("name a folder for the report".into());
        }
        if self.stale {
            return Err(
                "the alignment changed since the comparison: Compare visits again before saving the report".into()
            );
        }
        let base = crate::report::compare::VisitInput {
            label: self.baseline_label.clone(),
            phases: &self.baseline_phases,
            mask: &self.baseline_mask,
        };
        let mut written = Vec::new();
        for (i, v) in self.visits.iter().enumerate() {
            let sub = if self.visits.len() > 1 {
                let safe: String = v
                    .label
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' })
                    .collect();
                dir.join(format!("{:02}-{safe}", i + 1))
            } else {
                dir.clone()
            };
            let visit = visits.iter().find(|fv| fv.label == v.label);
            let alignment_note = match visit {
                Some(fv) => format!(
                    "Follow-up aligned to the baseline by the viewer (rotation {:.1}°, translation ({:.1}, {:.1}, {:.1}) mm{}); {}.",
                    fv.auto.rotation_deg(),
                    fv.auto.translation_mm[0],
                    fv.auto.translation_mm[1],
                    fv.auto.translation_mm[2],
                    if fv.nudge_mm == [0.0; 3] && fv.nudge_deg == 0.0 {
                        String::new()
                    } else {
                        format!(", then moved by hand: shift ({:.1}, {:.1}, {:.1}) mm, turn {:.1}°", fv.nudge_mm[0], fv.nudge_mm[1], fv.nudge_mm[2], fv.nudge_deg)
                    },
                    v.liver_note
                ),
                None => v.liver_note.clone(),
            };
            let report = crate::report::compare::ResponseReport {
                alignment_note,
                alignment_json: serde_json::json!({
                    "baseline_to_followup": visit.map(|fv| fv.transform()),
                    "nudge_mm": visit.map(|fv| fv.nudge_mm),
                    "nudge_turn_deg": visit.map(|fv| fv.nudge_deg),
                    "liver_demons": v.liver_note,
                    "follow_up_mask": v.mask_note,
                }),
                baseline: &self.baseline,
                followup: &v.followup,
                response: &v.response,
                recist_read: v.recist_override,
                mrecist_read: v.mrecist_override,
            };
            let follow =
                crate::report::compare::VisitInput { label: v.label.clone(), phases: &v.phases, mask: &v.mask };
            let files = crate::report::compare::write_response_report(&report, &base, &follow, &sub)
                .map_err(|e| e.to_string())?;
            written.push(files.html);
        }
        Ok(written)
    }
}
