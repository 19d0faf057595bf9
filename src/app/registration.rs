//! The Registration section of the side panel: a Register button that runs Demons on a
//! worker thread (progress, Cancel; the viewer stays live), then, per moving phase, the
//! RMSD/NCC before and after, folding, and what its viewport shows: the original, the
//! registered phase, a checkerboard, difference or blend with the fixed phase, a colour
//! fusion with it, or the field itself as a displacement heat map or a deformation grid.
//! The registrations are the study's (`study.registrations`, run by
//! `Study::register_phases`); the panel keeps what each shows.

use std::sync::Arc;

use super::gpu::{LayerDesc, LayerKind};
use crate::register::{self, compare};
use crate::study::{next_key, take_ended, Demons, Ended, Job, Study};
use crate::volume::CtVolume;

/// What a moving phase's viewports show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareMode {
    Original,
    Registered,
    Checkerboard,
    Difference,
    Blend,
    /// Fixed in green, registered moving in red: aligned edges turn yellow.
    FusionRedGreen,
    /// Fixed in green, registered moving in magenta: aligned tissue grey (colour-blind safe).
    FusionMagentaGreen,
    /// The registered phase under a heat map of the displacement length.
    HeatMap,
    /// The registered phase under the moving image's regular grid bent by the field.
    Grid,
    /// Length of the displacement, 0.1 mm per unit of the window.
    Displacement,
}

impl CompareMode {
    pub const ALL: [CompareMode; 10] = [
        CompareMode::Original,
        CompareMode::Registered,
        CompareMode::Checkerboard,
        CompareMode::Difference,
        CompareMode::Blend,
        CompareMode::FusionRedGreen,
        CompareMode::FusionMagentaGreen,
        CompareMode::HeatMap,
        CompareMode::Grid,
        CompareMode::Displacement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompareMode::Original => "original",
            CompareMode::Registered => "registered",
            CompareMode::Checkerboard => "checkerboard with fixed",
            CompareMode::Difference => "difference (moving - fixed)",
            CompareMode::Blend => "blend with fixed",
            CompareMode::FusionRedGreen => "fusion: fixed green, moving red",
            CompareMode::FusionMagentaGreen => "fusion: fixed green, moving magenta",
            CompareMode::HeatMap => "displacement heat map",
            CompareMode::Grid => "deformation grid",
            CompareMode::Displacement => "displacement (0.1 mm)",
        }
    }

    /// Modes that show the registered phase itself, with or without a layer over it.
    fn shows_registered(self) -> bool {
        matches!(
            self,
            CompareMode::Registered
                | CompareMode::FusionRedGreen
                | CompareMode::FusionMagentaGreen
                | CompareMode::HeatMap
                | CompareMode::Grid
        )
    }
}

/// A derived volume with the GPU key it is uploaded under.
type Keyed = (Arc<CtVolume>, u64);

/// What the panel shows for one of the study's registrations (widget state: the
/// registration itself is the study's, in `study.registrations`, in the same order).
pub struct CompareView {
    pub mode: CompareMode,
    /// Made on first use: |u| in 0.1 mm, and the grid with its spacing.
    heat: Option<Keyed>,
    grid: Option<(Keyed, f32)>,
}

type Outcome = Vec<(u64, register::PhaseRegistration, Arc<CtVolume>, Arc<CtVolume>)>;

#[derive(Default)]
pub struct RegistrationPanel {
    job: Option<Job<Outcome>>,
    /// One per registration of the study, in the same order.
    pub views: Vec<CompareView>,
    pub checker_mm: f32,
    pub blend: f32,
    /// Distance between grid planes of the deformation grid.
    pub grid_mm: f32,
    /// Opacity of the heat map over the registered phase.
    pub heat_opacity: f32,
    pub error: Option<String>,
}

impl RegistrationPanel {
    pub fn new() -> Self {
        RegistrationPanel { checker_mm: 20.0, blend: 0.5, grid_mm: 10.0, heat_opacity: 0.6, ..Default::default() }
    }

