//! The "Follow-up" section of the side panel: treatment response of each follow-up visit
//! against the baseline (e.g. after TACE). "Compare visits" measures the baseline (the
//! study's label mask) and every follow-up visit (its own mask carried through the visit
//! transform, a mask the user names, or the shipped U-Net's outline, said so) on the
//! baseline's grid, pairs the lesions and assesses RECIST 1.1 and mRECIST, on a worker
//! thread with progress and Cancel. The lesion table has one column group per time point;
//! a row click moves the crosshair to the lesion; the radiologist can re-pair lesions,
//! override each category, and nudge a visit's alignment by hand (the follow-up phases are
//! resampled again from the study as opened, with the residual NCC before and after).
//! The maths is in `analysis` and `follow_up` (the comparison, pairing, the lesion table);
//! this file only couples widgets to it.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText, Stroke};

use crate::analysis::{self, AlignedPhase};
use crate::follow_up::compare::{
    self, baseline_visit, parts_overlay, shown_visit, CompareOutcome, MaskPlan, VisitInput, VisitOutcome,
};
use crate::follow_up::response::{self, Category, Pairing, Response, ResponseOptions, VisitMeasure};
use crate::follow_up::table::{self, Row, TimePoint};
use crate::follow_up::{parse_visit_name, visit_description};
use crate::register::affine::{ncc_at, resample_affine, AffineParams, AffineTransform};
use crate::study::{next_key, take_ended, Ended, Job, PhaseImage, Study};
use crate::volume::{CtVolume, Lps, Mask};

/// Pyramid spacing (mm) of the residual NCC shown for a visit's alignment.
const NCC_SPACING_MM: f64 = 4.0;

/// A follow-up visit added to the study by [`analysis::add_follow_up`], as the CLI hands it
/// to the viewer: the study as opened and the transform it was resampled through.
pub struct VisitSource {
    pub follow: Study,
    pub label: String,
    pub transform: AffineTransform,
}

/// One follow-up visit shown in the study.
pub struct FollowUpVisit {
    pub label: String,
    /// The visit as opened, on its own grids; for a visit found already resampled in the
    /// study (added without its source), those resampled phases, with `auto` the identity.
    source: Study,
    /// Baseline world point → source world point, as the automatic alignment found it.
    pub auto: AffineTransform,
    /// Shift of the follow-up images by hand (baseline LPS mm) now applied.
    pub nudge_mm: Lps,
    /// The shift being edited, applied by "Apply nudge".
    pub pending_mm: Lps,
    /// Turn of the follow-up images by hand about the patient's head-foot axis through
    /// `pivot_mm` (degrees, clockwise on the axial view), and the one edited.
    pub nudge_deg: f64,
    pub pending_deg: f64,
    /// The centre of the baseline's reference phase: what a turn by hand turns about.
    pub pivot_mm: Lps,
    /// Residual NCC (body voxels) of the automatic alignment and of the one applied now.
    pub ncc_auto: Option<f64>,
    pub ncc_now: Option<f64>,
    /// Keys of this visit's phases in the study, in `source.phases` order.
    pub keys: Vec<u64>,
    /// A follow-up mask (NIfTI on the visit's own grid) the user names; empty: the visit's
    /// own labels when it has them, else the U-Net.
    pub mask_path: String,
    /// The mask on the baseline mask's grid and where it came from, kept between runs until
    /// the alignment changes.
    mask: Option<(Arc<Mask>, String)>,
}

impl FollowUpVisit {
    /// The transform the shown images are resampled through now.
    pub fn transform(&self) -> AffineTransform {
        analysis::nudge_visit_transform(&self.auto, self.nudge_mm, self.nudge_deg, self.pivot_mm)
    }
}

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

/// Colours of the parts in the follow-up viewports (the baseline's palette for the rest):
/// viable red (still enhancing: what TACE left), necrotic blue, lipiodol pale yellow (dense).
pub const PARTS_COLOURS: [(u8, [f32; 4], &str); 3] = [
    (response::VIABLE, [0.95, 0.15, 0.15, 1.0], "viable"),
    (response::NECROTIC, [0.3, 0.55, 1.0, 1.0], "necrotic"),
    (response::LIPIODOL, [1.0, 0.95, 0.55, 1.0], "lipiodol"),
];

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

struct NudgeOutcome {
    label: String,
    nudge_mm: Lps,
    nudge_deg: f64,
    /// New images in `source.phases` order (`None`: only the NCC was computed).
    volumes: Option<Vec<Arc<CtVolume>>>,
    ncc_auto: Option<f64>,
    ncc_now: Option<f64>,
}

