//! The one-click lesion outline in the viewer (issue 24): the prompts a user gives with the
//! Outline tool (a click on the lesion, a shift-click on what is not lesion, another click
//! to add a part), the outline computed off the UI thread from every registered phase
//! (`crate::outline`), and its measurements. Each prompt replaces the outline the previous
//! prompt of the same lesion painted, so one lesion is one undo step.
//!
//! The phases are put on the mask's grid once per study: the Registration panel's results
//! when the user registered, else a quick coarse Demons (`segment::fast_registration`, a
//! second or two a phase) — the patient breathes between phases, and the outline reads
//! them voxel by voxel.
//!
//! With a follow-up visit open (issue 24, item 4), "Outline in follow-up" (key F) carries
//! the last baseline outline to the visit (`crate::follow_up::carry`) and outlines it there;
//! clicks and shift-clicks in a follow-up viewport are prompts on that visit's own phases.
//! The follow-up phases are shown on the baseline's grid, resampled through the visit
//! alignment (and any nudge by hand), so the carry's transform here is the identity. A
//! visit's outlines go to its own layer (`study::follow_outlines`, part of the edit document, drawn in its viewports), never into
//! the baseline's mask; each carry or prompt there is one undo step (Ctrl+Z undoes the
//! latest edit, baseline or follow-up).

use std::sync::Arc;

use crate::follow_up::carry::{carry_lesion, measure_carry, Carried, CarryOptions};
use crate::io::phase::Phase;
use crate::outline::{measure_outline, outline_lesion, LesionRow, Outline, OutlineOptions, Prompts};
use crate::register::affine::AffineTransform;
use crate::study::analysis::{align_phases, Alignment};
use crate::study::compare::shown_visit;
use crate::study::edits::Edits;
use crate::study::{take_ended, Ended, Job, Study};
use crate::volume::region::VoxelBox;
use crate::volume::{CtVolume, Lps, Mask};

use super::edit::EditPanel;

/// The study's phases on the mask's grid, and what they were made from.
type Prepared = Arc<Vec<(Phase, Arc<CtVolume>)>>;

/// What the worker hands back.
struct Done {
    /// Keys of the study's phases and of the mask grid the phases were put on.
    key: Vec<u64>,
    phases: Prepared,
    outline: Outline,
    row: LesionRow,
}

/// What the worker hands back for a follow-up visit (a carry or a prompt there).
struct FollowDone {
    label: String,
    key: Vec<u64>,
    phases: Prepared,
    /// The outline to paint (`None`: not found at the carried position).
    mask: Option<(Mask, VoxelBox)>,
    row: Option<LesionRow>,
    /// The prompts the next click on this lesion adds to (a carry's carried centre and box).
    prompts: Prompts,
    note: String,
}

#[derive(Default)]
pub struct OutlinePanel {
    /// The prompts of the lesion being outlined (empty: the next click starts a new one).
    pub prompts: Prompts,
    job: Option<Job<Done>>,
    prepared: Option<(Vec<u64>, Prepared)>,
    /// The undo depth right after this lesion's outline was painted: the next prompt's
    /// outline replaces it only while nothing else was edited since.
    painted_at: Option<usize>,
    /// The last outline's measurements (the lesion table's row).
    pub row: Option<LesionRow>,
    /// Whether the prompt being computed is an exclusion (dropped again if refused).
    last_was_exclude: bool,
    /// Where a box being dragged with the Outline tool started (LPS mm).
    pub drag_from: Option<Lps>,
    pub message: Option<String>,
    pub error: Option<String>,
    /// The follow-up visit (its label) the prompts belong to; `None`: the baseline.
    pub visit: Option<String>,
    /// The last baseline outline: what "Outline in follow-up" carries.
    last_baseline: Option<Arc<Mask>>,
    follow_job: Option<Job<FollowDone>>,
    prepared_follow: Option<(Vec<u64>, Prepared)>,
    /// Whether the latest follow-up edit is the outline of the lesion being prompted (its
    /// next prompt's outline replaces it).
    follow_painted: bool,
    /// The follow-up lesion's row, with its visit.
    pub follow_row: Option<(String, LesionRow)>,
}

