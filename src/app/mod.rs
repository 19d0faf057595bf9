//! The viewer: an eframe app over a [`Study`]. Panels and viewports only couple widgets to
//! [`view::ViewState`] and the study, and hand the GPU a [`gpu::SliceViewDesc`] per
//! viewport; the maths lives in `view`, the drawing in `gpu`.

pub mod analysis;
pub mod edit;
pub mod file_dialog;
pub mod follow_up;
pub mod gpu;
pub mod outline;
pub mod registration;
pub mod screenshot;
pub mod segment;
pub mod view;
pub mod view3d;
mod viewports;

use std::sync::Arc;

use egui::{Align2, Color32, Key, Vec2};

use crate::io::phase::Phase;
use crate::study::{take_ended, Ended, Job, Study};
use crate::volume::{Interp, Lps};
use view::{Layout, Orientation, ViewState, WindowLevel};

/// Label colours (RGBA): 1 liver, 2 tumour (LiTS), then distinct hues for more labels.
pub const LABEL_PALETTE: [[f32; 4]; 16] = [
    [0.0, 0.0, 0.0, 0.0],
    [0.85, 0.45, 0.35, 1.0],
    [0.2, 0.9, 0.3, 1.0],
    [0.3, 0.5, 1.0, 1.0],
    [1.0, 0.85, 0.2, 1.0],
    [0.9, 0.3, 0.9, 1.0],
    [0.2, 0.9, 0.9, 1.0],
    [1.0, 0.5, 0.1, 1.0],
    [0.6, 0.4, 1.0, 1.0],
    [0.5, 1.0, 0.5, 1.0],
    [1.0, 0.4, 0.6, 1.0],
    [0.7, 0.7, 0.3, 1.0],
    [0.4, 0.8, 0.6, 1.0],
    [0.9, 0.6, 0.4, 1.0],
    [0.6, 0.6, 0.9, 1.0],
    [0.8, 0.8, 0.8, 1.0],
];

pub struct HepaviewApp {
    pub study: Study,
    pub view: ViewState,
    /// World point under the pointer, for the HU readout.
    pub hover_mm: Option<Lps>,
    pub show_help: bool,
    /// Zoom to fit the viewports on the next frame (their size is known only then).
    fit_pending: bool,
    /// A study being opened on a worker thread; the current one stays usable meanwhile.
    loading: Option<Job<Study>>,
    /// Path typed into the Open dialog (Ctrl+O); `None` when the dialog is closed.
    open_dialog: Option<String>,
    /// The native Open dialog, when its Browse button asked for it.
    open_native: Option<file_dialog::Pending>,
    /// Said in the Open window when the native dialog closed without a path.
    open_hint: Option<&'static str>,
    /// Last error to show the user (cannot open a study, …).
    pub error: Option<String>,
    /// Debug overlay (D): frame interval and UI CPU time.
    pub show_timing: bool,
    /// Size (points) of one slice viewport's cell at the last frame; benches size the
    /// window from it to measure a given viewport size.
    pub last_cell_points: Vec2,
    /// Register button, progress, per-phase results and comparison views.
    pub registration: registration::RegistrationPanel,
    /// Clustering, lesion table and report export.
    pub analysis: analysis::AnalysisPanel,
    /// Mask editing tools, undo, autosave.
    pub edit: edit::EditPanel,
    /// The mask's edits, undo history, label table and autosave session (the study's edit
    /// document, which the edit panel and the viewports drive).
    pub edits: crate::study::edits::Edits,
    /// The U-Net segmentation button.
    pub segment: segment::SegmentPanel,
    /// The one-click lesion outline (the Outline tool's prompts, results, lesion row).
    pub outline: outline::OutlinePanel,
    /// The 3D view of the label mask's surfaces (V shows it beside the slice views).
    pub view3d: view3d::View3d,
    /// Follow-up visits: response against the baseline, nudges, re-pairing.
    pub follow_up: follow_up::FollowUpPanel,
    frame_times_ms: std::collections::VecDeque<f32>,
    last_frame: Option<std::time::Instant>,
    /// CPU time of the last frame as eframe measured it (not available off-screen).
    pub cpu_ms: Option<f32>,
}

