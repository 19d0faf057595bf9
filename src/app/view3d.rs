//! The 3D view's egui side: a toolbar (standard views, what to show, exports), mouse
//! orbit/pan/zoom, clicking a surface to move the crosshair, tumour labels and the
//! orientation indicator. Surfaces are built on a worker thread whenever the label mask
//! changes (debounced, so a brush stroke does not start a build per dab); drawing is
//! [`crate::render`]'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Align2, Color32, FontId, PointerButton, Pos2, Rect, Sense, Stroke, Vec2};

use super::view::{direction_letter, ViewState};
use crate::mesh::MeshOptions;
use crate::render::gpu::{view3d_callback, View3dCallback, PLANE_RGB};
use crate::render::{Camera, CaptureKind, CaptureRequest, FrameDesc, Hit, Scene, StandardView};
use crate::study::{Job, Study};
use crate::volume::Lps;

/// A mask must stay unchanged this long before its surfaces are rebuilt.
pub const REBUILD_DEBOUNCE: Duration = Duration::from_millis(400);

/// How long after the last camera move the view still draws the decimated surfaces.
const MOVING_GRACE: Duration = Duration::from_millis(250);

/// Height of the toolbar above the picture, points.
const TOOLBAR: f32 = 24.0;

/// What a finished picture is saved as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Picture {
    Snapshot,
    Turntable,
}

/// State of the 3D view.
pub struct View3d {
    /// Shown beside the slice views (V).
    pub visible: bool,
    pub camera: Camera,
    /// The surfaces shown (the last finished build).
    pub scene: Option<Arc<Scene>>,
    /// A build in progress and the mask key it is for.
    job: Option<(u64, Job<Scene>)>,
    /// A mask key seen changing and when; built once it has been still for the debounce.
    pending: Option<(u64, Instant)>,
    /// Which labels make which surface.
    pub mesh_options: MeshOptions,
    pub liver_opacity: f32,
    pub show_liver: bool,
    pub show_tumours: bool,
    pub show_vessels: bool,
    pub show_planes: bool,
    pub show_labels: bool,
    /// Where snapshots, turntable strips and meshes are written.
    pub export_dir: String,
    /// Pictures in a turntable strip, and the size of each (pixels).
    pub turntable_views: usize,
    pub turntable_size_px: u32,
    /// Write meshes in RAS instead of LPS.
    pub export_ras: bool,
    capture: Option<(Arc<CaptureRequest>, Picture)>,
    /// What the last pick hit.
    pub last_pick: Option<Hit>,
    /// Last export or build outcome, for the status line.
    pub message: Option<String>,
    pub error: Option<String>,
    /// The camera moved recently: frames until then draw the decimated surfaces.
    moving_until: Option<Instant>,
    /// The last frame's settings, to notice motion.
    last_still: Option<FrameDesc>,
    /// Where the picture was last laid out (points), for tests and tools.
    pub picture_rect: Option<Rect>,
    /// The mask key whose build failed (shown, not retried until the mask changes).
    failed_key: Option<u64>,
    /// Width / height of the picture last laid out.
    aspect: f64,
    /// Re-frame the scene whenever the picture's shape changes (after a standard view,
    /// until the user orbits, pans or zooms).
    auto_frame: bool,
    /// The camera has been fitted to a scene (the first build fits; later builds keep the
    /// user's camera).
    fitted: bool,
}

impl Default for View3d {
    fn default() -> Self {
        View3d {
            visible: false,
            camera: Camera::default(),
            scene: None,
            job: None,
            pending: None,
            mesh_options: MeshOptions::default(),
            liver_opacity: 0.25,
            show_liver: true,
            show_tumours: true,
            show_vessels: true,
            show_planes: true,
            show_labels: true,
            export_dir: ".".into(),
            turntable_views: 8,
            turntable_size_px: 480,
            export_ras: false,
            capture: None,
            last_pick: None,
            message: None,
            error: None,
            moving_until: None,
            last_still: None,
            picture_rect: None,
            failed_key: None,
            aspect: 1.0,
            auto_frame: false,
            fitted: false,
        }
    }
}

impl View3d {
    /// Whether surfaces are being built (or a build is waiting out the debounce).
    pub fn is_building(&self) -> bool {
        self.job.is_some() || self.pending.is_some()
    }

    /// Progress of the running build.
    pub fn progress(&self) -> Option<(f32, String)> {
        self.job.as_ref().map(|(_, j)| j.progress())
    }