/// Keys that change when the phases or the mask's grid change.
fn study_key(study: &Study) -> Vec<u64> {
    let mut k: Vec<u64> = study.phases.iter().map(|p| p.key).collect();
    if let Some(l) = &study.labels {
        k.extend(l.mask.geometry.shape.iter().map(|&n| n as u64));
    }
    k
}

impl OutlinePanel {
    pub fn is_running(&self) -> bool {
        self.job.is_some() || self.follow_job.is_some()
    }

    /// Whether "Outline in follow-up" can run: a baseline outline and a follow-up visit.
    pub fn can_carry(&self, study: &Study) -> bool {
        self.last_baseline.is_some() && !visit_labels(study).is_empty()
    }

    /// Undoes the latest follow-up edit (the layers are the edit document's,
    /// [`Edits::follow_ups`]) and says so.
    pub fn undo_follow_up(&mut self, edits: &mut Edits) {
        let Some(label) = edits.follow_ups.undo() else { return };
        self.follow_painted = false;
        self.follow_row = None;
        self.message = Some(format!("Undone: the last outline on the follow-up {label}."));
    }

    /// A click with the Outline tool in a viewport of `visit` (`None`: the baseline's).
    /// Prompts on another visit than the last start a new lesion there.
    pub fn click_in(&mut self, study: &Study, visit: Option<&str>, at_mm: Lps, exclude: bool) {
        if self.is_running() {
            self.message = Some("Still outlining the last click…".into());
            return;
        }
        if self.visit.as_deref() != visit {
            self.new_lesion();
            self.visit = visit.map(str::to_string);
        }
        match visit {
            None => self.click(study, at_mm, exclude),
            Some(label) => {
                if exclude && self.prompts.include.is_empty() && self.prompts.box_mm.is_none() {
                    self.message = Some("Click on the lesion first; shift-click then marks what is not lesion.".into());
                    return;
                }
                self.last_was_exclude = exclude;
                if exclude {
                    self.prompts.exclude.push(at_mm);
                } else {
                    self.prompts.include.push(at_mm);
                }
                let prompts = self.prompts.clone();
                self.start_follow(study, label.to_string(), FollowWork::Prompt(prompts));
            }
        }
    }

    /// "Outline in follow-up": the last baseline outline carried to the visit `label`.
    pub fn carry_to(&mut self, study: &Study, label: &str) {
        if self.is_running() {
            self.message = Some("Still outlining the last prompt…".into());
            return;
        }
        let Some(lesion) = self.last_baseline.clone() else {
            self.message = Some("Outline a lesion on the baseline first; it is then carried to the follow-up.".into());
            return;
        };
        self.new_lesion();
        self.visit = Some(label.to_string());
        self.start_follow(study, label.to_string(), FollowWork::Carry(lesion));
    }

