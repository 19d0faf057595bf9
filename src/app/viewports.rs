//! The viewports of the viewer's central area: which phase and plane each cell shows, and
//! one viewport drawn (the slice through the GPU, overlays, annotations, scale bar) with its
//! pointer input turned into LPS mm for the crosshair, the edit tools and the outline clicks.
//! Methods of [`super::HepaviewApp`], kept apart from the app's frame and panels.

use std::sync::Arc;

use egui::{Align2, Color32, FontId, PointerButton, Rect, Sense, Stroke, Vec2};

use super::gpu::{self, OverlayDesc, SliceViewDesc};
use super::view::{edge_letters, pixel_to_world, scale_bar_mm, world_to_pixel, Layout, Orientation, ViewState};
use super::HepaviewApp;
use super::{edit, follow_up};
use crate::volume::Interp;

impl HepaviewApp {
    /// Which (phase, orientation) each cell shows, row by row.
    pub(super) fn cells(&self) -> (usize, Vec<(usize, Orientation)>) {
        let visible: Vec<usize> =
            (0..self.study.phases.len()).filter(|&i| !self.view.hidden.get(i).copied().unwrap_or(false)).collect();
        let visible = if visible.is_empty() { vec![self.study.fixed_index()] } else { visible };
        match self.view.layout {
            Layout::Row => (visible.len(), visible.iter().map(|&p| (p, Orientation::Axial)).collect()),
            Layout::Grid => {
                (visible.len(), Orientation::ALL.iter().flat_map(|&o| visible.iter().map(move |&p| (p, o))).collect())
            }
            Layout::Single => (1, vec![self.view.single]),
        }
    }

    pub(super) fn viewports(&mut self, ui: &mut egui::Ui) {
        let (cols, cells) = self.cells();
        let rows = cells.len().div_ceil(cols.max(1));
        let mut full = ui.max_rect();
        if self.view3d.visible {
            // one more column on the right for the 3D view
            let w = full.width() / (cols.max(1) + 1) as f32;
            let cell3d = Rect::from_min_max(egui::pos2(full.max.x - w, full.min.y), full.max);
            full.max.x -= w;
            self.view3d.ui(ui, cell3d.shrink(1.0), &self.study, &mut self.view);
        }
        let cell = Vec2::new(full.width() / cols as f32, full.height() / rows.max(1) as f32);
        self.last_cell_points = cell;
        if self.fit_pending && cell.x > 10.0 && cell.y > 10.0 {
            let g = &self.study.phases[self.study.fixed_index()].volume.geometry;
            let fov_mm = (g.shape[2] as f64 * g.spacing_mm[2]).max(g.shape[1] as f64 * g.spacing_mm[1]);
            self.view.mm_per_point = fov_mm / cell.x.min(cell.y) as f64;
            self.fit_pending = false;
        }
        self.hover_mm = None;
        for (n, &(phase, o)) in cells.iter().enumerate() {
            let min = full.min + Vec2::new((n % cols) as f32 * cell.x, (n / cols) as f32 * cell.y);
            let rect = Rect::from_min_size(min, cell).shrink(1.0);
            self.viewport(ui, rect, phase, o, n);
        }
        if self.show_timing && !self.frame_times_ms.is_empty() {
            let mut t: Vec<f32> = self.frame_times_ms.iter().copied().collect();
            t.sort_by(|a, b| a.total_cmp(b));
            let text = format!(
                "frame interval: median {:.1} ms, p95 {:.1} ms (last {})\nUI CPU: {}",
                t[t.len() / 2],
                t[(t.len() * 95 / 100).min(t.len() - 1)],
                t.len(),
                self.cpu_ms.map(|c| format!("{c:.1} ms")).unwrap_or_else(|| "n/a".into())
            );
            ui.painter().text(
                full.right_bottom() + Vec2::new(-12.0, -44.0),
                Align2::RIGHT_BOTTOM,
                text,
                FontId::monospace(12.0),
                Color32::from_rgb(120, 255, 120),
            );
            ui.ctx().request_repaint();
        }
    }

