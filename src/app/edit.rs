//! The mask editing tools of the viewer: a tool chooser (navigate, brush, eraser, threshold
//! brush, region growing, lasso fill), the label table (colour, name, opacity, shown,
//! locked; the active label) and paint-over rule, whole-mask operations (interpolate
//! between slices, fill holes, keep largest, remove islands, open, close, smooth), undo and
//! redo of every edit, and the session that never loses work (every completed edit
//! journaled and fsync'd, a snapshot every few seconds, an offer to restore on start).
//! The tools themselves live in `crate::edit`; this file only routes mouse and keys.
//!
//! The label table decides how the overlay draws each label ([`EditPanel::palette`]: hidden
//! labels are transparent, opacity multiplies the Layers opacity) and which voxels a tool
//! may change (locked labels never). It is stored in the session's manifest, restored with
//! the mask, and written beside a saved mask as an ITK-SNAP label description file
//! (`NAME.labels.txt`), which is also read back when a study's mask has one beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Stroke};

use crate::edit::tools::{
    close_label, fill_holes, interpolate_slices, keep_largest_component, open_label, paint_line, polygon_fill_mm,
    region_grow, remove_islands, smooth_label,
};
use crate::edit::tools::{Brush, BrushExtent, BrushShape, Grow, GrowCriterion, HuRange, Reach, Smoothing};
use crate::edit::{
    EditDiff, EditError, History, LabelTable, Orientation as EditOrientation, Paint, PaintOver, RestoreInfo, Session,
    Touched,
};
use crate::study::{next_key, Labels, Study};
use crate::volume::region::VoxelBox;
use crate::volume::{CtVolume, Interp, Lps, Mask};

use super::view::Orientation;

/// The primary button this frame: went down, moved while down, came up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Button {
    pub pressed: bool,
    pub dragged: bool,
    pub released: bool,
}

/// What a left click or drag in a viewport does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Move the crosshair (no editing).
    Navigate,
    Brush,
    Eraser,
    /// Paints only voxels whose HU (in the phase under the cursor) lie in a range.
    ThresholdBrush,
    /// Flood fill / region growing from the clicked voxel with an HU tolerance.
    Grow,
    /// Press and drag draws a freehand outline on the slice; letting go fills it.
    Lasso,
    /// A click on a lesion outlines it in 3-D from every phase (`app::outline`); shift-click
    /// marks what is not lesion.
    Outline,
}

impl Tool {
    pub const ALL: [Tool; 7] =
        [Tool::Navigate, Tool::Brush, Tool::Eraser, Tool::ThresholdBrush, Tool::Grow, Tool::Lasso, Tool::Outline];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Navigate => "Navigate (Esc)",
            Tool::Brush => "Brush (B)",
            Tool::Eraser => "Eraser (E)",
            Tool::ThresholdBrush => "Threshold brush (T)",
            Tool::Grow => "Region grow (G)",
            Tool::Lasso => "Lasso fill (P)",
            Tool::Outline => "Outline lesion (O)",
        }
    }
}

/// Autosave a snapshot at most this often while editing (every edit is journaled at once).
const AUTOSAVE_EVERY: Duration = Duration::from_secs(5);
/// Undo memory budget.
const UNDO_BUDGET_BYTES: usize = 512 << 20;
/// Label table changes reach the session's manifest at most this often (an opacity drag
/// changes it every frame).
const LABELS_SAVE_EVERY: Duration = Duration::from_secs(1);
/// The overlay palette has slots for label values 0…15 (see `gpu::OverlayDesc`).
pub const MAX_SHOWN_LABEL: u8 = 15;

/// A freehand outline being drawn, in the viewport it was started in.
#[derive(Clone, Debug)]
struct Lasso {
    phase: usize,
    o: Orientation,
    points_mm: Vec<Lps>,
}

/// The viewer's starting label table: LiTS (1 liver, 2 tumour, 3 vessel) at full opacity,
/// so that the Layers opacity slider alone sets how strongly labels tint the CT.
pub fn viewer_labels() -> LabelTable {
    let mut t = LabelTable::lits();
    for v in 1..=3 {
        let _ = t.set_opacity(v, 1.0);
    }
    t
}

