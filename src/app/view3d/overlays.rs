//! What the 3D view paints over its picture with egui's painter: tumour labels beside
//! their centroids, the patient's direction letters and the orientation cube, and the status
//! line (build progress, last pick, messages, the slice planes' legend).

use egui::{Align2, Color32, FontId, Pos2, Rect, Stroke, Vec2};

use super::{View3d, CUBE_HALF, CUBE_MARGIN};
use crate::app::view::direction_letter;
use crate::render::frame::PLANE_RGB;
use crate::render::orientation::cube_faces;
use crate::render::{Scene, StandardView};
use crate::volume::Lps;

impl View3d {
    /// Each tumour's number, volume, longest diameter and distances, beside its centroid.
    pub(super) fn tumour_labels(&self, painter: &egui::Painter, pic: Rect, scene: &Scene) {
        let size = [pic.width() as f64, pic.height() as f64];
        let font = FontId::proportional(12.0);
        let mut placed: Vec<Rect> = Vec::new();
        for o in &scene.objects {
            let Some(t) = &o.tumour else { continue };
            let Some((p, _)) = self.camera.project(t.centroid_mm, size) else { continue };
            let at = pic.min + Vec2::new(p[0] as f32, p[1] as f32);
            let mut text = format!("#{}  {:.1} mL  {:.0} mm", t.number, t.volume_ml, t.longest_diameter_mm);
            if let Some(d) = t.depth_mm {
                text.push_str(&format!("\n{:.1} mm to liver surface", d));
            }
            if let Some(d) = t.vessel_mm {
                text.push_str(&format!("\n{:.1} mm to vessels", d));
            }
            let galley = painter.layout_no_wrap(text, font.clone(), Color32::from_rgb(235, 255, 200));
            let mut r = Rect::from_min_size(at + Vec2::new(14.0, -galley.size().y * 0.5), galley.size()).expand(3.0);
            if r.max.x > pic.max.x {
                // no room on the right: put it on the left of the tumour
                r = r.translate(Vec2::new(-r.width() - 28.0, 0.0));
            }
            // keep labels apart: move down past any label already placed
            while let Some(o) = placed.iter().find(|o| o.intersects(r)) {
                r = r.translate(Vec2::new(0.0, o.max.y - r.min.y + 2.0));
            }
            placed.push(r);
            painter.circle_filled(at, 2.5, Color32::from_rgb(235, 255, 200));
            let edge = if r.min.x > at.x { r.min.x } else { r.max.x };
            painter.line_segment(
                [at, Pos2::new(edge, r.center().y)],
                Stroke::new(1.0, Color32::from_rgba_unmultiplied(235, 255, 200, 160)),
            );
            painter.rect_filled(r, 3.0, Color32::from_rgba_unmultiplied(0, 0, 0, 170));
            painter.galley(r.min + Vec2::splat(3.0), galley, Color32::WHITE);
        }
    }

    /// Patient direction letters at the picture's edges and the orientation cube in the
    /// bottom-left corner (faces lettered A/P/L/R/S/I, turned with the camera).
    pub(super) fn orientation(&self, painter: &egui::Painter, pic: Rect) {
        let c = &self.camera;
        let neg = |v: Lps| [-v[0], -v[1], -v[2]];
        let text = Color32::from_gray(220);
        let font = FontId::proportional(15.0);
        painter.text(
            Pos2::new(pic.min.x + 6.0, pic.center().y),
            Align2::LEFT_CENTER,
            direction_letter(neg(c.right)),
            font.clone(),
            text,
        );
        painter.text(
            Pos2::new(pic.max.x - 6.0, pic.center().y),
            Align2::RIGHT_CENTER,
            direction_letter(c.right),
            font.clone(),
            text,
        );
        painter.text(
            Pos2::new(pic.center().x, pic.min.y + 4.0),
            Align2::CENTER_TOP,
            direction_letter(c.up),
            font.clone(),
            text,
        );
        painter.text(
            Pos2::new(pic.center().x, pic.max.y - 4.0),
            Align2::CENTER_BOTTOM,
            direction_letter(neg(c.up)),
            font,
            text,
        );

        let centre = cube_centre(pic);
        let at = |p: [f64; 2]| centre + Vec2::new(p[0] as f32, p[1] as f32);
        for f in cube_faces(c, CUBE_HALF as f64) {
            // L/R red, A/P green, S/I blue (as the slice planes' axes), brighter face-on
            let rgb = match f.view {
                StandardView::Left | StandardView::Right => [200, 80, 80],
                StandardView::Anterior | StandardView::Posterior => [80, 175, 90],
                StandardView::Superior | StandardView::Inferior => [85, 120, 215],
            };
            let shade = (0.45 + 0.55 * f.facing) as f32;
            let fill = Color32::from_rgb(
                (rgb[0] as f32 * shade) as u8,
                (rgb[1] as f32 * shade) as u8,
                (rgb[2] as f32 * shade) as u8,
            );
            let points: Vec<Pos2> = f.corners.iter().map(|&p| at(p)).collect();
            painter.add(egui::Shape::convex_polygon(points, fill, Stroke::new(1.0, Color32::from_gray(20))));
            if f.facing > 0.25 {
                let size = 9.0 + 7.0 * f.facing as f32;
                painter.text(
                    at(f.centre),
                    Align2::CENTER_CENTER,
                    f.view.letter(),
                    FontId::proportional(size),
                    Color32::WHITE,
                );
            }
        }
    }