impl HepaviewApp {
    pub fn new(study: Study) -> Self {
        let fixed = &study.phases[study.fixed_index()].volume.geometry;
        let view = ViewState::new(fixed, study.phases.len(), 420.0);
        HepaviewApp {
            study,
            view,
            hover_mm: None,
            show_help: false,
            fit_pending: true,
            last_cell_points: Vec2::ZERO,
            loading: None,
            open_dialog: None,
            open_native: None,
            open_hint: None,
            error: None,
            show_timing: false,
            registration: registration::RegistrationPanel::new(),
            analysis: analysis::AnalysisPanel::default(),
            edit: edit::EditPanel::default(),
            edits: crate::study::edits::Edits::default(),
            segment: segment::SegmentPanel::default(),
            outline: outline::OutlinePanel::default(),
            view3d: view3d::View3d::default(),
            follow_up: follow_up::FollowUpPanel::default(),
            frame_times_ms: std::collections::VecDeque::with_capacity(120),
            last_frame: None,
            cpu_ms: None,
        }
    }

    /// Starts opening `paths` on a worker thread (drag-and-drop, Open dialog).
    pub fn open_in_background(&mut self, paths: Vec<std::path::PathBuf>) {
        if let Some(old) = self.loading.take() {
            old.cancel();
        }
        let title = paths.first().map(|p| p.display().to_string()).unwrap_or_default();
        self.loading = Some(Job::spawn(title, move |progress| {
            Study::open_with_progress(&paths, progress).map_err(|e| e.to_string())
        }));
    }

    /// Opens what the user chose (the Open window's typed path, its native dialog):
    /// closes the window and starts loading `paths` in the background.
    pub fn open_paths(&mut self, paths: Vec<std::path::PathBuf>) {
        self.open_dialog = None;
        self.open_hint = None;
        if !paths.is_empty() {
            self.open_in_background(paths);
        }
    }

    /// Whether the Open window (Ctrl+O) is showing.
    pub fn open_window_shown(&self) -> bool {
        self.open_dialog.is_some()
    }