pub struct EditPanel {
    pub tool: Tool,
    pub label: u8,
    pub over: PaintOver,
    pub diameter_mm: f32,
    pub brush_3d: bool,
    pub square: bool,
    pub lo_hu: f32,
    pub hi_hu: f32,
    pub tolerance_hu: f32,
    pub grow_3d: bool,
    /// Gaussian σ (mm) of the Smooth button.
    pub smooth_mm: f32,
    /// Names, colours, visibility and locks of the mask's labels.
    pub labels: LabelTable,
    /// The table as last stored in the session (to notice changes).
    labels_stored: Option<LabelTable>,
    last_labels_save: Instant,
    lasso: Option<Lasso>,
    pub history: History,
    session: Option<Session>,
    /// Tried to open the session for this study already (once per study).
    session_tried: bool,
    last_autosave: Instant,
    /// Edits made since the last snapshot.
    dirty: bool,
    /// Found on start: edits newer than the user's last save, offered for restore.
    pub restore_offer: Option<RestoreInfo>,
    /// Last point of the current stroke (brush strokes are lines between mouse samples).
    stroke_last: Option<Lps>,
    /// The phase under the cursor resampled onto the mask grid, for HU-gated tools.
    hu_cache: Option<(u64, Arc<CtVolume>)>,
    pub save_path: String,
    /// The native "save mask as" dialog, while it is open.
    save_dialog: Option<super::file_dialog::Pending>,
    pub message: Option<String>,
    pub error: Option<String>,
    /// Mask key the GPU may still hold, the current key, and the voxels changed between
    /// them: the overlay then re-uploads only that box.
    pub gpu_update: Option<(u64, u64, VoxelBox)>,
    /// The mask key last handed to the overlay (see [`EditPanel::gpu_previous`]).
    gpu_shown: Option<u64>,
}

impl Default for EditPanel {
    fn default() -> Self {
        EditPanel {
            tool: Tool::Navigate,
            label: 2,
            over: PaintOver::Everything,
            diameter_mm: 8.0,
            brush_3d: false,
            square: false,
            lo_hu: 40.0,
            hi_hu: 200.0,
            tolerance_hu: 40.0,
            grow_3d: false,
            smooth_mm: 1.5,
            labels: viewer_labels(),
            labels_stored: None,
            last_labels_save: Instant::now(),
            lasso: None,
            history: History::new(UNDO_BUDGET_BYTES),
            session: None,
            session_tried: false,
            last_autosave: Instant::now(),
            dirty: false,
            restore_offer: None,
            stroke_last: None,
            hu_cache: None,
            save_path: String::new(),
            save_dialog: None,
            message: None,
            error: None,
            gpu_update: None,
            gpu_shown: None,
        }
    }
}

/// The study's own location (the folder or file the fixed phase came from), when it is a
/// real path: the session lives beside it (or in the user's data folder if read-only).
fn study_path(study: &Study) -> Option<PathBuf> {
    let p = &study.phases.get(study.fixed_index())?.source;
    p.exists().then(|| p.clone())
}

fn edit_orientation(o: Orientation) -> EditOrientation {
    match o {
        Orientation::Axial => EditOrientation::Axial,
        Orientation::Coronal => EditOrientation::Coronal,
        Orientation::Sagittal => EditOrientation::Sagittal,
    }
}

impl EditPanel {
    /// True when left clicks in a viewport edit rather than navigate.
    pub fn is_editing(&self) -> bool {
        self.tool != Tool::Navigate
    }

    /// True while a stroke or a lasso outline is in progress (it ends when the button is
    /// let go, wherever the pointer is by then).
    pub fn in_gesture(&self) -> bool {
        self.history.in_stroke() || self.lasso.is_some()
    }

    /// What the current tool writes and where, with the table's locked labels kept.
    fn paint(&self) -> Paint {
        match self.tool {
            Tool::Eraser => self.labels.eraser(self.over),
            _ => self.labels.paint(self.label, self.over),
        }
    }

    /// The overlay colours per label value 0…15 from the label table: a hidden label is
    /// transparent, opacity scales alpha. Values the table lacks keep the default colours.
    pub fn palette(&self) -> [[f32; 4]; 16] {
        let mut p = super::LABEL_PALETTE;
        for (v, slot) in p.iter_mut().enumerate().skip(1) {
            if let Some(c) = self.labels.display_rgba(v as u8) {
                *slot = c;
            }
        }
        p
    }

    /// How the panels name label `v`: "2 tumour".
    pub fn label_text(&self, v: u8) -> String {
        format!("{v} {}", self.labels.name_of(v))
    }

    /// Draws the lasso outline being drawn into the viewport showing `phase` in `o`;
    /// `to_screen` maps LPS mm to that viewport's points.
    pub fn paint_lasso(
        &self,
        painter: &egui::Painter,
        phase: usize,
        o: Orientation,
        to_screen: impl Fn(Lps) -> egui::Pos2,
    ) {
        let Some(l) = self.lasso.as_ref().filter(|l| l.phase == phase && l.o == o) else { return };
        let c = self.labels.display_rgba(self.label).unwrap_or([1.0, 1.0, 0.0, 1.0]);
        let colour = Color32::from_rgb((c[0] * 255.0) as u8, (c[1] * 255.0) as u8, (c[2] * 255.0) as u8);
        let pts: Vec<egui::Pos2> = l.points_mm.iter().map(|p| to_screen(*p)).collect();
        painter.add(egui::Shape::line(pts.clone(), Stroke::new(2.0, colour)));
        if let (Some(&first), Some(&last)) = (pts.first(), pts.last()) {
            // where the outline will close when the button is let go
            painter.extend(egui::Shape::dashed_line(&[last, first], Stroke::new(1.0, colour), 4.0, 4.0));
        }
    }

