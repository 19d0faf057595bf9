//! The mask editing panel of the viewer: a tool chooser (navigate, brush, eraser, threshold
//! brush, region growing, lasso fill), the label table's widgets (colour, name, opacity,
//! shown, locked; the active label) and paint-over rule, whole-mask operations (interpolate
//! between slices, fill holes, keep largest, remove islands, open, close, smooth), undo and
//! redo buttons, the restore offer and saving. It holds only widget state (the tool, its
//! sizes and HU gates, the save field); the edits, their history, the label table and the
//! autosave session are the study's edit document (`crate::study::edits::Edits`), and the
//! tools themselves live in `crate::edit`. This file only routes mouse and keys to them.
//!
//! The label table decides how the overlay draws each label ([`palette`]: hidden labels
//! are transparent, opacity multiplies the Layers opacity).

use std::path::Path;
use std::time::Duration;

use egui::{Color32, RichText, Stroke};

use crate::edit::tools::{
    close_label, fill_holes, interpolate_slices, keep_largest_component, open_label, remove_islands, smooth_label,
};
use crate::edit::tools::{Brush, BrushExtent, BrushShape, Grow, GrowCriterion, Reach, Smoothing};
use crate::edit::{LabelTable, Orientation as EditOrientation, Paint, PaintOver};
use crate::study::edits::{Edits, HuGate};
use crate::study::Study;
use crate::volume::Lps;

use super::view::Orientation;

pub use crate::study::edits::{default_save_path, Button};

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

/// The overlay palette has slots for label values 0…15 (see `gpu::OverlayDesc`).
pub const MAX_SHOWN_LABEL: u8 = 15;

/// The edit tools' settings as the panel shows them.
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
    pub save_path: String,
    /// The native "save mask as" dialog, while it is open.
    save_dialog: Option<super::file_dialog::Pending>,
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
            save_path: String::new(),
            save_dialog: None,
        }
    }
}

fn edit_orientation(o: Orientation) -> EditOrientation {
    match o {
        Orientation::Axial => EditOrientation::Axial,
        Orientation::Coronal => EditOrientation::Coronal,
        Orientation::Sagittal => EditOrientation::Sagittal,
    }
}

/// The overlay colours per label value 0…15 from the label table: a hidden label is
/// transparent, opacity scales alpha. Values the table lacks keep the default colours.
pub fn palette(labels: &LabelTable) -> [[f32; 4]; 16] {
    let mut p = super::LABEL_PALETTE;
    for (v, slot) in p.iter_mut().enumerate().skip(1) {
        if let Some(c) = labels.display_rgba(v as u8) {
            *slot = c;
        }
    }
    p
}

impl EditPanel {
    /// True when left clicks in a viewport edit rather than navigate.
    pub fn is_editing(&self) -> bool {
        self.tool != Tool::Navigate
    }

    /// What the current tool writes and where, with the table's locked labels kept.
    pub fn paint(&self, labels: &LabelTable) -> Paint {
        match self.tool {
            Tool::Eraser => labels.eraser(self.over),
            _ => labels.paint(self.label, self.over),
        }
    }

    /// Draws the lasso outline being drawn into the viewport showing `phase` in `o`;
    /// `to_screen` maps LPS mm to that viewport's points.
    pub fn paint_lasso(
        &self,
        edits: &Edits,
        painter: &egui::Painter,
        phase: usize,
        o: Orientation,
        to_screen: impl Fn(Lps) -> egui::Pos2,
    ) {
        let Some(points_mm) = edits.lasso_points(phase, edit_orientation(o)) else { return };
        let c = edits.labels.display_rgba(self.label).unwrap_or([1.0, 1.0, 0.0, 1.0]);
        let colour = Color32::from_rgb((c[0] * 255.0) as u8, (c[1] * 255.0) as u8, (c[2] * 255.0) as u8);
        let pts: Vec<egui::Pos2> = points_mm.iter().map(|p| to_screen(*p)).collect();
        painter.add(egui::Shape::line(pts.clone(), Stroke::new(2.0, colour)));
        if let (Some(&first), Some(&last)) = (pts.first(), pts.last()) {
            // where the outline will close when the button is let go
            painter.extend(egui::Shape::dashed_line(&[last, first], Stroke::new(1.0, colour), 4.0, 4.0));
        }
    }