    /// What to draw over the phase image shown under `key`, if its mode has a layer.
    pub fn layer_for(&self, study: &Study, key: u64) -> Option<LayerDesc> {
        let r = study.registrations.iter().position(|r| r.shown_key == key)?;
        let (res, view) = (&study.registrations[r], self.views.get(r)?);
        let (volume, key, kind) = match view.mode {
            CompareMode::FusionRedGreen => (
                Arc::clone(&res.fixed),
                res.fixed_key,
                LayerKind::Fusion { ct_rgb: [1.0, 0.0, 0.0], layer_rgb: [0.0, 1.0, 0.0] },
            ),
            CompareMode::FusionMagentaGreen => (
                Arc::clone(&res.fixed),
                res.fixed_key,
                LayerKind::Fusion { ct_rgb: [1.0, 0.0, 1.0], layer_rgb: [0.0, 1.0, 0.0] },
            ),
            CompareMode::HeatMap => {
                let (v, k) = view.heat.as_ref()?;
                let max = (10.0 * res.report.max_displacement_mm as f32).max(10.0);
                // below 0.2 mm stays clear: the field's noise floor, not motion
                (Arc::clone(v), *k, LayerKind::Heat { min: 2.0, max, opacity: self.heat_opacity })
            }
            CompareMode::Grid => {
                let ((v, k), _) = view.grid.as_ref()?;
                (Arc::clone(v), *k, LayerKind::Grid { rgb: [1.0, 0.85, 0.1] })
            }
            _ => return None,
        };
        Some(LayerDesc { volume, key, kind })
    }

