//! The "Follow-up" section of the side panel: treatment response of each follow-up visit
//! against the baseline (e.g. after TACE). "Compare visits" measures the baseline (the
//! study's label mask) and every follow-up visit (its own mask carried through the visit
//! transform, a mask the user names, or the shipped U-Net's outline, said so) on the
//! baseline's grid, pairs the lesions and assesses RECIST 1.1 and mRECIST, on a worker
//! thread with progress and Cancel. The lesion table has one column group per time point;
//! a row click moves the crosshair to the lesion; the radiologist can re-pair lesions,
//! override each category, and nudge a visit's alignment by hand (the follow-up phases are
//! resampled again from the study as opened, with the residual NCC before and after).
//! The visits are `study::visits::Visit` values and the reading of a comparison is
//! `study::reading`'s (the maths in `analysis` and `follow_up`); this file holds the
//! widgets' state and runs the long steps on worker threads, `reading.rs` draws the
//! comparison's table, assessments and timeline.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText};

use crate::follow_up::response::{self, ResponseOptions};
use crate::study::analysis;
use crate::study::compare::{self, CompareOutcome};
use crate::study::reading::Comparison;
use crate::study::visits::{self, NudgeOutcome, OpenOutcome, Visit};
use crate::study::{take_ended, Ended, Job, Study};
use crate::volume::{Lps, Mask};

pub use crate::study::visits::VisitSource;

mod reading;

/// The panel's fields for one follow-up visit of the study (`Study::visits`, same order).
pub struct FollowUpVisit {
    pub label: String,
    /// The shift being edited (baseline LPS mm), applied by "Apply nudge".
    pub pending_mm: Lps,
    /// The turn being edited (degrees, as [`Visit::nudge_deg`]).
    pub pending_deg: f64,
    /// A follow-up mask (NIfTI on the visit's own grid) the user names; empty: the visit's
    /// own labels when it has them, else the U-Net.
    pub mask_path: String,
}

impl FollowUpVisit {
    fn new(visit: &Visit) -> Self {
        FollowUpVisit {
            label: visit.label.clone(),
            pending_mm: visit.nudge_mm,
            pending_deg: visit.nudge_deg,
            mask_path: String::new(),
        }
    }
}

/// Colours of the parts in the follow-up viewports (the baseline's palette for the rest):
/// viable red (still enhancing: what TACE left), necrotic blue, lipiodol pale yellow (dense).
pub const PARTS_COLOURS: [(u8, [f32; 4], &str); 3] = [
    (response::VIABLE, [0.95, 0.15, 0.15, 1.0], "viable"),
    (response::NECROTIC, [0.3, 0.55, 1.0, 1.0], "necrotic"),
    (response::LIPIODOL, [1.0, 0.95, 0.55, 1.0], "lipiodol"),
];

#[derive(Default)]
pub struct FollowUpPanel {
    /// One per visit of the study, in its order (kept so by `sync` each frame).
    pub visits: Vec<FollowUpVisit>,
    compare_job: Option<Job<CompareOutcome>>,
    nudge_job: Option<Job<NudgeOutcome>>,
    open_job: Option<Job<OpenOutcome>>,
    pub comparison: Option<Comparison>,
    /// Row picked in the lesion table.
    pub selected: Option<usize>,
    /// Follow-up study to open (DICOM folder or NIfTI files separated by ';') and its label.
    pub open_path: String,
    pub open_label: String,
    pub message: Option<String>,
    pub error: Option<String>,
    pub options: ResponseOptions,
    /// Where "Save report" writes.
    pub report_dir: String,
    /// Hide the lesion parts in the follow-up viewports (shown once compared).
    pub hide_parts: bool,
}