    pub(super) fn viewport(&mut self, ui: &mut egui::Ui, rect: Rect, phase: usize, o: Orientation, n: usize) {
        let ppp = ui.ctx().pixels_per_point() as f64;
        let resp = ui.interact(rect, ui.scope_id().with(("viewport", n)), Sense::click_and_drag());
        let size_px = [rect.width() as f64 * ppp, rect.height() as f64 * ppp];
        // an unregistered moving phase is linked through the field: its plane is moved by
        // u at the crosshair, and points picked in it are moved back
        let phase_key = self.study.phases[phase].key;
        let offset = self.study.registration_offset(phase_key, self.view.crosshair_mm);
        let to_world = |view: &ViewState, pos: egui::Pos2| {
            let mut plane = view.plane(o, ppp);
            plane.centre_mm = crate::volume::add(plane.centre_mm, offset);
            let w =
                pixel_to_world(&plane, size_px, (pos.x - rect.min.x) as f64 * ppp, (pos.y - rect.min.y) as f64 * ppp);
            crate::volume::sub(w, offset)
        };
        // input
        if let Some(pos) = resp.hover_pos() {
            self.hover_mm = Some(to_world(&self.view, pos));
            let (scroll, zoom, shift) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta(), i.modifiers.shift));
            if zoom != 1.0 {
                self.view.zoom(zoom as f64);
            } else if scroll.abs() > 0.0 {
                self.view.scroll(o, if scroll > 0.0 { 1.0 } else { -1.0 });
            }
            if self.edit.tool == edit::Tool::Outline {
                // a click is a prompt (shift: what is not lesion); a drag draws a box around
                // the lesion on this slice (shift-drag still pans)
                if resp.clicked_by(PointerButton::Primary) {
                    let at = to_world(&self.view, pos);
                    // a click in a follow-up viewport is a prompt on that visit's phases
                    let visit = self.study.visit_of(self.study.phases[phase].key).map(|v| v.label.clone());
                    self.outline.click_in(&self.study, visit.as_deref(), at, shift);
                } else if resp.drag_started_by(PointerButton::Primary) && !shift {
                    let from = ui.input(|i| i.pointer.press_origin()).unwrap_or(pos);
                    self.outline.drag_from = Some(to_world(&self.view, from));
                } else if resp.drag_stopped_by(PointerButton::Primary) {
                    if let Some(from) = self.outline.drag_from.take() {
                        let to = to_world(&self.view, pos);
                        if crate::volume::norm(crate::volume::sub(to, from)) > 3.0 {
                            self.outline.drag_box(&self.study, [from, to]);
                        }
                    }
                }
            } else if self.edit.is_editing() && !shift {
                // editing: the left button paints; the crosshair stays where it is
                let (pressed, released) = ui.input(|i| {
                    (
                        i.pointer.button_pressed(PointerButton::Primary),
                        i.pointer.button_released(PointerButton::Primary),
                    )
                });
                let dragged = resp.dragged_by(PointerButton::Primary);
                if pressed || dragged || released {
                    let at = to_world(&self.view, pos);
                    self.edit.pointer(
                        &mut self.study,
                        &mut self.edits,
                        phase,
                        o,
                        at,
                        edit::Button { pressed, dragged: dragged && !pressed, released },
                    );
                }
            } else if resp.clicked_by(PointerButton::Primary) && !shift {
                self.view.crosshair_mm = to_world(&self.view, pos);
            }
        }
        if resp.dragged_by(PointerButton::Primary) && !ui.input(|i| i.modifiers.shift) && !self.edit.is_editing() {
            if let Some(pos) = resp.interact_pointer_pos() {
                self.view.crosshair_mm = to_world(&self.view, pos);
            }
        }
        let d = resp.drag_delta();
        if resp.dragged_by(PointerButton::Middle)
            || (resp.dragged_by(PointerButton::Primary) && ui.input(|i| i.modifiers.shift))
        {
            self.view.pan(o, d.x as f64, d.y as f64);
        }
        if resp.dragged_by(PointerButton::Secondary) {
            let wl = self.view.window[phase].dragged(d.x, d.y);
            self.view.set_window(phase, wl);
        }
        // image
        let p = &self.study.phases[phase];
        let wl = self.view.window[phase];
        let clusters = self.analysis.clusters.as_ref().filter(|_| self.analysis.show_clusters && self.view.show_labels);
        // the mask belongs to the baseline visit: drawn over a follow-up it would mislead
        let follow_up = self.study.visit_of(p.key).is_some();
        let overlay = match (&self.study.labels, self.view.show_labels && !follow_up) {
            // a compared follow-up shows its own liver and lesion parts instead
            // the lesions outlined on this visit, when there are any
            _ if follow_up && self.outline_layer_for(p.key).is_some() => {
                self.outline_layer_for(p.key).filter(|_| self.view.show_labels).map(|(mask, key)| OverlayDesc {
                    mask: Arc::clone(mask),
                    key,
                    opacity: self.view.label_opacity,
                    outline: self.view.label_outline,
                    palette: edit::palette(&self.edits.labels),
                    previous: None,
                })
            }
            _ if follow_up => {
                let parts = self.follow_up.overlay_for(&self.study, p.key);
                parts.filter(|_| self.view.show_labels).map(|(mask, key)| OverlayDesc {
                    mask: Arc::clone(mask),
                    key,
                    opacity: self.view.label_opacity,
                    outline: self.view.label_outline,
                    palette: follow_up::FollowUpPanel::parts_palette(edit::palette(&self.edits.labels)),
                    previous: None,
                })
            }
            _ if clusters.is_some() => clusters.map(|c| OverlayDesc {
                mask: Arc::clone(&c.mask),
                key: c.key,
                opacity: self.view.label_opacity,
                outline: self.view.label_outline,
                palette: c.palette,
                previous: None,
            }),
            (Some(l), true) => Some(OverlayDesc {
                mask: Arc::clone(&l.mask),
                key: l.key,
                opacity: self.view.label_opacity,
                outline: self.view.label_outline,
                palette: edit::palette(&self.edits.labels),
                previous: self.edits.gpu_previous(l.key),
            }),
            _ => None,
        };
        let mut plane = self.view.plane(o, ppp);
        plane.centre_mm = crate::volume::add(plane.centre_mm, offset);
        let desc = SliceViewDesc {
            volume: Arc::clone(&p.volume),
            volume_key: p.key,
            plane,
            level_hu: wl.level_hu,
            width_hu: wl.width_hu,
            interp: if self.view.linear { Interp::Linear } else { Interp::Nearest },
            overlay,
            layer: self.registration.layer_for(&self.study, p.key),
        };
        let painter = ui.painter_at(rect);
        painter.add(gpu::slice_callback(rect, desc));
        // crosshair
        let c = world_to_pixel(&plane, size_px, crate::volume::add(self.view.crosshair_mm, offset));
        let c = egui::pos2(rect.min.x + (c[0] / ppp) as f32, rect.min.y + (c[1] / ppp) as f32);
        let stroke = Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 220, 0, 150));
        painter.line_segment([egui::pos2(rect.min.x, c.y), egui::pos2(rect.max.x, c.y)], stroke);
        painter.line_segment([egui::pos2(c.x, rect.min.y), egui::pos2(c.x, rect.max.y)], stroke);
        self.edit.paint_lasso(&self.edits, &painter, phase, o, |p| {
            let q = world_to_pixel(&plane, size_px, p);
            egui::pos2(rect.min.x + (q[0] / ppp) as f32, rect.min.y + (q[1] / ppp) as f32)
        });
        painter.rect_stroke(rect, 0.0, Stroke::new(1.0, Color32::from_gray(60)), egui::StrokeKind::Inside);
        if !self.view.annotations {
            return;
        }
        let text = Color32::from_gray(230);
        let font = FontId::proportional(13.0);
        let (_, _, normal) = o.axes();
        let pos_mm = crate::volume::dot(self.view.crosshair_mm, normal);
        // a follow-up visit's phase is named in its description ("FOLLOW-UP date · phase · …")
        let title = match crate::follow_up::parse_visit_name(&p.description) {
            Some(visit) => visit.title.to_string(),
            None => p.phase().to_string(),
        };
        painter.text(
            rect.left_top() + Vec2::new(6.0, 4.0),
            Align2::LEFT_TOP,
            format!("{title} · {}", o.name()),
            FontId::proportional(15.0),
            Color32::from_rgb(255, 210, 120),
        );
        painter.text(rect.left_top() + Vec2::new(6.0, 22.0), Align2::LEFT_TOP, &p.description, font.clone(), text);
        painter.text(
            rect.left_bottom() + Vec2::new(6.0, -4.0),
            Align2::LEFT_BOTTOM,
            format!("{} {:.1} mm   W {:.0} L {:.0}", ["z", "y", "x"][o as usize], pos_mm, wl.width_hu, wl.level_hu),
            font.clone(),
            text,
        );
        let [l, r, t, b] = edge_letters(o);
        let letter = FontId::proportional(16.0);
        painter.text(egui::pos2(rect.min.x + 6.0, rect.center().y), Align2::LEFT_CENTER, l, letter.clone(), text);
        painter.text(egui::pos2(rect.max.x - 6.0, rect.center().y), Align2::RIGHT_CENTER, r, letter.clone(), text);
        painter.text(egui::pos2(rect.center().x, rect.min.y + 4.0), Align2::CENTER_TOP, t, letter.clone(), text);
        painter.text(egui::pos2(rect.center().x, rect.max.y - 4.0), Align2::CENTER_BOTTOM, b, letter, text);
        let bar_mm = scale_bar_mm(self.view.mm_per_point, rect.width() as f64 * 0.3);
        let bar_pts = (bar_mm / self.view.mm_per_point) as f32;
        let y = rect.max.y - 22.0;
        let x1 = rect.max.x - 12.0;
        painter.line_segment([egui::pos2(x1 - bar_pts, y), egui::pos2(x1, y)], Stroke::new(2.0, text));
        painter.text(
            egui::pos2(x1 - bar_pts / 2.0, y - 3.0),
            Align2::CENTER_BOTTOM,
            format!("{bar_mm:.0} mm"),
            font,
            text,
        );
    }
}