    /// Moves phase `i` one place earlier in the layouts (`later` = one place later),
    /// carrying its window/level and hidden flag along.
    pub fn move_phase(&mut self, i: usize, later: bool) {
        let j = if later { i + 1 } else { i.wrapping_sub(1) };
        let n = self.study.phases.len();
        if i >= n || j >= n {
            return;
        }
        self.study.phases.swap(i, j);
        self.view.window.swap(i, j);
        self.view.hidden.swap(i, j);
        if self.view.single.0 == i {
            self.view.single.0 = j;
        } else if self.view.single.0 == j {
            self.view.single.0 = i;
        }
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Replaces the study, keeping the layout and window settings.
    pub fn set_study(&mut self, study: Study) {
        self.registration.cancel();
        self.analysis.cancel();
        self.segment.cancel();
        self.view3d.cancel();
        self.follow_up.cancel();
        let (layout, show_3d) = (self.view.layout, self.view3d.visible);
        *self = HepaviewApp { show_timing: self.show_timing, ..HepaviewApp::new(study) };
        self.view.layout = layout;
        self.view3d.visible = show_3d;
    }

    /// Polls the loading job; shows its progress with a Cancel button.
    fn loading_ui(&mut self, ctx: &egui::Context) {
        if let Some(ended) = take_ended(&mut self.loading) {
            match ended {
                Ended::Done(study) => self.set_study(study),
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(e),
            }
            return;
        }
        let Some(job) = self.loading.as_ref() else { return };
        let (fraction, message) = job.progress();
        let title = job.title.clone();
        let mut cancel = false;
        egui::Window::new("Opening study")
            .collapsible(false)
            .resizable(false)
            .anchor(Align2::CENTER_CENTER, Vec2::ZERO)
            .show(ctx, |ui| {
                ui.label(&title);
                ui.add(egui::ProgressBar::new(fraction).show_percentage());
                ui.label(message);
                cancel = ui.button("Cancel").clicked();
            });
        if cancel {
            job.cancel();
        }
        // keep polling while the worker runs
        ctx.request_repaint_after(std::time::Duration::from_millis(50));
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
        if let Some(pending) = &self.open_native {
            match pending.poll() {
                file_dialog::Answer::Waiting => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
                file_dialog::Answer::Nothing => {
                    self.open_native = None;
                    self.open_hint = Some(file_dialog::NOTHING_CHOSEN);
                }
                file_dialog::Answer::Chosen(paths) => {
                    self.open_native = None;
                    self.open_paths(paths);
                }
            }
        }
        if let Some(path) = self.open_dialog.as_mut() {
            let mut go = false;
            let mut close = false;
            let mut browse = None;
            let waiting = self.open_native.is_some();
            egui::Window::new("Open study").collapsible(false).show(ctx, |ui| {
                ui.label("A DICOM folder, or NIfTI files separated by ';' (or drop them on the window):");
                let r = ui.add(egui::TextEdit::singleline(path).desired_width(420.0).hint_text("/path/to/study"));
                go = r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                ui.horizontal(|ui| {
                    go |= ui.button("Open").clicked();
                    close = ui.button("Cancel").clicked();
                    ui.separator();
                    ui.add_enabled_ui(!waiting, |ui| {
                        if ui.button("Browse folder…").on_hover_text("The desktop's folder chooser").clicked() {
                            browse = Some(file_dialog::Purpose::OpenFolder);
                        }
                        if ui.button("Browse files…").on_hover_text("NIfTI files of one study").clicked() {
                            browse = Some(file_dialog::Purpose::OpenFiles);
                        }
                    });
                });
                if let Some(hint) = self.open_hint {
                    ui.label(egui::RichText::new(hint).small());
                }
            });
            if go {
                let paths: Vec<std::path::PathBuf> =
                    path.split(';').map(str::trim).filter(|p| !p.is_empty()).map(Into::into).collect();
                self.open_paths(paths);
            } else if close {
                self.open_dialog = None;
                self.open_hint = None;
            } else if let Some(purpose) = browse {
                let start = std::path::PathBuf::from(path.trim());
                let start = if start.is_dir() { Some(start) } else { start.parent().map(|p| p.to_path_buf()) };
                self.open_hint = None;
                self.open_native = Some(file_dialog::Pending::ask(purpose, start, None));
            }
        }
        if let Some(msg) = self.error.clone() {
            let mut close = false;
            egui::Window::new("Could not open").collapsible(false).show(ctx, |ui| {
                ui.label(msg);
                close = ui.button("OK").clicked();
            });
            if close {
                self.error = None;
            }
        }
        let dropped: Vec<std::path::PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if !dropped.is_empty() {
            self.open_in_background(dropped);
        }
    }

    /// The whole UI; eframe calls it every frame, and so do the tests (egui_kittest).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let now = std::time::Instant::now();
        if let Some(last) = self.last_frame.replace(now) {
            if self.frame_times_ms.len() == 120 {
                self.frame_times_ms.pop_front();
            }
            self.frame_times_ms.push_back(now.duration_since(last).as_secs_f32() * 1000.0);
        }
        let ctx = ui.ctx().clone();
        self.loading_ui(&ctx);
        self.registration.poll(&mut self.study, &ctx);
        self.analysis.poll(&self.study, &ctx);
        self.segment.poll(&mut self.study, &ctx);
        self.outline.poll(&mut self.study, &self.edit, &mut self.edits, &ctx);
        self.follow_up.poll(&mut self.study, &ctx);
        if self.view.window.len() != self.study.phases.len() {
            // a follow-up visit added: its phases get the fixed phase's window
            let wl = self.view.window.get(self.study.fixed_index()).copied().unwrap_or(WindowLevel::PRESETS[0].1);
            self.view.window.resize(self.study.phases.len(), wl);
            self.view.hidden.resize(self.study.phases.len(), false);
        }
        self.edits.open_session(&self.study);
        if self.edit.save_path.is_empty() {
            self.edit.save_path = edit::default_save_path(&self.study);
        }
        self.edits.tick(&self.study);
        // Ctrl+Z undoes the latest edit: a follow-up outline made after the last baseline edit first
        if !ctx.egui_wants_keyboard_input() && self.edits.follow_ups.undo_first(self.edits.history.undo_steps()) {
            let undo = ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, Key::Z));
            if undo {
                self.outline.undo_follow_up(&mut self.edits);
            }
        }
        self.edit.keyboard(&ctx, &mut self.study, &mut self.edits);
        // a stroke ends when the button is let go, wherever the pointer is by then
        if self.edits.in_gesture() && ctx.input(|i| !i.pointer.primary_down()) {
            let c = self.view.crosshair_mm;
            self.edit.pointer(
                &mut self.study,
                &mut self.edits,
                0,
                view::Orientation::Axial,
                c,
                edit::Button { released: true, ..Default::default() },
            );
        }
        self.dialogs(&ctx);
        self.keyboard(ui.ctx());
        // Panels paint no background of their own: the window is cleared to the panel
        // colour (see `clear_color`), and an opaque fill over a third of the window costs
        // lavapipe several milliseconds a frame.
        let bare = egui::Frame::side_top_panel(ui.style()).fill(Color32::TRANSPARENT);
        egui::Panel::top("menu").frame(bare).show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").frame(bare).show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("side").frame(bare).resizable(true).default_size(250.0).show(ui, |ui| self.side_panel(ui));
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| self.viewports(ui));
        if self.show_help {
            egui::Window::new("Keyboard shortcuts").open(&mut self.show_help).show(ui.ctx(), |ui| {
                for (k, what) in SHORTCUTS {
                    ui.horizontal(|ui| {
                        ui.monospace(format!("{k:<14}"));
                        ui.label(*what);
                    });
                }
            });
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let o = if self.view.layout == Layout::Single { self.view.single.1 } else { Orientation::Axial };
        let mut carry = None;
        ctx.input(|i| {
            if i.key_pressed(Key::ArrowUp) {
                self.view.scroll(o, 1.0);
            }
            if i.key_pressed(Key::ArrowDown) {
                self.view.scroll(o, -1.0);
            }
            if i.key_pressed(Key::PageUp) {
                self.view.scroll(o, 10.0);
            }
            if i.key_pressed(Key::PageDown) {
                self.view.scroll(o, -10.0);
            }
            for (n, key) in [Key::Num1, Key::Num2, Key::Num3, Key::Num4].into_iter().enumerate() {
                if i.key_pressed(key) {
                    let wl = WindowLevel::PRESETS[n].1;
                    for p in 0..self.view.window.len() {
                        self.view.set_window(p, wl);
                    }
                }
            }
            if i.key_pressed(Key::L) {
                self.view.layout = self.view.layout.next();
            }
            if i.key_pressed(Key::I) {
                self.view.linear = !self.view.linear;
            }
            if i.key_pressed(Key::A) {
                self.view.annotations = !self.view.annotations;
            }
            if i.key_pressed(Key::M) {
                self.view.show_labels = !self.view.show_labels;
            }
            if i.key_pressed(Key::R) {
                let fixed = &self.study.phases[self.study.fixed_index()].volume.geometry;
                let keep = (self.view.layout, self.view.window.clone());
                self.view = ViewState::new(fixed, self.study.phases.len(), 420.0);
                (self.view.layout, self.view.window) = keep;
                self.fit_pending = true;
            }
            if i.key_pressed(Key::F1) {
                self.show_help = !self.show_help;
            }
            if i.key_pressed(Key::D) {
                self.show_timing = !self.show_timing;
            }
            if i.key_pressed(Key::V) {
                self.view3d.visible = !self.view3d.visible;
            }
            if i.key_pressed(Key::N) && !i.modifiers.command && self.edit.tool == edit::Tool::Outline {
                self.outline.new_lesion();
            }
            if i.key_pressed(Key::F) && !i.modifiers.command && self.edit.tool == edit::Tool::Outline {
                carry = outline::visit_labels(&self.study).pop();
            }
            if i.modifiers.command && i.key_pressed(Key::O) {
                self.open_dialog = Some(String::new());
            }
        });
        // F: the last baseline outline carried to the latest follow-up visit
        if let Some(label) = carry.filter(|_| self.outline.can_carry(&self.study)) {
            self.outline.carry_to(&self.study, &label);
        }
    }

    /// The lesions outlined on the follow-up visit the phase with `key` belongs to.
    fn outline_layer_for(&self, key: u64) -> Option<(&Arc<crate::volume::Mask>, u64)> {
        self.edits.follow_ups.layer(&self.study.visit_of(key)?.label)
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Hepaview");
            if ui.button("Open… (Ctrl+O)").clicked() {
                self.open_dialog = Some(String::new());
            }
            ui.separator();
            ui.label(&self.study.title);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Help (F1)").clicked() {
                    self.show_help = !self.show_help;
                }
                for (name, layout) in [("Single", Layout::Single), ("3×3", Layout::Grid), ("1×N axial", Layout::Row)]
                {
                    ui.selectable_value(&mut self.view.layout, layout, name);
                }
                ui.label("Layout (L):");
                ui.checkbox(&mut self.view3d.visible, "3D view (V)");
            });
        });
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading("Study");
            let mut set: Option<(usize, Phase)> = None;
            let mut moved: Option<(usize, bool)> = None;
            let n = self.study.phases.len();
            for (i, p) in self.study.phases.iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(i > 0, egui::Button::new("<").small())
                        .on_hover_text("show this phase one place earlier")
                        .clicked()
                    {
                        moved = Some((i, false));
                    }
                    if ui
                        .add_enabled(i + 1 < n, egui::Button::new(">").small())
                        .on_hover_text("show this phase one place later")
                        .clicked()
                    {
                        moved = Some((i, true));
                    }
                    ui.checkbox(&mut self.view.hidden[i], "hide")
                        .on_hover_text("hide this phase from the side-by-side layouts");
                    let mut phase = p.phase();
                    egui::ComboBox::new(("phase", i), "phase").selected_text(phase.as_str()).show_ui(ui, |ui| {
                        for choice in
                            [Phase::NonContrast, Phase::Arterial, Phase::PortalVenous, Phase::Delayed, Phase::Unknown]
                        {
                            ui.selectable_value(&mut phase, choice, choice.as_str());
                        }
                    });
                    if phase != p.phase() {
                        set = Some((i, phase));
                    }
                });
                let g = &p.volume.geometry;
                ui.label(format!("{}  {}×{}×{}", p.description, g.shape[2], g.shape[1], g.shape[0]))
                    .on_hover_text(format!("{} ({:.0}%): {}", p.call.phase, p.call.confidence * 100.0, p.call.reason));
            }
            if let Some((i, phase)) = set {
                self.study.set_phase(i, phase);
            }
            if let Some((i, later)) = moved {
                self.move_phase(i, later);
            }
            ui.separator();
            ui.heading("Layers");
            ui.add_enabled_ui(self.study.labels.is_some(), |ui| {
                ui.checkbox(&mut self.view.show_labels, "Labels (M)");
                ui.add(egui::Slider::new(&mut self.view.label_opacity, 0.0..=1.0).text("opacity"));
                ui.checkbox(&mut self.view.label_outline, "outline only");
            });
            ui.separator();
            if let Some(p) = self.segment.ui(ui, &mut self.study) {
                self.view.crosshair_mm = p;
                self.view.centre_mm = p;
            }
            ui.separator();
            self.edit.ui(ui, &mut self.study, &mut self.edits);
            if self.edit.tool == edit::Tool::Outline {
                self.outline.ui(ui, &self.study, &mut self.edits);
            }
            ui.separator();
            self.registration.ui(ui, &mut self.study);
            ui.separator();
            if let Some(p) = self.analysis.ui(ui, &mut self.study) {
                self.view.crosshair_mm = p;
                self.view.centre_mm = p;
            }
            ui.separator();
            if let Some(p) = self.follow_up.ui(ui, &mut self.study) {
                self.view.crosshair_mm = p;
                self.view.centre_mm = p;
            }
            ui.separator();
            ui.heading("Window / level");
            for (n, (name, wl)) in WindowLevel::PRESETS.iter().enumerate() {
                if ui.button(format!("{} {} ({}/{})", n + 1, name, wl.width_hu, wl.level_hu)).clicked() {
                    for p in 0..self.view.window.len() {
                        self.view.set_window(p, *wl);
                    }
                }
            }
            ui.checkbox(&mut self.view.link_window, "same window for all phases");
            ui.checkbox(&mut self.view.linear, "linear interpolation (I)");
            ui.checkbox(&mut self.view.annotations, "annotations (A)");
            if !self.study.warnings.is_empty() {
                ui.separator();
                ui.collapsing(format!("Problems found ({})", self.study.warnings.len()), |ui| {
                    for w in &self.study.warnings {
                        ui.label(w.to_string());
                    }
                });
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match self.hover_mm {
                Some(p) => {
                    ui.monospace(format!("LPS ({:.1}, {:.1}, {:.1}) mm", p[0], p[1], p[2]));
                    for ph in &self.study.phases {
                        let at = crate::volume::add(p, self.study.registration_offset(ph.key, p));
                        let hu = ph.volume.sample_world(at, Interp::Nearest);
                        ui.separator();
                        ui.monospace(match hu {
                            Some(v) => format!("{}: {:.0} HU", ph.phase(), v),
                            None => format!("{}: –", ph.phase()),
                        });
                    }
                }
                None => {
                    ui.label("Scroll: wheel, Up/Down, PgUp/PgDn · click: crosshair · right-drag: window/level · middle- or shift-drag: pan · ctrl+wheel: zoom · F1: help");
                }
            }
        });
    }
}