impl FollowUpPanel {
    /// The overlay of a follow-up viewport (by its phase's key in `study`): the compared
    /// visit's liver and lesion parts, and its key; `None` before a comparison, for the
    /// baseline's phases, or when the user hid the parts.
    pub fn overlay_for(&self, study: &Study, key: u64) -> Option<(&Arc<Mask>, u64)> {
        let label = &study.visit_of(key)?.label;
        let c = self.comparison.as_ref().filter(|_| !self.hide_parts)?;
        c.visits.iter().find(|v| &v.label == label).map(|v| (&v.parts_overlay, v.parts_key))
    }

    /// `base` (the baseline's label palette) with the parts' colours.
    pub fn parts_palette(base: [[f32; 4]; 16]) -> [[f32; 4]; 16] {
        let mut p = base;
        for (label, rgba, _) in PARTS_COLOURS {
            p[label as usize] = rgba;
        }
        p
    }

    pub fn cancel(&self) {
        for j in [
            self.compare_job.as_ref().map(|j| j as &dyn Cancel),
            self.nudge_job.as_ref().map(|j| j as &dyn Cancel),
            self.open_job.as_ref().map(|j| j as &dyn Cancel),
        ]
        .into_iter()
        .flatten()
        {
            j.cancel_job();
        }
    }

    pub fn is_running(&self) -> bool {
        self.compare_job.is_some() || self.nudge_job.is_some() || self.open_job.is_some()
    }

    /// Aligns `follow` onto the baseline and adds its phases to `study` (blocking: CLI and
    /// tests; the panel's Open follow-up runs the same on a worker thread).
    pub fn add_visit(
        &mut self,
        study: &mut Study,
        follow: Study,
        label: &str,
        progress: crate::study::Progress,
    ) -> Result<(), analysis::AnalysisError> {
        let t = analysis::add_follow_up(study, &follow, label, progress)?;
        self.adopt(study, VisitSource { follow, label: label.to_string(), transform: t });
        let fixed = Arc::clone(&study.phases[study.fixed_index()].volume);
        if let Some(v) = study.visits.last_mut() {
            v.measure_auto_ncc(&fixed);
        }
        Ok(())
    }

    /// Records a visit already added to `study` by [`analysis::add_follow_up`] (its
    /// phases are found by label), so it can be compared and nudged.
    pub fn adopt(&mut self, study: &mut Study, source: VisitSource) {
        match study.adopt_visit(source) {
            Ok(()) => {
                // a visit added again under its label starts with fresh fields
                let label = study.visits.last().map(|v| v.label.clone());
                self.visits.retain(|w| Some(&w.label) != label.as_ref());
                self.sync(study);
            }
            Err(label) => {
                self.error = Some(format!("The follow-up {label} was not found complete in the study; add it again."))
            }
        }
    }

    /// The panel's fields, one per visit of `study` in its order: kept by label, new ones
    /// for visits the study gained.
    fn sync(&mut self, study: &Study) {
        let mut old = std::mem::take(&mut self.visits);
        for v in &study.visits {
            match old.iter().position(|w| w.label == v.label) {
                Some(i) => self.visits.push(old.swap_remove(i)),
                None => self.visits.push(FollowUpVisit::new(v)),
            }
        }
    }

    /// Starts opening a follow-up study and aligning it onto the baseline.
    pub fn start_open(&mut self, study: &Study) {
        let paths: Vec<PathBuf> =
            self.open_path.split(';').map(str::trim).filter(|p| !p.is_empty()).map(Into::into).collect();
        if paths.is_empty() {
            return;
        }
        let typed = self.open_label.trim().to_string();
        let n = study.visits.len() + 1;
        self.error = None;
        self.open_job = Some(Job::spawn("Opening the follow-up", visits::open_work(paths, typed, n, study.clone())));
    }

