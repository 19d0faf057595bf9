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

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use hepaview::app;
use hepaview::phantom;
use hepaview::study::Study;

// the commands not yet in files of their own reach these here
pub(crate) use common::{new_nifti_out, open_study, progress_bar_1000};

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
    Segment {
        /// A DICOM folder, or NIfTI volumes (phases named by file name).
        paths: Vec<PathBuf>,
        /// Output mask (.nii or .nii.gz).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Weights file (default models/unet.safetensors).
        #[arg(long)]
        model: Option<PathBuf>,
        /// A reference mask (NIfTI with LiTS labels, or a DICOM SEG of the study): print liver and tumour Dice against it.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Segment the built-in phantom with this noise seed instead of a study, and print Dice against its labels.
        #[arg(long)]
        phantom_seed: Option<u64>,
        /// With --phantom-seed: the small 64 × 64 × 24 phantom.
        #[arg(long)]
        phantom_small: bool,
        /// Use the portal venous phase only (the others left out, as for a single-phase study).
        #[arg(long)]
        pv_only: bool,
        /// Keep the network's liver and tumour edges as they are (no refinement to the
        /// study's own parenchyma at full resolution).
        #[arg(long)]
        no_refine: bool,
        /// Take the phases as they are: no quick registration onto the portal venous
        /// phase first (for phases already registered, e.g. by `hepaview register`)
        #[arg(long)]
        no_register: bool,
        /// Only the network's lesions: no search for round patches of liver, 10 mm or
        /// more, that differ from its parenchyma and that the network left as liver
        #[arg(long)]
        no_lesion_search: bool,
        /// Set a phase by hand: N=PHASE, as for `open`. Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Train the segmentation U-Net from NIfTI image/label pairs and/or synthetic phantom cases.
    Train {
        /// Folder of NIfTI pairs (X.nii.gz + X_seg.nii.gz, or LiTS names with --lits).
        #[arg(long)]
        data: Option<PathBuf>,
        /// LiTS layout: volume-N.nii / segmentation-N.nii.
        #[arg(long)]
        lits: bool,
        /// Weights file to write (best validation checkpoint).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 100)]
        steps_per_epoch: usize,
        /// Synthetic phantom cases to add (half own contrast, half random per-label intensities).
        #[arg(long, default_value_t = 24)]
        synthetic: usize,
        /// Channels per U-Net level.
        #[arg(long, default_value = "8,16,32,64")]
        features: String,
        /// In-plane pixel size of the model, mm.
        #[arg(long, default_value_t = 4.0)]
        spacing_mm: f64,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Side of the square training patches, pixels.
        #[arg(long, default_value_t = 96)]
        patch: usize,
        /// Stop after this many minutes, keeping the best checkpoint.
        #[arg(long)]
        minutes: Option<f64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A real CT and its organ label map, `CT.nii.gz,LABELS.nii.gz` (TotalSegmentator's
        /// multilabel output, say): cases are synthesised from it (real CT, per-organ HU
        /// offsets, per-organ random means), each with random tumours. Repeatable.
        #[arg(long = "label-map", value_name = "CT,LABELS")]
        label_maps: Vec<String>,
        /// Classes of --label-map that are liver (comma-separated; 5 is liver in
        /// TotalSegmentator v2's "total" task).
        #[arg(long, default_value = "5")]
        liver_class: String,
        /// Cases synthesised per --label-map.
        #[arg(long, default_value_t = 12)]
        label_map_cases: usize,
        /// Replace --out if it exists.
        #[arg(long)]
        force: bool,
        /// Start from these weights instead of random ones: fine-tune a model (the shipped
        /// `models/unet.safetensors`, say) on your own cases. The network is the file's, so
        /// --features and --spacing-mm do not apply.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Peak learning rate of AdamW (cosine decay to a tenth after a short warm-up);
        /// about 5e-4 suits fine-tuning.
        #[arg(long, default_value_t = 2e-3)]
        learning_rate: f64,
        /// Fraction (0–1) of synthetic cases given liver mimics: heart-, stomach- and
        /// bowel-like structures with liver-like or blood-pool intensity against the liver,
        /// labelled background.
        #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
        mimics: f32,
        /// Make a quarter of the synthetic tumours large (25–45 mm radius) and give
        /// arterial-enhancing ones a mottled interior.
        #[arg(long)]
        large_tumours: bool,
        /// Replace the synthetic tumours with realistic lesions: HCC (capsule, necrosis,
        /// mosaic, satellites), metastases (target rim), cysts, haemangiomas (filling in),
        /// lipiodol-treated and infiltrative lesions; 2.5–60 mm, lobulated, textured, with
        /// blurred edges, per-phase enhancement and mass effect.
        #[arg(long)]
        realistic_tumours: bool,
        /// Fraction (0–1) of samples that keep a random subset of their phases, each in its
        /// own channel (arterial alone, delayed alone, arterial + delayed, …). Above 0 the
        /// weights are marked as trained for any phase protocol, and `segment` feeds a
        /// study's phases as they are.
        #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
        phase_subsets: f32,
    },
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
        Some(Command::Segment {
            paths,
            out,
            model,
            truth,
            phantom_seed,
            phantom_small,
            pv_only,
            no_refine,
            no_register,
            no_lesion_search,
            phase_overrides,
        }) => segment::segment_cmd(segment::SegmentArgs {
            paths,
            out,
            model,
            truth,
            phantom_seed,
            phantom_small,
            pv_only,
            no_refine,
            no_register,
            no_lesion_search,
            phase_overrides,
        }),
        Some(Command::Train {
            data,
            lits,
            out,
            epochs,
            steps_per_epoch,
            synthetic,
            features,
            spacing_mm,
            batch,
            patch,
            minutes,
            seed,
            label_maps,
            liver_class,
            label_map_cases,
            force,
            init,
            learning_rate,
            mimics,
            large_tumours,
            realistic_tumours,
            phase_subsets,
        }) => {
            if !(0.0..=1.0).contains(&mimics) {
                return Err(anyhow::anyhow!("--mimics {mimics}: give a fraction of cases from 0 to 1"));
            }
            if !(0.0..=1.0).contains(&phase_subsets) {
                return Err(anyhow::anyhow!("--phase-subsets {phase_subsets}: give a fraction of samples from 0 to 1"));
            }
            let recipe = hepaview::segment::synth::SynthRecipe { mimics, large_tumours, realistic_tumours };
            segment::train_cmd(segment::TrainArgs {
                data,
                lits,
                out,
                epochs,
                steps_per_epoch,
                synthetic,
                features,
                spacing_mm,
                batch,
                patch,
                minutes,
                seed,
                label_maps,
                liver_class,
                label_map_cases,
                force,
                init,
                learning_rate,
                recipe,
                phase_subsets,
            })
        }
        Some(Command::Demo(a)) => demo::run(a),
    }
}
