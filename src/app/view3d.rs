//! The 3D view's egui side: a toolbar (standard views, what to show, volume rendering,
//! exports), mouse orbit/pan/zoom, clicking a surface to move the crosshair, tumour labels
//! and the orientation cube (click a face for that standard view). Surfaces are built on a
//! worker thread whenever the label mask changes (debounced, so a brush stroke does not
//! start a build per dab); drawing is [`super::gpu::view3d`]'s, the overlays on the picture
//! are `overlays`'.
//!
//! Direct volume rendering (DVR) shows a phase's CT (the arterial phase unless the user
//! picks another) under the surfaces; it works without a label mask too, framing the CT.

mod overlays;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, PointerButton, Pos2, Rect, Sense, Stroke, Vec2};

use super::gpu::view3d::{view3d_callback, View3dCallback};
use super::gpu::{CaptureKind, CaptureRequest};
use super::view::ViewState;
use crate::io::phase::Phase;
use crate::mesh::MeshOptions;
use crate::render::orientation::{cube_faces, face_at};
use crate::render::{Camera, DvrParams, DvrVolume, FrameDesc, Hit, Scene, StandardView, TransferPreset};
use crate::study::{Job, Study};

/// A mask must stay unchanged this long before its surfaces are rebuilt.
pub const REBUILD_DEBOUNCE: Duration = Duration::from_millis(400);

/// How long after the last camera move the view still draws the decimated surfaces.
const MOVING_GRACE: Duration = Duration::from_millis(250);

/// Height of the toolbar above the picture, points.
const TOOLBAR: f32 = 24.0;

/// Half the orientation cube's side, points; its centre sits this far plus a margin from
/// the picture's bottom-left corner.
const CUBE_HALF: f32 = 22.0;
const CUBE_MARGIN: f32 = 40.0;

/// Direct volume rendering settings of the 3D view.
#[derive(Clone, Debug, PartialEq)]
pub struct DvrSettings {
    pub enabled: bool,
    /// Index into the study's phases; `None`: the arterial phase (else the first).
    pub phase: Option<usize>,
    pub preset: TransferPreset,
    pub shading: bool,
    /// Opacity scale, 1 as the preset says.
    pub opacity: f32,
}

