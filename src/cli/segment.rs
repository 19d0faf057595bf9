//! `hepaview segment`: the U-Net on a study (or the phantom, for measuring), written as a
//! label mask and scored against a truth mask when given. All the work is in
//! `hepaview::segment`; here only arguments, progress bars and files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::phantom::{make_phantom, PhantomOptions};
use hepaview::segment::{self, InferOptions};
use hepaview::study::Study;

use super::common::{new_nifti_out, open_study, progress_bar_1000};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder, or NIfTI volumes (phases named by file name).
    pub paths: Vec<PathBuf>,
    /// Output mask (.nii or .nii.gz).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Weights file (default models/unet.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A reference mask (NIfTI with LiTS labels, or a DICOM SEG of the study): print liver and tumour Dice against it.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Segment the built-in phantom with this noise seed instead of a study, and print Dice against its labels.
    #[arg(long)]
    pub phantom_seed: Option<u64>,
    /// With --phantom-seed: the small 64 × 64 × 24 phantom.
    #[arg(long)]
    pub phantom_small: bool,
    /// Use the portal venous phase only (the others left out, as for a single-phase study).
    #[arg(long)]
    pub pv_only: bool,
    /// Keep the network's liver and tumour edges as they are (no refinement to the
    /// study's own parenchyma at full resolution, no completion of the liver's dome and
    /// tip from the slices beside them).
    #[arg(long)]
    pub no_refine: bool,
    /// Take the phases as they are: no quick registration onto the portal venous
    /// phase first (for phases already registered, e.g. by `hepaview register`)
    #[arg(long)]
    pub no_register: bool,
    /// Only the network's lesions: no search for round patches of liver, 10 mm or
    /// more, that differ from its parenchyma and that the network left as liver (the
    /// search runs only where the tumour stage's tumours were not checked by the outline)
    #[arg(long)]
    pub no_lesion_search: bool,
    /// Tumour-stage weights (default models/tumours.safetensors, when it is there): the
    /// cascade's second network, which outlines tumours inside the liver at 1.5 mm.
    #[arg(long, conflicts_with = "no_tumour_stage")]
    pub tumour_model: Option<PathBuf>,
    /// How the tumour stage's tumours meet the first network's: replace them, or keep both.
    #[arg(long, value_enum, default_value_t = segment::tumour_stage::TumourMerge::Replace)]
    pub tumour_merge: segment::tumour_stage::TumourMerge,
    /// The tumour stage's probability (0-1) from which a voxel is tumour: higher gives
    /// fewer false lesions and misses more.
    #[arg(long, default_value_t = segment::tumour_stage::TUMOUR_THRESHOLD)]
    pub tumour_threshold: f32,
    /// The first network's tumours only (at 4 mm, edges refined): no tumour stage.
    #[arg(long)]
    pub no_tumour_stage: bool,
    /// Keep the tumour stage's tumours as it draws them: do not check and redraw each one
    /// with the one-click outline from the study's own HU.
    #[arg(long)]
    pub no_confirm_tumours: bool,
    /// Set a phase by hand: N=PHASE, as for `open`. Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
}

