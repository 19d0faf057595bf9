//! `hepaview mesh`: the surfaces of a label mask as STL and/or OBJ, and objects.json.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use hepaview::io::nifti;

/// `mesh --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MeshFormatArg {
    /// One binary STL per object.
    Stl,
    /// One OBJ with a group per object.
    Obj,
    Both,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Label mask (NIfTI): liver 1, tumour 2, vessels 3.
    pub mask: PathBuf,
    /// Output folder (created if missing; existing files are never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Surface file format.
    #[arg(long, value_enum, default_value_t = MeshFormatArg::Both)]
    pub format: MeshFormatArg,
    /// Write RAS coordinates (3D Slicer, NIfTI tools) instead of LPS (DICOM).
    #[arg(long)]
    pub ras: bool,
    /// Leave out tumours smaller than this (mL).
    #[arg(long, default_value_t = 0.05)]
    pub min_tumour_ml: f64,
    /// Triangle budget of the liver surface (decimated to it).
    #[arg(long, default_value_t = 300_000)]
    pub max_triangles_liver: usize,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { mask, out, format, ras, min_tumour_ml, max_triangles_liver } = a;
    mesh_cmd(&mask, &out, format, ras, min_tumour_ml, max_triangles_liver)
}

fn mesh_cmd(
    mask: &Path,
    out: &Path,
    format: MeshFormatArg,
    ras: bool,
    min_tumour_ml: f64,
    max_triangles_liver: usize,
) -> Result<()> {
    use hepaview::mesh::{export, MeshOptions};
    let t0 = std::time::Instant::now();
    let format = match format {
        MeshFormatArg::Stl => export::Format::Stl,
        MeshFormatArg::Obj => export::Format::Obj,
        MeshFormatArg::Both => export::Format::Both,
    };
    let frame = if ras { export::Frame::Ras } else { export::Frame::Lps };
    let (m, warnings) = nifti::read_mask(mask).with_context(|| format!("reading the mask {}", mask.display()))?;
    for w in warnings {
        eprintln!("! {w}");
    }
    let opts = MeshOptions { min_tumour_ml, max_triangles_liver, ..MeshOptions::default() };
    let summary = export::export_objects(&m, &opts, out, format, frame)?;
    for o in &summary.objects {
        println!(
            "{:<12} {:>9.2} mL mesh, {:>9.2} mL voxels ({:+.1} %), {:>7} triangles{}",
            o.name,
            o.mesh_volume_ml,
            o.voxel_volume_ml,
            (o.mesh_over_voxel_volume - 1.0) * 100.0,
            o.triangles,
            if o.closed { "" } else { ", NOT closed" }
        );
    }
    println!("{} files written to {} in {:.1} s", summary.files.len(), out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}
