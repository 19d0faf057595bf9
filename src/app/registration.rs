//! The Registration section of the side panel: a Register button that runs Demons on a
//! worker thread (progress, Cancel; the viewer stays live), then, per moving phase, the
//! RMSD/NCC before and after, folding, and what its viewport shows: the original, the
//! registered phase, a checkerboard, difference or blend with the fixed phase, a colour
//! fusion with it, or the field itself as a displacement heat map or a deformation grid.

use std::sync::Arc;

use super::gpu::{LayerDesc, LayerKind};
use crate::register::{self, compare, PhaseReport};
use crate::study::{next_key, take_ended, Ended, Job, Study};
use crate::volume::{CtVolume, Field, Lps};

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

/// One registered phase.
pub struct RegisteredPhase {
    /// Key of the phase image this result replaces in the study (changes as modes change).
    pub shown_key: u64,
    pub original: Arc<CtVolume>,
    pub registered: Arc<CtVolume>,
    pub fixed: Arc<CtVolume>,
    pub field: Arc<Field>,
    pub report: PhaseReport,
    pub mode: CompareMode,
    /// The series description as loaded; the viewport title adds the mode to it.
    pub description: String,
    /// Keys of the original and registered images, kept so switching modes never uploads
    /// either twice, and of the fixed phase (the fusion layer).
    original_key: u64,
    registered_key: u64,
    fixed_key: u64,
    /// Made on first use: |u| in 0.1 mm, and the grid with its spacing.
    heat: Option<Keyed>,
    grid: Option<(Keyed, f32)>,
}

type Outcome = Vec<(u64, register::PhaseRegistration, Arc<CtVolume>, Arc<CtVolume>)>;

#[derive(Default)]
pub struct RegistrationPanel {
    job: Option<Job<Outcome>>,
    pub results: Vec<RegisteredPhase>,
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

    /// The study with each moving phase replaced by its registered image, when this panel
    /// has results for every moving phase.
    pub fn registered_study(&self, study: &Study) -> Option<Study> {
        if self.results.is_empty() {
            return None;
        }
        let mut s = study.clone();
        let fi = s.fixed_index();
        for (i, p) in s.phases.iter_mut().enumerate() {
            if i == fi {
                continue;
            }
            let r = self.results.iter().find(|r| r.shown_key == p.key)?;
            p.volume = Arc::clone(&r.registered);
            p.description = r.description.clone();
        }
        Some(s)
    }

    /// Where the fixed phase's world point `p` lies in the phase image shown under `key`,
    /// minus `p`: `u(p)` while that phase shows its original (unregistered) image, so the
    /// link between viewports goes through the field; zero otherwise (registered images
    /// already lie on the fixed grid).
    pub fn link_offset(&self, key: u64, p: Lps) -> Lps {
        self.results
            .iter()
            .find(|r| r.shown_key == key && r.mode == CompareMode::Original)
            .and_then(|r| register::warp::displacement_at(&r.field, p))
            .unwrap_or([0.0; 3])
    }

