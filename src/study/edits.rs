//! The edit document of the open study: the label mask's edits with their undo history, the
//! stroke or lasso outline in progress, the label table as shown and as stored, and the
//! autosave session that never loses work (every completed edit journaled and fsync'd, a
//! snapshot every few seconds, an offer to restore on start). This is the model the edit
//! panel couples to (ITK-SNAP's `PaintbrushModel`): the viewport turns the pointer into LPS
//! mm and calls [`Edits::brush`], [`Edits::lasso`] or [`Edits::grow`]; the panel reads
//! [`History::can_undo`] for its buttons. The tools themselves are `crate::edit`'s.
//!
//! The label table decides which voxels a tool may change (locked labels never). It is
//! stored in the session's manifest, restored with the mask, and written beside a saved
//! mask as an ITK-SNAP label description file (`NAME.labels.txt`), which is also read back
//! when a study's mask has one beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::edit::tools::{paint_line, polygon_fill_mm, region_grow, Brush, Grow, HuRange};
use crate::edit::{EditDiff, EditError, History, LabelTable, Orientation, Paint, RestoreInfo, Session, Touched};
use crate::study::follow_outlines::FollowOutlines;
use crate::study::{next_key, Labels, Study};
use crate::volume::region::VoxelBox;
use crate::volume::{CtVolume, Interp, Lps, Mask};

/// Autosave a snapshot at most this often while editing (every edit is journaled at once).
const AUTOSAVE_EVERY: Duration = Duration::from_secs(5);
/// Undo memory budget.
const UNDO_BUDGET_BYTES: usize = 512 << 20;
/// Label table changes reach the session's manifest at most this often (an opacity drag
/// changes it every frame).
const LABELS_SAVE_EVERY: Duration = Duration::from_secs(1);

/// The primary button this frame: went down, moved while down, came up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Button {
    pub pressed: bool,
    pub dragged: bool,
    pub released: bool,
}

/// The threshold brush's gate: paint only where the phase `phase` (on the mask's grid)
/// lies within `lo_hu..=hi_hu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HuGate {
    pub phase: usize,
    pub lo_hu: i16,
    pub hi_hu: i16,
}

/// A freehand outline being drawn, on the plane of the viewport it was started in.
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

/// The edits of the open study's mask: history, session, label table, gesture in progress.
pub struct Edits {
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
    /// What the last action said, and what went wrong, in words for the panel.
    pub message: Option<String>,
    pub error: Option<String>,
    /// Mask key the GPU may still hold, the current key, and the voxels changed between
    /// them: the overlay then re-uploads only that box.
    pub gpu_update: Option<(u64, u64, VoxelBox)>,
    /// The mask key last handed to the overlay (see [`Edits::gpu_previous`]).
    gpu_shown: Option<u64>,
    /// The lesions outlined on follow-up visits, each visit's own layer, with their undo.
    pub follow_ups: FollowOutlines,
}

impl Default for Edits {
    fn default() -> Self {
        Edits {
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
            message: None,
            error: None,
            gpu_update: None,
            gpu_shown: None,
            follow_ups: FollowOutlines::default(),
        }
    }
}

/// The study's own location (the folder or file the fixed phase came from), when it is a
/// real path: the session lives beside it (or in the user's data folder if read-only).
fn study_path(study: &Study) -> Option<PathBuf> {
    let p = &study.phases.get(study.fixed_index())?.source;
    p.exists().then(|| p.clone())
}

impl Edits {
    /// True while a stroke or a lasso outline is in progress (it ends when the button is
    /// let go, wherever the pointer is by then).
    pub fn in_gesture(&self) -> bool {
        self.history.in_stroke() || self.lasso.is_some()
    }

    /// The points of the lasso outline being drawn on `phase`'s `o` plane, if any.
    pub fn lasso_points(&self, phase: usize, o: Orientation) -> Option<&[Lps]> {
        self.lasso.as_ref().filter(|l| l.phase == phase && l.o == o).map(|l| l.points_mm.as_slice())
    }