    /// Opens the session of the study on first use and looks for unsaved edits.
    pub fn open_session(&mut self, study: &Study) {
        if self.session_tried {
            return;
        }
        self.session_tried = true;
        self.load_sidecar(study);
        let Some(path) = study_path(study) else { return };
        match Session::open_for(&path) {
            Ok(s) => {
                self.restore_offer = s.pending_restore();
                // with no table in the session yet, the one in use (defaults or a sidecar)
                // counts as stored: only the user's changes to it are worth writing, and
                // viewing a study must leave its folder as it was
                self.labels_stored = s.manifest().labels.clone().or_else(|| Some(self.labels.clone()));
                self.session = Some(s);
            }
            Err(e) => self.error = Some(format!("Autosave is off: {e}")),
        }
    }

    /// Takes the label table from an ITK-SNAP label description beside the study's mask
    /// (`NAME.labels.txt`, as [`EditPanel::save`] writes), when there is one.
    fn load_sidecar(&mut self, study: &Study) {
        let Some(l) = &study.labels else { return };
        let side = LabelTable::sidecar_path(&l.source);
        if !l.source.is_file() || !side.is_file() {
            return;
        }
        match std::fs::read_to_string(&side)
            .map_err(|e| e.to_string())
            .and_then(|t| LabelTable::from_itksnap(&t, &side.display().to_string()).map_err(|e| e.to_string()))
        {
            Ok(t) => {
                self.labels = t;
                self.message = Some(format!("Labels from {}", side.display()));
            }
            Err(e) => self.error = Some(format!("Could not read the label descriptions {}: {e}", side.display())),
        }
    }

    /// An empty mask on the fixed phase's grid when the study has none (to paint into).
    fn ensure_mask(study: &mut Study) {
        if study.labels.is_none() {
            let g = study.phases[study.fixed_index()].volume.geometry.clone();
            study.labels =
                Some(Labels { mask: Arc::new(Mask::filled(g, 0)), key: next_key(), source: PathBuf::from("new mask") });
        }
    }

    /// Gives the mask a new key (so it is redrawn) and records which voxels changed since
    /// the key the GPU last saw: several edits between two frames add up their boxes, and
    /// once the overlay has been given a key the next box starts from that key (the GPU's
    /// texture then holds it).
    fn rekey(&mut self, labels: &mut Labels, changed: Option<VoxelBox>) {
        let old = labels.key;
        labels.key = next_key();
        let gpu_has_old = self.gpu_shown == Some(old);
        self.gpu_update = match (self.gpu_update, changed) {
            (Some((from, to, b)), Some(c)) if to == old && !gpu_has_old => Some((from, labels.key, b.union(&c))),
            (_, Some(c)) => Some((old, labels.key, c)),
            (_, None) => None,
        };
    }

    /// What the overlay of the mask with `key` may update from (see
    /// `gpu::OverlayDesc::previous`). The viewport calls it when it hands `key` to the
    /// overlay, so it also notes that the GPU will hold `key` after this frame.
    pub fn gpu_previous(&mut self, key: u64) -> Option<(u64, [usize; 6])> {
        self.gpu_shown = Some(key);
        self.gpu_update
            .filter(|u| u.1 == key)
            .map(|(from, _, b)| (from, [b.lo[0], b.hi[0], b.lo[1], b.hi[1], b.lo[2], b.hi[2]]))
    }

    /// After an edit: new overlay key, journal it, remember to snapshot.
    fn after_edit(&mut self, study: &mut Study, touched: Touched, rekey: bool) {
        if touched.is_empty() {
            return;
        }
        let Some(labels) = study.labels.as_mut() else { return };
        if rekey {
            let dirty = touched.dirty_box();
            self.rekey(labels, dirty);
        }
        self.dirty = true;
        if let Some(s) = self.session.as_mut() {
            if let Err(e) = s.record(&labels.mask, &touched) {
                self.error = Some(format!("Could not journal the edit (it is kept in memory): {e}"));
            }
        }
    }

