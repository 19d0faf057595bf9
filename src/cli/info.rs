//! `hepaview info`: the studies and series under a DICOM folder (phase, size, spacing,
//! encoding, problems), or a NIfTI file's grid; as a table or JSON.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use hepaview::io::dicom::{self, DicomScan, SeriesInfo};
use hepaview::io::nifti;
use hepaview::io::phase::{detect_study_phases_sampled, Phase, PhaseCall};

use super::common::{is_nifti, parse_overrides, scan_with_bar};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder (searched recursively) or file, or a NIfTI file.
    pub path: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Set a series' phase by hand: SERIES=PHASE (series as numbered by `info`), e.g. 2=arterial. Repeatable.
    #[arg(long = "phase", value_name = "SERIES=PHASE")]
    pub phase_overrides: Vec<String>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    info(&a.path, a.json, &a.phase_overrides)
}

/// Phase calls for every series of every study, in scan order, with overrides applied.
pub fn phases_for(scan: &DicomScan, overrides: &[(usize, Phase)]) -> Vec<PhaseCall> {
    // headers, and two dozen slices of a series whose tags do not name its phase
    let mut out: Vec<PhaseCall> = scan.studies.iter().flat_map(|s| detect_study_phases_sampled(s, Some(24))).collect();
    for &(i, p) in overrides {
        if let Some(c) = out.get_mut(i) {
            *c = PhaseCall { phase: p, confidence: 1.0, reason: "set by the user".into() };
        }
    }
    out
}

fn info(path: &Path, json: bool, raw_overrides: &[String]) -> Result<()> {
    if is_nifti(path) {
        let (geometry, warnings) = nifti::read_geometry(path)?;
        let g = &geometry;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "path": path, "geometry": g, "warnings": warnings })
                )?
            );
        } else {
            println!(
                "{}: NIfTI {}×{}×{} voxels, spacing {:.3}×{:.3}×{:.3} mm (x×y×z), origin LPS {:?}",
                path.display(),
                g.shape[2],
                g.shape[1],
                g.shape[0],
                g.spacing_mm[2],
                g.spacing_mm[1],
                g.spacing_mm[0],
                g.origin_mm
            );
            for w in warnings {
                println!("  ! {w}");
            }
        }
        return Ok(());
    }
    let overrides = parse_overrides(raw_overrides)?;
    let scan = scan_with_bar(path)?;
    let n_series = scan.all_series().count();
    if let Some((i, _)) = overrides.iter().find(|(i, _)| *i >= n_series) {
        bail!("--phase {i}=…: there are only {n_series} series (numbered from 0)");
    }
    let phases = phases_for(&scan, &overrides);
    if json {
        let series: Vec<_> = scan
            .all_series()
            .zip(&phases)
            .enumerate()
            .map(|(i, (s, p))| serde_json::json!({ "index": i, "series": series_summary(s), "phase": p }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "root": scan.root, "files_seen": scan.files_seen, "series": series, "warnings": scan.warnings })
            )?
        );
        return Ok(());
    }
    println!("{}: {} files, {} studies, {} series", scan.root.display(), scan.files_seen, scan.studies.len(), n_series);
    let mut idx = 0;
    for study in &scan.studies {
        println!();
        println!(
            "Study {}  patient {:?} ({})  date {}  {}",
            study.study_uid, study.patient_name, study.patient_id, study.study_date, study.description
        );
        println!(
            "  {:>3} {:>4}  {:<28} {:<22} {:>13}  {:<22} encoding",
            "#", "ser", "description", "phase (confidence)", "size x·y·z", "spacing mm"
        );
        for s in &study.series {
            let p = &phases[idx];
            let g = &s.geometry;
            let ts: Vec<&str> = s.transfer_syntaxes.iter().map(|t| dicom::transfer_syntax_name(t).0).collect();
            println!(
                "  {:>3} {:>4}  {:<28} {:<22} {:>13}  {:<22} {}",
                idx,
                s.series_number.map(|n| n.to_string()).unwrap_or_default(),
                short_description(s),
                format!("{} ({:.0}%)", p.phase, p.confidence * 100.0),
                format!("{}×{}×{}", g.shape[2], g.shape[1], g.shape[0]),
                format!("{:.3}×{:.3}×{:.3}", g.spacing_mm[2], g.spacing_mm[1], g.spacing_mm[0]),
                ts.join(", ")
            );
            println!("        phase: {}", p.reason);
            for w in &s.warnings {
                println!("        ! {w}");
            }
            idx += 1;
        }
    }
    if !scan.warnings.is_empty() {
        println!();
        println!("Files skipped ({}):", scan.warnings.len());
        for w in &scan.warnings {
            println!("  ! {w}");
        }
    }
    Ok(())
}

fn series_summary(s: &SeriesInfo) -> serde_json::Value {
    serde_json::json!({
        "series_uid": s.series_uid,
        "series_number": s.series_number,
        "description": s.description,
        "modality": s.modality,
        "acquisition_time": s.acquisition_time,
        "contrast_agent": s.contrast_agent,
        "transfer_syntaxes": s.transfer_syntaxes,
        "geometry": s.geometry,
        "slices": s.frames.len(),
        "resampled": s.resampled,
        "warnings": s.warnings,
        "set_aside": s.set_aside,
    })
}

/// The description in the table's 28 characters; one acquisition of a series split by
/// AcquisitionNumber keeps its "[acq N]" however long the series' words are.
fn short_description(s: &dicom::SeriesInfo) -> String {
    const WIDTH: usize = 28;
    match s.acquisition {
        Some(a) => {
            let tail = format!(" [acq {a}]");
            let base = s.description.trim_end_matches(&format!(" [acquisition {a}]"));
            format!("{}{tail}", truncate(base, WIDTH.saturating_sub(tail.chars().count()).max(2)))
        }
        None => truncate(&s.description, WIDTH),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}