    /// The autosave session's folder, once one is open.
    pub fn session_dir(&self) -> Option<&Path> {
        self.session.as_ref().map(|s| s.dir())
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
    /// (`NAME.labels.txt`, as [`Edits::save`] writes), when there is one.
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
    pub fn ensure_mask(study: &mut Study) {
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
    pub fn apply(&mut self, study: &mut Study, tool: impl FnOnce(&mut Mask) -> Result<EditDiff, EditError>) {
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

    /// Region growing from the voxel at `at_mm` (its HU read in phase `phase`), as one
    /// undo step.
    pub fn grow(&mut self, study: &mut Study, phase: usize, at_mm: Lps, grow: &Grow, paint: &Paint) {
        let ct = self.hu_volume(study, phase);
        let mut capped = false;
        self.apply(study, |m| {
            let r = region_grow(m, ct.as_deref(), at_mm, grow, paint)?;
            capped = r.capped;
            Ok(r.diff)
        });
        if capped {
            self.message = Some("Region growing stopped at its size limit: lower the tolerance.".into());
        }
    }

    /// A brush stroke: `pressed` starts it, `dragged` paints a line from the last sample to
    /// `at_mm`, `released` ends it (one undo step per stroke, journaled when it ends).
    pub fn brush(
        &mut self,
        study: &mut Study,
        at_mm: Lps,
        button: Button,
        brush: &Brush,
        paint: &Paint,
        gate: Option<HuGate>,
    ) {
        let Button { pressed, dragged, released } = button;
        if pressed && !self.history.in_stroke() {
            self.history.begin_stroke();
            self.stroke_last = None;
        }
        if (pressed || dragged) && self.history.in_stroke() {
            let from = self.stroke_last.unwrap_or(at_mm);
            let ct = gate.and_then(|g| self.hu_volume(study, g.phase));
            let range = ct.as_deref().zip(gate).map(|(ct, g)| HuRange { ct, lo_hu: g.lo_hu, hi_hu: g.hi_hu });
            if let Some(labels) = study.labels.as_mut() {
                let mask = Arc::make_mut(&mut labels.mask);
                match paint_line(mask, from, at_mm, brush, paint, range.as_ref()) {
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

    /// A lasso outline on `phase`'s `o` plane: `pressed` starts it, `dragged` adds points
    /// (a fraction of a voxel apart), `released` fills it as one undo step.
    pub fn lasso(
        &mut self,
        study: &mut Study,
        phase: usize,
        o: Orientation,
        at_mm: Lps,
        button: Button,
        paint: &Paint,
    ) {
        let Button { pressed, dragged, released } = button;
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
                    self.apply(study, |m| polygon_fill_mm(m, l.o, &l.points_mm, paint));
                }
            }
        }
    }

    /// Paints `region` (non-zero voxels, on the mask's grid, zero outside `within`) by
    /// `paint`, as one undo step, journaled like any edit. Returns whether anything changed.
    pub fn paint_region(&mut self, study: &mut Study, region: &Mask, within: &VoxelBox, paint: &Paint) -> bool {
        let before = self.history.undo_steps();
        self.apply(study, |m| crate::edit::tools::paint_region(m, region, within, paint));
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

    /// Saves the mask as NIfTI to `save_path` (trimmed), its label table beside it, never
    /// over an existing file other than the one this session saved to before.
    pub fn save(&mut self, study: &Study, save_path: &str) {
        let Some(l) = &study.labels else {
            self.error = Some(NOTHING_TO_SAVE.into());
            return;
        };
        let path = expand_home(save_path);
        let name = path.to_string_lossy().to_lowercase();
        if !(name.ends_with(".nii.gz") || name.ends_with(".nii")) {
            self.error = Some("Give a file name ending in .nii.gz".into());
            return;
        }
        // the offered folder under ~/hepaview-masks/ is made on the first save; any other
        // missing folder is the user's typing and is said, not made
        if let Some(parent) = path.parent().filter(|p| p.starts_with(masks_home()) && !p.exists()) {
            if let Err(e) = std::fs::create_dir_all(parent) {
                self.error = Some(format!("Saving {} failed: making {}: {e}", path.display(), parent.display()));
                return;
            }
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
}

/// Said when Save is pressed on a study with no label mask (before, nothing happened).
pub const NOTHING_TO_SAVE: &str =
    "Nothing to save yet: this study has no label mask (paint, segment, or open a mask with the study first)";

/// Where masks are offered for saving: a folder under the home directory, as reports are
/// (`~/hepaview-reports/`). Never the study's folder or the one above it, which may be a
/// PACS export or a read-only share the user does not want touched (the viewer offered the
/// folder above the study until 2026-12-07).
pub fn masks_home() -> PathBuf {
    home().join("hepaview-masks")
}

fn home() -> PathBuf {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// A typed save path, trimmed, with a leading `~/` as the home directory (the offered path
/// is shown that way, as a shell shows it, and so reads the same on every machine).
pub fn expand_home(typed: &str) -> PathBuf {
    let t = typed.trim();
    match t.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => PathBuf::from(t),
    }
}

/// The default file offered for saving: `~/hepaview-masks/<study>/mask-edited.nii.gz` (as
/// typed; [`Edits::save`] expands the `~`), `<study>` from the last two parts of the study's path (`triphase-hcc048-dicom`), so two
/// studies' masks do not meet. Saving never overwrites; the folder is made on first save.
pub fn default_save_path(study: &Study) -> String {
    let name = study_path(study).map(|p| study_folder_name(&p)).unwrap_or_else(|| "study".into());
    format!("~/hepaview-masks/{name}/mask-edited.nii.gz")
}

/// A folder name for a study at `path`: its last two path parts joined by '-', NIfTI
/// endings dropped, and anything but letters, digits, '-', '_' and '.' made '_'.
fn study_folder_name(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .take(2)
        .collect();
    let joined = parts.into_iter().rev().collect::<Vec<_>>().join("-");
    let lower = joined.to_lowercase();
    let stem = if lower.ends_with(".nii.gz") {
        &joined[..joined.len() - 7]
    } else if lower.ends_with(".nii") {
        &joined[..joined.len() - 4]
    } else {
        &joined[..]
    };
    let clean: String =
        stem.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if clean.trim_matches(|c| c == '.' || c == '_').is_empty() {
        "study".into()
    } else {
        clean
    }
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

    /// The offered save path is under ~/hepaview-masks/, never beside the study.
    #[test]
    fn a_study_gets_its_own_folder_name_under_the_masks_home() {
        assert_eq!(study_folder_name(Path::new("/data/triphase-hcc048/dicom")), "triphase-hcc048-dicom");
        assert_eq!(study_folder_name(Path::new("/data/case 7/CT.nii.gz")), "case_7-CT");
        assert_eq!(study_folder_name(Path::new("/ct.nii")), "ct");
        assert_eq!(study_folder_name(Path::new("/")), "study");
        assert_eq!(expand_home("~/hepaview-masks/a/m.nii.gz"), masks_home().join("a/m.nii.gz"));
        assert_eq!(expand_home(" /x/m.nii.gz "), PathBuf::from("/x/m.nii.gz"));
    }

    /// Save on a study with no mask says so instead of doing nothing.
    #[test]
    fn saving_without_a_mask_says_there_is_nothing_to_save() {
        let mut study = Study::demo(&crate::phantom::PhantomOptions::small());
        study.labels = None;
        let mut edits = Edits::default();
        let dir = tempfile::tempdir().unwrap();
        edits.save(&study, &dir.path().join("m.nii.gz").display().to_string());
        assert_eq!(edits.error.as_deref(), Some(NOTHING_TO_SAVE));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The calls the viewport makes, without a window: a stroke of three samples is one
    /// undo step, and undo gives back the exact mask.
    #[test]
    fn a_stroke_is_one_undo_step_and_undo_restores_the_mask() {
        use crate::edit::tools::{BrushExtent, BrushShape};
        let mut study = Study::demo(&crate::phantom::PhantomOptions::small());
        let before = study.labels.as_ref().unwrap().mask.data.clone();
        let mut edits = Edits::default();
        let brush = Brush { shape: BrushShape::Round, extent: BrushExtent::Volume, diameter_mm: 12.0 };
        let paint = edits.labels.paint(2, crate::edit::PaintOver::Everything);
        let c = study.phases[study.fixed_index()].volume.geometry.centre_mm();
        for (dx, button) in [
            (0.0, Button { pressed: true, ..Default::default() }),
            (6.0, Button { dragged: true, ..Default::default() }),
            (12.0, Button { released: true, ..Default::default() }),
        ] {
            edits.brush(&mut study, [c[0] + dx, c[1], c[2]], button, &brush, &paint, None);
        }
        assert!(!edits.in_gesture());
        assert_eq!(edits.history.undo_steps(), 1, "one stroke, one undo step");
        assert_ne!(study.labels.as_ref().unwrap().mask.data, before, "the stroke painted");
        edits.undo(&mut study);
        assert_eq!(study.labels.as_ref().unwrap().mask.data, before, "undo restores the exact mask");
        assert!(edits.history.can_redo());
    }

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
