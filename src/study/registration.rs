//! Every moving phase registered onto the fixed one, written once
//! ([`Study::register_phases`]) for `hepaview register`, the Registration panel, the
//! analysis recipes and segmentation; and the registrations the viewer keeps with the
//! study ([`Registration`]): which phase image shows each, the link between viewports
//! through the field, and the study with the registered images in place
//! ([`Study::registered_study`]).

use std::sync::Arc;

use super::{next_key, Study};
use crate::register::pyramid::coarsened;
use crate::register::{self, PhaseRegistration, PhaseReport, RegisterError};
use crate::volume::{CtVolume, Field, Lps, Mask};

/// How [`Study::register_phases`] registers each moving phase onto the fixed one.
#[derive(Clone, Copy)]
pub enum Demons<'a> {
    /// At full resolution with these settings; `mask` (on the fixed grid) is where the
    /// forces act and the metrics are taken.
    Full { params: &'a register::Params, mask: Option<&'a Mask> },
    /// Quick and coarse, what segmentation runs before the network: both phases copied at
    /// `voxel_mm` (smoothed against aliasing) and registered with
    /// [`crate::segment::fast_registration`] for that grid. The results lie on the coarse
    /// grid.
    Quick { voxel_mm: f64 },
}

/// [`Demons`] made ready: the settings, or the fixed phase's coarse copy with its own.
enum Plan<'a> {
    Full(&'a register::Params, Option<&'a Mask>),
    Quick(Box<CtVolume>, register::Params, f64),
}

/// Reports the progress of the `n`-th moving phase (`n`, its own fraction 0…1, message);
/// returns `false` once the user has cancelled. Each caller says it in its own words.
pub type PhaseProgress<'a> = &'a (dyn Fn(usize, f32, &str) -> bool + Sync);

impl Study {
    /// Registers each of `moving` (indices into `phases`, in that order) onto phase
    /// `fixed`, one after the other. `each(i, result)` gets phase `i`'s registration as
    /// soon as it is done, so a caller writes or keeps it before the next one starts (a
    /// field of a 512² study is hundreds of MB), and stops the loop by returning an error;
    /// a cancel comes to it as [`RegisterError::Cancelled`].
    pub fn register_phases<E>(
        &self,
        fixed: usize,
        moving: &[usize],
        demons: Demons,
        progress: PhaseProgress,
        mut each: impl FnMut(usize, Result<PhaseRegistration, RegisterError>) -> Result<(), E>,
    ) -> Result<(), E> {
        let fixed_volume = self.phases[fixed].volume.as_ref();
        // the fixed phase's coarse copy is made once for all moving phases
        let plan = match demons {
            Demons::Full { params, mask } => Plan::Full(params, mask),
            Demons::Quick { voxel_mm } => {
                let small = coarsened(fixed_volume, voxel_mm);
                let params = crate::segment::fast_registration(&small.geometry);
                Plan::Quick(Box::new(small), params, voxel_mm)
            }
        };
        for (n, &i) in moving.iter().enumerate() {
            let report = |f: f32, m: &str| progress(n, f, m);
            let moving_volume = self.phases[i].volume.as_ref();
            let result = match &plan {
                Plan::Full(params, mask) => register::register_ct(fixed_volume, moving_volume, *mask, params, &report),
                Plan::Quick(..) if !report(0.0, "coarse copy") => Err(RegisterError::Cancelled),
                Plan::Quick(small, params, voxel_mm) => {
                    register::register_ct(small, &coarsened(moving_volume, *voxel_mm), None, params, &report)
                }
            };
            each(i, result)?;
        }
        Ok(())
    }

    /// Keeps the registrations the Registration panel ran (`(key of the moving phase's
    /// image, registration, fixed image, moving image)`), each shown by that phase image
    /// until the panel switches it.
    pub fn keep_registrations(&mut self, done: Vec<(u64, PhaseRegistration, Arc<CtVolume>, Arc<CtVolume>)>) {
        let fixed_key = self.phases[self.fixed_index()].key;
        for (key, reg, fixed, original) in done {
            let description =
                self.phases.iter().find(|p| p.key == key).map(|p| p.description.clone()).unwrap_or_default();
            self.registrations.push(Registration {
                description,
                shown_key: key,
                original,
                registered: Arc::new(reg.warped),
                fixed,
                field: Arc::new(reg.field),
                report: reg.report,
                original_key: key,
                registered_key: next_key(),
                fixed_key,
            });
        }
    }

    /// Shows registration `r`'s phase as `volume` under `key`, described as `description`
    /// (its original, its registered image, or a comparison made from them).
    pub fn show_registration(&mut self, r: usize, volume: Arc<CtVolume>, key: u64, description: String) {
        let Some(res) = self.registrations.get_mut(r) else { return };
        let Some(phase) = self.phases.iter_mut().find(|p| p.key == res.shown_key) else { return };
        phase.volume = volume;
        phase.key = key;
        phase.description = description;
        res.shown_key = key;
    }

    /// The study with each moving phase replaced by its registered image, when there are
    /// registrations for every moving phase.
    pub fn registered_study(&self) -> Option<Study> {
        if self.registrations.is_empty() {
            return None;
        }
        let mut s = self.clone();
        let fi = s.fixed_index();
        for (i, p) in s.phases.iter_mut().enumerate() {
            if i == fi {
                continue;
            }
            let r = self.registrations.iter().find(|r| r.shown_key == p.key)?;
            p.volume = Arc::clone(&r.registered);
            p.description = r.description.clone();
        }
        Some(s)
    }

    /// Where the fixed phase's world point `p` lies in the phase image shown under `key`,
    /// minus `p`: `u(p)` while that phase shows its original (unregistered) image, so the
    /// link between viewports goes through the field; zero otherwise (registered images
    /// already lie on the fixed grid).
    pub fn registration_offset(&self, key: u64, p: Lps) -> Lps {
        self.registrations
            .iter()
            .find(|r| r.shown_key == key && r.shown_key == r.original_key)
            .and_then(|r| register::warp::displacement_at(&r.field, p))
            .unwrap_or([0.0; 3])
    }
}

/// One moving phase registered onto the fixed one, kept with the study.
#[derive(Clone)]
pub struct Registration {
    /// Key of the phase image that shows this registration now: its original, its
    /// registered image, or a comparison made from them.
    pub shown_key: u64,
    pub original: Arc<CtVolume>,
    pub registered: Arc<CtVolume>,
    pub fixed: Arc<CtVolume>,
    pub field: Arc<Field>,
    pub report: PhaseReport,
    /// The series description as loaded; the viewport title adds what is shown to it.
    pub description: String,
    /// Keys of the original and registered images, kept so switching between them never
    /// uploads either twice, and of the fixed phase (the fusion layer).
    pub original_key: u64,
    pub registered_key: u64,
    pub fixed_key: u64,
}
