//! The command line: parse with clap, turn arguments into library calls, print.
//! No algorithm lives here.

mod analysis;
mod demo;
mod mask;
mod outline;
mod segment;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use hepaview::app;
use hepaview::app::screenshot::ScreenshotOptions;
use hepaview::app::view::{Layout, WindowLevel};
use hepaview::io::dicom::{self, DicomScan, SeriesInfo};
use hepaview::io::nifti;
use hepaview::io::phase::{detect_study_phases_sampled, Phase, PhaseCall};
use hepaview::phantom;
use hepaview::register::{self, LevelPlan, Params as RegisterParams};
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

/// `screenshot --layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LayoutArg {
    /// Phases side by side, axial.
    Row,
    /// Phases × axial, coronal, sagittal.
    Grid,
    /// One view.
    Single,
}

/// `screenshot --window`: the viewer's window/level presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum WindowArg {
    Liver,
    Abdomen,
    Bone,
    Lung,
}

/// `register --fixed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FixedArg {
    #[value(name = "non_contrast", alias = "non-contrast")]
    NonContrast,
    Arterial,
    #[value(name = "portal_venous", alias = "portal-venous")]
    PortalVenous,
    Delayed,
}

/// `register --variant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum VariantArg {
    /// Thirion's forces from the fixed image's gradient, additive update.
    Thirion,
    /// Symmetric (ESM) forces, additive update (ITK's FastSymmetricForces).
    Symmetric,
    /// Symmetric forces, update composed through its exponential: the field stays invertible.
    Diffeomorphic,
}