    /// Starts the comparison of every visit with the baseline.
    pub fn start_compare(&mut self, study: &Study) {
        let Some(labels) = study.labels.as_ref() else {
            self.error = Some("The baseline has no label mask: open one or segment it first.".into());
            return;
        };
        if study.visits.is_empty() {
            self.error = Some("No follow-up visit: open one first.".into());
            return;
        }
        self.sync(study);
        let base_mask = Arc::clone(&labels.mask);
        let base = study.baseline();
        let base_label = visits::baseline_label(study);
        let model = super::segment::model_path();
        let inputs = study.visits.iter().zip(&self.visits).map(|(v, w)| v.compare_input(study, &w.mask_path)).collect();
        let opts = self.options.clone();
        self.error = None;
        self.message = None;
        self.compare_job = Some(Job::spawn("Comparing visits", move |progress| {
            compare::compare_all_visits(&base, base_mask, &base_label, inputs, &opts, model, progress)
        }));
    }

    /// Starts resampling visit `vi`'s phases with its pending nudge (or, with `ncc_only`,
    /// only measuring the residual NCC of the alignment applied now).
    fn start_nudge(&mut self, study: &Study, vi: usize, ncc_only: bool) {
        let (Some(v), Some(w)) = (study.visits.get(vi), self.visits.get(vi)) else { return };
        let (nudge_mm, nudge_deg) = if ncc_only { (v.nudge_mm, v.nudge_deg) } else { (w.pending_mm, w.pending_deg) };
        let work = v.nudge_work(study, nudge_mm, nudge_deg, ncc_only);
        let title = format!("Aligning {} by hand", v.label);
        if !ncc_only {
            // a new action by hand: what the last one said no longer applies
            self.error = None;
            self.message = None;
        }
        self.nudge_job = Some(Job::spawn(title, work));
    }