    /// What to draw over the phase image shown under `key`, if its mode has a layer.
    pub fn layer_for(&self, key: u64) -> Option<LayerDesc> {
        let res = self.results.iter().find(|r| r.shown_key == key)?;
        let (volume, key, kind) = match res.mode {
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
                let (v, k) = res.heat.as_ref()?;
                let max = (10.0 * res.report.max_displacement_mm as f32).max(10.0);
                // below 0.2 mm stays clear: the field's noise floor, not motion
                (Arc::clone(v), *k, LayerKind::Heat { min: 2.0, max, opacity: self.heat_opacity })
            }
            CompareMode::Grid => {
                let ((v, k), _) = res.grid.as_ref()?;
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

    /// Starts registering every phase onto the study's fixed phase.
    pub fn start(&mut self, study: &Study) {
        let fi = study.fixed_index();
        let fixed = Arc::clone(&study.phases[fi].volume);
        let moving: Vec<(u64, Arc<CtVolume>)> = study
            .phases
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != fi)
            .map(|(_, p)| (p.key, Arc::clone(&p.volume)))
            .collect();
        if moving.is_empty() {
            self.error = Some("Only one phase: nothing to register.".into());
            return;
        }
        self.results.clear();
        let n = moving.len() as f32;
        self.job = Some(Job::spawn(
            format!("Registering {} phase(s) onto {}", moving.len(), study.phases[fi].phase()),
            move |progress| {
                let mut out = Vec::new();
                for (done, (key, mv)) in moving.into_iter().enumerate() {
                    let sub = |f: f32, msg: &str| {
                        progress((done as f32 + f) / n, &format!("phase {}/{}: {msg}", done + 1, n as usize))
                    };
                    let reg = register::register_ct(&fixed, &mv, None, &register::Params::default(), &sub)
                        .map_err(|e| e.to_string())?;
                    out.push((key, reg, Arc::clone(&fixed), mv));
                }
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
                let fixed_key = study.phases[study.fixed_index()].key;
                // grid lines are a voxel thick: keep at least six voxels between them
                let sp = study.phases[study.fixed_index()].volume.geometry.spacing_mm;
                let coarse = (6.0 * sp[1].max(sp[2]) as f32 / 5.0).ceil() * 5.0;
                self.grid_mm = self.grid_mm.max(coarse).min(40.0);
                for (key, reg, fixed, original) in out {
                    let description =
                        study.phases.iter().find(|p| p.key == key).map(|p| p.description.clone()).unwrap_or_default();
                    self.results.push(RegisteredPhase {
                        description,
                        shown_key: key,
                        original,
                        registered: Arc::new(reg.warped),
                        fixed,
                        field: Arc::new(reg.field),
                        report: reg.report,
                        mode: CompareMode::Original,
                        original_key: key,
                        registered_key: next_key(),
                        fixed_key,
                        heat: None,
                        grid: None,
                    });
                }
                for r in 0..self.results.len() {
                    self.set_mode(study, r, CompareMode::Registered);
                }
            }
            Ended::Cancelled => {}
            Ended::Failed(e) => self.error = Some(format!("Registration failed: {e}")),
        }
    }

    /// Shows result `r` as `mode` (recomputing the derived image).
    pub fn set_mode(&mut self, study: &mut Study, r: usize, mode: CompareMode) {
        let (checker, blend, grid_mm) = (self.checker_mm as f64, self.blend, self.grid_mm);
        let Some(res) = self.results.get_mut(r) else { return };
        let Some(phase) = study.phases.iter_mut().find(|p| p.key == res.shown_key) else { return };
        match mode {
            CompareMode::HeatMap if res.heat.is_none() => {
                res.heat = Some((Arc::new(compare::displacement_tenths_mm(&res.field)), next_key()));
            }
            CompareMode::Grid if res.grid.as_ref().is_none_or(|(_, mm)| *mm != grid_mm) => {
                res.grid =
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
                phase.volume = v;
                phase.key = match mode {
                    CompareMode::Original => res.original_key,
                    m if m.shows_registered() => res.registered_key,
                    _ => next_key(),
                };
                phase.description = match mode {
                    CompareMode::Original => res.description.clone(),
                    m => format!("{} [{}]", res.description, m.as_str()),
                };
                res.shown_key = phase.key;
                res.mode = mode;
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
            let label = if self.results.is_empty() {
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
        for (r, res) in self.results.iter().enumerate() {
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
            let mut mode = res.mode;
            egui::ComboBox::new(("compare", r), "show").selected_text(mode.as_str()).show_ui(ui, |ui| {
                for m in CompareMode::ALL {
                    ui.selectable_value(&mut mode, m, m.as_str());
                }
            });
            if mode != res.mode {
                change = Some((r, mode));
            }
        }
        if !self.results.is_empty() {
            let c = ui.add(egui::Slider::new(&mut self.checker_mm, 5.0..=80.0).text("checker square, mm"));
            let b = ui.add(egui::Slider::new(&mut self.blend, 0.0..=1.0).text("blend: fixed to moving"));
            let g = ui.add(egui::Slider::new(&mut self.grid_mm, 4.0..=40.0).text("grid spacing, mm"));
            ui.add(egui::Slider::new(&mut self.heat_opacity, 0.0..=1.0).text("heat map opacity"));
            if let Some(res) = self.results.iter().find(|r| r.mode == CompareMode::HeatMap) {
                ui.small(format!(
                    "heat map: clear below 0.2 mm, red, yellow, white at {:.1} mm",
                    (res.report.max_displacement_mm as f32).max(1.0)
                ));
            }
            // recompute when a drag ends (or a click/typed value lands), not every frame of it
            let settle = |r: &egui::Response| r.drag_stopped() || (r.changed() && !r.dragged());
            let (redo_checker, redo_blend, redo_grid) = (settle(&c), settle(&b), settle(&g));
            for r in 0..self.results.len() {
                let m = self.results[r].mode;
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
