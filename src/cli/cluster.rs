//! `hepaview cluster`: open the study, bring its phases onto the mask's grid, cluster the
//! region's voxels by their HU in every phase (k-means) and write the label volume and its
//! JSON legend. All the work is in `hepaview::study::analysis`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::study::analysis::{self, ClusterRecipe};

use super::analysis::{aligned, alignment_note, load_mask};
use super::common::{open_study, progress_bar_1000};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder or NIfTI files of one study.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Label mask (NIfTI) whose labels --labels make up the region; default the label file opened with a NIfTI study.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Number of clusters.
    #[arg(long, default_value_t = hepaview::cluster::DEFAULT_K)]
    pub k: usize,
    /// Mask labels to cluster, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub labels: Vec<u8>,
    /// Grow the region by this many mm (takes in the liver edge).
    #[arg(long, default_value_t = 0.0)]
    pub margin_mm: f64,
    /// Iterations of a 3×3×3 majority filter on the clusters (0 = off).
    #[arg(long, default_value_t = 0)]
    pub majority: usize,
    /// Seed of the k-means++ start (same seed, same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The phases are registered already (e.g. written by `hepaview register`): resample only.
    #[arg(long)]
    pub no_register: bool,
    /// Output label volume (.nii.gz); the legend goes to the same name with .json.
    #[arg(long)]
    pub out: PathBuf,
    /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { paths, mask, k, labels, margin_mm, majority, seed, no_register, out, phase_overrides } = a;
    let recipe = ClusterRecipe { k, mask_labels: labels, margin_mm, majority_iterations: majority, seed };
    cluster(ClusterArgs {
        paths: &paths,
        overrides: &phase_overrides,
        mask: mask.as_deref(),
        recipe,
        no_register,
        out: &out,
    })
}

pub struct ClusterArgs<'a> {
    pub paths: &'a [PathBuf],
    pub overrides: &'a [String],
    pub mask: Option<&'a Path>,
    pub recipe: ClusterRecipe,
    pub no_register: bool,
    pub out: &'a Path,
}

pub fn cluster(a: ClusterArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    super::common::new_nifti_out(a.out)?;
    let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let json_path = a.out.with_file_name(format!("{}.json", name.trim_end_matches(".gz").trim_end_matches(".nii")));
    for p in [a.out, json_path.as_path()] {
        if hepaview::io::taken(p) {
            bail!("{} already exists; choose another --out name (Hepaview never overwrites files)", p.display());
        }
    }
    let study = open_study(a.paths, a.overrides)?;
    let (mask, mask_source) = load_mask(&study, a.mask)?;
    let phases = aligned(&study, &mask, a.no_register)?;
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(format!("k-means: {m}"));
        true
    };
    let clustering = analysis::cluster_phases(&phases, &mask, &a.recipe, &report);
    pb.finish_and_clear();
    let c = clustering?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    nifti::write_volume(&c.labels, a.out)?;
    let json = serde_json::json!({
        "mask": mask_source,
        "recipe": a.recipe,
        "phases": phases.iter().map(|p| serde_json::json!({"phase": p.phase.slug(), "series": p.description, "registered": p.registered})).collect::<Vec<_>>(),
        "note": alignment_note(&phases),
        "clusters": c.report,
    });
    hepaview::io::write_new_file(&json_path, serde_json::to_string_pretty(&json)?.as_bytes())
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!(
        "cluster  {}  voxels    volume mL",
        c.report.feature_names.iter().map(|n| format!("{n:>14}")).collect::<String>()
    );
    for s in &c.report.clusters {
        println!(
            "{:>7}  {}  {:>7}  {:>10.1}",
            s.label,
            s.mean.iter().map(|m| format!("{:>11.0} HU", m)).collect::<String>(),
            s.voxel_count,
            s.volume_ml
        );
    }
    println!(
        "k-means: {} iterations{}, inertia {:.4e}; written {} and {} in {:.1} s",
        c.report.iterations,
        if c.report.converged { "" } else { " (stopped at the limit)" },
        c.report.inertia,
        a.out.display(),
        json_path.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
