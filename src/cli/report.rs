//! `hepaview report`: open the study, bring its phases onto the mask's grid, measure every
//! lesion in every phase (and cluster the liver if asked) and write report.html,
//! lesions.csv and report.json. All the work is in `hepaview::study::analysis` and
//! `hepaview::report`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use hepaview::lesion::LesionOptions;
use hepaview::report::{self, ReportFiles, ReportInput};
use hepaview::study::analysis::{self, ClusterRecipe};

use super::analysis::{aligned, alignment_note, load_mask};
use super::common::open_study;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder or NIfTI files of one study.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Label mask (NIfTI): liver 1, tumour 2; default the label file opened with a NIfTI study.
    #[arg(long, alias = "masks")]
    pub mask: Option<PathBuf>,
    /// Mask label of tumours.
    #[arg(long, default_value_t = 2)]
    pub lesion_label: u8,
    /// Mask labels of liver, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub liver_labels: Vec<u8>,
    /// Leave out lesions smaller than this (mL).
    #[arg(long, default_value_t = 0.05)]
    pub min_volume_ml: f64,
    /// Also cluster the liver with this many clusters and add them to the report.
    #[arg(long)]
    pub clusters: Option<usize>,
    /// The phases are registered already: resample only.
    #[arg(long)]
    pub no_register: bool,
    /// Output folder (created if missing; existing files are never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { paths, mask, lesion_label, liver_labels, min_volume_ml, clusters, no_register, out, phase_overrides } =
        a;
    let lesion = LesionOptions { lesion_label, liver_labels, min_volume_ml, ..Default::default() };
    report(ReportArgs {
        paths: &paths,
        overrides: &phase_overrides,
        mask: mask.as_deref(),
        lesion,
        clusters,
        no_register,
        out: &out,
    })
}

pub struct ReportArgs<'a> {
    pub paths: &'a [PathBuf],
    pub overrides: &'a [String],
    pub mask: Option<&'a Path>,
    pub lesion: LesionOptions,
    /// Also cluster the liver with this k and put the clusters in the report.
    pub clusters: Option<usize>,
    pub no_register: bool,
    pub out: &'a Path,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let files = ReportFiles::in_dir(a.out);
    for p in [&files.json, &files.csv, &files.html] {
        if hepaview::io::taken(p) {
            bail!("{} already exists; choose another --out folder (Hepaview never overwrites files)", p.display());
        }
    }
    let study = open_study(a.paths, a.overrides)?;
    let (mask, mask_source) = load_mask(&study, a.mask)?;
    let phases = aligned(&study, &mask, a.no_register)?;
    let lesions = analysis::measure_lesions(&phases, &mask, &a.lesion)?;
    let clusters = match a.clusters {
        Some(k) => {
            let recipe = ClusterRecipe { k, ..Default::default() };
            Some(analysis::cluster_phases(&phases, &mask, &recipe, &|_, _| true)?.report)
        }
        None => None,
    };
    let input = ReportInput {
        title: study.title.clone(),
        phases: &phases,
        mask: &mask,
        mask_source,
        lesions: &lesions,
        clusters: clusters.as_ref(),
        notes: vec![alignment_note(&phases)],
    };
    let files = report::write_report(&input, a.out)?;
    for l in &lesions.lesions {
        println!(
            "lesion {}: {:.2} mL, RECIST {:.1} x {:.1} mm{}, hint: {}",
            l.id,
            l.volume_ml,
            l.recist.long_axis_mm,
            l.recist.short_axis_mm,
            if l.touches_edge { " (touches the scan edge)" } else { "" },
            l.pattern.summary
        );
    }
    if lesions.lesions.is_empty() {
        println!("no lesion (label {}) in the mask", a.lesion.lesion_label);
    }
    println!(
        "Written {}, {}, {} in {:.1} s",
        files.html.display(),
        files.csv.display(),
        files.json.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