    fn start_follow(&mut self, study: &Study, label: String, work: FollowWork) {
        let keys: Vec<u64> = study
            .phases
            .iter()
            .filter(|p| study.visit_of(p.key).is_some_and(|v| v.label == label))
            .map(|p| p.key)
            .collect();
        if keys.is_empty() {
            self.error = Some(format!("The follow-up {label} is not in the study any more."));
            return;
        }
        let Some(fixed) = study.phases.get(study.fixed_index()) else { return };
        let grid = study.labels.as_ref().map_or_else(|| fixed.volume.geometry.clone(), |l| l.mask.geometry.clone());
        // the visit's own liver is not outlined in the viewer: the baseline's, on the same
        // grid after the visit alignment, bounds the outline (a liver that moved by more than
        // the alignment left shows as a refusal on the liver's edge)
        let liver: Option<Arc<Mask>> = study.labels.as_ref().map(|l| Arc::clone(&l.mask));
        let mut key = keys.clone();
        key.extend(grid.shape.iter().map(|&n| n as u64));
        let cached = self.prepared_follow.as_ref().filter(|(k, _)| *k == key).map(|(_, p)| Arc::clone(p));
        let visit = shown_visit(study, &keys, &label);
        self.error = None;
        self.message = None;
        self.follow_job = Some(Job::spawn(format!("Outlining on the follow-up {label}"), move |progress| {
            let phases = match cached {
                Some(p) => p,
                None => {
                    let alignment = if visit.phases.len() > 1 {
                        Alignment::Register(crate::segment::fast_registration(&grid))
                    } else {
                        Alignment::Resample
                    };
                    let report = |f: f32, m: &str| progress(0.9 * f, &format!("follow-up phases onto one grid: {m}"));
                    let aligned = align_phases(&visit, &grid, &alignment, None, &report).map_err(|e| e.to_string())?;
                    Arc::new(aligned.into_iter().map(|a| (a.phase, a.volume)).collect())
                }
            };
            progress(0.9, "outlining");
            let refs: Vec<(Phase, &CtVolume)> = phases.iter().map(|(p, v)| (*p, v.as_ref())).collect();
            let liver = liver.as_deref();
            match work {
                FollowWork::Carry(lesion) => {
                    // shown follow-up phases lie on the baseline's grid through the alignment
                    let same = AffineTransform::identity(grid.centre_mm());
                    let c = carry_lesion(&lesion, &same, &refs, liver, &CarryOptions::default())
                        .map_err(|e| e.to_string())?;
                    let row = measure_carry(&c, &refs, liver).map_err(|e| e.to_string())?;
                    let dirty = c.outline.as_ref().map_or(VoxelBox { lo: [0; 3], hi: grid.shape }, |o| o.dirty);
                    let mut note = format!("Carried to {label}: {}.", c.carried.words());
                    for w in &c.warnings {
                        note.push(' ');
                        note.push_str(w);
                    }
                    let prompts = if c.carried == Carried::Outlined { c.prompts.clone() } else { Prompts::default() };
                    Ok(FollowDone { label, key, phases, mask: c.mask.map(|m| (m, dirty)), row, prompts, note })
                }
                FollowWork::Prompt(prompts) => {
                    let o = outline_lesion(&refs, liver, &prompts, &OutlineOptions::default())
                        .map_err(|e| e.to_string())?;
                    let row = measure_outline(&o, &refs, liver).map_err(|e| e.to_string())?;
                    let mut note = format!("Outlined {:.1} mL on the follow-up {label}.", o.volume_ml);
                    for w in &o.warnings {
                        note.push(' ');
                        note.push_str(w);
                    }
                    Ok(FollowDone { label, key, phases, mask: Some((o.mask, o.dirty)), row: Some(row), prompts, note })
                }
            }
        }));
    }