const SHORTCUTS: &[(&str, &str)] = &[
    ("wheel, Up, Down", "previous / next slice"),
    ("PgUp PgDn", "10 slices"),
    ("click / drag", "move the crosshair (all phases and planes follow)"),
    ("right-drag", "window (horizontal) / level (vertical)"),
    ("middle-drag", "pan (or shift + drag)"),
    ("ctrl + wheel", "zoom"),
    ("1 2 3 4", "liver 150/60, abdomen 400/40, bone 1800/400, lung 1500/-600"),
    ("L", "layout: 1×N axial, 3×3, single"),
    ("I", "nearest / linear interpolation"),
    ("M", "label overlay on / off"),
    ("A", "annotations on / off"),
    ("R", "reset view"),
    ("D", "frame-time overlay"),
    ("V", "3D view on / off (drag: turn, shift/middle-drag: pan, wheel: zoom, click: crosshair)"),
    ("B E T G P Esc", "edit: brush, eraser, threshold brush, region grow, lasso fill, navigate; [ ] brush size; Ctrl+Z / Ctrl+Shift+Z undo / redo"),
    ("Ctrl+O", "open a study (or drop a folder or files on the window)"),
    ("F1", "this help"),
];

impl eframe::App for HepaviewApp {
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.cpu_ms = frame.info().cpu_usage.map(|s| s * 1000.0);
        HepaviewApp::ui(self, ui);
    }
}