struct OpenOutcome {
    phases: Vec<PhaseImage>,
    keys_before: Vec<u64>,
    follow: Study,
    label: String,
    transform: AffineTransform,
}

#[derive(Default)]
pub struct FollowUpPanel {
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

/// The last word of a title that reads as a date (YYYYMMDD).
fn date_in(title: &str) -> Option<String> {
    title.split_whitespace().rev().find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit())).map(str::to_string)
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::CR => "CR",
        Category::PR => "PR",
        Category::SD => "SD",
        Category::PD => "PD",
    }
}

impl Comparison {
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
}

impl FollowUpPanel {
    /// The overlay of a follow-up viewport (by its phase's description): the compared
    /// visit's liver and lesion parts, and its key; `None` before a comparison, for the
    /// baseline's phases, or when the user hid the parts.
    pub fn overlay_for(&self, description: &str) -> Option<(&Arc<Mask>, u64)> {
        let label = parse_visit_name(description)?.label;
        let c = self.comparison.as_ref().filter(|_| !self.hide_parts)?;
        c.visits.iter().find(|v| v.label == label).map(|v| (&v.parts_overlay, v.parts_key))
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
        progress: crate::study::ProgressFn,
    ) -> Result<(), analysis::AnalysisError> {
        let t = analysis::add_follow_up(study, &follow, label, progress)?;
        self.adopt(study, VisitSource { follow, label: label.to_string(), transform: t });
        if let Some(v) = self.visits.last_mut() {
            let fixed = &study.phases[study.fixed_index()].volume;
            let ncc = ncc_at(
                fixed,
                &v.source.phases[v.source.fixed_index()].volume,
                &v.auto,
                NCC_SPACING_MM,
                AffineParams::default().body_threshold_hu,
            );
            (v.ncc_auto, v.ncc_now) = (ncc, ncc);
        }
        Ok(())
    }

    /// Records a visit already added to `study` by [`analysis::add_follow_up`] (its
    /// phases are found by label), so it can be compared and nudged.
    pub fn adopt(&mut self, study: &Study, source: VisitSource) {
        // the shown phases in the order of the source's phases (names carry the phase)
        let keys: Vec<u64> = source
            .follow
            .phases
            .iter()
            .filter_map(|sp| {
                let want = visit_description(&source.label, sp.phase(), &sp.description);
                study.phases.iter().find(|p| p.description == want).map(|p| p.key)
            })
            .collect();
        if keys.len() != source.follow.phases.len() {
            self.error =
                Some(format!("The follow-up {} was not found complete in the study; add it again.", source.label));
            return;
        }
        self.visits.retain(|v| v.label != source.label);
        self.visits.push(FollowUpVisit {
            label: source.label,
            source: source.follow,
            auto: source.transform,
            nudge_mm: [0.0; 3],
            pending_mm: [0.0; 3],
            nudge_deg: 0.0,
            pending_deg: 0.0,
            pivot_mm: study.phases[study.fixed_index()].volume.geometry.centre_mm(),
            ncc_auto: None,
            ncc_now: None,
            keys,
            mask_path: String::new(),
            mask: None,
        });
    }

    /// Follow-up phases in the study that no recorded visit owns (added without their
    /// source): recorded as visits already on the baseline grid, so they can be compared
    /// and nudged too.
    fn adopt_orphans(&mut self, study: &Study) {
        let owned: std::collections::HashSet<u64> = self.visits.iter().flat_map(|v| v.keys.iter().copied()).collect();
        let mut found: Vec<(String, Vec<u64>)> = Vec::new();
        for p in study.phases.iter().filter(|p| !owned.contains(&p.key)) {
            let Some(label) = parse_visit_name(&p.description).map(|n| n.label) else { continue };
            match found.iter_mut().find(|(l, _)| l == label) {
                Some((_, keys)) => keys.push(p.key),
                None => found.push((label.to_string(), vec![p.key])),
            }
        }
        for (label, keys) in found {
            let source = shown_visit(study, &keys, &label);
            let keys = source.phases.iter().map(|p| p.key).collect();
            let centre = study.phases[study.fixed_index()].volume.geometry.centre_mm();
            self.visits.retain(|v| v.label != label);
            self.visits.push(FollowUpVisit {
                label,
                source,
                auto: AffineTransform::identity(centre),
                nudge_mm: [0.0; 3],
                pending_mm: [0.0; 3],
                nudge_deg: 0.0,
                pending_deg: 0.0,
                pivot_mm: centre,
                ncc_auto: None,
                ncc_now: None,
                keys,
                mask_path: String::new(),
                mask: None,
            });
        }
        // a visit whose phases left the study (another study opened) is dropped
        self.visits.retain(|v| v.keys.iter().all(|k| study.phases.iter().any(|p| p.key == *k)));
    }

