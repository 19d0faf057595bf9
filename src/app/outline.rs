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

use std::sync::Arc;

use crate::analysis::{align_phases, Alignment};
use crate::io::phase::Phase;
use crate::outline::{measure_outline, outline_lesion, LesionRow, Outline, OutlineOptions, Prompts};
use crate::study::{take_ended, Ended, Job, Study};
use crate::volume::{CtVolume, Lps, Mask};

use super::edit::EditPanel;
use super::registration::RegistrationPanel;

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
        self.job.is_some()
    }

    /// Starts a new lesion: the next click outlines a new one (the last stays painted).
    pub fn new_lesion(&mut self) {
        self.prompts = Prompts::default();
        self.painted_at = None;
        self.message = None;
        self.error = None;
    }

    /// A click with the Outline tool at `at_mm`: on the lesion (`exclude` false) or on
    /// what is not lesion (shift held). Ignored while the last prompt is still computing.
    pub fn click(&mut self, study: &Study, reg: &RegistrationPanel, at_mm: Lps, exclude: bool) {
        if self.job.is_some() {
            self.message = Some("Still outlining the last click…".into());
            return;
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
        self.start(study, reg);
    }

    /// A box dragged around a lesion on one slice (two opposite corners, LPS mm): a new
    /// lesion, outlined inside the box from the box's centre.
    pub fn drag_box(&mut self, study: &Study, reg: &RegistrationPanel, corners: [Lps; 2]) {
        if self.job.is_some() {
            self.message = Some("Still outlining the last prompt…".into());
            return;
        }
        self.new_lesion();
        self.prompts.box_mm = Some(corners);
        self.last_was_exclude = false;
        self.start(study, reg);
    }

    fn start(&mut self, study: &Study, reg: &RegistrationPanel) {
        let Some(fixed) = study.phases.get(study.fixed_index()) else { return };
        let grid = study.labels.as_ref().map_or_else(|| fixed.volume.geometry.clone(), |l| l.mask.geometry.clone());
        let liver: Option<Arc<Mask>> = study.labels.as_ref().map(|l| Arc::clone(&l.mask));
        let key = study_key(study);
        let cached = self.prepared.as_ref().filter(|(k, _)| *k == key).map(|(_, p)| Arc::clone(p));
        // the user's own registration when there is one, else a quick one on the worker
        let source = if cached.is_some() { None } else { Some(reg.registered_study(study)) };
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
    pub fn poll(&mut self, study: &mut Study, edit: &mut EditPanel, ctx: &egui::Context) {
        let Some(ended) = take_ended(&mut self.job) else {
            if self.job.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(50));
            }
            return;
        };
        match ended {
            Ended::Done(d) => {
                self.prepared = Some((d.key, d.phases));
                if self.painted_at == Some(edit.history.undo_steps()) {
                    edit.undo(study);
                }
                let painted = edit.paint_region(study, &d.outline.mask, &d.outline.dirty);
                self.painted_at = painted.then(|| edit.history.undo_steps());
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
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.label(
            egui::RichText::new(
                "Click on a lesion to outline it in 3-D from every phase, or drag a box around it on \
                 a slice; click again to add a part, shift-click on what is not lesion. N starts a \
                 new lesion.",
            )
            .small(),
        );
        if let Some(job) = &self.job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).text(m));
        }
        if ui.button("New lesion (N)").clicked() {
            self.new_lesion();
        }
        if let Some(m) = &self.message {
            ui.label(egui::RichText::new(m).small());
        }
        if let Some(r) = &self.row {
            ui.label(row_text(r));
        }
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::LIGHT_RED, e);
        }
    }
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
    s
}
