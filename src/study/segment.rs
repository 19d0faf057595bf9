//! Segmentation of the open study: its phases handed to [`crate::segment::segment`],
//! registered first when the network wants them so (the study's own loop, quick and
//! coarse), so that `segment` works on phases and never sees a study.

use std::path::Path;

use super::{Demons, Study};
use crate::register::RegisterError;
use crate::segment::{
    self, load_unet, phases_to_register, InferOptions, SegmentError, SegmentInput, Segmentation, SlicesFn, UNet,
    REGISTRATION_SHARE, REGISTRATION_VOXEL_MM,
};
use crate::volume::{Mask, Progress};

/// Segments a study with the model at `model_path` (`hepaview compare` and the follow-up
/// panel, for a visit without a mask): labels 0 background, 1 liver, 2 tumour on the grid
/// of the study's portal venous phase (its fixed phase), with the default options (the
/// other contrast phases registered onto it first); progress goes 0→1 and returning false
/// cancels.
pub fn segment_study(study: &Study, model_path: &Path, progress: Progress) -> Result<Mask, SegmentError> {
    segment_study_live(study, model_path, progress, None)
}

/// [`segment_study`], also handing each finished batch of slices to `on_slices`.
pub fn segment_study_live(
    study: &Study,
    model_path: &Path,
    progress: Progress,
    on_slices: Option<SlicesFn>,
) -> Result<Mask, SegmentError> {
    let model = load_unet(model_path)?;
    Ok(segment_phases_live(&model, study, &InferOptions::default(), progress, on_slices)?.mask)
}

/// [`segment_study`] with a loaded model and options.
pub fn segment_phases(
    model: &UNet,
    study: &Study,
    opts: &InferOptions,
    progress: Progress,
) -> Result<Mask, SegmentError> {
    Ok(segment_phases_live(model, study, opts, progress, None)?.mask)
}

/// [`segment_phases`], also handing each finished batch of slices to `on_slices`, and
/// saying which lesions the lesion search added.
pub fn segment_phases_live(
    model: &UNet,
    study: &Study,
    opts: &InferOptions,
    progress: Progress,
    on_slices: Option<SlicesFn>,
) -> Result<Segmentation, SegmentError> {
    if study.phases.is_empty() {
        return Err(SegmentError::NoPhase);
    }
    let fixed = study.fixed_index();
    let names: Vec<_> = study.phases.iter().map(|p| p.phase()).collect();
    let moving = phases_to_register(&names, fixed, opts);
    let registered = if moving.is_empty() {
        None
    } else {
        let share = 1.0 / moving.len() as f32;
        let report = |n: usize, f: f32, m: &str| {
            let name = study.phases[moving[n]].phase();
            progress(REGISTRATION_SHARE * (share * (n as f32 + f)), &format!("registering {name}: {m}"))
        };
        let mut fields = Vec::new();
        let demons = Demons::Quick { voxel_mm: REGISTRATION_VOXEL_MM };
        study.register_phases(fixed, &moving, demons, &report, |i, reg| match reg {
            Ok(r) => {
                fields.push((i, Some(r.field)));
                Ok(())
            }
            Err(RegisterError::Cancelled) => Err(SegmentError::Cancelled),
            // that phase is left out rather than fed misaligned
            Err(_) => {
                fields.push((i, None));
                Ok(())
            }
        })?;
        Some(fields)
    };
    let phases = study.phases.iter().map(|p| (p.phase(), p.volume.as_ref())).collect();
    segment::segment(model, &SegmentInput { phases, fixed, registered }, opts, progress, on_slices)
}