    pub(super) fn status(&self, ui: &egui::Ui, painter: &egui::Painter, pic: Rect) {
        let font = FontId::proportional(12.0);
        if let Some((f, msg)) = self.progress() {
            let r = Rect::from_center_size(pic.center(), Vec2::new((pic.width() * 0.6).min(320.0), 18.0));
            painter.rect_filled(r, 3.0, Color32::from_gray(40));
            painter.rect_filled(
                Rect::from_min_size(r.min, Vec2::new(r.width() * f.clamp(0.0, 1.0), r.height())),
                3.0,
                Color32::from_rgb(70, 120, 200),
            );
            painter.text(
                r.center(),
                Align2::CENTER_CENTER,
                format!("building surfaces: {msg}"),
                font.clone(),
                Color32::WHITE,
            );
        } else if self.shown_scene().is_none() {
            let what = match &self.error {
                Some(e) => e.clone(),
                None if self.pending.is_some() => "waiting for the mask edit to finish".into(),
                None => "No label mask: open or draw one to see its surfaces in 3D".into(),
            };
            painter.text(pic.center(), Align2::CENTER_CENTER, what, font.clone(), Color32::from_gray(200));
        }
        let mut line = Vec::new();
        if let Some(h) = &self.last_pick {
            let name = self.scene.as_ref().and_then(|s| s.objects.get(h.object)).map_or("surface", |o| o.name.as_str());
            line.push(format!(
                "picked {name} at ({:.1}, {:.1}, {:.1}) mm",
                h.point_mm[0], h.point_mm[1], h.point_mm[2]
            ));
        }
        if self.is_capturing() {
            line.push("rendering picture...".into());
            ui.ctx().request_repaint();
        }
        if let Some(e) = &self.error {
            line.push(e.clone());
        } else if let Some(m) = &self.message {
            line.push(m.clone());
        }
        if !line.is_empty() {
            painter.text(
                Pos2::new(pic.max.x - 6.0, pic.max.y - 22.0),
                Align2::RIGHT_BOTTOM,
                line.join("\n"),
                font,
                Color32::from_gray(200),
            );
        }
        let legend = [("axial", PLANE_RGB[0]), ("coronal", PLANE_RGB[1]), ("sagittal", PLANE_RGB[2])];
        if self.show_planes && self.shown_scene().is_some() {
            let mut x = pic.max.x - 6.0;
            for (name, rgb) in legend.iter().rev() {
                let c = Color32::from_rgb((rgb[0] * 255.0) as u8, (rgb[1] * 255.0) as u8, (rgb[2] * 255.0) as u8);
                let r = painter.text(
                    Pos2::new(x, pic.min.y + 4.0),
                    Align2::RIGHT_TOP,
                    *name,
                    FontId::proportional(11.0),
                    c,
                );
                x = r.min.x - 8.0;
            }
        }
    }
}

/// Where the orientation cube is drawn: near the picture's bottom-left corner.
pub(super) fn cube_centre(pic: Rect) -> Pos2 {
    Pos2::new(pic.min.x + CUBE_MARGIN, pic.max.y - CUBE_MARGIN)
}
