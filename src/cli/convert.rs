//! `hepaview convert`: one series of a DICOM folder to NIfTI.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use indicatif::ProgressBar;

use hepaview::io::dicom::{self, SeriesInfo};
use hepaview::io::nifti;

use super::common::{bar, is_nifti, scan_with_bar};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder (searched recursively) holding the series, or one DICOM file.
    pub path: PathBuf,
    /// Series number as listed by `hepaview info` (from 0); needed when the folder has several.
    #[arg(long)]
    pub series: Option<usize>,
    /// Output file (.nii or .nii.gz); never overwritten.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a series of one slice too. A single slice is almost always a mistake (one
    /// file of a series given instead of its folder), so without this it is refused.
    #[arg(long)]
    pub allow_single_slice: bool,
}

pub(crate) fn run(a: Args) -> Result<()> {
    convert(&a.path, a.series, &a.out, a.allow_single_slice)
}

fn convert(path: &Path, series: Option<usize>, out: &Path, allow_single_slice: bool) -> Result<()> {
    if hepaview::io::taken(out) {
        bail!("{} already exists; choose another output name (Hepaview never overwrites files)", out.display());
    }
    if !is_nifti(out) {
        bail!("{}: the output must end in .nii or .nii.gz", out.display());
    }
    let scan = scan_with_bar(path)?;
    let all: Vec<&SeriesInfo> = scan.all_series().collect();
    let chosen = match (series, all.len()) {
        (Some(i), n) if i < n => all[i],
        (None, 1) => all[0],
        (Some(i), n) => {
            bail!("series {i} asked for, but {} has {n} series (numbered from 0; see `hepaview info`)", path.display())
        }
        (None, n) => bail!("{} has {n} series; choose one with --series N (see `hepaview info`)", path.display()),
    };
    if chosen.geometry.shape[0] < 2 && !allow_single_slice {
        bail!(
            "{}: series {:?} has a single slice; a volume is converted from the folder that holds all its files \
             (`hepaview convert FOLDER`). To write this one slice anyway, add --allow-single-slice",
            path.display(),
            chosen.description
        );
    }
    let pb = std::sync::Mutex::new(None::<ProgressBar>);
    let progress = |done: usize, total: usize| {
        if let Ok(mut g) = pb.lock() {
            g.get_or_insert_with(|| bar(total * 2, "decoding slices")).set_position(done as u64 * 2);
        }
        true
    };
    let (vol, warnings) = dicom::load_series(chosen, &progress)?;
    if let Ok(mut g) = pb.lock() {
        if let Some(b) = g.take() {
            b.finish_and_clear();
        }
    }
    for w in &warnings {
        eprintln!("! {w}");
    }
    nifti::write_volume(&vol, out)?;
    let g = &vol.geometry;
    println!("{} → {} ({}×{}×{} voxels)", chosen.description, out.display(), g.shape[2], g.shape[1], g.shape[0]);
    Ok(())
}