impl Default for DvrSettings {
    fn default() -> Self {
        DvrSettings { enabled: false, phase: None, preset: TransferPreset::VesselsBone, shading: true, opacity: 1.0 }
    }
}

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
    /// Direct volume rendering of a phase.
    pub dvr: DvrSettings,
    /// The prepared (downsampled) volume of the phase shown, by phase key.
    dvr_volume: Option<Arc<DvrVolume>>,
    /// An empty scene spanning the CT, drawn when DVR is on without a label mask.
    ct_scene: Option<Arc<Scene>>,
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
            dvr: DvrSettings::default(),
            dvr_volume: None,
            ct_scene: None,
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
        if let Some(s) = self.shown_scene() {
            self.camera.frame_aspect(s.bounds_mm, self.aspect);
        }
    }

    /// What is drawn: the mask's surfaces, or, with DVR on and no mask, an empty scene that
    /// spans the CT.
    pub fn shown_scene(&self) -> Option<Arc<Scene>> {
        self.scene.clone().or_else(|| self.ct_scene.clone().filter(|_| self.dvr.enabled))
    }

    /// The phase DVR shows: the chosen one, else the arterial phase, else the first.
    pub fn dvr_phase_index(&self, study: &Study) -> Option<usize> {
        match self.dvr.phase {
            Some(i) if i < study.phases.len() => Some(i),
            _ => study
                .phases
                .iter()
                .position(|p| p.phase() == Phase::Arterial)
                .or((!study.phases.is_empty()).then_some(0)),
        }
    }

    /// Prepares the DVR volume of the shown phase (downsampled once per phase) and, without
    /// a label mask, a scene spanning the CT. Call every frame (the view's `ui` does).
    pub fn prepare_dvr(&mut self, study: &Study) {
        if !self.dvr.enabled {
            return;
        }
        let Some(i) = self.dvr_phase_index(study) else {
            self.dvr_volume = None;
            return;
        };
        let phase = &study.phases[i];
        if self.dvr_volume.as_ref().is_none_or(|v| v.key != phase.key) {
            self.dvr_volume = Some(Arc::new(DvrVolume::from_ct(&phase.volume, phase.key, crate::render::dvr::MAX_DIM)));
        }
        if self.scene.is_none() {
            let bounds = crate::render::scene::geometry_bounds(&phase.volume.geometry);
            if self.ct_scene.as_ref().is_none_or(|s| s.grid_bounds_mm != bounds) {
                self.ct_scene = Some(Arc::new(Scene::from_objects(Vec::new(), Vec::new(), bounds, 0)));
                if !self.fitted {
                    self.camera = Camera::fit_aspect(bounds, StandardView::Anterior, self.aspect);
                    self.auto_frame = true;
                }
            }
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
                            self.camera.scene_radius_mm =
                                Camera::fit(scene.bounds_mm, StandardView::Anterior).scene_radius_mm;
                        }
                        self.message =
                            Some(format!("{} surfaces, {} triangles", scene.objects.len(), scene.triangle_count()));
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
        self.job = Some((
            key,
            Job::spawn("3D surfaces", move |progress| {
                Scene::build(&mask, key, &opts, progress).map_err(|e| e.to_string())
            }),
        ));
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
            dvr: self.dvr_volume.as_ref().filter(|_| self.dvr.enabled).map(|v| DvrParams {
                volume_key: v.key,
                preset: self.dvr.preset,
                shading: self.dvr.shading,
                opacity: self.dvr.opacity,
                skip_empty: true,
            }),
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
        self.prepare_dvr(study);
        self.finish_capture();
        let bar = Rect::from_min_size(rect.min, Vec2::new(rect.width(), TOOLBAR));
        let pic = Rect::from_min_max(Pos2::new(rect.min.x, rect.min.y + TOOLBAR), rect.max);
        ui.scope_builder(
            egui::UiBuilder::new()
                .max_rect(bar.shrink2(Vec2::new(4.0, 1.0)))
                .layout(egui::Layout::left_to_right(egui::Align::Center)),
            |ui| {
                self.toolbar(ui, pic, study);
            },
        );
        self.picture(ui, pic, view);
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, pic: Rect, study: &Study) {
        // fits a 3D cell a quarter of a small window wide
        ui.spacing_mut().item_spacing.x = 3.0;
        ui.spacing_mut().button_padding.x = 4.0;
        for v in StandardView::ALL {
            if ui.small_button(v.letter()).on_hover_text(format!("{} view", v.name())).clicked() {
                self.set_view(v);
            }
        }
        let has_scene = self.shown_scene().is_some();
        ui.menu_button("Show", |ui| {
            ui.checkbox(&mut self.show_liver, "liver");
            ui.add(egui::Slider::new(&mut self.liver_opacity, 0.05..=1.0).text("liver opacity"));
            ui.checkbox(&mut self.show_tumours, "tumours");
            ui.checkbox(&mut self.show_vessels, "vessels");
            ui.checkbox(&mut self.show_planes, "slice planes");
            ui.checkbox(&mut self.show_labels, "tumour labels");
        });
        ui.toggle_value(&mut self.dvr.enabled, "DVR")
            .on_hover_text("direct volume rendering of a phase's CT under the surfaces");
        ui.menu_button("Volume", |ui| self.dvr_menu(ui, study));
        ui.menu_button("Export", |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("folder");
                ui.add(egui::TextEdit::singleline(&mut self.export_dir).desired_width(220.0)).labelled_by(l.id);
            });
            ui.add_enabled_ui(has_scene && self.capture.is_none(), |ui| {
                if ui.button("PNG snapshot").clicked() {
                    let ppp = ui.ctx().pixels_per_point();
                    let size =
                        [(pic.width() * ppp).round().max(16.0) as u32, (pic.height() * ppp).round().max(16.0) as u32];
                    self.request_capture(CaptureKind::Snapshot { size_px: size });
                    ui.close();
                }
                ui.horizontal(|ui| {
                    if ui.button("Turntable strip").clicked() {
                        self.request_capture(CaptureKind::Turntable {
                            views: self.turntable_views,
                            size_px: [self.turntable_size_px; 2],
                        });
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

    fn dvr_menu(&mut self, ui: &mut egui::Ui, study: &Study) {
        ui.checkbox(&mut self.dvr.enabled, "volume rendering (DVR)");
        let shown = self.dvr_phase_index(study);
        let name = |i: usize| {
            study.phases.get(i).map_or("-".to_string(), |p| format!("{} ({})", p.phase().as_str(), p.description))
        };
        ui.horizontal(|ui| {
            let l = ui.label("phase");
            egui::ComboBox::from_id_salt("hepaview dvr phase")
                .selected_text(shown.map_or("-".to_string(), name))
                .show_ui(ui, |ui| {
                    for i in 0..study.phases.len() {
                        if ui.selectable_label(shown == Some(i), name(i)).clicked() {
                            self.dvr.phase = Some(i);
                        }
                    }
                })
                .response
                .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            let l = ui.label("transfer function");
            egui::ComboBox::from_id_salt("hepaview dvr preset")
                .selected_text(self.dvr.preset.name())
                .show_ui(ui, |ui| {
                    for p in TransferPreset::ALL {
                        ui.selectable_value(&mut self.dvr.preset, p, p.name());
                    }
                })
                .response
                .labelled_by(l.id);
        });
        ui.checkbox(&mut self.dvr.shading, "shading");
        ui.add(egui::Slider::new(&mut self.dvr.opacity, 0.1..=4.0).logarithmic(true).text("opacity"));
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
        let shown = self.shown_scene();
        if self.auto_frame {
            if let Some(s) = &shown {
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
                // the orientation cube's faces turn the camera to that side
                let c = overlays::cube_centre(pic);
                match face_at(&cube_faces(&self.camera, CUBE_HALF as f64), [(pos.x - c.x) as f64, (pos.y - c.y) as f64])
                {
                    Some(v) if shown.is_some() => self.set_view(v),
                    _ => {
                        self.click(pos - pic.min, pic.size(), view);
                    }
                }
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
        if let Some(scene) = &shown {
            painter.add(view3d_callback(View3dCallback {
                rect: pic,
                view_id: 0,
                scene: Arc::clone(scene),
                frame: self.frame_desc(view),
                capture: self.capture.as_ref().map(|(c, _)| Arc::clone(c)),
                volume: self.dvr_volume.clone().filter(|_| self.dvr.enabled),
            }));
            if self.show_labels && self.show_tumours {
                self.tumour_labels(&painter, pic, scene);
            }
            self.orientation(&painter, pic);
        }
        self.status(ui, &painter, pic);
        painter.rect_stroke(pic, 0.0, Stroke::new(1.0, Color32::from_gray(60)), egui::StrokeKind::Inside);
    }
}

/// `dir/stem-N.ext` (or `dir/stem-N` for an empty `ext`) for the smallest N not yet used:
/// Hepaview never overwrites a file.
fn free_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(if ext.is_empty() { format!("{stem}-{n}") } else { format!("{stem}-{n}.{ext}") }))
        .find(|p| !crate::io::taken(p))
        .unwrap_or_else(|| dir.join(stem))
}
