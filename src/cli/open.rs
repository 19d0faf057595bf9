//! `hepaview open`: the viewer on a study, with follow-up visits aligned beside it.

use std::path::PathBuf;

use anyhow::{Context, Result};

use hepaview::app;

use super::common::{open_study, progress_bar_1000};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder (searched recursively), or NIfTI files: the phases, and a label
    /// mask named like mask/labels/seg.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Set a phase by hand: N=PHASE (phases numbered in display order from 0), e.g. 0=arterial. Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
    /// A follow-up study of the same patient (DICOM folder or NIfTI files), aligned to
    /// this one and shown beside each phase. Repeat for more visits.
    #[arg(long = "follow-up", num_args = 1..)]
    pub follow_up: Vec<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { paths, phase_overrides, follow_up } = a;
    let mut study = open_study(&paths, &phase_overrides)?;
    let mut visits = Vec::new();
    if !follow_up.is_empty() {
        let follow = open_study(&follow_up, &[])?;
        // the last word of a DICOM study title is its date
        let label = follow
            .title
            .split_whitespace()
            .rev()
            .find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or("visit 2")
            .to_string();
        let pb = progress_bar_1000();
        let report = |f: f32, m: &str| {
            pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
            pb.set_message(m.to_string());
            true
        };
        let added = hepaview::study::analysis::add_follow_up(&mut study, &follow, &label, &report);
        pb.finish_and_clear();
        let t = added.context("adding the follow-up study")?;
        println!(
            "follow-up {label} aligned: rotation {:.1} deg, translation ({:.1}, {:.1}, {:.1}) mm",
            t.rotation_deg(),
            t.translation_mm[0],
            t.translation_mm[1],
            t.translation_mm[2]
        );
        // the visit as opened, so the viewer's Follow-up panel can compare, use the
        // visit's own mask and re-resample once when the user nudges the alignment
        visits.push(app::follow_up::VisitSource { follow, label, transform: t });
    }
    app::run_with_visits(study, visits).map_err(|e| anyhow::anyhow!("the viewer could not start: {e}"))
}