    /// Runs one tool on the mask (not during a stroke) as its own undo step.
    fn apply(&mut self, study: &mut Study, tool: impl FnOnce(&mut Mask) -> Result<EditDiff, EditError>) {
        Self::ensure_mask(study);
        let Some(labels) = study.labels.as_mut() else { return };
        let mask = Arc::make_mut(&mut labels.mask);
        match self.history.apply(mask, tool) {
            Ok(t) => {
                let n = t.brick_ids.len();
                self.after_edit(study, t, true);
                self.error = None;
                if n == 0 {
                    self.message = Some("Nothing changed.".into());
                }
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// The phase `phase` of the study on the mask grid (cached by its key).
    fn hu_volume(&mut self, study: &Study, phase: usize) -> Option<Arc<CtVolume>> {
        let p = study.phases.get(phase)?;
        let grid = &study.labels.as_ref()?.mask.geometry;
        if let Some((k, v)) = &self.hu_cache {
            if *k == p.key {
                return Some(Arc::clone(v));
            }
        }
        let v = if p.volume.geometry.same_grid(grid) {
            Arc::clone(&p.volume)
        } else {
            Arc::new(p.volume.resample_to(grid, Interp::Linear, -1024))
        };
        self.hu_cache = Some((p.key, Arc::clone(&v)));
        Some(v)
    }

    /// Mouse input in a viewport: `pressed` starts a stroke, `dragged` continues it,
    /// `released` ends it (one undo step per stroke).
    pub fn pointer(&mut self, study: &mut Study, phase: usize, o: Orientation, at_mm: Lps, button: Button) {
        let Button { pressed, dragged, released } = button;
        if !self.is_editing() {
            return;
        }
        Self::ensure_mask(study);
        match self.tool {
            Tool::Grow => {
                if pressed {
                    let ct = self.hu_volume(study, phase);
                    let grow = Grow {
                        criterion: GrowCriterion::HuAroundSeed { tolerance_hu: self.tolerance_hu },
                        reach: if self.grow_3d { Reach::Volume } else { Reach::Slice(edit_orientation(o)) },
                        max_voxels: 20_000_000,
                    };
                    let paint = self.paint();
                    let mut capped = false;
                    self.apply(study, |m| {
                        let r = region_grow(m, ct.as_deref(), at_mm, &grow, &paint)?;
                        capped = r.capped;
                        Ok(r.diff)
                    });
                    if capped {
                        self.message = Some("Region growing stopped at its size limit: lower the tolerance.".into());
                    }
                }
            }
            Tool::Brush | Tool::Eraser | Tool::ThresholdBrush => {
                if pressed && !self.history.in_stroke() {
                    self.history.begin_stroke();
                    self.stroke_last = None;
                }
                if (pressed || dragged) && self.history.in_stroke() {
                    let from = self.stroke_last.unwrap_or(at_mm);
                    let brush = Brush {
                        shape: if self.square { BrushShape::Square } else { BrushShape::Round },
                        extent: if self.brush_3d {
                            BrushExtent::Volume
                        } else {
                            BrushExtent::Plane(edit_orientation(o))
                        },
                        diameter_mm: self.diameter_mm as f64,
                    };
                    let paint = self.paint();
                    let ct = if self.tool == Tool::ThresholdBrush { self.hu_volume(study, phase) } else { None };
                    let range = ct.as_deref().map(|ct| HuRange {
                        ct,
                        lo_hu: self.lo_hu.round() as i16,
                        hi_hu: self.hi_hu.round() as i16,
                    });
                    if let Some(labels) = study.labels.as_mut() {
                        let mask = Arc::make_mut(&mut labels.mask);
                        match paint_line(mask, from, at_mm, &brush, &paint, range.as_ref()) {
                            Ok(diff) => {
                                if !diff.is_empty() {
                                    let dirty = diff.dirty_box();
                                    self.history.record(diff);
                                    // redraw now; the journal gets the stroke when it ends
                                    self.rekey(labels, dirty);
                                }
                            }
                            Err(e) => self.error = Some(e.to_string()),
                        }
                    }
                    self.stroke_last = Some(at_mm);
                }
                if released && self.history.in_stroke() {
                    let touched = self.history.end_stroke();
                    self.stroke_last = None;
                    // already drawn dab by dab
                    self.after_edit(study, touched, false);
                }
            }
            Tool::Lasso => {
                if pressed {
                    self.lasso = Some(Lasso { phase, o, points_mm: vec![at_mm] });
                } else if dragged {
                    let step_mm = study
                        .labels
                        .as_ref()
                        .map_or(0.5, |l| 0.3 * l.mask.geometry.spacing_mm.iter().fold(f64::INFINITY, |m, &s| m.min(s)));
                    if let Some(l) = self.lasso.as_mut().filter(|l| l.phase == phase && l.o == o) {
                        let last = *l.points_mm.last().expect("a lasso starts with a point");
                        if crate::volume::norm(crate::volume::sub(at_mm, last)) >= step_mm {
                            l.points_mm.push(at_mm);
                        }
                    }
                }
                if released {
                    // the outline's own viewport and points, not where the button came up
                    if let Some(l) = self.lasso.take() {
                        if l.points_mm.len() >= 3 {
                            let paint = self.paint();
                            let eo = edit_orientation(l.o);
                            self.apply(study, |m| polygon_fill_mm(m, eo, &l.points_mm, &paint));
                        }
                    }
                }
            }
            // clicks go to `app::outline::OutlinePanel::click`, which computes off this thread
            Tool::Navigate | Tool::Outline => {}
        }
    }

    /// Paints `region` (non-zero voxels, on the mask's grid, zero outside `within`) with the
    /// active label under the paint rules, as one undo step, journaled like any edit.
    /// Returns whether anything changed.
    pub fn paint_region(&mut self, study: &mut Study, region: &Mask, within: &VoxelBox) -> bool {
        let before = self.history.undo_steps();
        let paint = self.paint();
        self.apply(study, |m| crate::edit::tools::paint_region(m, region, within, &paint));
        self.history.undo_steps() > before
    }

    pub fn undo(&mut self, study: &mut Study) {
        let Some(labels) = study.labels.as_mut() else { return };
        if let Some(t) = self.history.undo(Arc::make_mut(&mut labels.mask)) {
            self.after_edit(study, t, true);
            self.message = Some(format!("Undone ({} more)", self.history.undo_steps()));
        }
    }

    pub fn redo(&mut self, study: &mut Study) {
        let Some(labels) = study.labels.as_mut() else { return };
        if let Some(t) = self.history.redo(Arc::make_mut(&mut labels.mask)) {
            self.after_edit(study, t, true);
            self.message = Some("Redone".into());
        }
    }

    /// Called every frame: a snapshot every few seconds while there are new edits.
    pub fn tick(&mut self, study: &Study) {
        if self.session.is_some()
            && self.labels_stored.as_ref() != Some(&self.labels)
            && self.last_labels_save.elapsed() >= LABELS_SAVE_EVERY
        {
            self.last_labels_save = Instant::now();
            self.labels_stored = Some(self.labels.clone());
            if let Some(s) = self.session.as_mut() {
                if let Err(e) = s.save_labels(&self.labels) {
                    self.error = Some(format!("Could not store the label table in the session: {e}"));
                }
            }
        }
        if !self.dirty || self.history.in_stroke() || self.last_autosave.elapsed() < AUTOSAVE_EVERY {
            return;
        }
        self.last_autosave = Instant::now();
        self.dirty = false;
        if let (Some(s), Some(l)) = (self.session.as_mut(), study.labels.as_ref()) {
            if let Err(e) = s.autosave(&l.mask) {
                self.error = Some(format!("Autosave failed (edits are still journaled): {e}"));
            }
        }
    }

    /// Replaces the study's mask with the session's (after the user accepted).
    pub fn restore(&mut self, study: &mut Study) {
        let Some(s) = &self.session else { return };
        match s.restore() {
            Ok(r) => {
                let shape = study.phases[study.fixed_index()].volume.geometry.shape;
                if r.mask.geometry.shape != shape {
                    self.error = Some(format!(
                        "The session's mask is {:?}, the study {:?}: not restored.",
                        r.mask.geometry.shape, shape
                    ));
                    return;
                }
                study.labels = Some(Labels { mask: Arc::new(r.mask), key: next_key(), source: s.dir().to_path_buf() });
                if let Some(t) = r.labels {
                    self.labels = t;
                    self.labels_stored = Some(self.labels.clone());
                }
                self.history.clear();
                self.message = Some(format!("Restored {} edit(s) from {}", r.info.edit_counter, s.dir().display()));
            }
            Err(e) => self.error = Some(format!("Could not restore: {e}")),
        }
        self.restore_offer = None;
    }

    pub fn discard_session(&mut self) {
        if let Some(s) = self.session.as_mut() {
            if let Err(e) = s.discard() {
                self.error = Some(e.to_string());
            }
        }
        self.restore_offer = None;
    }

    /// Saves the mask to a path the user chose (the native save dialog's answer): as
    /// [`EditPanel::save`] to `path`, with `.nii.gz` added when the name has no NIfTI
    /// ending (a dialog may drop the filter's ending). The path stays in the field.
    pub fn save_as(&mut self, path: &Path, study: &Study) {
        let mut p = path.display().to_string();
        let lower = p.to_lowercase();
        if !(lower.ends_with(".nii.gz") || lower.ends_with(".nii")) {
            p.push_str(".nii.gz");
        }
        self.save_path = p;
        self.save(study);
    }

    /// Saves the mask as NIfTI to `save_path` (never over an existing file other than the
    /// one this session saved to before).
    pub fn save(&mut self, study: &Study) {
        let Some(l) = &study.labels else { return };
        let path = PathBuf::from(self.save_path.trim());
        let name = path.to_string_lossy().to_lowercase();
        if !(name.ends_with(".nii.gz") || name.ends_with(".nii")) {
            self.error = Some("Give a file name ending in .nii.gz".into());
            return;
        }
        let ours = self.session.as_ref().and_then(|s| s.manifest().saved_to.clone()).is_some_and(|p| p == path);
        let sidecar = LabelTable::sidecar_path(&path);
        for p in [&path, &sidecar] {
            if crate::io::taken(p) && !ours {
                self.error = Some(format!(
                    "{} already exists; choose another name (Hepaview never overwrites files)",
                    p.display()
                ));
                return;
            }
        }
        let table = self.labels.to_itksnap();
        let result = if ours {
            replace_own(&path, &l.mask, ending_of(&name)).and_then(|_| replace_own_text(&sidecar, &table))
        } else {
            // new names: written beside, linked into place, never over anything there
            crate::io::nifti::write_volume(&l.mask, &path).map_err(|e| e.to_string()).and_then(|_| {
                crate::io::write_new_file(&sidecar, table.as_bytes()).map_err(|e| format!("{}: {e}", sidecar.display()))
            })
        };
        match result {
            Ok(()) => {
                if let Some(s) = self.session.as_mut() {
                    let _ = s.mark_saved(&path);
                }
                self.message = Some(format!("Saved {} and its labels {}", path.display(), sidecar.display()));
                self.error = None;
            }
            Err(e) => self.error = Some(format!("Saving {} failed: {e}", path.display())),
        }
    }

    /// Keys: B E T G P Esc choose tools, [ ] brush size, Ctrl+Z / Ctrl+Shift+Z undo / redo.
    pub fn keyboard(&mut self, ctx: &egui::Context, study: &mut Study) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (undo, redo) = ctx.input(|i| {
            let z = i.key_pressed(egui::Key::Z) && i.modifiers.command;
            (z && !i.modifiers.shift, (z && i.modifiers.shift) || (i.key_pressed(egui::Key::Y) && i.modifiers.command))
        });
        if redo {
            self.redo(study);
        } else if undo {
            self.undo(study);
        }
        ctx.input(|i| {
            if i.modifiers.command {
                return;
            }
            for (k, t) in [
                (egui::Key::B, Tool::Brush),
                (egui::Key::E, Tool::Eraser),
                (egui::Key::T, Tool::ThresholdBrush),
                (egui::Key::G, Tool::Grow),
                (egui::Key::P, Tool::Lasso),
                (egui::Key::O, Tool::Outline),
                (egui::Key::Escape, Tool::Navigate),
            ] {
                if i.key_pressed(k) {
                    self.tool = t;
                }
            }
            if i.key_pressed(egui::Key::OpenBracket) {
                self.diameter_mm = (self.diameter_mm / 1.25).max(0.5);
            }
            if i.key_pressed(egui::Key::CloseBracket) {
                self.diameter_mm = (self.diameter_mm * 1.25).min(200.0);
            }
        });
    }

    /// One row per label, as ITK-SNAP's label editor: the active label (radio), colour
    /// (egui's colour picker), name, opacity, shown and locked; then "Add label".
    fn label_table_ui(&mut self, ui: &mut egui::Ui) {
        let rows: Vec<crate::edit::Label> = self.labels.labels().to_vec();
        egui::Grid::new("label_table").num_columns(6).min_col_width(0.0).spacing([6.0, 2.0]).show(ui, |ui| {
            // narrow cells (checkboxes and numbers otherwise take 40 points each): the
            // side panel is only ~270 points wide
            ui.spacing_mut().interact_size.x = 20.0;
            for h in ["label", "", "name", "opacity", "show", "lock"] {
                ui.label(RichText::new(h).small());
            }
            ui.end_row();
            for l in rows {
                let v = l.value;
                let active = ui.radio_value(&mut self.label, v, format!("{v}")).on_hover_text("paint this label");
                let mut c = Color32::from_rgb(l.rgba[0], l.rgba[1], l.rgba[2]);
                let swatch = ui.scope(|ui| {
                    ui.spacing_mut().interact_size.x = 24.0;
                    egui::color_picker::color_edit_button_srgba(ui, &mut c, egui::color_picker::Alpha::Opaque)
                });
                if swatch.inner.changed() {
                    let _ = self.labels.recolour(v, [c.r(), c.g(), c.b(), l.rgba[3]]);
                }
                let mut name = l.name.clone();
                if ui
                    .add(egui::TextEdit::singleline(&mut name).desired_width(76.0).min_size(egui::vec2(76.0, 0.0)))
                    .labelled_by(active.id)
                    .changed()
                {
                    let _ = self.labels.rename(v, &name);
                }
                let mut opacity = l.opacity;
                if ui
                    .add(egui::DragValue::new(&mut opacity).range(0.0..=1.0).speed(0.01).fixed_decimals(2))
                    .on_hover_text("opacity of this label (times the Layers opacity)")
                    .changed()
                {
                    let _ = self.labels.set_opacity(v, opacity.clamp(0.0, 1.0));
                }
                // no visible text (the header names the column); screen readers and tests
                // get "show N" / "lock N"
                let mut visible = l.visible;
                let r =
                    ui.add(egui::Checkbox::without_text(&mut visible)).on_hover_text("draw this label over the images");
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, visible, format!("show {v}")));
                if r.changed() {
                    let _ = self.labels.set_visible(v, visible);
                }
                let mut locked = l.locked;
                let r = ui
                    .add(egui::Checkbox::without_text(&mut locked))
                    .on_hover_text("no tool changes this label's voxels");
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, locked, format!("lock {v}")));
                if r.changed() {
                    let _ = self.labels.set_locked(v, locked);
                }
                ui.end_row();
            }
        });
        let next = (1..=255u8).find(|v| self.labels.get(*v).is_none());
        let can_add = next.is_some_and(|v| v <= MAX_SHOWN_LABEL);
        let add = ui
            .add_enabled(can_add, egui::Button::new("Add label"))
            .on_disabled_hover_text(format!("the overlay shows labels 1 to {MAX_SHOWN_LABEL}"));
        if add.clicked() {
            if let Some(v) = next {
                match self.labels.add(&format!("label {v}"), None) {
                    Ok(v) => self.label = v,
                    Err(e) => self.error = Some(e.to_string()),
                }
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) {
        ui.heading("Edit mask");
        if let Some(info) = self.restore_offer.clone() {
            ui.label(
                RichText::new(format!("{} unsaved edit(s) from an earlier session were found.", info.edit_counter))
                    .color(Color32::YELLOW),
            );
            if let Some(d) = &info.damage {
                ui.label(RichText::new(format!("Warning: {d}.")).color(Color32::from_rgb(255, 190, 60)));
            }
            ui.horizontal(|ui| {
                if ui.button("Restore them").clicked() {
                    self.restore(study);
                }
                if ui.button("Discard").clicked() {
                    self.discard_session();
                }
            });
        }
        egui::ComboBox::new("edit_tool", "tool").selected_text(self.tool.name()).show_ui(ui, |ui| {
            for t in Tool::ALL {
                ui.selectable_value(&mut self.tool, t, t.name());
            }
        });
        self.label_table_ui(ui);
        let over_text = |over: PaintOver| match over {
            PaintOver::Everything => "over everything".to_string(),
            PaintOver::Background => "over background only".to_string(),
            PaintOver::Label(l) => format!("over {} only", self.labels.name_of(l)),
        };
        let mut over = self.over;
        egui::ComboBox::new("edit_over", "paint").selected_text(over_text(over)).show_ui(ui, |ui| {
            ui.selectable_value(&mut over, PaintOver::Everything, over_text(PaintOver::Everything));
            ui.selectable_value(&mut over, PaintOver::Background, over_text(PaintOver::Background));
            for l in self.labels.labels() {
                ui.selectable_value(&mut over, PaintOver::Label(l.value), over_text(PaintOver::Label(l.value)));
            }
        });
        self.over = over;
        match self.tool {
            Tool::Brush | Tool::Eraser | Tool::ThresholdBrush => {
                ui.add(egui::Slider::new(&mut self.diameter_mm, 0.5..=100.0).logarithmic(true).text("size mm ([ ])"));
                ui.horizontal(|ui| {
                    ui.checkbox(&mut self.brush_3d, "3D ball");
                    ui.checkbox(&mut self.square, "square");
                });
                if self.tool == Tool::ThresholdBrush {
                    ui.add(egui::Slider::new(&mut self.lo_hu, -1000.0..=1000.0).text("from HU"));
                    ui.add(egui::Slider::new(&mut self.hi_hu, -1000.0..=2000.0).text("to HU"));
                }
            }
            Tool::Grow => {
                ui.add(egui::Slider::new(&mut self.tolerance_hu, 1.0..=300.0).text("tolerance HU"));
                ui.checkbox(&mut self.grow_3d, "grow in 3D (else this slice)");
            }
            Tool::Lasso => {
                ui.label(RichText::new("Drag an outline on a slice; letting go fills it.").small());
            }
            // its settings and results are the outline panel's, shown below this one
            Tool::Navigate | Tool::Outline => {}
        }
        ui.horizontal(|ui| {
            if ui.add_enabled(self.history.can_undo(), egui::Button::new("Undo")).on_hover_text("Ctrl+Z").clicked() {
                self.undo(study);
            }
            if ui
                .add_enabled(self.history.can_redo(), egui::Button::new("Redo"))
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                self.redo(study);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let paint = self.paint();
            if ui
                .button("Fill between slices")
                .on_hover_text("interpolate the label between the axial slices drawn")
                .clicked()
            {
                self.apply(study, |m| interpolate_slices(m, EditOrientation::Axial, &paint));
            }
            if ui.button("Fill holes").clicked() {
                self.apply(study, |m| fill_holes(m, Reach::Volume, &paint));
            }
            if ui.button("Keep largest").clicked() {
                self.apply(study, |m| keep_largest_component(m, &paint));
            }
            if ui.button("Remove islands").on_hover_text("components under 0.1 mL").clicked() {
                self.apply(study, |m| remove_islands(m, 0.1, &paint));
            }
            if ui.button("Close 2 mm").clicked() {
                self.apply(study, |m| close_label(m, 2.0, &paint));
            }
            if ui.button("Open 2 mm").clicked() {
                self.apply(study, |m| open_label(m, 2.0, &paint));
            }
        });
        ui.horizontal(|ui| {
            let paint = self.paint();
            let sigma_mm = self.smooth_mm as f64;
            if ui.button("Smooth").on_hover_text("Gaussian smoothing of the active label's outline (3-D), kept where the blurred label is at least 0.5; grows only where the paint rule allows").clicked() {
                self.apply(study, |m| smooth_label(m, Smoothing::Gaussian { sigma_mm }, &paint));
            }
            let sigma = ui.label("σ");
            ui.add(egui::DragValue::new(&mut self.smooth_mm).range(0.3..=10.0).speed(0.05).fixed_decimals(1).suffix(" mm")).labelled_by(sigma.id);
        });
        if let Some(pending) = &self.save_dialog {
            match pending.poll() {
                super::file_dialog::Answer::Waiting => ui.ctx().request_repaint_after(Duration::from_millis(100)),
                super::file_dialog::Answer::Nothing => {
                    self.save_dialog = None;
                    self.message = Some(super::file_dialog::NOTHING_CHOSEN.into());
                }
                super::file_dialog::Answer::Chosen(paths) => {
                    self.save_dialog = None;
                    if let Some(p) = paths.first() {
                        self.save_as(p, study);
                    }
                }
            }
        }
        let save = ui.label("save mask as");
        ui.text_edit_singleline(&mut self.save_path).labelled_by(save.id);
        ui.horizontal(|ui| {
            if ui.button("Save mask (NIfTI)").clicked() {
                self.save(study);
            }
            let choose = ui
                .add_enabled(self.save_dialog.is_none(), egui::Button::new("Save as…"))
                .on_hover_text("Choose the file in the desktop's save dialog");
            if choose.clicked() {
                let typed = PathBuf::from(self.save_path.trim());
                let start = typed.parent().map(Path::to_path_buf);
                let name = typed.file_name().map(|n| n.to_string_lossy().into_owned());
                self.save_dialog =
                    Some(super::file_dialog::Pending::ask(super::file_dialog::Purpose::SaveMask, start, name));
            }
        });
        if let Some(s) = &self.session {
            ui.label(RichText::new(format!("Autosave: {}", s.dir().display())).small());
        }
        if let Some(m) = &self.message {
            ui.label(RichText::new(m).small());
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
    }
}

/// How a mask label is named in the panels (LiTS numbering, vessels 3).
pub(crate) fn label_name(l: u8) -> String {
    match l {
        1 => "1 liver".into(),
        2 => "2 tumour".into(),
        3 => "3 vessel".into(),
        n => format!("{n}"),
    }
}

/// The default file name offered for saving: beside the study, never over it.
pub fn default_save_path(study: &Study) -> String {
    let base = study_path(study).unwrap_or_else(|| PathBuf::from("."));
    let dir = if base.is_dir() {
        base.parent().map(Path::to_path_buf).unwrap_or(base)
    } else {
        base.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    dir.join("mask-edited.nii.gz").display().to_string()
}

/// The ending the NIfTI writer compresses by: `nii.gz` or `nii`.
fn ending_of(lower_name: &str) -> &'static str {
    if lower_name.ends_with(".nii.gz") {
        "nii.gz"
    } else {
        "nii"
    }
}

/// A temporary sibling of `path` for this process: `.{name}.<pid>.part.{ending}` (the
/// ending kept, since the NIfTI writer compresses by it), after removing those a killed
/// save of the same name left.
fn own_temporary(path: &Path, ending: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (prefix, suffix) = (format!(".{name}."), format!(".part.{ending}"));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::io::remove_stale_temps(dir, |f| {
        f.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(suffix.as_str()))
    });
    path.with_file_name(format!(".{name}.{}.part.{ending}", std::process::id()))
}