    /// Polls the jobs; takes in their results.
    pub fn poll(&mut self, study: &mut Study, ctx: &egui::Context) {
        study.adopt_orphan_visits();
        self.sync(study);
        if let Some(ended) = take_ended(&mut self.open_job) {
            match ended {
                Ended::Done(o) => {
                    self.message = Some(format!(
                        "Follow-up {} added: rotation {:.1} deg, translation ({:.1}, {:.1}, {:.1}) mm.",
                        o.label,
                        o.transform.rotation_deg(),
                        o.transform.translation_mm[0],
                        o.transform.translation_mm[1],
                        o.transform.translation_mm[2]
                    ));
                    let source = o.add_to(study);
                    let vi = study.visits.len();
                    self.adopt(study, source);
                    self.open_label.clear();
                    self.start_nudge(study, vi.min(study.visits.len().saturating_sub(1)), true);
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Could not add the follow-up: {e}")),
            }
        }
        if let Some(ended) = take_ended(&mut self.nudge_job) {
            match ended {
                Ended::Done(o) => {
                    let label = o.label.clone();
                    if study.take_nudge(o) {
                        let v = study.visits.iter().find(|v| v.label == label);
                        if let (Some(v), Some(w)) = (v, self.visits.iter_mut().find(|w| w.label == label)) {
                            (w.pending_mm, w.pending_deg) = (v.nudge_mm, v.nudge_deg);
                        }
                        if let Some(c) = self.comparison.as_mut() {
                            c.stale = true;
                        }
                    }
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Nudge failed: {e}")),
            }
        }
        if let Some(ended) = take_ended(&mut self.compare_job) {
            match ended {
                Ended::Done(o) => {
                    for vo in &o.visits {
                        if let Some(v) = study.visits.iter_mut().find(|v| v.label == vo.label) {
                            v.mask = Some((Arc::clone(&vo.mask), vo.note.clone()));
                        }
                    }
                    let label = visits::baseline_label(study);
                    self.comparison = Some(Comparison::from_outcome(o, label, self.comparison.as_ref()));
                    self.selected = None;
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Comparing the visits failed: {e}")),
            }
        }
        if self.is_running() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Pairs baseline lesion `b` of visit `vi` with follow-up lesion `f` (or none) and
    /// assesses the response again.
    pub fn repair(&mut self, vi: usize, b: usize, f: Option<usize>) {
        if let Some(c) = self.comparison.as_mut() {
            c.repair(vi, b, f, &self.options);
        }
    }

    /// Splits baseline lesion `b` of visit `vi` into the follow-up lesions `fragments` and
    /// assesses the response again.
    pub fn split(&mut self, vi: usize, b: usize, fragments: &[usize]) {
        if let Some(c) = self.comparison.as_mut() {
            c.split(vi, b, fragments, &self.options);
        }
    }

    /// Draws the section; returns a point to move the crosshair to (a lesion picked).
    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) -> Option<Lps> {
        ui.heading("Follow-up");
        let mut jump = None;
        // adding a visit
        if let Some(job) = &self.open_job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel opening").clicked() {
                job.cancel();
            }
        } else {
            let l = ui.label("follow-up study (folder or NIfTI files; ';' between)");
            ui.text_edit_singleline(&mut self.open_path).labelled_by(l.id);
            ui.horizontal(|ui| {
                let l = ui.label("visit label");
                ui.add(egui::TextEdit::singleline(&mut self.open_label).desired_width(80.0).hint_text("date"))
                    .labelled_by(l.id);
                if ui
                    .add_enabled(!self.open_path.trim().is_empty(), egui::Button::new("Open follow-up"))
                    .on_hover_text("aligned onto the baseline (rigid, then affine) and shown beside it")
                    .clicked()
                {
                    self.start_open(study);
                }
            });
        }
        if study.visits.is_empty() {
            ui.label(RichText::new("No follow-up visit yet.").small());
        }
        // each visit: alignment, nudge, mask
        let mut nudge = None;
        self.sync(study);
        for (vi, (v, w)) in study.visits.iter_mut().zip(self.visits.iter_mut()).enumerate() {
            let FollowUpVisit { pending_mm, pending_deg, mask_path, .. } = w;
            ui.separator();
            ui.strong(format!("Visit {}", v.label));
            let t = v.transform();
            ui.label(
                RichText::new(format!(
                    "aligned: rotation {:.1} deg, translation ({:.1}, {:.1}, {:.1}) mm",
                    t.rotation_deg(),
                    t.translation_mm[0],
                    t.translation_mm[1],
                    t.translation_mm[2]
                ))
                .small(),
            );
            let ncc = |n: Option<f64>| n.map_or("-".to_string(), |n| format!("{n:.3}"));
            ui.label(format!("residual NCC: automatic {}, now {}", ncc(v.ncc_auto), ncc(v.ncc_now))).on_hover_text(
                "normalised cross-correlation over the body, baseline vs follow-up reference phase, at 4 mm",
            );
            ui.horizontal(|ui| {
                ui.label("nudge mm");
                for (a, name) in ["x (L)", "y (P)", "z (S)"].iter().enumerate() {
                    ui.add(
                        egui::DragValue::new(&mut pending_mm[a])
                            .speed(0.5)
                            .range(-100.0..=100.0)
                            .prefix(format!("{name} ")),
                    );
                }
            })
            .response
            .on_hover_text("move the follow-up images by this much (baseline LPS mm), then Apply");
            ui.horizontal(|ui| {
                for (a, name) in ["L", "P", "S"].iter().enumerate() {
                    if ui.small_button(format!("{name}-")).clicked() {
                        pending_mm[a] -= 1.0;
                    }
                    if ui.small_button(format!("{name}+")).clicked() {
                        pending_mm[a] += 1.0;
                    }
                }
            });
            ui.horizontal(|ui| {
                let l = ui.label("turn deg");
                ui.add(egui::DragValue::new(pending_deg).speed(0.2).range(-30.0..=30.0)).labelled_by(l.id).on_hover_text("turn the follow-up images about the head-foot axis through the centre of the baseline (positive: clockwise on the axial view), then Apply");
                if ui.small_button("turn -0.5").clicked() {
                    *pending_deg -= 0.5;
                }
                if ui.small_button("turn +0.5").clicked() {
                    *pending_deg += 0.5;
                }
            });
            ui.horizontal(|ui| {
                let changed = *pending_mm != v.nudge_mm || *pending_deg != v.nudge_deg;
                if ui
                    .add_enabled(
                        changed && self.nudge_job.is_none(),
                        egui::Button::new(format!("Apply nudge {}", v.label)),
                    )
                    .clicked()
                {
                    nudge = Some((vi, false));
                }
                let nudged = v.nudge_mm != [0.0; 3] || v.nudge_deg != 0.0;
                if ui
                    .add_enabled(nudged && self.nudge_job.is_none(), egui::Button::new("Reset"))
                    .on_hover_text("back to the automatic alignment")
                    .clicked()
                {
                    *pending_mm = [0.0; 3];
                    *pending_deg = 0.0;
                    nudge = Some((vi, false));
                }
            });
            let l = ui.label("follow-up mask (optional NIfTI, on the visit's own grid)");
            if ui.text_edit_singleline(mask_path).labelled_by(l.id).changed() {
                v.mask = None;
            }
            let plan = match (&v.mask, mask_path.trim().is_empty(), v.source.labels.is_some()) {
                (Some((_, note)), _, _) => format!("mask: {note}"),
                (None, false, _) => "mask: the file above, carried through the visit alignment".into(),
                (None, true, true) => "mask: the visit's own, carried through the visit alignment".into(),
                (None, true, false) => {
                    "no mask for this visit: Compare visits outlines it with the shipped U-Net (check it)".into()
                }
            };
            ui.label(RichText::new(plan).small().italics());
        }
        if let Some(job) = &self.nudge_job {
            ui.label(&job.title);
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
        }
        if let Some((vi, ncc_only)) = nudge {
            self.start_nudge(study, vi, ncc_only);
        }
        ui.separator();
        // comparing
        if let Some(job) = &self.compare_job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel comparison").clicked() {
                job.cancel();
            }
        } else if ui
            .add_enabled(!study.visits.is_empty() && study.labels.is_some(), egui::Button::new("Compare visits"))
            .on_hover_text("measure the baseline and each follow-up on the baseline's grid, pair their lesions, RECIST 1.1 and mRECIST")
            .clicked()
        {
            self.start_compare(study);
        }
        if study.labels.is_none() {
            ui.label(RichText::new("The baseline needs a label mask (open or segment one) to compare visits.").small());
        }
        if let Some(c) = &self.comparison {
            if c.stale {
                ui.colored_label(Color32::YELLOW, "The alignment changed since: Compare visits again.");
            }
            let mut show = !self.hide_parts;
            ui.horizontal_wrapped(|ui| {
                ui.checkbox(&mut show, "lesion parts on the follow-up:").on_hover_text(
                    "the follow-up viewports show the visit's liver and each lesion's parts (labels on, M)",
                );
                for (_, rgba, name) in PARTS_COLOURS {
                    let c =
                        Color32::from_rgb((rgba[0] * 255.0) as u8, (rgba[1] * 255.0) as u8, (rgba[2] * 255.0) as u8);
                    ui.label(RichText::new(name).color(c).strong());
                }
            });
            self.hide_parts = !show;
            jump = self.table_ui(ui);
            self.assessment_ui(ui);
            self.timeline_ui(ui);
            self.report_ui(ui, study);
        }
        if let Some(m) = &self.message {
            ui.label(RichText::new(m).small());
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
        jump
    }

    /// Writes one report per visit into the report folder (a sub-folder per visit when
    /// there are several), with the categories as read in the panel; never over a file.
    pub fn save_report(&self, study: &Study) -> Result<Vec<PathBuf>, String> {
        let c = self.comparison.as_ref().ok_or("compare the visits first")?;
        c.save_reports(&study.visits, &self.report_dir)
    }
}

/// Cancelling any of the panel's jobs, whatever it yields.
trait Cancel {
    fn cancel_job(&self);
}

impl<T: Send + 'static> Cancel for Job<T> {
    fn cancel_job(&self) {
        self.cancel();
    }
}