    /// Takes a finished follow-up outline into its visit's layer (replacing this lesion's
    /// previous one there), as one undo step.
    fn poll_follow(&mut self, edits: &mut Edits, ctx: &egui::Context) {
        let Some(ended) = take_ended(&mut self.follow_job) else {
            if self.follow_job.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(50));
            }
            return;
        };
        match ended {
            Ended::Done(d) => {
                self.prepared_follow = Some((d.key, d.phases));
                self.prompts = d.prompts;
                self.message = Some(d.note);
                let Some((mask, dirty)) = d.mask else {
                    self.follow_row = d.row.map(|r| (d.label.clone(), r));
                    self.follow_painted = false;
                    return;
                };
                let baseline_steps = edits.history.undo_steps();
                let replace = self.follow_painted;
                self.follow_painted = true;
                if edits.follow_ups.paint(&d.label, &mask, dirty, baseline_steps, replace) {
                    // the lesion's previous outline was replaced: its note no longer holds
                    self.message = None;
                }
                self.follow_row = d.row.map(|r| (d.label.clone(), r));
            }
            Ended::Cancelled => {}
            Ended::Failed(e) => {
                if self.last_was_exclude {
                    self.prompts.exclude.pop();
                } else {
                    self.prompts.include.pop();
                }
                self.error = Some(e);
            }
        }
    }

    /// Starts a new lesion: the next click outlines a new one (the last stays painted).
    pub fn new_lesion(&mut self) {
        self.prompts = Prompts::default();
        self.painted_at = None;
        self.follow_painted = false;
        self.message = None;
        self.error = None;
    }

    /// A click with the Outline tool at `at_mm`: on the lesion (`exclude` false) or on
    /// what is not lesion (shift held). Ignored while the last prompt is still computing.
    pub fn click(&mut self, study: &Study, at_mm: Lps, exclude: bool) {
        if self.job.is_some() {
            self.message = Some("Still outlining the last click…".into());
            return;
        }
        if self.visit.is_some() {
            self.new_lesion();
            self.visit = None;
        }
        if exclude && self.prompts.include.is_empty() {
            self.message = Some("Click on the lesion first; shift-click then marks what is not lesion.".into());
            return;
        }
        self.last_was_exclude = exclude;
        if exclude {
            self.prompts.exclude.push(at_mm);
        } else {
            self.prompts.include.push(at_mm);
        }
        self.start(study);
    }

    /// A box dragged around a lesion on one slice (two opposite corners, LPS mm): a new
    /// lesion, outlined inside the box from the box's centre.
    pub fn drag_box(&mut self, study: &Study, corners: [Lps; 2]) {
        if self.job.is_some() {
            self.message = Some("Still outlining the last prompt…".into());
            return;
        }
        self.new_lesion();
        self.visit = None;
        self.prompts.box_mm = Some(corners);
        self.last_was_exclude = false;
        self.start(study);
    }

    fn start(&mut self, study: &Study) {
        let Some(fixed) = study.phases.get(study.fixed_index()) else { return };
        let grid = study.labels.as_ref().map_or_else(|| fixed.volume.geometry.clone(), |l| l.mask.geometry.clone());
        let liver: Option<Arc<Mask>> = study.labels.as_ref().map(|l| Arc::clone(&l.mask));
        let key = study_key(study);
        let cached = self.prepared.as_ref().filter(|(k, _)| *k == key).map(|(_, p)| Arc::clone(p));
        // the user's own registration when there is one, else a quick one on the worker
        let source = if cached.is_some() { None } else { Some(study.registered_study()) };
        let study = study.clone();
        let prompts = self.prompts.clone();
        self.error = None;
        self.message = None;
        self.job = Some(Job::spawn("Outlining the lesion", move |progress| {
            let phases = match cached {
                Some(p) => p,
                None => {
                    let (s, alignment) = match source.flatten() {
                        Some(registered) => (registered, Alignment::Resample),
                        None if study.phases.len() > 1 => {
                            (study, Alignment::Register(crate::segment::fast_registration(&grid)))
                        }
                        None => (study, Alignment::Resample),
                    };
                    let report = |f: f32, m: &str| progress(0.9 * f, &format!("phases onto the mask's grid: {m}"));
                    let aligned =
                        align_phases(&s, &grid, &alignment, liver.as_deref(), &report).map_err(|e| e.to_string())?;
                    Arc::new(aligned.into_iter().map(|a| (a.phase, a.volume)).collect())
                }
            };
            progress(0.9, "outlining");
            let refs: Vec<(Phase, &CtVolume)> = phases.iter().map(|(p, v)| (*p, v.as_ref())).collect();
            let outline = outline_lesion(&refs, liver.as_deref(), &prompts, &OutlineOptions::default())
                .map_err(|e| e.to_string())?;
            let row = measure_outline(&outline, &refs, liver.as_deref()).map_err(|e| e.to_string())?;
            Ok(Done { key, phases, outline, row })
        }));
    }

    /// Takes a finished outline into the mask (replacing this lesion's previous one) and
    /// its row into the table.
    pub fn poll(&mut self, study: &mut Study, edit: &EditPanel, edits: &mut Edits, ctx: &egui::Context) {
        self.poll_follow(edits, ctx);
        let Some(ended) = take_ended(&mut self.job) else {
            if self.job.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(50));
            }
            return;
        };
        match ended {
            Ended::Done(d) => {
                self.prepared = Some((d.key, d.phases));
                if self.painted_at == Some(edits.history.undo_steps()) {
                    edits.undo(study);
                }
                let paint = edit.paint(&edits.labels);
                let painted = edits.paint_region(study, &d.outline.mask, &d.outline.dirty, &paint);
                self.last_baseline = Some(Arc::new(d.outline.mask.clone()));
                self.painted_at = painted.then(|| edits.history.undo_steps());
                let mut note = format!(
                    "Outlined {:.1} mL from {} click(s){}.",
                    d.outline.volume_ml,
                    self.prompts.include.len(),
                    if self.prompts.exclude.is_empty() {
                        String::new()
                    } else {
                        format!(" and {} exclusion(s)", self.prompts.exclude.len())
                    }
                );
                for w in &d.outline.warnings {
                    note.push(' ');
                    note.push_str(w);
                }
                self.message = Some(note);
                self.row = Some(d.row);
            }
            Ended::Cancelled => {}
            Ended::Failed(e) => {
                // the refused prompt is dropped, so the next click starts from what worked
                if self.last_was_exclude {
                    self.prompts.exclude.pop();
                } else if self.prompts.box_mm.is_some() && self.prompts.include.is_empty() {
                    self.prompts.box_mm = None;
                } else {
                    self.prompts.include.pop();
                }
                self.error = Some(e);
            }
        }
    }

    /// The tool's part of the Edit panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, study: &Study, edits: &mut Edits) {
        ui.label(
            egui::RichText::new(
                "Click on a lesion to outline it in 3-D from every phase, or drag a box around it on \
                 a slice; click again to add a part, shift-click on what is not lesion. N starts a \
                 new lesion.",
            )
            .small(),
        );
        let running =
            self.job.as_ref().map(|j| j.progress()).or_else(|| self.follow_job.as_ref().map(|j| j.progress()));
        if let Some((f, m)) = running {
            ui.add(egui::ProgressBar::new(f).text(m));
        }
        if ui.button("New lesion (N)").clicked() {
            self.new_lesion();
        }
        for label in visit_labels(study) {
            let b = egui::Button::new(format!("Outline in follow-up {label} (F)"));
            if ui
                .add_enabled(self.can_carry(study) && !self.is_running(), b)
                .on_hover_text("Carries the last baseline outline to this visit through the visits' alignment and outlines it there; click and shift-click in the visit's viewports to correct it")
                .clicked()
            {
                self.carry_to(study, &label);
            }
        }
        if edits.follow_ups.can_undo() && ui.button("Undo on the follow-up").clicked() {
            self.undo_follow_up(edits);
        }
        if let Some(m) = &self.message {
            ui.label(egui::RichText::new(m).small());
        }
        if let Some(r) = &self.row {
            ui.label(row_text(r));
        }
        if let Some((label, r)) = &self.follow_row {
            ui.label(format!("Follow-up {label}: {}", row_text(r)));
        }
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::LIGHT_RED, e);
        }
    }
}