    /// Stops a running registration (the study is being replaced).
    pub fn cancel(&self) {
        if let Some(j) = &self.job {
            j.cancel();
        }
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Starts registering every phase onto the study's fixed phase (the study's own loop,
    /// on a snapshot of it on the worker).
    pub fn start(&mut self, study: &mut Study) {
        let fi = study.fixed_index();
        let moving: Vec<usize> = (0..study.phases.len()).filter(|&i| i != fi).collect();
        if moving.is_empty() {
            self.error = Some("Only one phase: nothing to register.".into());
            return;
        }
        study.registrations.clear();
        self.views.clear();
        let s = study.clone();
        let n = moving.len() as f32;
        self.job = Some(Job::spawn(
            format!("Registering {} phase(s) onto {}", moving.len(), study.phases[fi].phase()),
            move |progress| {
                let fixed = Arc::clone(&s.phases[fi].volume);
                let report = |done: usize, f: f32, msg: &str| {
                    progress((done as f32 + f) / n, &format!("phase {}/{}: {msg}", done + 1, n as usize))
                };
                let demons = Demons::Full { params: &register::Params::default(), mask: None };
                let mut out = Vec::new();
                s.register_phases(fi, &moving, demons, &report, |i, reg| {
                    let reg = reg.map_err(|e| e.to_string())?;
                    out.push((s.phases[i].key, reg, Arc::clone(&fixed), Arc::clone(&s.phases[i].volume)));
                    Ok::<(), String>(())
                })?;
                Ok(out)
            },
        ));
    }

    /// Polls the job; a finished registration shows the registered phases at once.
    pub fn poll(&mut self, study: &mut Study, ctx: &egui::Context) {
        let Some(ended) = take_ended(&mut self.job) else {
            if self.job.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(100));
            }
            return;
        };
        match ended {
            Ended::Done(out) => {
                // grid lines are a voxel thick: keep at least six voxels between them
                let sp = study.phases[study.fixed_index()].volume.geometry.spacing_mm;
                let coarse = (6.0 * sp[1].max(sp[2]) as f32 / 5.0).ceil() * 5.0;
                self.grid_mm = self.grid_mm.max(coarse).min(40.0);
                study.keep_registrations(out);
                while self.views.len() < study.registrations.len() {
                    self.views.push(CompareView { mode: CompareMode::Original, heat: None, grid: None });
                }
                for r in 0..self.views.len() {
                    self.set_mode(study, r, CompareMode::Registered);
                }
            }
            Ended::Cancelled => {}
            Ended::Failed(e) => self.error = Some(format!("Registration failed: {e}")),
        }
    }

    /// Shows registration `r` as `mode` (recomputing the derived image).
    pub fn set_mode(&mut self, study: &mut Study, r: usize, mode: CompareMode) {
        let (checker, blend, grid_mm) = (self.checker_mm as f64, self.blend, self.grid_mm);
        let (Some(res), Some(view)) = (study.registrations.get(r), self.views.get_mut(r)) else { return };
        if !study.phases.iter().any(|p| p.key == res.shown_key) {
            return;
        }
        match mode {
            CompareMode::HeatMap if view.heat.is_none() => {
                view.heat = Some((Arc::new(compare::displacement_tenths_mm(&res.field)), next_key()));
            }
            CompareMode::Grid if view.grid.as_ref().is_none_or(|(_, mm)| *mm != grid_mm) => {
                view.grid =
                    Some(((Arc::new(compare::deformation_grid(&res.field, grid_mm as f64)), next_key()), grid_mm));
            }
            _ => {}
        }
        let volume = match mode {
            CompareMode::Original => Ok(Arc::clone(&res.original)),
            m if m.shows_registered() => Ok(Arc::clone(&res.registered)),
            CompareMode::Checkerboard => compare::checkerboard(&res.fixed, &res.registered, checker).map(Arc::new),
            CompareMode::Difference => compare::difference(&res.fixed, &res.registered).map(Arc::new),
            CompareMode::Blend => compare::blend(&res.fixed, &res.registered, blend).map(Arc::new),
            _ => Ok(Arc::new(compare::displacement_tenths_mm(&res.field))),
        };
        match volume {
            Ok(v) => {
                let key = match mode {
                    CompareMode::Original => res.original_key,
                    m if m.shows_registered() => res.registered_key,
                    _ => next_key(),
                };
                let description = match mode {
                    CompareMode::Original => res.description.clone(),
                    m => format!("{} [{}]", res.description, m.as_str()),
                };
                study.show_registration(r, v, key, description);
                view.mode = mode;
            }
            Err(e) => self.error = Some(e),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) {
        ui.heading("Registration");
        if let Some(job) = &self.job {
            let (fraction, message) = job.progress();
            ui.label(&job.title);
            ui.add(egui::ProgressBar::new(fraction).show_percentage());
            ui.label(message);
            if ui.button("Cancel registration").clicked() {
                job.cancel();
            }
        } else {
            let fixed = study.phases[study.fixed_index()].phase();
            let label = if study.registrations.is_empty() {
                format!("Register onto {fixed}")
            } else {
                format!("Register again onto {fixed}")
            };
            if ui
                .add_enabled(study.phases.len() > 1, egui::Button::new(label))
                .on_hover_text("Demons (diffeomorphic, 3 levels) moves every other phase onto the fixed one; runs in the background")
                .clicked()
            {
                self.start(study);
            }
        }
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::LIGHT_RED, e);
        }
        let mut change: Option<(usize, CompareMode)> = None;
        for (r, (res, view)) in study.registrations.iter().zip(&self.views).enumerate() {
            let name =
                study.phases.iter().find(|p| p.key == res.shown_key).map(|p| p.phase().to_string()).unwrap_or_default();
            let rep = &res.report;
            ui.label(egui::RichText::new(&name).strong());
            ui.label(format!(
                "RMSD {:.1} -> {:.1} HU, NCC {:.3} -> {:.3}\nmin Jacobian {:.2}{}, max shift {:.1} mm, {:.0} s",
                rep.rmsd_before_hu,
                rep.rmsd_after_hu,
                rep.ncc_before,
                rep.ncc_after,
                rep.folding.min_jacobian,
                if rep.folding.folded_voxels > 0 {
                    format!(" ({} folded voxels)", rep.folding.folded_voxels)
                } else {
                    String::new()
                },
                rep.max_displacement_mm,
                rep.seconds
            ));
            let mut mode = view.mode;
            egui::ComboBox::new(("compare", r), "show").selected_text(mode.as_str()).show_ui(ui, |ui| {
                for m in CompareMode::ALL {
                    ui.selectable_value(&mut mode, m, m.as_str());
                }
            });
            if mode != view.mode {
                change = Some((r, mode));
            }
        }
        if !study.registrations.is_empty() {
            let c = ui.add(egui::Slider::new(&mut self.checker_mm, 5.0..=80.0).text("checker square, mm"));
            let b = ui.add(egui::Slider::new(&mut self.blend, 0.0..=1.0).text("blend: fixed to moving"));
            let g = ui.add(egui::Slider::new(&mut self.grid_mm, 4.0..=40.0).text("grid spacing, mm"));
            ui.add(egui::Slider::new(&mut self.heat_opacity, 0.0..=1.0).text("heat map opacity"));
            if let Some((res, _)) =
                study.registrations.iter().zip(&self.views).find(|(_, v)| v.mode == CompareMode::HeatMap)
            {
                ui.small(format!(
                    "heat map: clear below 0.2 mm, red, yellow, white at {:.1} mm",
                    (res.report.max_displacement_mm as f32).max(1.0)
                ));
            }
            // recompute when a drag ends (or a click/typed value lands), not every frame of it
            let settle = |r: &egui::Response| r.drag_stopped() || (r.changed() && !r.dragged());
            let (redo_checker, redo_blend, redo_grid) = (settle(&c), settle(&b), settle(&g));
            for r in 0..self.views.len() {
                let m = self.views[r].mode;
                if (redo_checker && m == CompareMode::Checkerboard)
                    || (redo_blend && m == CompareMode::Blend)
                    || (redo_grid && m == CompareMode::Grid)
                {
                    self.set_mode(study, r, m);
                }
            }
        }
        if let Some((r, m)) = change {
            self.set_mode(study, r, m);
        }
    }
}