    /// Mouse input in a viewport (at `at_mm` on `phase`'s `o` plane) handed to the edit
    /// document with the current tool's settings: `pressed` starts a stroke, `dragged`
    /// continues it, `released` ends it (one undo step per stroke).
    pub fn pointer(
        &mut self,
        study: &mut Study,
        edits: &mut Edits,
        phase: usize,
        o: Orientation,
        at_mm: Lps,
        button: Button,
    ) {
        if !self.is_editing() {
            return;
        }
        Edits::ensure_mask(study);
        let paint = self.paint(&edits.labels);
        match self.tool {
            Tool::Grow => {
                if button.pressed {
                    let grow = Grow {
                        criterion: GrowCriterion::HuAroundSeed { tolerance_hu: self.tolerance_hu },
                        reach: if self.grow_3d { Reach::Volume } else { Reach::Slice(edit_orientation(o)) },
                        max_voxels: 20_000_000,
                    };
                    edits.grow(study, phase, at_mm, &grow, &paint);
                }
            }
            Tool::Brush | Tool::Eraser | Tool::ThresholdBrush => {
                let brush = Brush {
                    shape: if self.square { BrushShape::Square } else { BrushShape::Round },
                    extent: if self.brush_3d { BrushExtent::Volume } else { BrushExtent::Plane(edit_orientation(o)) },
                    diameter_mm: self.diameter_mm as f64,
                };
                let gate = (self.tool == Tool::ThresholdBrush).then(|| HuGate {
                    phase,
                    lo_hu: self.lo_hu.round() as i16,
                    hi_hu: self.hi_hu.round() as i16,
                });
                edits.brush(study, at_mm, button, &brush, &paint, gate);
            }
            Tool::Lasso => edits.lasso(study, phase, edit_orientation(o), at_mm, button, &paint),
            // clicks go to `app::outline::OutlinePanel::click`, which computes off this thread
            Tool::Navigate | Tool::Outline => {}
        }
    }

    /// Saves the mask to a path the user chose (the native save dialog's answer): as
    /// [`EditPanel::save`] to `path`, with `.nii.gz` added when the name has no NIfTI
    /// ending (a dialog may drop the filter's ending). The path stays in the field.
    pub fn save_as(&mut self, path: &Path, study: &Study, edits: &mut Edits) {
        let mut p = path.display().to_string();
        let lower = p.to_lowercase();
        if !(lower.ends_with(".nii.gz") || lower.ends_with(".nii")) {
            p.push_str(".nii.gz");
        }
        self.save_path = p;
        self.save(study, edits);
    }

    /// Saves the mask as NIfTI to the path in the field ([`Edits::save`]).
    pub fn save(&mut self, study: &Study, edits: &mut Edits) {
        edits.save(study, &self.save_path);
    }