/// Segments a study (or a phantom, for measuring) and writes the mask; with a truth mask
/// prints liver and tumour Dice.
pub(crate) fn run(a: Args) -> Result<()> {
    match &a.out {
        Some(out) => new_nifti_out(out)?,
        // a run of many seconds whose result goes nowhere is a mistake, said before it starts;
        // measuring against a reference (--truth, the phantom) needs no file
        None if a.truth.is_none() && a.phantom_seed.is_none() => bail!(
            "give --out MASK.nii.gz (where to write the mask), or --truth REFERENCE to only measure it against a reference"
        ),
        None => {}
    }
    let model_path = a.model.clone().unwrap_or_else(segment::default_model_path);
    let model = segment::load_unet(&model_path)?;
    let (mut study, mut truth, lesions) = match a.phantom_seed {
        Some(seed) => {
            let base = if a.phantom_small { PhantomOptions::small() } else { PhantomOptions::default() };
            let opts = PhantomOptions { seed, ..base };
            let p = make_phantom(&opts);
            let mut s = Study::demo(&opts);
            s.labels = None;
            (s, Some(p.labels), p.lesions)
        }
        None => {
            if a.paths.is_empty() {
                bail!("give a study to segment (a DICOM folder or NIfTI files), or --phantom-seed N");
            }
            (open_study(&a.paths, &a.phase_overrides)?, None, Vec::new())
        }
    };
    if a.pv_only {
        study.phases.retain(|p| p.phase() == hepaview::io::phase::Phase::PortalVenous);
        if study.phases.is_empty() {
            bail!("--pv-only: the study has no phase named portal venous");
        }
    }
    let names: Vec<_> = study.phases.iter().map(|p| p.phase().as_str().to_string()).collect();
    eprintln!(
        "Model {} (U-Net {:?}, {} mm pixels); phases: {}",
        model_path.display(),
        model.config.features,
        model.config.spacing_mm,
        names.join(", ")
    );
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let t0 = Instant::now();
    let opts = InferOptions {
        refine_edges: !a.no_refine,
        register: !a.no_register,
        search_lesions: !a.no_lesion_search,
        tumour_merge: a.tumour_merge,
        tumour_threshold: a.tumour_threshold,
        confirm_tumours: !a.no_confirm_tumours,
        ..InferOptions::default()
    };
    if !(0.0..=1.0).contains(&a.tumour_threshold) {
        bail!("--tumour-threshold {}: give a probability from 0 to 1", a.tumour_threshold);
    }
    let opts = match (&a.tumour_model, a.no_tumour_stage) {
        (_, true) => InferOptions { tumour_model: None, ..opts },
        (Some(path), _) => InferOptions { tumour_model: Some(path.clone()), ..opts },
        (None, false) => opts,
    };
    if let Some(stage) = &opts.tumour_model {
        let grid = &study.phases[study.fixed_index()].volume.geometry;
        if segment::tumour_stage::suits(grid) {
            eprintln!("Tumour stage {}", stage.display());
        } else {
            eprintln!(
                "Tumour stage left out: the study's pixels ({:.1} mm) are coarser than {} mm; the first network's tumours are kept",
                grid.spacing_mm[1].max(grid.spacing_mm[2]),
                segment::tumour_stage::MAX_STUDY_PIXEL_MM
            );
        }
    }
    let result = hepaview::study::segment_phases_live(&model, &study, &opts, &report, None);
    pb.finish_and_clear();
    let segment::Segmentation { mask, searched, check, confirmed, completed, .. } = result?;
    let secs = t0.elapsed().as_secs_f64();
    let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let count = |l: u8| mask.data.iter().filter(|&&v| v == l).count() as f64 * voxel_ml;
    println!(
        "Segmented in {secs:.2} s: liver {:.1} mL, tumour {:.1} mL (grid {:?})",
        count(1) + count(2),
        count(2),
        mask.geometry.shape
    );
    if let Some(c) = &confirmed {
        let mut dropped: Vec<&str> = c.dropped.iter().map(|f| f.as_str()).collect();
        dropped.sort_unstable();
        dropped.dedup();
        println!(
            "Tumour stage checked by outline: {} redrawn, {} kept as drawn, {} turned back into liver{}",
            c.redrawn,
            c.kept,
            c.dropped.len(),
            if dropped.is_empty() { String::new() } else { format!(" (the click found {})", dropped.join(", ")) }
        );
        if c.surface_fluid > 0 {
            let ml = c.surface_fluid_voxels as f64 * voxel_ml;
            println!(
                "  {} proposal(s) outlined fluid on the liver's surface (the gallbladder, or bowel): {ml:.1} mL taken out of the liver",
                c.surface_fluid
            );
        }
    }
    if let Some(c) = completed.filter(|c| c.added > 0) {
        println!(
            "Liver completed at its dome and tip from the slices beside them: {:.1} mL added (`--no-refine` keeps the network's liver as drawn)",
            c.added as f64 * voxel_ml
        );
    }
    for (voxels, c) in searched.iter().flat_map(|r| &r.added) {
        println!(
            "  added by the lesion search, not the network: {:.1} mL at [{:.0}, {:.0}, {:.0}] mm (LPS); check it",
            *voxels as f64 * voxel_ml,
            c[0],
            c[1],
            c[2]
        );
    }
    if let Some(t) = &a.truth {
        truth = Some(read_truth(t, &mask.geometry)?);
    }
    if let Some(t) = truth {
        let t = if t.geometry.shape == mask.geometry.shape {
            t
        } else {
            t.resample_to(&mask.geometry, hepaview::volume::Interp::Nearest, 0)
        };
        let tumour = if t.data.iter().any(|&v| v == 2) {
            format!("{:.4}", segment::dice(&mask, &t, 2))
        } else {
            "n/a (the truth has no tumour)".into()
        };
        println!("Dice vs truth: liver (1+2) {:.4}, tumour (2) {tumour}", segment::dice_liver(&mask, &t));
        print_lesion_score(&segment::score::score_lesions(&mask, &t));
    }
    // Detection per known lesion (phantom): found when any tumour voxel lies within its radius.
    for l in &lesions {
        let g = &mask.geometry;
        let mut hit = 0usize;
        for ((k, j, i), &v) in mask.data.indexed_iter() {
            if v == 2 {
                let p = g.index_to_world([i as f64, j as f64, k as f64]);
                let d2: f64 = (0..3).map(|c| (p[c] - l.centre_mm[c]).powi(2)).sum();
                hit += (d2 <= l.radius_mm * l.radius_mm) as usize;
            }
        }
        println!(
            "lesion {:?} Ø {:.0} mm: {} ({hit} tumour voxels inside its sphere)",
            l.kind,
            2.0 * l.radius_mm,
            if hit > 0 { "found" } else { "MISSED" }
        );
    }
    for c in &check.concerns {
        eprintln!("! {c}");
    }
    if check.concerns.contains(&segment::Concern::NoLiver) {
        bail!("no liver found; nothing written. Check that the liver is in the scan, or outline it with the viewer's tools");
    }
    match &a.out {
        Some(out) => {
            nifti::write_volume(&mask, out).with_context(|| format!("writing {}", out.display()))?;
            println!("Wrote {}", out.display());
        }
        None => eprintln!("(no --out given: the mask was not written)"),
    }
    if !check.is_plausible() {
        bail!(
            "the segmentation does not look like a liver (see the lines marked !){}; check it and correct it in the viewer",
            if a.out.is_some() { "; the mask was written so it can be checked" } else { "" }
        );
    }
    Ok(())
}