/// Opens the viewer window on `study` (blocks until it is closed).
pub fn run(study: Study) -> Result<(), eframe::Error> {
    run_with_visits(study, Vec::new())
}

/// [`run`] with follow-up visits already added to `study` by
/// [`crate::study::analysis::add_follow_up`], handed over with their source study and transform
/// so the Follow-up panel can compare them and nudge their alignment.
pub fn run_with_visits(study: Study, visits: Vec<follow_up::VisitSource>) -> Result<(), eframe::Error> {
    let timing = std::env::var_os("HEPAVIEW_TIMING").is_some();
    let mut wgpu_options = egui_wgpu::WgpuConfiguration::default();
    if timing {
        // measure what a frame costs, not the display's refresh: with vsync every frame a
        // little over 16.7 ms would count as 33.3
        wgpu_options.surface.present_mode = egui_wgpu::wgpu::PresentMode::AutoNoVsync;
    }
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        wgpu_options,
        // banding is invisible on CT greys, and dithering costs every pixel on lavapipe
        dithering: false,
        viewport: egui::ViewportBuilder::default().with_inner_size([1500.0, 900.0]).with_title("Hepaview"),
        ..Default::default()
    };
    eframe::run_native(
        "Hepaview",
        options,
        Box::new(|cc| {
            // the slice pipeline must match eframe's render target, known only here
            if let Some(rs) = cc.wgpu_render_state.as_ref() {
                gpu::install(rs);
                gpu::view3d::install(rs, &egui_wgpu::RendererOptions::default());
            }
            let mut app = HepaviewApp::new(study);
            for v in visits {
                app.follow_up.adopt(&mut app.study, v);
            }
            // start with the frame-time overlay on, for measuring the real window
            app.show_timing = timing;
            Ok(Box::new(app))
        }),
    )
}