/// Saving again over this session's own earlier save: the mask written whole beside it,
/// then renamed over it.
fn replace_own(path: &Path, mask: &crate::volume::Mask, ending: &str) -> Result<(), String> {
    let tmp = own_temporary(path, ending);
    let _ = std::fs::remove_file(&tmp);
    let r = crate::io::nifti::write_volume(mask, &tmp)
        .map_err(|e| e.to_string())
        .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display())));
    let _ = std::fs::remove_file(&tmp);
    r
}

/// The label table beside this session's own earlier save, replaced the same way.
fn replace_own_text(path: &Path, text: &str) -> Result<(), String> {
    let tmp = own_temporary(path, "txt");
    let _ = std::fs::remove_file(&tmp);
    let r = crate::io::write_new_file(&tmp, text.as_bytes())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(&tmp);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save killed between writing its temporary and renaming it left a whole file under
    /// a hidden name; the next save of that name removes it (its process is gone) instead
    /// of being refused by it, and leaves a running process's temporary alone.
    #[test]
    fn a_killed_saves_temporary_is_removed_by_the_next_save_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.nii.gz");
        // pid 4194304 is above Linux's pid_max: gone; pid 1 is running
        let stale = dir.path().join(".mask.nii.gz.4194304.part.nii.gz");
        let live = dir.path().join(".mask.nii.gz.1.part.nii.gz");
        for f in [&stale, &live] {
            std::fs::write(f, b"x").unwrap();
        }
        let g = crate::volume::Geometry::axis_aligned([2, 3, 4], [1.0; 3], [0.0; 3]);
        let mask: crate::volume::Mask = crate::volume::Volume::filled(g, 1u8);
        std::fs::write(&path, b"an earlier save").unwrap();
        replace_own(&path, &mask, "nii.gz").unwrap();
        assert!(!stale.exists(), "the killed save's temporary is removed");
        assert!(live.exists(), "a running save's temporary is left");
        assert!(crate::io::nifti::read_mask(&path).is_ok(), "the save replaced the earlier one");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "only the save and the live temporary: {names:?}");
    }
}
