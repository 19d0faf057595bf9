//! The command line: parse with clap, turn arguments into library calls, print.
//! No algorithm lives here. Each command has its own file with its arguments (`Args`)
//! and its `run`; this file lists the commands and dispatches.

mod analysis;
mod cluster;
mod common;
mod compare;
mod convert;
mod demo;
mod info;
mod mask_convert;
mod mesh;
mod open;
mod outline;
mod register;
mod report;
mod screenshot;
mod segment;
mod train;
mod train_tumours;

use anyhow::Result;
use clap::{Parser, Subcommand};

use hepaview::app;
use hepaview::phantom;
use hepaview::study::Study;

#[derive(Parser, Debug)]
#[command(
    name = "hepaview",
    version,
    about = "Liver CT viewer with on-device AI assist. With no command: open the viewer on the demo study."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open a study in the viewer: a DICOM folder, or NIfTI files (phases; a file named
    /// like a mask/labels/seg becomes the label overlay).
    Open(open::Args),
    /// List the studies and series under a DICOM folder (or a NIfTI file): phase, size, spacing, problems.
    Info(info::Args),
    /// Convert one series of a DICOM folder to NIfTI.
    Convert(convert::Args),
    /// Render the viewer off-screen to a PNG (same drawing code as the window).
    Screenshot(screenshot::Args),
    /// Register phases onto the fixed one (Demons) and write the warped phases, the
    /// displacement fields (NIfTI vectors, LPS mm, ITK convention) and a JSON report.
    Register(register::Args),
    /// Cluster the liver voxels by their HU in every phase (k-means) and write the
    /// cluster label volume (NIfTI, on the mask's grid) and a JSON legend beside it.
    Cluster(cluster::Args),
    /// Measure every lesion of a mask in every phase and write a report: report.html
    /// (key images, enhancement curves, table), lesions.csv and report.json.
    Report(report::Args),
    /// Outline the lesion under a click in 3-D from every phase (registered onto the portal
    /// venous phase first) and print its measurements as JSON; a click on a vessel, outside
    /// the liver or on its edge is refused with what it found (non-zero exit).
    Outline(outline::Args),
    /// Surfaces of a label mask (liver, each tumour, vessels) as STL and/or OBJ in LPS or
    /// RAS mm, one file per object, plus objects.json with volumes, areas and bounds.
    Mesh(mesh::Args),
    /// Compare a follow-up study with a baseline: align the visits, pair the lesions,
    /// split them into viable / necrotic / lipiodol parts, RECIST 1.1 and mRECIST; writes
    /// compare.html, lesions.csv, compare.json and the parts masks.
    Compare(compare::Args),
    /// Convert a label mask between NIfTI and DICOM SEG (either direction; by extension) on
    /// the grid of the DICOM study it belongs to. Never overwrites.
    MaskConvert(mask_convert::Args),
    /// Segment liver and tumours with the U-Net (on this machine, CPU): labels 1 liver,
    /// 2 tumour on the portal venous grid. Never overwrites.
    Segment(segment::Args),
    /// Train the segmentation U-Net from NIfTI image/label pairs and/or synthetic phantom cases.
    Train(train::Args),
    /// Train the cascade's tumour stage (1.5 mm, inside the liver's box) on real livers
    /// with realistic synthetic lesions implanted.
    TrainTumours(train_tumours::Args),
    /// Write the built-in tri-phase demo study (DICOM + labels + true fields) to a folder.
    Demo(demo::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            eprintln!("Building the demo study…");
            let study = Study::demo(&phantom::PhantomOptions::default());
            app::run(study).map_err(|e| anyhow::anyhow!("the viewer could not start: {e}"))
        }
        Some(Command::Open(a)) => open::run(a),
        Some(Command::Screenshot(a)) => screenshot::run(a),
        Some(Command::Info(a)) => info::run(a),
        Some(Command::Convert(a)) => convert::run(a),
        Some(Command::Register(a)) => register::run(a),
        Some(Command::Cluster(a)) => cluster::run(a),
        Some(Command::Report(a)) => report::run(a),
        Some(Command::Outline(a)) => outline::run(a),
        Some(Command::Mesh(a)) => mesh::run(a),
        Some(Command::Compare(a)) => compare::run(a),
        Some(Command::MaskConvert(a)) => mask_convert::run(a),
        Some(Command::Segment(a)) => segment::run(a),
        Some(Command::Train(a)) => train::run(a),
        Some(Command::TrainTumours(a)) => train_tumours::run(a),
        Some(Command::Demo(a)) => demo::run(a),
    }
}