    /// Stops a running build (study replaced, app closing).
    pub fn cancel(&mut self) {
        if let Some((_, j)) = self.job.take() {
            j.cancel();
        }
        self.pending = None;
    }

    /// Turns the camera to a standard view of the scene, framing it (and keeps framing it
    /// as the viewport's shape changes, until the user moves the camera).
    pub fn set_view(&mut self, v: StandardView) {
        self.camera.set_view(v);
        self.auto_frame = true;
        if let Some(s) = &self.scene {
            self.camera.frame_aspect(s.bounds_mm, self.aspect);
        }
    }

    /// Starts, debounces and finishes mesh builds so the scene follows the study's mask.
    /// Call every frame (the view's `ui` does).
    pub fn poll(&mut self, study: &Study, ctx: &egui::Context) {
        let Some(labels) = study.labels.as_ref() else {
            self.cancel();
            self.scene = None;
            return;
        };
        let key = labels.key;
        if let Some((k, job)) = self.job.as_mut() {
            if let Some(result) = job.try_finish() {
                let (k, cancelled) = (*k, job.is_cancelled());
                self.job = None;
                match result {
                    Ok(scene) if k == key => {
                        if !self.fitted {
                            self.camera = Camera::fit_aspect(scene.bounds_mm, StandardView::Anterior, self.aspect);
                            self.fitted = true;
                            self.auto_frame = true;
                        } else {
                            // keep the user's view; only the depth range follows the scene
                            self.camera.scene_radius_mm = Camera::fit(scene.bounds_mm, StandardView::Anterior).scene_radius_mm;
                        }
                        self.message = Some(format!("{} surfaces, {} triangles", scene.objects.len(), scene.triangle_count()));
                        self.error = None;
                        self.failed_key = None;
                        self.scene = Some(Arc::new(scene));
                    }
                    Ok(_) => {}
                    Err(_) if cancelled => {}
                    Err(e) => {
                        self.error = Some(e);
                        self.failed_key = Some(k);
                    }
                }
            }
        }
        let built = self.scene.as_ref().is_some_and(|s| s.mask_key == key);
        let building = self.job.as_ref().is_some_and(|(k, _)| *k == key);
        if built || building || self.failed_key == Some(key) {
            // up to date, on its way, or failed for this very mask (no retry loop)
            self.pending = None;
        } else {
            // the first build starts at once; later ones wait until the mask is still
            let now = Instant::now();
            let start = match self.pending {
                _ if self.scene.is_none() && self.job.is_none() => true,
                Some((k, since)) if k == key => now.duration_since(since) >= REBUILD_DEBOUNCE,
                _ => {
                    self.pending = Some((key, now));
                    false
                }
            };
            if start {
                self.pending = None;
                self.start_build(Arc::clone(&labels.mask), key);
            }
        }
        if self.is_building() {
            ctx.request_repaint_after(Duration::from_millis(50));
        }
    }

    fn start_build(&mut self, mask: Arc<crate::volume::Mask>, key: u64) {
        if let Some((_, old)) = self.job.take() {
            old.cancel();
        }
        let opts = self.mesh_options.clone();
        self.job = Some((key, Job::spawn("3D surfaces", move |progress| Scene::build(&mask, key, &opts, progress).map_err(|e| e.to_string()))));
    }