    /// Starts opening a follow-up study and aligning it onto the baseline.
    pub fn start_open(&mut self, study: &Study) {
        let paths: Vec<PathBuf> =
            self.open_path.split(';').map(str::trim).filter(|p| !p.is_empty()).map(Into::into).collect();
        if paths.is_empty() {
            return;
        }
        let typed = self.open_label.trim().to_string();
        let n = self.visits.len() + 1;
        let base = study.clone();
        self.error = None;
        self.open_job = Some(Job::spawn("Opening the follow-up", move |progress| {
            let opening = |f: f32, m: &str| progress(0.3 * f, &format!("opening: {m}"));
            let follow = Study::open_with_progress(&paths, &opening).map_err(|e| e.to_string())?;
            let label = if typed.is_empty() {
                date_in(&follow.title).unwrap_or_else(|| format!("visit {}", n + 1))
            } else {
                typed
            };
            let mut s = base.clone();
            let aligning = |f: f32, m: &str| progress(0.3 + 0.7 * f, m);
            let transform = analysis::add_follow_up(&mut s, &follow, &label, &aligning).map_err(|e| e.to_string())?;
            let keys_before = base.phases.iter().map(|p| p.key).collect();
            Ok(OpenOutcome { phases: s.phases, keys_before, follow, label, transform })
        }));
    }

    /// Starts the comparison of every visit with the baseline.
    pub fn start_compare(&mut self, study: &Study) {
        let Some(labels) = study.labels.as_ref() else {
            self.error = Some("The baseline has no label mask: open one or segment it first.".into());
            return;
        };
        if self.visits.is_empty() {
            self.error = Some("No follow-up visit: open one first.".into());
            return;
        }
        let base_mask = Arc::clone(&labels.mask);
        let base = baseline_visit(study);
        let base_label = self.baseline_label(study);
        let model = super::segment::model_path();
        let mut inputs = Vec::new();
        for v in &self.visits {
            let plan = if let Some((m, note)) = &v.mask {
                MaskPlan::Cached(Arc::clone(m), note.clone())
            } else if !v.mask_path.trim().is_empty() {
                MaskPlan::File(PathBuf::from(v.mask_path.trim()), v.transform())
            } else if let Some(l) = &v.source.labels {
                MaskPlan::Own(Arc::clone(&l.mask), v.transform())
            } else {
                MaskPlan::UNet
            };
            inputs.push(VisitInput { label: v.label.clone(), study: shown_visit(study, &v.keys, &v.label), plan });
        }
        let opts = self.options.clone();
        self.error = None;
        self.message = None;
        self.compare_job = Some(Job::spawn("Comparing visits", move |progress| {
            compare::compare_all_visits(&base, base_mask, &base_label, inputs, &opts, model, progress)
        }));
    }

    fn baseline_label(&self, study: &Study) -> String {
        date_in(&study.title).map(|d| format!("baseline {d}")).unwrap_or_else(|| "baseline".into())
    }

    /// Starts resampling visit `vi`'s phases with its pending nudge (or, with `ncc_only`,
    /// only measuring the residual NCC of the alignment applied now).
    fn start_nudge(&mut self, study: &Study, vi: usize, ncc_only: bool) {
        let Some(v) = self.visits.get(vi) else { return };
        let fixed = Arc::clone(&study.phases[study.fixed_index()].volume);
        let grid = fixed.geometry.clone();
        let sources: Vec<Arc<CtVolume>> = v.source.phases.iter().map(|p| Arc::clone(&p.volume)).collect();
        let reference = Arc::clone(&v.source.phases[v.source.fixed_index()].volume);
        let (auto, label) = (v.auto, v.label.clone());
        let (nudge_mm, nudge_deg) = if ncc_only { (v.nudge_mm, v.nudge_deg) } else { (v.pending_mm, v.pending_deg) };
        let (known_auto, pivot) = (v.ncc_auto, v.pivot_mm);
        if !ncc_only {
            // a new action by hand: what the last one said no longer applies
            self.error = None;
            self.message = None;
        }
        self.nudge_job = Some(Job::spawn(format!("Aligning {label} by hand"), move |progress| {
            let t = analysis::nudge_visit_transform(&auto, nudge_mm, nudge_deg, pivot);
            let thr = AffineParams::default().body_threshold_hu;
            let ncc_auto = known_auto.or_else(|| ncc_at(&fixed, &reference, &auto, NCC_SPACING_MM, thr));
            let ncc_now = if nudge_mm == [0.0; 3] && nudge_deg == 0.0 {
                ncc_auto
            } else {
                ncc_at(&fixed, &reference, &t, NCC_SPACING_MM, thr)
            };
            let volumes = if ncc_only {
                None
            } else {
                let mut out = Vec::new();
                for (n, s) in sources.iter().enumerate() {
                    if !progress(n as f32 / sources.len() as f32, "resampling the follow-up") {
                        return Err("cancelled".into());
                    }
                    out.push(Arc::new(resample_affine(s, &grid, &t)));
                }
                Some(out)
            };
            Ok(NudgeOutcome { label, nudge_mm, nudge_deg, volumes, ncc_auto, ncc_now })
        }));
    }