    /// Keys: B E T G P Esc choose tools, [ ] brush size, Ctrl+Z / Ctrl+Shift+Z undo / redo.
    pub fn keyboard(&mut self, ctx: &egui::Context, study: &mut Study, edits: &mut Edits) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (undo, redo) = ctx.input(|i| {
            let z = i.key_pressed(egui::Key::Z) && i.modifiers.command;
            (z && !i.modifiers.shift, (z && i.modifiers.shift) || (i.key_pressed(egui::Key::Y) && i.modifiers.command))
        });
        if redo {
            edits.redo(study);
        } else if undo {
            edits.undo(study);
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
    fn label_table_ui(&mut self, ui: &mut egui::Ui, edits: &mut Edits) {
        let rows: Vec<crate::edit::Label> = edits.labels.labels().to_vec();
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
                    let _ = edits.labels.recolour(v, [c.r(), c.g(), c.b(), l.rgba[3]]);
                }
                let mut name = l.name.clone();
                if ui
                    .add(egui::TextEdit::singleline(&mut name).desired_width(76.0).min_size(egui::vec2(76.0, 0.0)))
                    .labelled_by(active.id)
                    .changed()
                {
                    let _ = edits.labels.rename(v, &name);
                }
                let mut opacity = l.opacity;
                if ui
                    .add(egui::DragValue::new(&mut opacity).range(0.0..=1.0).speed(0.01).fixed_decimals(2))
                    .on_hover_text("opacity of this label (times the Layers opacity)")
                    .changed()
                {
                    let _ = edits.labels.set_opacity(v, opacity.clamp(0.0, 1.0));
                }
                // no visible text (the header names the column); screen readers and tests
                // get "show N" / "lock N"
                let mut visible = l.visible;
                let r =
                    ui.add(egui::Checkbox::without_text(&mut visible)).on_hover_text("draw this label over the images");
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, visible, format!("show {v}")));
                if r.changed() {
                    let _ = edits.labels.set_visible(v, visible);
                }
                let mut locked = l.locked;
                let r = ui
                    .add(egui::Checkbox::without_text(&mut locked))
                    .on_hover_text("no tool changes this label's voxels");
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, locked, format!("lock {v}")));
                if r.changed() {
                    let _ = edits.labels.set_locked(v, locked);
                }
                ui.end_row();
            }
        });
        let next = (1..=255u8).find(|v| edits.labels.get(*v).is_none());
        let can_add = next.is_some_and(|v| v <= MAX_SHOWN_LABEL);
        let add = ui
            .add_enabled(can_add, egui::Button::new("Add label"))
            .on_disabled_hover_text(format!("the overlay shows labels 1 to {MAX_SHOWN_LABEL}"));
        if add.clicked() {
            if let Some(v) = next {
                match edits.labels.add(&format!("label {v}"), None) {
                    Ok(v) => self.label = v,
                    Err(e) => edits.error = Some(e.to_string()),
                }
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study, edits: &mut Edits) {
        ui.heading("Edit mask");
        if let Some(info) = edits.restore_offer.clone() {
            ui.label(
                RichText::new(format!("{} unsaved edit(s) from an earlier session were found.", info.edit_counter))
                    .color(Color32::YELLOW),
            );
            if let Some(d) = &info.damage {
                ui.label(RichText::new(format!("Warning: {d}.")).color(Color32::from_rgb(255, 190, 60)));
            }
            ui.horizontal(|ui| {
                if ui.button("Restore them").clicked() {
                    edits.restore(study);
                }
                if ui.button("Discard").clicked() {
                    edits.discard_session();
                }
            });
        }
        egui::ComboBox::new("edit_tool", "tool").selected_text(self.tool.name()).show_ui(ui, |ui| {
            for t in Tool::ALL {
                ui.selectable_value(&mut self.tool, t, t.name());
            }
        });
        self.label_table_ui(ui, edits);
        let over_text = |over: PaintOver| match over {
            PaintOver::Everything => "over everything".to_string(),
            PaintOver::Background => "over background only".to_string(),
            PaintOver::Label(l) => format!("over {} only", edits.labels.name_of(l)),
        };
        let mut over = self.over;
        egui::ComboBox::new("edit_over", "paint").selected_text(over_text(over)).show_ui(ui, |ui| {
            ui.selectable_value(&mut over, PaintOver::Everything, over_text(PaintOver::Everything));
            ui.selectable_value(&mut over, PaintOver::Background, over_text(PaintOver::Background));
            for l in edits.labels.labels() {
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
            if ui.add_enabled(edits.history.can_undo(), egui::Button::new("Undo")).on_hover_text("Ctrl+Z").clicked() {
                edits.undo(study);
            }
            if ui
                .add_enabled(edits.history.can_redo(), egui::Button::new("Redo"))
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                edits.redo(study);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let paint = self.paint(&edits.labels);
            if ui
                .button("Fill between slices")
                .on_hover_text("interpolate the label between the axial slices drawn")
                .clicked()
            {
                edits.apply(study, |m| interpolate_slices(m, EditOrientation::Axial, &paint));
            }
            if ui.button("Fill holes").clicked() {
                edits.apply(study, |m| fill_holes(m, Reach::Volume, &paint));
            }
            if ui.button("Keep largest").clicked() {
                edits.apply(study, |m| keep_largest_component(m, &paint));
            }
            if ui.button("Remove islands").on_hover_text("components under 0.1 mL").clicked() {
                edits.apply(study, |m| remove_islands(m, 0.1, &paint));
            }
            if ui.button("Close 2 mm").clicked() {
                edits.apply(study, |m| close_label(m, 2.0, &paint));
            }
            if ui.button("Open 2 mm").clicked() {
                edits.apply(study, |m| open_label(m, 2.0, &paint));
            }
        });
        ui.horizontal(|ui| {
            let paint = self.paint(&edits.labels);
            let sigma_mm = self.smooth_mm as f64;
            if ui.button("Smooth").on_hover_text("Gaussian smoothing of the active label's outline (3-D), kept where the blurred label is at least 0.5; grows only where the paint rule allows").clicked() {
                edits.apply(study, |m| smooth_label(m, Smoothing::Gaussian { sigma_mm }, &paint));
            }
            let sigma = ui.label("σ");
            ui.add(egui::DragValue::new(&mut self.smooth_mm).range(0.3..=10.0).speed(0.05).fixed_decimals(1).suffix(" mm")).labelled_by(sigma.id);
        });
        if let Some(pending) = &self.save_dialog {
            match pending.poll() {
                super::file_dialog::Answer::Waiting => ui.ctx().request_repaint_after(Duration::from_millis(100)),
                super::file_dialog::Answer::Nothing => {
                    self.save_dialog = None;
                    edits.message = Some(super::file_dialog::NOTHING_CHOSEN.into());
                }
                super::file_dialog::Answer::Chosen(paths) => {
                    self.save_dialog = None;
                    if let Some(p) = paths.first() {
                        self.save_as(p, study, edits);
                    }
                }
            }
        }
        let save = ui.label("save mask as");
        ui.text_edit_singleline(&mut self.save_path).labelled_by(save.id);
        ui.horizontal(|ui| {
            if ui.button("Save mask (NIfTI)").clicked() {
                self.save(study, edits);
            }
            let choose = ui
                .add_enabled(self.save_dialog.is_none(), egui::Button::new("Save as…"))
                .on_hover_text("Choose the file in the desktop's save dialog");
            if choose.clicked() {
                let typed = crate::study::edits::expand_home(&self.save_path);
                let start = typed.parent().map(Path::to_path_buf);
                let name = typed.file_name().map(|n| n.to_string_lossy().into_owned());
                self.save_dialog =
                    Some(super::file_dialog::Pending::ask(super::file_dialog::Purpose::SaveMask, start, name));
            }
        });
        if let Some(d) = edits.session_dir() {
            ui.label(RichText::new(format!("Autosave: {}", d.display())).small());
        }
        if let Some(m) = &edits.message {
            ui.label(RichText::new(m).small());
        }
        if let Some(e) = &edits.error {
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
