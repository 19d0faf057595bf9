//! The comparison the viewer runs over every follow-up visit shown in a study: the baseline
//! and each visit measured on the baseline mask's grid (each visit's mask chosen by a
//! [`MaskPlan`]), their lesions paired and RECIST 1.1 / mRECIST assessed. The panel builds
//! the inputs and runs [`compare_all_visits`] on a worker thread; the CLI's `compare` runs
//! the same `analysis` steps on two studies. It takes whole studies, so it lives at the
//! study's level; the measuring and pairing are `follow_up::response`'s.

use std::path::PathBuf;
use std::sync::Arc;

use super::analysis::{self, AlignedPhase, Alignment};
use super::{PhaseImage, Progress, Study};
use crate::follow_up::parse_visit_name;
use crate::follow_up::response::{self, Response, ResponseOptions, VisitMeasure};
use crate::io::phase::{Phase, PhaseCall};
use crate::register::affine::AffineTransform;
use crate::volume::{Interp, Mask};

/// Where a visit's mask comes from.
pub enum MaskPlan {
    /// Found by an earlier comparison (on the baseline mask's grid), with its note.
    Cached(Arc<Mask>, String),
    /// A NIfTI mask on the visit's own grid, carried through the visit transform.
    File(PathBuf, AffineTransform),
    /// The visit's own label mask, carried through the visit transform.
    Own(Arc<Mask>, AffineTransform),
    /// Outlined by the shipped U-Net.
    UNet,
}

/// One follow-up visit to compare: its label, its phases as shown ([`shown_visit`]) and
/// where its mask comes from.
pub struct VisitInput {
    pub label: String,
    pub study: Study,
    pub plan: MaskPlan,
}

/// One follow-up visit compared.
pub struct VisitOutcome {
    pub comparison: analysis::AlignedComparison,
    /// The visit's mask on the baseline mask's grid, and where it came from.
    pub mask: Arc<Mask>,
    pub note: String,
    pub label: String,
    /// The visit's phases on the baseline mask's grid.
    pub phases: Vec<AlignedPhase>,
}

/// Every visit compared with the baseline.
pub struct CompareOutcome {
    pub baseline: VisitMeasure,
    pub baseline_phases: Vec<AlignedPhase>,
    pub baseline_mask: Arc<Mask>,
    pub visits: Vec<VisitOutcome>,
}

/// A study of the follow-up phases `keys` as shown (on the baseline's grid), with their
/// phase names back so that registration and measurement see them.
pub fn shown_visit(study: &Study, keys: &[u64], label: &str) -> Study {
    let phases: Vec<PhaseImage> = keys
        .iter()
        .filter_map(|k| study.phases.iter().find(|p| p.key == *k))
        .map(|p| {
            let phase = parse_visit_name(&p.description).map_or(Phase::Unknown, |n| n.phase);
            PhaseImage { call: PhaseCall { phase, confidence: 1.0, reason: format!("follow-up {label}") }, ..p.clone() }
        })
        .collect();
    Study::of_phases(label, phases)
}

/// The visit's mask with each lesion voxel relabelled by its part (parts outside lesions
/// cannot occur: they come from the same mask).
pub fn parts_overlay(mask: &Mask, parts: &Mask) -> Mask {
    let mut out = mask.clone();
    if parts.geometry.shape == mask.geometry.shape {
        out.data.zip_mut_with(&parts.data, |m, &p| {
            if p != 0 {
                *m = p;
            }
        });
    }
    out
}

/// Measures the baseline (`base`, its mask `base_mask`) and every visit of `inputs` on the
/// baseline mask's grid, pairs their lesions and assesses the response; `model` is the
/// U-Net's weights for a visit planned [`MaskPlan::UNet`]. Errors are said in words (the
/// panel shows them as they are).
pub fn compare_all_visits(
    base: &Study,
    base_mask: Arc<Mask>,
    base_label: &str,
    inputs: Vec<VisitInput>,
    opts: &ResponseOptions,
    model: Option<PathBuf>,
    progress: Progress,
) -> Result<CompareOutcome, String> {
    let n = inputs.len() as f32 + 1.0;
    let alignment = |s: &Study| {
        if s.phases.len() > 1 {
            Alignment::Register(crate::register::Params::default())
        } else {
            Alignment::Resample
        }
    };
    let p0 = |f: f32, m: &str| progress(f / n, &format!("baseline: {m}"));
    let bphases: Vec<AlignedPhase> =
        analysis::align_phases(base, &base_mask.geometry, &alignment(base), None, &p0).map_err(|e| e.to_string())?;
    let mut baseline = None;
    let mut visits = Vec::new();
    for (vi, input) in inputs.into_iter().enumerate() {
        let share = |a: f32, b: f32| move |f: f32| (vi as f32 + 1.0 + a + (b - a) * f) / n;
        let label = input.label.clone();
        let (mask, note) = match input.plan {
            MaskPlan::Cached(m, note) => (m, note),
            MaskPlan::File(path, t) => {
                let (m, _) = crate::io::nifti::read_mask(&path).map_err(|e| e.to_string())?;
                (
                    Arc::new(analysis::resample_mask_affine(&m, &base_mask.geometry, &t)),
                    format!("mask {} carried through the visit alignment", path.display()),
                )
            }
            MaskPlan::Own(m, t) => (
                Arc::new(analysis::resample_mask_affine(&m, &base_mask.geometry, &t)),
                "the visit's own mask, carried through the visit alignment".to_string(),
            ),
            MaskPlan::UNet => {
                let model = model.clone().ok_or("no follow-up mask, and the U-Net's weights (models/unet.safetensors) were not found: name a mask or set HEPAVIEW_MODEL")?;
                let s = share(0.0, 0.4);
                let seg = |f: f32, m: &str| progress(s(f), &format!("{label}: segmenting with the U-Net: {m}"));
                let m = crate::study::segment_study(&input.study, &model, &seg).map_err(|e| e.to_string())?;
                let m = if m.geometry.same_grid(&base_mask.geometry) {
                    m
                } else {
                    m.resample_to(&base_mask.geometry, Interp::Nearest, 0)
                };
                (Arc::new(m), format!("outlined by the shipped U-Net ({}): check it", model.display()))
            }
        };
        let s = share(0.4, 0.8);
        let al = |f: f32, m: &str| progress(s(f), &format!("{label}: {m}"));
        let fphases = analysis::align_phases(&input.study, &base_mask.geometry, &alignment(&input.study), None, &al)
            .map_err(|e| e.to_string())?;
        let s = share(0.8, 1.0);
        let me = |f: f32, m: &str| progress(s(f), m);
        let c = analysis::compare_aligned_visits("baseline", &bphases, &base_mask, &label, &fphases, &mask, opts, &me)
            .map_err(|e| e.to_string())?;
        let c =
            analysis::AlignedComparison { response: Response { baseline: base_label.to_string(), ..c.response }, ..c };
        if baseline.is_none() {
            // the baseline measures the same for every visit; keep one
            let v = response::Visit {
                label: base_label.to_string(),
                mask: &base_mask,
                phases: bphases.iter().map(|p| (p.phase, p.volume.as_ref())).collect(),
            };
            baseline = Some(response::measure_visit(&v, opts).map_err(|e| e.to_string())?);
        }
        visits.push(VisitOutcome { comparison: c, mask, note, label, phases: fphases });
    }
    Ok(CompareOutcome {
        baseline: baseline.ok_or("no visit to compare")?,
        baseline_phases: bphases,
        baseline_mask: base_mask,
        visits,
    })
}