    /// Blocks until the running build (if any) is done and applied (tests, CLI).
    pub fn wait_for_build(&mut self, study: &Study, ctx: &egui::Context) {
        for _ in 0..6000 {
            self.poll(study, ctx);
            if self.job.is_none() && self.pending.is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The frame the GPU draws for the current settings.
    pub fn frame_desc(&self, view: &ViewState) -> FrameDesc {
        FrameDesc {
            camera: self.camera,
            size_px: [1, 1],
            planes_at_mm: self.show_planes.then_some(view.crosshair_mm),
            liver_opacity: if self.show_liver { self.liver_opacity } else { 0.0 },
            show_liver: self.show_liver,
            show_tumours: self.show_tumours,
            show_vessels: self.show_vessels,
            interactive: self.moving_until.is_some_and(|t| Instant::now() < t),
        }
    }

    /// Picks the surface under `pos` (points, relative to the picture's top-left, in a
    /// picture of `size` points) and moves the crosshair and the slice views' centre
    /// there. Returns the hit.
    pub fn click(&mut self, pos: Vec2, size: Vec2, view: &mut ViewState) -> Option<Hit> {
        let scene = self.scene.as_ref()?;
        let ray = self.camera.ray(pos.x as f64, pos.y as f64, [size.x as f64, size.y as f64]);
        let hit = scene.pick(&ray)?;
        view.crosshair_mm = hit.point_mm;
        view.centre_mm = hit.point_mm;
        self.last_pick = Some(hit.clone());
        Some(hit)
    }

    /// The whole 3D cell: toolbar on top, picture below.
    pub fn ui(&mut self, ui: &mut egui::Ui, rect: Rect, study: &Study, view: &mut ViewState) {
        self.poll(study, ui.ctx());
        self.finish_capture();
        let bar = Rect::from_min_size(rect.min, Vec2::new(rect.width(), TOOLBAR));
        let pic = Rect::from_min_max(Pos2::new(rect.min.x, rect.min.y + TOOLBAR), rect.max);
        ui.scope_builder(egui::UiBuilder::new().max_rect(bar.shrink2(Vec2::new(4.0, 1.0))).layout(egui::Layout::left_to_right(egui::Align::Center)), |ui| {
            self.toolbar(ui, pic);
        });
        self.picture(ui, pic, view);
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, pic: Rect) {
        // fits a 3D cell a quarter of a small window wide
        ui.spacing_mut().item_spacing.x = 3.0;
        ui.spacing_mut().button_padding.x = 4.0;
        for v in StandardView::ALL {
            if ui.small_button(v.letter()).on_hover_text(format!("{} view", v.name())).clicked() {
                self.set_view(v);
            }
        }
        let has_scene = self.scene.is_some();
        ui.menu_button("Show", |ui| {
            ui.checkbox(&mut self.show_liver, "liver");
            ui.add(egui::Slider::new(&mut self.liver_opacity, 0.05..=1.0).text("liver opacity"));
            ui.checkbox(&mut self.show_tumours, "tumours");
            ui.checkbox(&mut self.show_vessels, "vessels");
            ui.checkbox(&mut self.show_planes, "slice planes");
            ui.checkbox(&mut self.show_labels, "tumour labels");
        });
        ui.menu_button("Export", |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("folder");
                ui.add(egui::TextEdit::singleline(&mut self.export_dir).desired_width(220.0)).labelled_by(l.id);
            });
            ui.add_enabled_ui(has_scene && self.capture.is_none(), |ui| {
                if ui.button("PNG snapshot").clicked() {
                    let ppp = ui.ctx().pixels_per_point();
                    let size = [(pic.width() * ppp).round().max(16.0) as u32, (pic.height() * ppp).round().max(16.0) as u32];
                    self.request_capture(CaptureKind::Snapshot { size_px: size });
                    ui.close();
                }
                ui.horizontal(|ui| {
                    if ui.button("Turntable strip").clicked() {
                        self.request_capture(CaptureKind::Turntable { views: self.turntable_views, size_px: [self.turntable_size_px; 2] });
                        ui.close();
                    }
                    ui.add(egui::DragValue::new(&mut self.turntable_views).range(2..=36).suffix(" views"));
                });
                ui.separator();
                ui.checkbox(&mut self.export_ras, "meshes in RAS (3D Slicer) instead of LPS");
                if ui.button("Meshes (STL + OBJ)").clicked() {
                    self.export_meshes();
                    ui.close();
                }
            });
        });
    }

    fn request_capture(&mut self, kind: CaptureKind) {
        let what = match kind {
            CaptureKind::Snapshot { .. } => Picture::Snapshot,
            CaptureKind::Turntable { .. } => Picture::Turntable,
        };
        self.capture = Some((CaptureRequest::new(kind), what));
    }

    /// Saves a rendered picture once the paint callback has made it.
    fn finish_capture(&mut self) {
        let Some((req, what)) = &self.capture else { return };
        let Some(result) = req.take() else { return };
        let stem = match what {
            Picture::Snapshot => "hepaview-3d",
            Picture::Turntable => "hepaview-turntable",
        };
        self.capture = None;
        let saved = result.and_then(|img| {
            let path = free_path(Path::new(&self.export_dir), stem, "png");
            std::fs::create_dir_all(&self.export_dir).map_err(|e| format!("{}: {e}", self.export_dir))?;
            img.save(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path)
        });
        match saved {
            Ok(p) => {
                self.message = Some(format!("saved {}", p.display()));
                self.error = None;
            }
            Err(e) => self.error = Some(format!("could not save the picture: {e}")),
        }
    }

    fn export_meshes(&mut self) {
        let Some(scene) = &self.scene else { return };
        let dir = free_path(Path::new(&self.export_dir), "hepaview-meshes", "");
        let frame = if self.export_ras { crate::mesh::Frame::Ras } else { crate::mesh::Frame::Lps };
        match crate::mesh::write_objects(&scene.meshes, &dir, crate::mesh::Format::Both, frame) {
            Ok(s) => self.message = Some(format!("wrote {} files to {}", s.files.len(), dir.display())),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// A picture request for the next frame (tests use it without the menu).
    pub fn capture(&mut self, kind: CaptureKind) {
        self.request_capture(kind);
    }

    /// Whether a picture is waiting to be rendered and saved.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    fn picture(&mut self, ui: &mut egui::Ui, pic: Rect, view: &mut ViewState) {
        self.picture_rect = Some(pic);
        let resp = ui.interact(pic, ui.make_persistent_id("hepaview view3d picture"), Sense::click_and_drag());
        let (shift, scroll, zoom) = ui.input(|i| (i.modifiers.shift, i.smooth_scroll_delta.y, i.zoom_delta()));
        let d = resp.drag_delta();
        self.aspect = (pic.width() / pic.height().max(1.0)) as f64;
        if self.auto_frame {
            if let Some(s) = &self.scene {
                self.camera.frame_aspect(s.bounds_mm, self.aspect);
            }
        }
        let framed = self.camera;
        if resp.dragged_by(PointerButton::Middle) || (resp.dragged_by(PointerButton::Primary) && shift) {
            self.camera.pan(d.x as f64, d.y as f64, pic.height() as f64);
        } else if resp.dragged_by(PointerButton::Primary) {
            self.camera.orbit(d.x as f64, d.y as f64);
        }
        if resp.hovered() {
            if zoom != 1.0 {
                self.camera.zoom(zoom as f64);
            } else if scroll != 0.0 {
                self.camera.zoom((scroll as f64 * 0.002).exp());
            }
        }
        if self.camera != framed {
            self.auto_frame = false;
        }
        if resp.clicked_by(PointerButton::Primary) && !shift {
            if let Some(pos) = resp.interact_pointer_pos() {
                self.click(pos - pic.min, pic.size(), view);
            }
        }
        // Coarse surfaces while anything moves (camera, crosshair dragged in a slice view,
        // opacity slider), the full ones once it rests: a full redraw of a 300k-triangle
        // liver costs lavapipe ~55 ms, which would also slow the slice views down.
        let still = self.frame_desc(view);
        let still = FrameDesc { interactive: false, ..still };
        if self.last_still.is_some_and(|l| l != still) {
            self.moving_until = Some(Instant::now() + MOVING_GRACE);
            ui.ctx().request_repaint_after(MOVING_GRACE + Duration::from_millis(20));
        }
        self.last_still = Some(still);
        let painter = ui.painter_at(pic);
        painter.rect_filled(pic, 0.0, Color32::from_rgb(18, 19, 23));
        if let Some(scene) = &self.scene {
            painter.add(view3d_callback(View3dCallback {
                rect: pic,
                view_id: 0,
                scene: Arc::clone(scene),
                frame: self.frame_desc(view),
                capture: self.capture.as_ref().map(|(c, _)| Arc::clone(c)),
            }));
            if self.show_labels && self.show_tumours {
                self.tumour_labels(&painter, pic, scene);
            }
            self.orientation(&painter, pic);
        }
        self.status(ui, &painter, pic);
        painter.rect_stroke(pic, 0.0, Stroke::new(1.0, Color32::from_gray(60)), egui::StrokeKind::Inside);
    }

    /// Each tumour's number, volume, longest diameter and distances, beside its centroid.
    fn tumour_labels(&self, painter: &egui::Painter, pic: Rect, scene: &Scene) {
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
            painter.line_segment([at, Pos2::new(edge, r.center().y)], Stroke::new(1.0, Color32::from_rgba_unmultiplied(235, 255, 200, 160)));
            painter.rect_filled(r, 3.0, Color32::from_rgba_unmultiplied(0, 0, 0, 170));
            painter.galley(r.min + Vec2::splat(3.0), galley, Color32::WHITE);
        }
    }

    /// Patient direction letters at the picture's edges and an axis indicator in the
    /// bottom-left corner (L/R red, A/P green, S/I blue; nearer ends drawn on top).
    fn orientation(&self, painter: &egui::Painter, pic: Rect) {
        let c = &self.camera;
        let neg = |v: Lps| [-v[0], -v[1], -v[2]];
        let text = Color32::from_gray(220);
        let font = FontId::proportional(15.0);
        painter.text(Pos2::new(pic.min.x + 6.0, pic.center().y), Align2::LEFT_CENTER, direction_letter(neg(c.right)), font.clone(), text);
        painter.text(Pos2::new(pic.max.x - 6.0, pic.center().y), Align2::RIGHT_CENTER, direction_letter(c.right), font.clone(), text);
        painter.text(Pos2::new(pic.center().x, pic.min.y + 4.0), Align2::CENTER_TOP, direction_letter(c.up), font.clone(), text);
        painter.text(Pos2::new(pic.center().x, pic.max.y - 4.0), Align2::CENTER_BOTTOM, direction_letter(neg(c.up)), font, text);

        let centre = Pos2::new(pic.min.x + 48.0, pic.max.y - 48.0);
        let len = 30.0;
        let back = c.back();
        let mut ends: Vec<(f64, Vec2, &str, Color32)> = Vec::new();
        for (axis, (pos, negl), colour) in [(0, ("L", "R"), Color32::from_rgb(230, 80, 80)), (1, ("P", "A"), Color32::from_rgb(90, 210, 90)), (2, ("S", "I"), Color32::from_rgb(90, 140, 255))] {
            let mut d = [0.0; 3];
            d[axis] = 1.0;
            let s = Vec2::new(crate::volume::dot(d, c.right) as f32, -crate::volume::dot(d, c.up) as f32) * len;
            let depth = crate::volume::dot(d, back);
            ends.push((depth, s, pos, colour));
            ends.push((-depth, -s, negl, colour.gamma_multiply(0.6)));
        }
        ends.sort_by(|a, b| a.0.total_cmp(&b.0));
        painter.circle_filled(centre, len + 10.0, Color32::from_rgba_unmultiplied(0, 0, 0, 90));
        for (depth, s, letter, colour) in ends {
            // ends pointing away from the viewer are drawn dimmer
            let colour = if depth < -0.2 { colour.gamma_multiply(0.5) } else { colour };
            painter.line_segment([centre, centre + s], Stroke::new(2.0, colour));
            painter.text(centre + s * 1.25, Align2::CENTER_CENTER, letter, FontId::proportional(12.0), colour);
        }
    }

    fn status(&self, ui: &egui::Ui, painter: &egui::Painter, pic: Rect) {
        let font = FontId::proportional(12.0);
        if let Some((f, msg)) = self.progress() {
            let r = Rect::from_center_size(pic.center(), Vec2::new((pic.width() * 0.6).min(320.0), 18.0));
            painter.rect_filled(r, 3.0, Color32::from_gray(40));
            painter.rect_filled(Rect::from_min_size(r.min, Vec2::new(r.width() * f.clamp(0.0, 1.0), r.height())), 3.0, Color32::from_rgb(70, 120, 200));
            painter.text(r.center(), Align2::CENTER_CENTER, format!("building surfaces: {msg}"), font.clone(), Color32::WHITE);
        } else if self.scene.is_none() {
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
            line.push(format!("picked {name} at ({:.1}, {:.1}, {:.1}) mm", h.point_mm[0], h.point_mm[1], h.point_mm[2]));
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
            painter.text(Pos2::new(pic.max.x - 6.0, pic.max.y - 22.0), Align2::RIGHT_BOTTOM, line.join("\n"), font, Color32::from_gray(200));
        }
        let legend = [("axial", PLANE_RGB[0]), ("coronal", PLANE_RGB[1]), ("sagittal", PLANE_RGB[2])];
        if self.show_planes && self.scene.is_some() {
            let mut x = pic.max.x - 6.0;
            for (name, rgb) in legend.iter().rev() {
                let c = Color32::from_rgb((rgb[0] * 255.0) as u8, (rgb[1] * 255.0) as u8, (rgb[2] * 255.0) as u8);
                let r = painter.text(Pos2::new(x, pic.min.y + 4.0), Align2::RIGHT_TOP, *name, FontId::proportional(11.0), c);
                x = r.min.x - 8.0;
            }
        }
    }
}

/// `dir/stem-N.ext` (or `dir/stem-N` for an empty `ext`) for the smallest N not yet used:
/// Hepaview never overwrites a file.
fn free_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(if ext.is_empty() { format!("{stem}-{n}") } else { format!("{stem}-{n}.{ext}") }))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(stem))
}