/// Lesion by lesion, as the real-CT goals count them: tumours of 10 mm or more found, and
/// predicted lesions where the truth has none.
fn print_lesion_score(s: &segment::score::LesionScore) {
    if s.reference.is_empty() && s.predicted.is_empty() {
        return;
    }
    let (found, of) = s.found(10.0);
    let (found_all, of_all) = s.found(0.0);
    let false_lesions = s.false_lesions(0.0);
    println!(
        "Tumours vs truth: {found} of {of} of 10 mm or more found ({found_all} of {of_all} in all); {} false lesion(s), {:.1} mL",
        false_lesions.len(),
        // fold from +0: an empty f64 sum is -0.0, printed "-0.0 mL"
        false_lesions.iter().fold(0.0, |a, l| a + l.ml)
    );
    for l in &s.reference {
        println!(
            "  truth lesion {:.2} mL, {:.0} mm across, at [{:.0}, {:.0}, {:.0}] mm (LPS): {}",
            l.ml,
            l.extent_mm,
            l.centre_mm[0],
            l.centre_mm[1],
            l.centre_mm[2],
            if l.matched { "found" } else { "MISSED" }
        );
    }
    for l in false_lesions {
        println!(
            "  false lesion {:.2} mL at [{:.0}, {:.0}, {:.0}] mm (LPS)",
            l.ml, l.centre_mm[0], l.centre_mm[1], l.centre_mm[2]
        );
    }
}

/// A reference mask for scoring: NIfTI (LiTS labels), or a DICOM SEG placed onto the
/// study's grid by its frame positions (liver and tumour segments by their codes).
fn read_truth(path: &std::path::Path, grid: &hepaview::volume::Geometry) -> Result<hepaview::volume::Mask> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return Ok(nifti::read_mask(path).with_context(|| format!("reading the truth mask {}", path.display()))?.0);
    }
    let seg = hepaview::io::seg::read_seg(path, Some(grid)).with_context(|| {
        format!("reading the truth mask {} (neither .nii nor .nii.gz, so read as DICOM SEG)", path.display())
    })?;
    for w in &seg.warnings {
        eprintln!("! {w}");
    }
    let (mask, overlaps) = seg.label_mask();
    if overlaps > 0 {
        eprintln!("! {}: {overlaps} voxels claimed by more than one segment; the later segment wins", path.display());
    }
    Ok(mask)
}