    /// Polls the jobs; takes in their results.
    pub fn poll(&mut self, study: &mut Study, ctx: &egui::Context) {
        self.adopt_orphans(study);
        if let Some(ended) = take_ended(&mut self.open_job) {
            match ended {
                Ended::Done(o) => {
                    let new: Vec<PhaseImage> =
                        o.phases.iter().filter(|p| !o.keys_before.contains(&p.key)).cloned().collect();
                    if study.phases.iter().map(|p| p.key).eq(o.keys_before.iter().copied()) {
                        study.phases = o.phases;
                    } else {
                        // the study changed meanwhile: the new phases go at the end
                        study.phases.extend(new);
                    }
                    self.message = Some(format!(
                        "Follow-up {} added: rotation {:.1} deg, translation ({:.1}, {:.1}, {:.1}) mm.",
                        o.label,
                        o.transform.rotation_deg(),
                        o.transform.translation_mm[0],
                        o.transform.translation_mm[1],
                        o.transform.translation_mm[2]
                    ));
                    let vi = self.visits.len();
                    self.adopt(study, VisitSource { follow: o.follow, label: o.label, transform: o.transform });
                    self.open_label.clear();
                    self.start_nudge(study, vi.min(self.visits.len().saturating_sub(1)), true);
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Could not add the follow-up: {e}")),
            }
        }
        if let Some(ended) = take_ended(&mut self.nudge_job) {
            match ended {
                Ended::Done(o) => {
                    if let Some(v) = self.visits.iter_mut().find(|v| v.label == o.label) {
                        (v.ncc_auto, v.ncc_now) = (o.ncc_auto, o.ncc_now);
                        if let Some(volumes) = o.volumes {
                            for (key, vol) in v.keys.iter_mut().zip(volumes) {
                                if let Some(p) = study.phases.iter_mut().find(|p| p.key == *key) {
                                    p.volume = vol;
                                    p.key = next_key();
                                    *key = p.key;
                                }
                            }
                            v.nudge_mm = o.nudge_mm;
                            v.pending_mm = o.nudge_mm;
                            v.nudge_deg = o.nudge_deg;
                            v.pending_deg = o.nudge_deg;
                            v.mask = None;
                            if let Some(c) = self.comparison.as_mut() {
                                c.stale = true;
                            }
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
                    let mut visits = Vec::new();
                    for VisitOutcome { comparison: c, mask, note, label, phases } in o.visits {
                        if let Some(v) = self.visits.iter_mut().find(|v| v.label == label) {
                            v.mask = Some((Arc::clone(&mask), note.clone()));
                        }
                        let old = self.comparison.as_ref().and_then(|old| old.visits.iter().find(|r| r.label == label));
                        let (recist_override, mrecist_override) =
                            old.map(|r| (r.recist_override, r.mrecist_override)).unwrap_or_default();
                        let liver_note = match &c.liver_demons {
                            Some(d) => format!("Demons on the liver: RMSD {:.0} -> {:.0} HU, up to {:.1} mm; lesions paired through it", d.rmsd_before_hu, d.rmsd_after_hu, d.max_displacement_mm),
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
                            parts_key: crate::study::next_key(),
                        });
                    }
                    self.comparison = Some(Comparison {
                        baseline_label: self.baseline_label(study),
                        baseline: o.baseline,
                        baseline_phases: o.baseline_phases,
                        baseline_mask: o.baseline_mask,
                        visits,
                        stale: false,
                    });
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
        let Some(c) = self.comparison.as_mut() else { return };
        let Some(v) = c.visits.get_mut(vi) else { return };
        let (nb, nf) = (c.baseline.report.lesions.len(), v.followup.report.lesions.len());
        if b == 0 || b > nb || f.is_some_and(|f| f == 0 || f > nf) {
            return;
        }
        v.pairs = response::repair(&v.pairs, nb, nf, b, f, &c.baseline, &v.followup);
        let label = v.response.baseline.clone();
        v.response = response::assess(&label, &c.baseline, &v.label, &v.followup, &v.pairs, &self.options);
    }

    /// Splits baseline lesion `b` of visit `vi` into the follow-up lesions `fragments` and
    /// assesses the response again.
    pub fn split(&mut self, vi: usize, b: usize, fragments: &[usize]) {
        let Some(c) = self.comparison.as_mut() else { return };
        let Some(v) = c.visits.get_mut(vi) else { return };
        let (nb, nf) = (c.baseline.report.lesions.len(), v.followup.report.lesions.len());
        if b == 0 || b > nb || fragments.iter().any(|&f| f == 0 || f > nf) {
            return;
        }
        v.pairs = response::split_lesion(&v.pairs, b, fragments, nb, nf);
        let label = v.response.baseline.clone();
        v.response = response::assess(&label, &c.baseline, &v.label, &v.followup, &v.pairs, &self.options);
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
        if self.visits.is_empty() {
            ui.label(RichText::new("No follow-up visit yet.").small());
        }
        // each visit: alignment, nudge, mask
        let mut nudge = None;
        for (vi, v) in self.visits.iter_mut().enumerate() {
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
                        egui::DragValue::new(&mut v.pending_mm[a])
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
                        v.pending_mm[a] -= 1.0;
                    }
                    if ui.small_button(format!("{name}+")).clicked() {
                        v.pending_mm[a] += 1.0;
                    }
                }
            });
            ui.horizontal(|ui| {
                let l = ui.label("turn deg");
                ui.add(egui::DragValue::new(&mut v.pending_deg).speed(0.2).range(-30.0..=30.0)).labelled_by(l.id).on_hover_text("turn the follow-up images about the head-foot axis through the centre of the baseline (positive: clockwise on the axial view), then Apply");
                if ui.small_button("turn -0.5").clicked() {
                    v.pending_deg -= 0.5;
                }
                if ui.small_button("turn +0.5").clicked() {
                    v.pending_deg += 0.5;
                }
            });
            ui.horizontal(|ui| {
                let changed = v.pending_mm != v.nudge_mm || v.pending_deg != v.nudge_deg;
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
                    v.pending_mm = [0.0; 3];
                    v.pending_deg = 0.0;
                    nudge = Some((vi, false));
                }
            });
            let l = ui.label("follow-up mask (optional NIfTI, on the visit's own grid)");
            if ui.text_edit_singleline(&mut v.mask_path).labelled_by(l.id).changed() {
                v.mask = None;
            }
            let plan = match (&v.mask, v.mask_path.trim().is_empty(), v.source.labels.is_some()) {
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
            .add_enabled(!self.visits.is_empty() && study.labels.is_some(), egui::Button::new("Compare visits"))
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
            self.report_ui(ui);
        }
        if let Some(m) = &self.message {
            ui.label(RichText::new(m).small());
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
        jump
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) -> Option<Lps> {
        let c = self.comparison.as_ref()?;
        let rows = c.rows();
        let tps = c.time_points();
        let mut jump = None;
        // one column per time point, each cell "mL · LD mm · viable mL": narrow enough for
        // the side panel with a few visits
        egui::ScrollArea::horizontal().id_salt("follow_up_table_scroll").show(ui, |ui| {
            egui::Grid::new("follow_up_table").striped(true).show(ui, |ui| {
                ui.label(RichText::new("lesion").small().strong());
                for tp in &tps {
                    ui.label(RichText::new(tp).small().strong()).on_hover_text(
                        "volume mL · longest axial diameter mm (RECIST) · viable (arterially enhancing) mL",
                    );
                }
                ui.end_row();
                ui.label("");
                for _ in &tps {
                    ui.label(RichText::new("mL · LD mm · viable").small());
                }
                ui.end_row();
                for (n, r) in rows.iter().enumerate() {
                    // new and gone lesions flagged in colour beside the name, the details on hover
                    let flag = if r.status.contains("NEW") {
                        Some(("NEW", Color32::from_rgb(255, 140, 100)))
                    } else if r.status.contains("GONE") {
                        Some(("GONE", Color32::from_rgb(120, 190, 255)))
                    } else {
                        r.status.contains("by hand").then_some(("hand", Color32::from_rgb(230, 200, 90)))
                    };
                    ui.horizontal(|ui| {
                        ui.spacing_mut().item_spacing.x = 3.0;
                        if ui
                            .selectable_label(self.selected == Some(n), &r.name)
                            .on_hover_text(format!("go to this lesion\n{}", r.status))
                            .clicked()
                        {
                            self.selected = Some(n);
                            jump = Some(r.at_mm);
                        }
                        if let Some((f, colour)) = flag {
                            ui.label(RichText::new(f).small().color(colour)).on_hover_text(&r.status);
                        }
                    });
                    for cell in &r.cells {
                        ui.label(
                            RichText::new(match cell {
                                Some(c) => format!(
                                    "{:.1} · {:.0} · {}",
                                    c.volume_ml,
                                    c.long_axis_mm,
                                    c.viable_ml.map_or("-".into(), |v| format!("{v:.1}"))
                                ),
                                None => "-".into(),
                            })
                            .small(),
                        );
                    }
                    ui.end_row();
                }
            });
        });
        jump
    }

    fn assessment_ui(&mut self, ui: &mut egui::Ui) {
        let mut repairs = Vec::new();
        let mut splits = Vec::new();
        let Some(c) = self.comparison.as_mut() else { return };
        ui.label(RichText::new(response::RESPONSE_DISCLAIMER).small().italics());
        for (vi, v) in c.visits.iter_mut().enumerate() {
            ui.separator();
            ui.strong(format!("{} vs {}", v.label, c.baseline_label));
            ui.label(RichText::new(format!("follow-up mask: {}", v.mask_note)).small());
            ui.label(RichText::new(&v.liver_note).small());
            let r = &v.response;
            let pct = |a: f64, b: f64| if a > 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a) } else { "-".into() };
            ui.label(format!(
                "tumour volume {:.2} -> {:.2} mL ({})",
                r.total_baseline_ml,
                r.total_followup_ml,
                pct(r.total_baseline_ml, r.total_followup_ml)
            ));
            if let (Some(a), Some(b)) = (r.viable_baseline_ml, r.viable_followup_ml) {
                ui.label(format!("viable tumour {a:.2} -> {b:.2} mL ({})", pct(a, b)));
            }
            for (id, (p, lip)) in v.followup.parts.iter().zip(&v.followup.lipiodol_ml).enumerate() {
                let text = match p {
                    Some(p) => format!(
                        "  F{}: viable {:.2}, necrotic {:.2}, lipiodol {:.2} mL",
                        id + 1,
                        p.viable_ml,
                        p.necrotic_ml,
                        p.lipiodol_ml
                    ),
                    None => format!("  F{}: lipiodol {lip:.2} mL (viable and necrotic need an arterial phase)", id + 1),
                };
                ui.label(RichText::new(text).small());
            }
            let assessments = [
                ("RECIST 1.1", Some(&r.recist), &mut v.recist_override),
                ("mRECIST", r.mrecist.as_ref(), &mut v.mrecist_override),
            ];
            for (name, a, over) in assessments {
                let Some(a) = a else {
                    ui.label(format!("{name}: not assessed (no arterial phase in both visits)"));
                    continue;
                };
                let shown = over.unwrap_or(a.category);
                let who = if over.is_some() { "read by the radiologist" } else { "computed, to confirm" };
                ui.label(RichText::new(format!("{name}: {} ({who})", category_name(shown))).strong());
                ui.label(RichText::new(format!("computed {}: {}", category_name(a.category), a.reason)).small());
                for t in &a.targets {
                    let f = match (t.followup_fragments.len(), t.followup_id) {
                        (n, _) if n > 1 => {
                            t.followup_fragments.iter().map(|f| format!("F{f}")).collect::<Vec<_>>().join(" + ")
                        }
                        (_, Some(f)) => format!("F{f}"),
                        (_, None) => "gone".to_string(),
                    };
                    let sl = |s: Option<usize>| s.map_or("-".to_string(), |s| s.to_string());
                    ui.label(
                        RichText::new(format!(
                            "  B{} -> {f}: {:.1} -> {:.1} mm (slices {} / {})",
                            t.baseline_id,
                            t.baseline_mm,
                            t.followup_mm,
                            sl(t.baseline_slice),
                            sl(t.followup_slice)
                        ))
                        .small(),
                    );
                }
                egui::ComboBox::new(("category_override", vi, name), format!("{name} read {}", v.label))
                    .selected_text(match over {
                        Some(o) => category_name(*o).to_string(),
                        None => format!("confirm {}", category_name(a.category)),
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(over, None, format!("confirm {}", category_name(a.category)));
                        for cat in [Category::CR, Category::PR, Category::SD, Category::PD] {
                            ui.selectable_value(over, Some(cat), category_name(cat));
                        }
                    });
            }
            // re-pairing by hand
            let nf = v.followup.report.lesions.len();
            for l in &c.baseline.report.lesions {
                let now = v.pairs.iter().find(|p| p.baseline == Some(l.id)).and_then(|p| p.followup);
                let mut pick = now;
                let name = |f: Option<usize>| f.map_or("none (gone)".to_string(), |f| format!("-> F{f}"));
                egui::ComboBox::new(("repair", vi, l.id), format!("pair B{} in {}", l.id, v.label))
                    .selected_text(name(pick))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut pick, None, name(None));
                        for f in 1..=nf {
                            let fl = &v.followup.report.lesions[f - 1];
                            ui.selectable_value(&mut pick, Some(f), name(Some(f)))
                                .on_hover_text(format!("{:.2} mL, {:.0} mm", fl.volume_ml, fl.recist.long_axis_mm));
                        }
                    });
                if pick != now {
                    repairs.push((vi, l.id, pick));
                }
                // splitting: a treated tumour that broke into parts pairs with each of them
                let frags: Vec<usize> =
                    v.pairs.iter().filter(|p| p.baseline == Some(l.id)).filter_map(|p| p.followup).collect();
                if !frags.is_empty() && nf > frags.len() {
                    let mut add: Option<usize> = None;
                    egui::ComboBox::new(("split", vi, l.id), format!("split B{} in {}", l.id, v.label))
                        .selected_text("add a fragment")
                        .show_ui(ui, |ui| {
                            for f in (1..=nf).filter(|f| !frags.contains(f)) {
                                ui.selectable_value(&mut add, Some(f), format!("+ F{f}"));
                            }
                        });
                    if let Some(f) = add {
                        let mut all = frags.clone();
                        all.push(f);
                        splits.push((vi, l.id, all));
                    }
                }
            }
            if v.pairs != v.auto_pairs && ui.button(format!("Automatic pairing {}", v.label)).clicked() {
                v.pairs = v.auto_pairs.clone();
                let label = v.response.baseline.clone();
                v.response = response::assess(&label, &c.baseline, &v.label, &v.followup, &v.pairs, &self.options);
            }
        }
        for (vi, b, f) in repairs {
            self.repair(vi, b, f);
        }
        for (vi, b, fragments) in splits {
            self.split(vi, b, &fragments);
        }
    }

    fn report_ui(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Report folder");
            ui.add(egui::TextEdit::singleline(&mut self.report_dir).desired_width(220.0).hint_text("/path/to/folder"))
                .labelled_by(l.id);
        });
        if ui.button("Save report (HTML, JSON, CSV)").on_hover_text("one report per follow-up visit, with the categories as read here, the lesion pairs, viable / necrotic / lipiodol parts, the timeline and key images").clicked() {
            match self.save_report() {
                Ok(files) => {
                    self.error = None;
                    self.message = Some(format!("Report written: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
                }
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// Writes one report per visit into the report folder (a sub-folder per visit when
    /// there are several), with the categories as read in the panel; never over a file.
    pub fn save_report(&self) -> Result<Vec<PathBuf>, String> {
        let c = self.comparison.as_ref().ok_or("compare the visits first")?;
        let dir = PathBuf::from(self.report_dir.trim());
        if self.report_dir.trim().is_empty() {
            return Err("name a folder for the report".into());
        }
        if c.stale {
            return Err(
                "the alignment changed since the comparison: Compare visits again before saving the report".into()
            );
        }
        let base = crate::report::compare::VisitInput {
            label: c.baseline_label.clone(),
            phases: &c.baseline_phases,
            mask: &c.baseline_mask,
        };
        let mut written = Vec::new();
        for (i, v) in c.visits.iter().enumerate() {
            let sub = if c.visits.len() > 1 {
                let safe: String = v
                    .label
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' })
                    .collect();
                dir.join(format!("{:02}-{safe}", i + 1))
            } else {
                dir.clone()
            };
            let visit = self.visits.iter().find(|fv| fv.label == v.label);
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
                baseline: &c.baseline,
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

    fn timeline_ui(&mut self, ui: &mut egui::Ui) {
        let Some(c) = &self.comparison else { return };
        let tps = c.time_points();
        let rows = c.rows();
        ui.separator();
        ui.strong("Timeline");
        // the patient: total and viable tumour volume at each time point
        let mut total = vec![Some(c.baseline.report.lesions.iter().map(|l| l.volume_ml).sum::<f64>())];
        let mut viable = vec![c.baseline.parts.iter().map(|p| p.as_ref().map(|p| p.viable_ml)).sum::<Option<f64>>()];
        for v in &c.visits {
            total.push(Some(v.response.total_followup_ml));
            viable.push(v.response.viable_followup_ml);
        }
        timeline_plot(
            ui,
            "patient",
            &tps,
            &[
                ("total mL", Color32::from_rgb(230, 200, 90), total),
                ("viable mL", Color32::from_rgb(240, 90, 90), viable),
            ],
            90.0,
        );
        // the lesion picked in the table, then every lesion on demand
        if let Some(r) = self.selected.and_then(|n| rows.get(n)) {
            let total: Vec<Option<f64>> = r.cells.iter().map(|c| c.map(|c| c.volume_ml)).collect();
            let viable: Vec<Option<f64>> = r.cells.iter().map(|c| c.and_then(|c| c.viable_ml)).collect();
            timeline_plot(
                ui,
                &format!("lesion {}", r.name),
                &tps,
                &[
                    ("total mL", Color32::from_rgb(230, 200, 90), total),
                    ("viable mL", Color32::from_rgb(240, 90, 90), viable),
                ],
                70.0,
            );
        }
        ui.collapsing("per lesion", |ui| {
            for r in &rows {
                let total: Vec<Option<f64>> = r.cells.iter().map(|c| c.map(|c| c.volume_ml)).collect();
                let viable: Vec<Option<f64>> = r.cells.iter().map(|c| c.and_then(|c| c.viable_ml)).collect();
                timeline_plot(
                    ui,
                    &r.name,
                    &tps,
                    &[
                        ("total mL", Color32::from_rgb(230, 200, 90), total),
                        ("viable mL", Color32::from_rgb(240, 90, 90), viable),
                    ],
                    60.0,
                );
            }
        });
    }
}

/// A small line plot of values over the time points, drawn with the painter; a missing
/// value (lesion absent) is drawn as 0 with a hollow marker.
pub fn timeline_plot(
    ui: &mut egui::Ui,
    title: &str,
    time_points: &[String],
    series: &[(&str, Color32, Vec<Option<f64>>)],
    height: f32,
) {
    let width = ui.available_width().clamp(160.0, 320.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let text = ui.visuals().text_color();
    painter.rect_stroke(rect, 2.0, Stroke::new(1.0, Color32::from_gray(70)), egui::StrokeKind::Inside);
    let font = egui::FontId::proportional(10.0);
    let plot = egui::Rect::from_min_max(rect.min + egui::vec2(34.0, 14.0), rect.max - egui::vec2(8.0, 14.0));
    let max = series.iter().flat_map(|s| s.2.iter().flatten().copied()).fold(0.0f64, f64::max).max(1e-6);
    painter.text(rect.min + egui::vec2(4.0, 2.0), egui::Align2::LEFT_TOP, title, font.clone(), text);
    painter.text(
        egui::pos2(rect.min.x + 4.0, plot.min.y),
        egui::Align2::LEFT_TOP,
        format!("{max:.1}"),
        font.clone(),
        text,
    );
    painter.text(egui::pos2(rect.min.x + 4.0, plot.max.y), egui::Align2::LEFT_BOTTOM, "0", font.clone(), text);
    let n = time_points.len().max(1);
    let x = |i: usize| if n == 1 { plot.center().x } else { plot.min.x + plot.width() * i as f32 / (n - 1) as f32 };
    let y = |v: f64| plot.max.y - plot.height() * (v / max) as f32;
    painter.line_segment([plot.left_bottom(), plot.right_bottom()], Stroke::new(1.0, Color32::from_gray(90)));
    for (i, tp) in time_points.iter().enumerate() {
        let align = if i == 0 && n > 1 {
            egui::Align2::LEFT_TOP
        } else if i + 1 == n && n > 1 {
            egui::Align2::RIGHT_TOP
        } else {
            egui::Align2::CENTER_TOP
        };
        painter.text(egui::pos2(x(i), plot.max.y + 1.0), align, tp, font.clone(), text);
    }
    for (k, (name, colour, values)) in series.iter().enumerate() {
        let pts: Vec<egui::Pos2> =
            values.iter().enumerate().map(|(i, v)| egui::pos2(x(i), y(v.unwrap_or(0.0)))).collect();
        if pts.len() > 1 {
            painter.add(egui::Shape::line(pts.clone(), Stroke::new(1.5, *colour)));
        }
        for (p, v) in pts.iter().zip(values) {
            if v.is_some() {
                painter.circle_filled(*p, 2.5, *colour);
            } else {
                painter.circle_stroke(*p, 2.5, Stroke::new(1.0, *colour));
            }
        }
        painter.text(
            egui::pos2(plot.max.x - 70.0 * (series.len() - k) as f32 + 70.0, rect.min.y + 2.0),
            egui::Align2::RIGHT_TOP,
            *name,
            font.clone(),
            *colour,
        );
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
