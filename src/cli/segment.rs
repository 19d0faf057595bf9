//! `hepaview segment` and `hepaview train`: the U-Net from the command line. All the work
//! is in `hepaview::segment`; here only arguments, progress bars and files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use hepaview::io::nifti;
use hepaview::phantom::{make_phantom, PhantomOptions};
use hepaview::segment::synth::{self, LabelMapStyle, PhantomStyle, SynthRecipe, TrainCase};
use hepaview::segment::{self, InferOptions, TrainOptions, UNetConfig};
use hepaview::study::Study;

use super::{open_study, progress_bar_1000};

/// What `hepaview segment` was asked.
pub(crate) struct SegmentArgs {
    pub paths: Vec<PathBuf>,
    pub out: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    pub phantom_seed: Option<u64>,
    pub phantom_small: bool,
    pub pv_only: bool,
    pub no_refine: bool,
    pub no_register: bool,
    pub no_lesion_search: bool,
    pub phase_overrides: Vec<String>,
}

/// Segments a study (or a phantom, for measuring) and writes the mask; with a truth mask
/// prints liver and tumour Dice.
pub(crate) fn segment_cmd(a: SegmentArgs) -> Result<()> {
    match &a.out {
        Some(out) => super::new_nifti_out(out)?,
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
        ..InferOptions::default()
    };
    let result = segment::segment_phases_live(&model, &study, &opts, &report, None);
    pb.finish_and_clear();
    let segment::Segmentation { mask, searched, check } = result?;
    let secs = t0.elapsed().as_secs_f64();
    let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let count = |l: u8| mask.data.iter().filter(|&&v| v == l).count() as f64 * voxel_ml;
    println!(
        "Segmented in {secs:.2} s: liver {:.1} mL, tumour {:.1} mL (grid {:?})",
        count(1) + count(2),
        count(2),
        mask.geometry.shape
    );
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
        false_lesions.iter().map(|l| l.ml).sum::<f64>()
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

/// What `hepaview train` was asked.
pub(crate) struct TrainArgs {
    pub data: Option<PathBuf>,
    pub lits: bool,
    pub out: PathBuf,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub synthetic: usize,
    pub features: String,
    pub spacing_mm: f64,
    pub batch: usize,
    pub patch: usize,
    pub minutes: Option<f64>,
    pub seed: u64,
    pub label_maps: Vec<String>,
    pub liver_class: String,
    pub label_map_cases: usize,
    pub force: bool,
    pub init: Option<PathBuf>,
    pub learning_rate: f64,
    pub recipe: SynthRecipe,
    /// `TrainOptions::subset_prob`.
    pub phase_subsets: f32,
}

/// Makes the training cases, trains with a progress bar, writes the best checkpoint to
/// `--out` (and `<stem>.last.safetensors`, `<stem>.train.json` beside it).
pub(crate) fn train_cmd(a: TrainArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!("{} already exists; choose another output name, or --force to replace it (Hepaview never overwrites files unasked)", a.out.display());
    }
    if !(a.learning_rate.is_finite() && a.learning_rate > 0.0) {
        bail!(
            "--learning-rate {}: give a positive number (2e-3 from scratch, about 5e-4 to fine-tune)",
            a.learning_rate
        );
    }
    let config = match &a.init {
        Some(init) => {
            if init.canonicalize().ok().is_some_and(|i| a.out.canonicalize().ok() == Some(i)) {
                bail!("--out {} is the --init file; write the fine-tuned weights to another file", a.out.display());
            }
            // the network is the file's: --features and --spacing-mm do not apply
            let (config, _) = segment::read_checkpoint(init)
                .with_context(|| format!("reading the --init weights {}", init.display()))?;
            eprintln!(
                "Starting from {} (U-Net {:?}, {} mm pixels)",
                init.display(),
                config.features,
                config.spacing_mm
            );
            config
        }
        None => {
            let features: Vec<usize> = a
                .features
                .split(',')
                .map(|f| f.trim().parse().with_context(|| format!("--features: {f:?} is not a whole number")))
                .collect::<Result<_>>()?;
            UNetConfig { features, spacing_mm: a.spacing_mm, ..UNetConfig::default() }
        }
    };
    let multiple = config.size_multiple();
    let t0 = Instant::now();
    let mut cases: Vec<TrainCase> = Vec::new();
    if let Some(dir) = &a.data {
        let pairs = synth::find_pairs(dir, a.lits)?;
        eprintln!("Reading {} image/label pairs from {}…", pairs.len(), dir.display());
        cases.extend(synth::cases_from_pairs(&pairs, config.spacing_mm, multiple)?);
    }
    if !a.label_maps.is_empty() {
        let liver: Vec<u8> = a
            .liver_class
            .split(',')
            .map(|c| c.trim().parse().with_context(|| format!("--liver-class: {c:?} is not a label number 0-255")))
            .collect::<Result<_>>()?;
        for (m, spec) in a.label_maps.iter().enumerate() {
            let Some((ct_path, lab_path)) = spec.split_once(',') else {
                bail!("--label-map {spec:?}: give the CT and its label map as CT.nii.gz,LABELS.nii.gz");
            };
            let (ct, _) = nifti::read_ct(std::path::Path::new(ct_path))
                .with_context(|| format!("reading the --label-map CT {ct_path}"))?;
            let (labels, _) = nifti::read_mask(std::path::Path::new(lab_path))
                .with_context(|| format!("reading the --label-map labels {lab_path}"))?;
            if !labels.data.iter().any(|c| liver.contains(c)) {
                bail!("--label-map {lab_path}: no voxel has a liver class {:?}; set --liver-class", liver);
            }
            let name =
                std::path::Path::new(ct_path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            eprintln!("Synthesising {} cases from {ct_path} and {lab_path}…", a.label_map_cases);
            let made: Vec<TrainCase> = (0..a.label_map_cases)
                .into_par_iter()
                .map(|i| {
                    let style = [LabelMapStyle::Real, LabelMapStyle::Offsets, LabelMapStyle::Means][i % 3];
                    synth::label_map_case(
                        &name,
                        &ct,
                        &labels,
                        &liver,
                        style,
                        5000 + a.seed * 10_000 + (m * 1000 + i) as u64,
                        config.spacing_mm,
                        multiple,
                        a.recipe,
                    )
                })
                .collect();
            cases.extend(made);
        }
    }
    if a.synthetic > 0 {
        eprintln!(
            "Making {} synthetic phantom cases (half own contrast, half randomised per-label intensities)…",
            a.synthetic
        );
        // Seeds from 1000 up: the demo (seed 48) and the evaluation seeds (below 1000) stay out.
        let made: Vec<TrainCase> = (0..a.synthetic)
            .into_par_iter()
            .map(|i| {
                let style = if i % 2 == 0 { PhantomStyle::Realistic } else { PhantomStyle::SynthSeg };
                synth::phantom_case(1000 + a.seed * 10_000 + i as u64, style, config.spacing_mm, a.patch, a.recipe)
            })
            .collect();
        cases.extend(made);
    }
    if cases.is_empty() {
        bail!("no training data: give --data DIR, --label-map CT,LABELS and/or --synthetic N");
    }
    // Every fifth case validates (at least one), the rest train: deterministic.
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, c) in cases.into_iter().enumerate() {
        if i % 5 == 4 {
            val.push(c);
        } else {
            train.push(c);
        }
    }
    if val.is_empty() && train.len() > 1 {
        val.push(train.pop().expect("len > 1"));
    }
    eprintln!("{} training / {} validation cases ready in {:.1} s", train.len(), val.len(), t0.elapsed().as_secs_f64());
    let opts = TrainOptions {
        config,
        batch: a.batch,
        patch: a.patch,
        epochs: a.epochs,
        steps_per_epoch: a.steps_per_epoch,
        max_minutes: a.minutes,
        seed: a.seed,
        out: Some(a.out.clone()),
        init: a.init.clone(),
        learning_rate: a.learning_rate,
        subset_prob: a.phase_subsets,
        ..TrainOptions::default()
    };
    let total = (opts.epochs * opts.steps_per_epoch) as u64;
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:50} [{bar:30}] {pos}/{len} steps ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = |s: &segment::TrainStatus| {
        pb.set_position(s.step as u64);
        match (s.val_dice_liver, s.val_dice_tumour) {
            (Some(l), t) => {
                let line = format!(
                    "epoch {} step {} loss {:.4} val Dice liver {:.4} tumour {} ({:.0} s)",
                    s.epoch,
                    s.step,
                    s.loss,
                    l,
                    t.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into()),
                    s.elapsed_s
                );
                // the bar draws nothing when stderr is not a terminal (nohup, CI): print the line
                if pb.is_hidden() {
                    eprintln!("{line}");
                } else {
                    pb.println(&line);
                }
                pb.set_message(line);
            }
            _ => pb.set_message(format!("epoch {} loss {:.4}", s.epoch, s.loss)),
        }
        true
    };
    let (_, report) = segment::train(&train, &val, &opts, &progress)?;
    pb.finish_and_clear();
    let json = a.out.with_file_name(format!(
        "{}.train.json",
        a.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    // the synthetic recipe beside the history, so a file says what it was trained on
    let mut record = serde_json::to_value(&report)?;
    record["recipe"] = serde_json::to_value(a.recipe)?;
    std::fs::write(&json, serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "Trained {} steps in {:.1} min; best validation liver Dice {:.4} (epoch {}) → {}; history in {}",
        report.steps,
        report.seconds / 60.0,
        report.best_val_dice_liver,
        report.best_epoch,
        a.out.display(),
        json.display()
    );
    Ok(())
}