/// `mesh --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MeshFormatArg {
    /// One binary STL per object.
    Stl,
    /// One OBJ with a group per object.
    Obj,
    Both,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open a study in the viewer: a DICOM folder, or NIfTI files (phases; a file named
    /// like a mask/labels/seg becomes the label overlay).
    Open {
        /// A DICOM folder (searched recursively), or NIfTI files: the phases, and a label
        /// mask named like mask/labels/seg.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Set a phase by hand: N=PHASE (phases numbered in display order from 0), e.g. 0=arterial. Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
        /// A follow-up study of the same patient (DICOM folder or NIfTI files), aligned to
        /// this one and shown beside each phase. Repeat for more visits.
        #[arg(long = "follow-up", num_args = 1..)]
        follow_up: Vec<PathBuf>,
    },
    /// List the studies and series under a DICOM folder (or a NIfTI file): phase, size, spacing, problems.
    Info {
        /// A DICOM folder (searched recursively) or file, or a NIfTI file.
        path: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Set a series' phase by hand: SERIES=PHASE (series as numbered by `info`), e.g. 2=arterial. Repeatable.
        #[arg(long = "phase", value_name = "SERIES=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Convert one series of a DICOM folder to NIfTI.
    Convert {
        /// A DICOM folder (searched recursively) holding the series, or one DICOM file.
        path: PathBuf,
        /// Series number as listed by `hepaview info` (from 0); needed when the folder has several.
        #[arg(long)]
        series: Option<usize>,
        /// Output file (.nii or .nii.gz); never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Write a series of one slice too. A single slice is almost always a mistake (one
        /// file of a series given instead of its folder), so without this it is refused.
        #[arg(long)]
        allow_single_slice: bool,
    },
    /// Render the viewer off-screen to a PNG (same drawing code as the window).
    Screenshot {
        /// A DICOM folder or NIfTI files; the demo study when none.
        paths: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// How the phases are laid out.
        #[arg(long, value_enum, default_value_t = LayoutArg::Row)]
        layout: LayoutArg,
        /// Axial slice position (LPS z, mm); default the middle of the portal venous phase.
        #[arg(long)]
        slice_mm: Option<f64>,
        /// Window preset (default: each phase's own).
        #[arg(long, value_enum)]
        window: Option<WindowArg>,
        /// Size in pixels, WIDTHxHEIGHT.
        #[arg(long, default_value = "1600x900")]
        size: String,
    },
    /// Register phases onto the fixed one (Demons) and write the warped phases, the
    /// displacement fields (NIfTI vectors, LPS mm, ITK convention) and a JSON report.
    Register {
        /// A DICOM folder or NIfTI files of one study.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Phase the others are moved onto.
        #[arg(long, value_enum, default_value_t = FixedArg::PortalVenous)]
        fixed: FixedArg,
        /// Phases to register, comma-separated (default: every other phase).
        #[arg(long, value_delimiter = ',')]
        moving: Vec<String>,
        /// Demons variant.
        #[arg(long, value_enum, default_value_t = VariantArg::Diffeomorphic)]
        variant: VariantArg,
        /// Gaussian σ (mm) smoothing the field every iteration (instead of the default 3 voxels of each level).
        #[arg(long, conflicts_with = "sigma_vox")]
        sigma_mm: Option<f64>,
        /// Gaussian σ smoothing the field every iteration, in voxels of each pyramid level (default 3).
        #[arg(long)]
        sigma_vox: Option<f64>,
        /// Gaussian σ (mm) smoothing each update (fluid); 0 = off.
        #[arg(long)]
        fluid_sigma_mm: Option<f64>,
        /// Pyramid, coarse to fine, as FACTOR:ITERATIONS,… (factor × the finest voxel size), e.g. 4:50,2:25,1:10.
        #[arg(long)]
        levels: Option<String>,
        /// Skip the global translation by phase correlation.
        #[arg(long)]
        no_prealign: bool,
        /// Stop a level once its mean squared difference fell by less than this fraction over 5 iterations (0 = run every iteration).
        #[arg(long)]
        stop_relative: Option<f32>,
        /// Largest step per iteration, voxels.
        #[arg(long)]
        max_step_vox: Option<f32>,
        /// Quantiles matched between the phases' histograms (0 = no matching).
        #[arg(long)]
        histogram_points: Option<usize>,
        /// A mask on the fixed grid (NIfTI; non-zero = inside) where forces act and metrics are taken.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Also write each registered phase as a DICOM series (new UIDs, same patient and
        /// study, the fixed series' frame of reference) under OUT/dicom/. DICOM input only.
        #[arg(long)]
        dicom: bool,
        /// A label mask drawn on a moving phase, carried onto the fixed grid through that
        /// phase's field: PHASE=MASK.nii.gz (e.g. arterial=lesions_art.nii.gz). Repeatable.
        #[arg(long = "warp-mask", value_name = "PHASE=MASK")]
        warp_masks: Vec<String>,
        /// How --warp-mask resamples: linear (label-wise: each label's indicator
        /// interpolated, the strongest wins; smooth boundaries) or nearest.
        #[arg(long, default_value = "linear", value_parser = ["linear", "nearest"])]
        mask_interp: String,
        /// Write the displacement fields on a grid of this spacing (mm, each axis; an axis
        /// already coarser keeps its own) instead of the fixed phase's voxels: e.g. 4 makes
        /// them 30–60× smaller. Warped phases and masks still use the full field.
        #[arg(long, value_name = "S")]
        field_spacing_mm: Option<f64>,
        /// Output folder, new (or empty): written whole or not at all, through a temporary
        /// folder beside it that is renamed when done; never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Cluster the liver voxels by their HU in every phase (k-means) and write the
    /// cluster label volume (NIfTI, on the mask's grid) and a JSON legend beside it.
    Cluster {
        /// A DICOM folder or NIfTI files of one study.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Label mask (NIfTI) whose labels --labels make up the region; default the label file opened with a NIfTI study.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Number of clusters.
        #[arg(long, default_value_t = hepaview::cluster::DEFAULT_K)]
        k: usize,
        /// Mask labels to cluster, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        labels: Vec<u8>,
        /// Grow the region by this many mm (takes in the liver edge).
        #[arg(long, default_value_t = 0.0)]
        margin_mm: f64,
        /// Iterations of a 3×3×3 majority filter on the clusters (0 = off).
        #[arg(long, default_value_t = 0)]
        majority: usize,
        /// Seed of the k-means++ start (same seed, same result).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The phases are registered already (e.g. written by `hepaview register`): resample only.
        #[arg(long)]
        no_register: bool,
        /// Output label volume (.nii.gz); the legend goes to the same name with .json.
        #[arg(long)]
        out: PathBuf,
        /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Measure every lesion of a mask in every phase and write a report: report.html
    /// (key images, enhancement curves, table), lesions.csv and report.json.
    Report {
        /// A DICOM folder or NIfTI files of one study.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Label mask (NIfTI): liver 1, tumour 2; default the label file opened with a NIfTI study.
        #[arg(long, alias = "masks")]
        mask: Option<PathBuf>,
        /// Mask label of tumours.
        #[arg(long, default_value_t = 2)]
        lesion_label: u8,
        /// Mask labels of liver, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        liver_labels: Vec<u8>,
        /// Leave out lesions smaller than this (mL).
        #[arg(long, default_value_t = 0.05)]
        min_volume_ml: f64,
        /// Also cluster the liver with this many clusters and add them to the report.
        #[arg(long)]
        clusters: Option<usize>,
        /// The phases are registered already: resample only.
        #[arg(long)]
        no_register: bool,
        /// Output folder (created if missing; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Outline the lesion under a click in 3-D from every phase (registered onto the portal
    /// venous phase first) and print its measurements as JSON; a click on a vessel, outside
    /// the liver or on its edge is refused with what it found (non-zero exit).
    Outline {
        /// A DICOM folder or NIfTI files of one study.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// A point on the lesion, X,Y,Z in LPS mm. Repeatable: each adds a part.
        #[arg(long = "at", value_name = "X,Y,Z", required_unless_present = "box_corners", value_parser = outline::parse_point, allow_hyphen_values = true)]
        at: Vec<[f64; 3]>,
        /// A box drawn around the lesion on one slice: two opposite corners X0,Y0,Z0,X1,Y1,Z1
        /// in LPS mm. Its centre is the click when no --at is given; the outline stays inside it.
        #[arg(long = "box", value_name = "X0,Y0,Z0,X1,Y1,Z1", value_parser = outline::parse_box, allow_hyphen_values = true)]
        box_corners: Option<[[f64; 3]; 2]>,
        /// A point that is not lesion (removes the part holding it). Repeatable.
        #[arg(long, value_name = "X,Y,Z", value_parser = outline::parse_point, allow_hyphen_values = true)]
        exclude: Vec<[f64; 3]>,
        /// Liver mask (NIfTI, non-zero = liver); default the label file opened with a NIfTI
        /// study, else none (liver statistics from around the click).
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Half-size of the working box around the clicks in mm (default 40).
        #[arg(long)]
        box_mm: Option<f64>,
        /// The phases are registered already: resample only.
        #[arg(long)]
        no_register: bool,
        /// Output lesion mask (.nii.gz or .nii; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
        #[arg(long = "phase", value_name = "N=PHASE")]
        phase_overrides: Vec<String>,
    },
    /// Surfaces of a label mask (liver, each tumour, vessels) as STL and/or OBJ in LPS or
    /// RAS mm, one file per object, plus objects.json with volumes, areas and bounds.
    Mesh {
        /// Label mask (NIfTI): liver 1, tumour 2, vessels 3.
        mask: PathBuf,
        /// Output folder (created if missing; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Surface file format.
        #[arg(long, value_enum, default_value_t = MeshFormatArg::Both)]
        format: MeshFormatArg,
        /// Write RAS coordinates (3D Slicer, NIfTI tools) instead of LPS (DICOM).
        #[arg(long)]
        ras: bool,
        /// Leave out tumours smaller than this (mL).
        #[arg(long, default_value_t = 0.05)]
        min_tumour_ml: f64,
        /// Triangle budget of the liver surface (decimated to it).
        #[arg(long, default_value_t = 300_000)]
        max_triangles_liver: usize,
    },
    /// Compare a follow-up study with a baseline: align the visits, pair the lesions,
    /// split them into viable / necrotic / lipiodol parts, RECIST 1.1 and mRECIST; writes
    /// compare.html, lesions.csv, compare.json and the parts masks.
    Compare {
        /// The baseline study (a DICOM folder, or NIfTI files).
        #[arg(long, required = true, num_args = 1..)]
        baseline: Vec<PathBuf>,
        /// The follow-up study.
        #[arg(long, required = true, num_args = 1..)]
        followup: Vec<PathBuf>,
        /// Label mask of the baseline (liver 1, tumour 2), on its grid. Without one, the
        /// shipped U-Net outlines liver and tumours (written beside the report; check it).
        #[arg(long)]
        baseline_mask: Option<PathBuf>,
        /// Label mask of the follow-up (without one: the U-Net, as for the baseline).
        #[arg(long)]
        followup_mask: Option<PathBuf>,
        /// The phases within each visit are registered already: resample only.
        #[arg(long)]
        no_register: bool,
        /// Output folder (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert a label mask between NIfTI and DICOM SEG (either direction; by extension) on
    /// the grid of the DICOM study it belongs to. Never overwrites.
    MaskConvert {
        /// The mask to convert (.nii / .nii.gz, or a DICOM SEG).
        mask: PathBuf,
        /// The DICOM folder of the study the mask belongs to.
        #[arg(long)]
        study: PathBuf,
        /// Output: .nii.gz or .dcm.
        #[arg(long)]
        out: PathBuf,
        /// Resample a mask on another grid onto the series (nearest neighbour).
        #[arg(long)]
        resample: bool,
        /// Series number as `hepaview info` lists them (default: the one the mask fits or the SEG references).
        #[arg(long)]
        series: Option<usize>,
    },
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
    Demo {
        #[arg(long)]
        out: PathBuf,
        /// A small, fast version (for tests).
        #[arg(long)]
        small: bool,
        /// The follow-up visit of the same patient after TACE (moved on the table, HCC
        /// treated, hemangioma gone, a new HCC); adds parts.nii.gz and follow_up_truth.json.
        #[arg(long)]
        follow_up: bool,
        /// Instead of the phantom: a real study (DICOM folder or NIfTI phases). A lesion is
        /// implanted deep in its liver, and a follow-up is simulated from it (lesion treated:
        /// shrunk to a lipiodol core, necrosis and a viable rim; patient moved by a known
        /// rigid transform). Writes baseline/, followup/ (DICOM when the source is DICOM),
        /// their masks, followup/parts.nii.gz and truth.json.
        #[arg(long = "from-study", num_args = 1.., conflicts_with_all = ["small", "follow_up"])]
        from_study: Vec<PathBuf>,
        /// With --from-study: a phase's true displacement onto the portal venous phase
        /// (ITK convention), so the lesion sits at the same anatomy in that phase, e.g.
        /// arterial=true_field_arterial.nii.gz. Repeatable.
        #[arg(long = "true-field", value_name = "PHASE=FILE", requires = "from_study")]
        true_field: Vec<String>,
        /// With --from-study: a point in the liver parenchyma (LPS mm, X,Y,Z) to grow the
        /// liver from; without it the U-Net finds one.
        #[arg(long = "liver-seed", value_name = "X,Y,Z", requires = "from_study", allow_hyphen_values = true)]
        liver_seed: Option<String>,
        /// With --from-study: the follow-up lesion's size over the baseline's.
        #[arg(long, default_value_t = 0.65, requires = "from_study")]
        shrink: f64,
    },
}

fn bar(total: usize, what: &str) -> ProgressBar {
    // Stay quiet on small jobs and when stderr is not a terminal (scripts, CI logs).
    if total < 200 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            eprintln!("Building the demo study…");
            let study = Study::demo(&phantom::PhantomOptions::default());
            app::run(study).map_err(|e| anyhow::anyhow!("the viewer could not start: {e}"))
        }
        Some(Command::Open { paths, phase_overrides, follow_up }) => {
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
                let added = hepaview::analysis::add_follow_up(&mut study, &follow, &label, &report);
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
        Some(Command::Screenshot { paths, out, layout, slice_mm, window, size }) => {
            if out.exists() {
                bail!("{} already exists; choose another output name (Hepaview never overwrites files)", out.display());
            }
            let layout = match layout {
                LayoutArg::Row => Layout::Row,
                LayoutArg::Grid => Layout::Grid,
                LayoutArg::Single => Layout::Single,
            };
            let window = match window {
                None => None,
                Some(w) => {
                    let name = w.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
                    Some(
                        WindowLevel::PRESETS
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, wl)| *wl)
                            .with_context(|| format!("--window {name}: no such preset"))?,
                    )
                }
            };
            let (w, h) = size
                .split_once('x')
                .with_context(|| format!("--size {size:?}: expected WIDTHxHEIGHT, e.g. 1600x900"))?;
            let size = [w.parse::<f32>().context("--size width")?, h.parse::<f32>().context("--size height")?];
            let study =
                if paths.is_empty() { Study::demo(&phantom::PhantomOptions::default()) } else { Study::open(&paths)? };
            let opts = ScreenshotOptions { size, layout, z_mm: slice_mm, window, ..Default::default() };
            let img = app::screenshot::render(study, &opts)
                .map_err(|e| anyhow::anyhow!("off-screen rendering failed: {e}"))?;
            img.save(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("{} ({}×{})", out.display(), img.width(), img.height());
            Ok(())
        }
        Some(Command::Info { path, json, phase_overrides }) => info(&path, json, &phase_overrides),
        Some(Command::Convert { path, series, out, allow_single_slice }) => {
            convert(&path, series, &out, allow_single_slice)
        }
        Some(Command::Register {
            paths,
            fixed,
            moving,
            variant,
            sigma_mm,
            sigma_vox,
            fluid_sigma_mm,
            levels,
            no_prealign,
            stop_relative,
            max_step_vox,
            histogram_points,
            mask,
            dicom,
            warp_masks,
            mask_interp,
            field_spacing_mm,
            out,
            phase_overrides,
        }) => {
            let mut params = RegisterParams {
                variant: match variant {
                    VariantArg::Thirion => hepaview::register::Variant::Thirion,
                    VariantArg::Symmetric => hepaview::register::Variant::Symmetric,
                    VariantArg::Diffeomorphic => hepaview::register::Variant::Diffeomorphic,
                },
                prealign: !no_prealign,
                ..RegisterParams::default()
            };
            if let Some(s) = sigma_mm {
                params.sigma_diffusion_mm = s;
                params.sigma_diffusion_vox = None;
            }
            if sigma_vox.is_some() {
                params.sigma_diffusion_vox = sigma_vox;
            }
            if let Some(s) = fluid_sigma_mm {
                params.sigma_fluid_mm = s;
            }
            if let Some(l) = levels {
                params.levels = parse_levels(&l)?;
            }
            if let Some(x) = stop_relative {
                params.stop_relative = x;
            }
            if let Some(x) = max_step_vox {
                params.max_step_vox = x;
            }
            if let Some(x) = histogram_points {
                params.histogram_points = x;
            }
            params.validate()?;
            if let Some(s) = field_spacing_mm.filter(|s| !(s.is_finite() && *s > 0.0 && *s <= 100.0)) {
                bail!("--field-spacing-mm {s}: give a spacing in millimetres above 0 and at most 100 (e.g. 4)");
            }
            let extra = RegisterOutputs {
                dicom,
                warp_masks: parse_warp_masks(&warp_masks)?,
                label_linear: mask_interp == "linear",
                field_spacing_mm,
            };
            register_cmd(&paths, fixed, &moving, &params, mask.as_deref(), &extra, &out, &phase_overrides)
        }
        Some(Command::Cluster {
            paths,
            mask,
            k,
            labels,
            margin_mm,
            majority,
            seed,
            no_register,
            out,
            phase_overrides,
        }) => {
            let recipe = hepaview::analysis::ClusterRecipe {
                k,
                mask_labels: labels,
                margin_mm,
                majority_iterations: majority,
                seed,
            };
            analysis::cluster(analysis::ClusterArgs {
                paths: &paths,
                overrides: &phase_overrides,
                mask: mask.as_deref(),
                recipe,
                no_register,
                out: &out,
            })
        }
        Some(Command::Report {
            paths,
            mask,
            lesion_label,
            liver_labels,
            min_volume_ml,
            clusters,
            no_register,
            out,
            phase_overrides,
        }) => {
            let lesion =
                hepaview::lesion::LesionOptions { lesion_label, liver_labels, min_volume_ml, ..Default::default() };
            analysis::report(analysis::ReportArgs {
                paths: &paths,
                overrides: &phase_overrides,
                mask: mask.as_deref(),
                lesion,
                clusters,
                no_register,
                out: &out,
            })
        }
        Some(Command::Outline { paths, at, box_corners, exclude, mask, box_mm, no_register, out, phase_overrides }) => {
            outline::outline_cmd(outline::OutlineArgs {
                paths: &paths,
                overrides: &phase_overrides,
                at: &at,
                box_corners,
                exclude: &exclude,
                mask: mask.as_deref(),
                box_half_mm: box_mm,
                no_register,
                out: &out,
            })
        }
        Some(Command::Mesh { mask, out, format, ras, min_tumour_ml, max_triangles_liver }) => {
            mesh_cmd(&mask, &out, format, ras, min_tumour_ml, max_triangles_liver)
        }
        Some(Command::Compare { baseline, followup, baseline_mask, followup_mask, no_register, out }) => {
            analysis::compare(analysis::CompareArgs {
                baseline: &baseline,
                followup: &followup,
                baseline_mask: baseline_mask.as_deref(),
                followup_mask: followup_mask.as_deref(),
                no_register,
                out: &out,
            })
        }
        Some(Command::MaskConvert { mask, study, out, resample: false, series: None }) => {
            mask::mask_convert(&mask, &study, &out)
        }
        Some(Command::MaskConvert { mask, study, out, resample, series }) => {
            mask::mask_convert_with(&mask, &study, &out, &mask::MaskConvertOptions { resample, series }).map(|_| ())
        }
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
        Some(Command::Demo { out, from_study, true_field, liver_seed, shrink, .. }) if !from_study.is_empty() => {
            demo::demo_from_study(demo::FromStudyArgs {
                paths: from_study,
                true_fields: true_field,
                liver_seed,
                shrink,
                out,
            })
        }
        Some(Command::Demo { out, small, follow_up, .. }) => {
            let opts = if small { phantom::PhantomOptions::small() } else { phantom::PhantomOptions::default() };
            let opts = if follow_up { opts.follow_up() } else { opts };
            let pb = progress_bar_1000();
            // the phantom is made in one call: the ticking clock shows it is working
            pb.enable_steady_tick(Duration::from_millis(250));
            let report = |f: f32, m: &str| {
                pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
                pb.set_message(m.to_string());
            };
            let written = phantom::write_demo_study_with_progress(&out, &opts, &report);
            pb.finish_and_clear();
            written.with_context(|| format!("writing the demo study to {}", out.display()))?;
            println!("Demo study written to {}", out.display());
            Ok(())
        }
    }
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

fn parse_levels(raw: &str) -> Result<Vec<LevelPlan>> {
    raw.split(',')
        .map(|l| {
            let (f, n) =
                l.split_once(':').with_context(|| format!("--levels: {l:?} should be FACTOR:ITERATIONS, e.g. 4:50"))?;
            Ok(LevelPlan {
                factor: f.trim().parse().with_context(|| format!("--levels: {f:?} is not a number"))?,
                iterations: n
                    .trim()
                    .parse()
                    .with_context(|| format!("--levels: {n:?} is not a whole number of iterations"))?,
            })
        })
        .collect()
}

pub(crate) fn progress_bar_1000() -> ProgressBar {
    let pb = ProgressBar::new(1000);
    pb.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {percent}% ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb
}

pub(crate) fn open_study(paths: &[PathBuf], raw_overrides: &[String]) -> Result<Study> {
    let overrides = parse_overrides(raw_overrides)?;
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let opened = Study::open_with_progress(paths, &report);
    pb.finish_and_clear();
    let mut study = opened?;
    for w in &study.warnings {
        eprintln!("! {w}");
    }
    for (i, p) in overrides {
        if i >= study.phases.len() {
            bail!("--phase {i}=…: the study has {} phases (numbered from 0)", study.phases.len());
        }
        study.set_phase(i, p);
    }
    study.sort_phases();
    Ok(study)
}

/// What `register` writes besides the NIfTI phases, fields and report.
struct RegisterOutputs {
    dicom: bool,
    /// Masks on moving phases' grids to carry onto the fixed grid.
    warp_masks: Vec<(Phase, PathBuf)>,
    /// Label-wise linear (else nearest) mask resampling.
    label_linear: bool,
    /// Write the fields on a grid this coarse (mm) instead of the fixed grid.
    field_spacing_mm: Option<f64>,
}

/// The temporary folder `register` writes into, beside `out`: `.NAME.partial-PID`, renamed
/// to `out` once every file is written, so `out` is either whole or absent. Dropped before
/// that (an error), it is removed; a killed run leaves it, and the next run removes it.
struct PartialDir {
    path: PathBuf,
    done: bool,
}

impl PartialDir {
    fn prefix(out: &Path) -> String {
        format!(".{}.partial-", out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    }

    /// Removes the partial folders that runs no longer alive left beside `out` (a
    /// process id still running may be another run writing there: left alone), then
    /// makes this run's.
    fn create(out: &Path) -> Result<PartialDir> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = Self::prefix(out);
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
                if pid == std::process::id() || hepaview::io::process_alive(pid) {
                    continue;
                }
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => println!("Removed {}, left by an interrupted run", e.path().display()),
                    Err(err) => eprintln!(
                        "! {}: left by an interrupted run and could not be removed ({err}); delete it by hand",
                        e.path().display()
                    ),
                }
            }
        }
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let path = parent.join(format!("{prefix}{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).with_context(|| format!("removing the stale {}", path.display()))?;
        }
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PartialDir { path, done: false })
    }

    /// Moves the finished folder to `out` (an empty folder there is replaced; anything
    /// else that appeared meanwhile is never overwritten: the results stay where they are
    /// and the error says where).
    fn finish(mut self, out: &Path) -> Result<()> {
        if out.is_dir() && std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false) {
            let _ = std::fs::remove_dir(out);
        }
        if out.exists() {
            self.done = true; // keep the results
            bail!(
                "{} appeared while registering and Hepaview never overwrites; the results are in {} (rename that folder yourself)",
                out.display(),
                self.path.display()
            );
        }
        std::fs::rename(&self.path, out)
            .with_context(|| format!("renaming {} to {}", self.path.display(), out.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What `dir` holds with sizes in bytes, sorted: each file directly in it, and each
/// folder below (e.g. `dicom/arterial_registered/`, one slice a file) as one entry with
/// the total of its files and how many there are.
fn output_sizes(dir: &Path) -> Vec<(String, u64, usize)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, usize)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        let folder = rel.components().map(|c| c.as_os_str().to_string_lossy() + "/").collect::<String>();
        let (mut bytes, mut count) = (0u64, 0usize);
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(root, &e.path(), out),
                Ok(m) if folder.is_empty() => out.push((e.file_name().to_string_lossy().into_owned(), m.len(), 1)),
                Ok(m) => {
                    bytes += m.len();
                    count += 1;
                }
                Err(_) => {}
            }
        }
        if count > 0 {
            out.push((folder, bytes, count));
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Bytes for people: `812 B`, `4.1 kB`, `23.4 MB`.
fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1e3 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

fn parse_warp_masks(raw: &[String]) -> Result<Vec<(Phase, PathBuf)>> {
    raw.iter()
        .map(|s| {
            let (p, path) = s
                .split_once('=')
                .with_context(|| format!("--warp-mask {s:?}: expected PHASE=MASK, e.g. arterial=lesions.nii.gz"))?;
            let phase: Phase = p.trim().parse().map_err(anyhow::Error::msg)?;
            Ok((phase, PathBuf::from(path)))
        })
        .collect()
}

/// The DICOM series each phase was loaded from (matched by description and grid), for
/// writing derived series; errs when the study is not DICOM.
pub(crate) fn source_series(paths: &[PathBuf], study: &Study) -> Result<Vec<Option<SeriesInfo>>> {
    let root = paths.first().context("no input")?;
    if is_nifti(root) {
        bail!("--dicom needs a DICOM study: NIfTI input carries no patient or study identity to copy into new series (write NIfTI only, or register the DICOM folder)");
    }
    let scan = dicom::scan(root, &dicom::no_progress)
        .with_context(|| format!("reading the DICOM headers under {}", root.display()))?;
    Ok(study
        .phases
        .iter()
        .map(|p| scan.all_series().find(|s| s.description == p.description && s.geometry == p.volume.geometry).cloned())
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn register_cmd(
    paths: &[PathBuf],
    fixed: FixedArg,
    moving: &[String],
    params: &RegisterParams,
    mask: Option<&Path>,
    extra: &RegisterOutputs,
    out: &Path,
    overrides: &[String],
) -> Result<()> {
    let t0 = std::time::Instant::now();
    let study = open_study(paths, overrides)?;
    let fixed_phase = match fixed {
        FixedArg::NonContrast => Phase::NonContrast,
        FixedArg::Arterial => Phase::Arterial,
        FixedArg::PortalVenous => Phase::PortalVenous,
        FixedArg::Delayed => Phase::Delayed,
    };
    let find = |p: Phase| study.phases.iter().position(|x| x.phase() == p);
    let fi = find(fixed_phase).with_context(|| {
        let have: Vec<_> = study.phases.iter().map(|p| p.phase().slug()).collect();
        format!(
            "the study has no {} phase (it has: {}); choose --fixed or set phases with --phase N=PHASE",
            fixed_phase.slug(),
            have.join(", ")
        )
    })?;
    let moving_idx: Vec<usize> = if moving.is_empty() {
        (0..study.phases.len()).filter(|&i| i != fi).collect()
    } else {
        moving
            .iter()
            .map(|m| {
                let p: Phase = m.parse().map_err(anyhow::Error::msg)?;
                find(p).with_context(|| format!("--moving {m}: the study has no such phase"))
            })
            .collect::<Result<_>>()?
    };
    if moving_idx.is_empty() {
        bail!("nothing to register: the study has only the fixed phase");
    }
    let mask = match mask {
        Some(p) => Some(nifti::read_mask(p)?.0),
        None => None,
    };
    let fixed_img = &study.phases[fi];
    let slug = |i: usize| study.phases[i].phase().slug();
    // masks to carry: read now, so a bad file fails before the long work
    let mut moving_masks = Vec::new();
    for (phase, path) in &extra.warp_masks {
        let i = moving_idx.iter().copied().find(|&i| study.phases[i].phase() == *phase).with_context(|| {
            format!(
                "--warp-mask {}={}: {} is not among the phases being registered",
                phase.slug(),
                path.display(),
                phase.slug()
            )
        })?;
        let (m, _) = nifti::read_mask(path).with_context(|| format!("reading the mask {}", path.display()))?;
        let grid = &study.phases[i].volume.geometry;
        let d = m.geometry.max_corner_distance_mm(grid);
        if m.geometry.shape != grid.shape || d > 0.5 {
            let apart =
                if m.geometry.shape == grid.shape { format!(", corners {d:.1} mm apart") } else { String::new() };
            bail!(
                "--warp-mask {}: the mask's grid ({:?} voxels) is not the {} phase's ({:?} voxels{apart}); give a mask drawn on that phase",
                path.display(),
                m.geometry.shape,
                phase.slug(),
                grid.shape,
            );
        }
        moving_masks.push((i, m));
    }
    let series = if extra.dicom { Some(source_series(paths, &study)?) } else { None };
    if let Some(series) = &series {
        for &i in moving_idx.iter().chain([&fi]) {
            if series[i].is_none() {
                bail!(
                    "--dicom: could not find the DICOM series of the {} phase ({:?}) again under {}",
                    slug(i),
                    study.phases[i].description,
                    paths[0].display()
                );
            }
        }
    }
    // The output checked first, so hours of work are not lost to a name clash at the end;
    // an empty folder (made by the user for it) is fine.
    if out.exists() && !(out.is_dir() && std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false)) {
        bail!(
            "{} already exists; choose another --out folder (Hepaview never overwrites files or writes into a full folder)",
            out.display()
        );
    }
    let partial = PartialDir::create(out)?;
    let final_out = out;
    let out = partial.path.as_path();
    nifti::write_volume(&fixed_img.volume, &out.join(format!("{}.nii.gz", slug(fi))))?;

    let mut reports = Vec::new();
    for &i in &moving_idx {
        let pb = progress_bar_1000();
        let what = format!("{} → {}", slug(i), slug(fi));
        let report = |f: f32, m: &str| {
            pb.set_position((f * 1000.0) as u64);
            pb.set_message(format!("{what}: {m}"));
            true
        };
        let reg = register::register_ct(&fixed_img.volume, &study.phases[i].volume, mask.as_ref(), params, &report)
            .with_context(|| format!("registering {} onto {}", slug(i), slug(fi)))?;
        pb.finish_and_clear();
        let r = &reg.report;
        println!(
            "{what}: RMSD {:.1} → {:.1} HU, NCC {:.3} → {:.3}, min Jacobian {:.3} ({} folded voxels), max displacement {:.1} mm, {:.1} s",
            r.rmsd_before_hu, r.rmsd_after_hu, r.ncc_before, r.ncc_after, r.folding.min_jacobian, r.folding.folded_voxels, r.max_displacement_mm, r.seconds
        );
        nifti::write_volume(&reg.warped, &out.join(format!("{}_registered.nii.gz", slug(i))))?;
        let field_grid = match extra.field_spacing_mm {
            Some(s) => register::warp::coarser_grid(&reg.field.geometry, s),
            None => reg.field.geometry.clone(),
        };
        nifti::write_field(
            &register::resample_field(&reg.field, &field_grid),
            &out.join(format!("field_{}.nii.gz", slug(i))),
        )?;
        let mut entry = serde_json::json!({
            "moving": slug(i),
            "moving_series": study.phases[i].description,
            "field": format!("field_{}.nii.gz", slug(i)),
            "field_spacing_mm": [field_grid.spacing_mm[2], field_grid.spacing_mm[1], field_grid.spacing_mm[0]],
            "field_shape": [field_grid.shape[2], field_grid.shape[1], field_grid.shape[0]],
            "warped": format!("{}_registered.nii.gz", slug(i)),
            "report": r,
        });
        if let Some(series) = &series {
            let (src, fixed_src) =
                (series[i].as_ref().context("source series")?, series[fi].as_ref().context("fixed series")?);
            // same inputs and settings give the same UIDs; any change gives new ones
            let seed = format!("hepaview-register/{}/{}/{params:?}", src.series_uid, fixed_src.series_uid);
            // the fixed phase stays out of the name: phase detection reads descriptions
            let description = format!("{} registered", study.phases[i].description);
            let number = 1000 + src.series_number.unwrap_or(i as i64).clamp(0, 1_000_000) as u32;
            let meta = hepaview::io::dicom_write::derived_meta(
                src,
                &fixed_src.frame_of_reference,
                &description,
                number,
                &seed,
            )?;
            let dir = out.join("dicom").join(format!("{}_registered", slug(i)));
            let files = hepaview::io::dicom_write::write_ct_series(&reg.warped, &meta, &dir)?;
            entry["dicom"] = serde_json::json!({ "folder": format!("dicom/{}_registered", slug(i)), "files": files.len(), "series_uid": meta.series_uid });
        }
        for (_, m) in moving_masks.iter().filter(|(mi, _)| *mi == i) {
            let warped = if extra.label_linear {
                register::warp::warp_labels_linear(m, &reg.field)
            } else {
                register::warp::warp_volume(m, &reg.field, hepaview::volume::Interp::Nearest, 0u8)
            };
            let name = format!("{}_mask_registered.nii.gz", slug(i));
            nifti::write_volume(&warped, &out.join(&name))?;
            entry["mask"] = serde_json::json!({ "file": name, "interpolation": if extra.label_linear { "label-wise linear" } else { "nearest" } });
        }
        reports.push(entry);
    }
    // every file but the report itself, with its size (the report's own is printed)
    let files = output_sizes(out);
    let json = serde_json::json!({
        "fixed": slug(fi),
        "fixed_series": fixed_img.description,
        "convention": match extra.field_spacing_mm {
            None => "moving(x + u(x)) = fixed(x); u in LPS mm on the fixed grid (ITK)",
            Some(_) => "moving(x + u(x)) = fixed(x); u in LPS mm, written on a coarser grid over the fixed one (ITK; resample it trilinearly onto the fixed grid)",
        },
        "phases": reports,
        "files": files.iter().map(|(f, n, c)| serde_json::json!({ "file": f, "bytes": n, "files": c })).collect::<Vec<_>>(),
        "total_seconds": t0.elapsed().as_secs_f64(),
    });
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", out.join("report.json").display()))?;
    partial.finish(final_out)?;
    println!("Written to {} in {:.1} s:", final_out.display(), t0.elapsed().as_secs_f64());
    for (f, n, c) in output_sizes(final_out) {
        let count = if c > 1 { format!(" in {c} files") } else { String::new() };
        println!("  {f:<40} {:>10}{count}", human_size(n));
    }
    Ok(())
}

pub(crate) fn is_nifti(p: &Path) -> bool {
    let s = p.to_string_lossy().to_lowercase();
    s.ends_with(".nii") || s.ends_with(".nii.gz")
}

/// An `--out` NIfTI file name: ends in .nii or .nii.gz and nothing is there yet.
pub(crate) fn new_nifti_out(out: &Path) -> Result<()> {
    if !is_nifti(out) {
        bail!("--out {}: give a NIfTI file name ending in .nii.gz or .nii", out.display());
    }
    if std::fs::symlink_metadata(out).is_ok() {
        bail!("{} already exists; choose another --out name (Hepaview never overwrites files)", out.display());
    }
    Ok(())
}

fn scan_with_bar(path: &Path) -> Result<DicomScan> {
    let pb = std::sync::Mutex::new(None::<ProgressBar>);
    let progress = |done: usize, total: usize| {
        if let Ok(mut g) = pb.lock() {
            let b = g.get_or_insert_with(|| bar(total, "reading headers"));
            b.set_position(done as u64);
        }
        true
    };
    let scan = dicom::scan(path, &progress);
    if let Ok(mut g) = pb.lock() {
        if let Some(b) = g.take() {
            b.finish_and_clear();
        }
    }
    Ok(scan?)
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

fn parse_overrides(raw: &[String]) -> Result<Vec<(usize, Phase)>> {
    raw.iter()
        .map(|s| {
            let (n, p) =
                s.split_once('=').with_context(|| format!("--phase {s:?}: expected SERIES=PHASE, e.g. 2=arterial"))?;
            let n: usize = n.trim().parse().with_context(|| format!("--phase {s:?}: {n:?} is not a series number"))?;
            let p: Phase = p.parse().map_err(anyhow::Error::msg)?;
            Ok((n, p))
        })
        .collect()
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
                truncate(&s.description, 28),
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

fn convert(path: &Path, series: Option<usize>, out: &Path, allow_single_slice: bool) -> Result<()> {
    if out.exists() {
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
