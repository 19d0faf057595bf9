//! What `cluster`, `report`, `compare` and `outline` share: the mask to work on, and the
//! study's phases brought onto its grid (registered onto the fixed phase unless told not
//! to) with a progress bar. All the work is in `hepaview::study::analysis`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::register::Params as RegisterParams;
use hepaview::study::analysis::{self, AlignedPhase, Alignment};
use hepaview::study::Study;
use hepaview::volume::{Geometry, Mask};

use super::common::progress_bar_1000;

/// The mask named on the command line, else the label file opened with a NIfTI study.
pub(crate) fn load_mask(study: &Study, mask: Option<&Path>) -> Result<(Mask, String)> {
    match mask {
        Some(p) => {
            let (m, warnings) = nifti::read_mask(p).with_context(|| format!("reading the mask {}", p.display()))?;
            for w in warnings {
                eprintln!("! {w}");
            }
            Ok((m, p.display().to_string()))
        }
        None => match &study.labels {
            Some(l) => Ok(((*l.mask).clone(), l.source.display().to_string())),
            None => bail!("no mask: give --mask MASK.nii.gz (liver 1, tumour 2, on the study's grid or any grid of the same patient)"),
        },
    }
}

/// The study's phases on `grid` with a progress bar: registered onto the fixed phase (the
/// Demons box limited to `register_within` when given) unless `no_register` or a single
/// phase; and how.
pub(crate) fn align_with_bar(
    study: &Study,
    grid: &Geometry,
    register_within: Option<&Mask>,
    no_register: bool,
) -> Result<(Vec<AlignedPhase>, Alignment)> {
    let alignment = if no_register || study.phases.len() < 2 {
        Alignment::Resample
    } else {
        Alignment::Register(RegisterParams::default())
    };
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let phases = analysis::align_phases(study, grid, &alignment, register_within, &report);
    pb.finish_and_clear();
    Ok((phases?, alignment))
}
/// The study's phases on `mask`'s grid, with a progress bar, said on stdout.
pub(crate) fn aligned(study: &Study, mask: &Mask, no_register: bool) -> Result<Vec<AlignedPhase>> {
    let (phases, alignment) = align_with_bar(study, &mask.geometry, None, no_register)?;
    let how = match alignment {
        Alignment::Register(_) => "registered onto the fixed phase (diffeomorphic Demons)",
        Alignment::Resample => "resampled in world coordinates (not registered)",
    };
    let names: Vec<_> = phases.iter().map(|p| p.phase.as_str()).collect();
    println!("Phases on the mask's grid: {} ({how})", names.join(", "));
    Ok(phases)
}
pub(crate) fn alignment_note(phases: &[AlignedPhase]) -> String {
    if phases.iter().any(|p| p.registered) {
        "Phases registered onto the fixed phase with diffeomorphic Demons before measuring.".into()
    } else {
        "Phases not registered here (resampled in world coordinates): use registered phases for multi-phase comparisons.".into()
    }
}