/// What a follow-up job does.
enum FollowWork {
    /// Carry this baseline outline (on the baseline mask's grid) to the visit.
    Carry(Arc<Mask>),
    /// Outline from these prompts on the visit's phases.
    Prompt(Prompts),
}

/// Labels of the follow-up visits shown in the study, in the order of their phases.
pub fn visit_labels(study: &Study) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in study.phases.iter().filter_map(|p| study.visit_of(p.key)) {
        if !out.contains(&v.label) {
            out.push(v.label.clone());
        }
    }
    out
}

/// The lesion table's row in words: volume, RECIST axes, depth, the pattern hint (a hint,
/// never a diagnosis) and its evidence.
pub fn row_text(r: &LesionRow) -> String {
    let l = &r.lesion;
    let depth =
        r.depth_below_liver_surface_mm.map_or(String::new(), |d| format!(", {d:.0} mm below the liver surface"));
    let parts = if r.parts > 1 { format!(" in {} parts", r.parts) } else { String::new() };
    let mut s = format!(
        "Lesion: {:.1} mL{parts}, RECIST {:.0} × {:.0} mm (slice {}){depth}.\nHint: {}",
        r.volume_ml, l.recist.long_axis_mm, l.recist.short_axis_mm, l.recist.slice, l.pattern.summary
    );
    for f in &l.pattern.findings {
        s.push_str("\n  · ");
        s.push_str(f);
    }
    // egui's default fonts have no arrow (a haemangioma's fill-in finding has one)
    s.replace('→', "->")
}
