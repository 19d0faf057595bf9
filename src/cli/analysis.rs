//! `hepaview cluster` and `hepaview report`: open the study, bring its phases onto the
//! mask's grid (registered onto the fixed phase unless told not to), then cluster or
//! measure, and write files. All the work is in `hepaview::analysis`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::analysis::{self, AlignedPhase, Alignment, ClusterRecipe};
use hepaview::io::nifti;
use hepaview::lesion::LesionOptions;
use hepaview::register::Params as RegisterParams;
use hepaview::report::{self, ReportFiles, ReportInput};
use hepaview::study::Study;
use hepaview::volume::{Geometry, Mask};

use super::{open_study, progress_bar_1000};

/// The mask named on the command line, else the label file opened with a NIfTI study.
fn load_mask(study: &Study, mask: Option<&Path>) -> Result<(Mask, String)> {
    match mask {
        Some(p) => {
            let (m, warnings) = nifti::read_mask(p).with_context(|| format!("reading the mask {}", p.display()))?;
            for w in warnings {
                eprintln!("! {w}");
            }
            Ok((m, p.display().to_string()))
        }
        None => match &study.labels {
            Some(l) => Ok(((*l.mask).clone(), l.source.display().to_string())),
            None => bail!("no mask: give --mask MASK.nii.gz (liver 1, tumour 2, on the study's grid or any grid of the same patient)"),
        },
    }
}

/// The study's phases on `grid` with a progress bar: registered onto the fixed phase (the
/// Demons box limited to `register_within` when given) unless `no_register` or a single
/// phase; and how.
pub(crate) fn align_with_bar(
    study: &Study,
    grid: &Geometry,
    register_within: Option<&Mask>,
    no_register: bool,
) -> Result<(Vec<AlignedPhase>, Alignment)> {
    let alignment = if no_register || study.phases.len() < 2 {
        Alignment::Resample
    } else {
        Alignment::Register(RegisterParams::default())
    };
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let phases = analysis::align_phases(study, grid, &alignment, register_within, &report);
    pb.finish_and_clear();
    Ok((phases?, alignment))
}

/// The study's phases on `mask`'s grid, with a progress bar, said on stdout.
fn aligned(study: &Study, mask: &Mask, no_register: bool) -> Result<Vec<AlignedPhase>> {
    let (phases, alignment) = align_with_bar(study, &mask.geometry, None, no_register)?;
    let how = match alignment {
        Alignment::Register(_) => "registered onto the fixed phase (diffeomorphic Demons)",
        Alignment::Resample => "resampled in world coordinates (not registered)",
    };
    let names: Vec<_> = phases.iter().map(|p| p.phase.as_str()).collect();
    println!("Phases on the mask's grid: {} ({how})", names.join(", "));
    Ok(phases)
}

fn alignment_note(phases: &[AlignedPhase]) -> String {
    if phases.iter().any(|p| p.registered) {
        "Phases registered onto the fixed phase with diffeomorphic Demons before measuring.".into()
    } else {
        "Phases not registered here (resampled in world coordinates): use registered phases for multi-phase comparisons.".into()
    }
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
    super::new_nifti_out(a.out)?;
    let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let json_path = a.out.with_file_name(format!("{}.json", name.trim_end_matches(".gz").trim_end_matches(".nii")));
    for p in [a.out, json_path.as_path()] {
        if p.exists() {
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
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
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
        if p.exists() {
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

pub struct CompareArgs<'a> {
    pub baseline: &'a [PathBuf],
    pub followup: &'a [PathBuf],
    pub baseline_mask: Option<&'a Path>,
    pub followup_mask: Option<&'a Path>,
    pub no_register: bool,
    pub out: &'a Path,
}

pub fn compare(a: CompareArgs) -> Result<()> {
    use hepaview::follow_up::response::ResponseOptions;
    use hepaview::report::compare::{write_compare_report, VisitInput};
    let t0 = std::time::Instant::now();
    for name in [
        "compare.json",
        "lesions.csv",
        "compare.html",
        "baseline_parts.nii.gz",
        "followup_parts.nii.gz",
        "baseline_mask.nii.gz",
        "followup_mask.nii.gz",
    ] {
        let p = a.out.join(name);
        if p.exists() {
            bail!("{} already exists; choose another --out folder (Hepaview never overwrites files)", p.display());
        }
    }
    let mut segmented = Vec::new();
    let mut open = |paths: &[PathBuf], mask: Option<&Path>, which: &str| -> Result<(Study, Mask, Vec<AlignedPhase>)> {
        let study = open_study(paths, &[])?;
        let mask = if mask.is_some() || study.labels.is_some() {
            load_mask(&study, mask)?.0
        } else {
            // no mask given: the shipped U-Net outlines liver and tumours, said so loudly,
            // since every figure of the response rests on these outlines
            let model_path = hepaview::segment::default_model_path();
            let pb = progress_bar_1000();
            let report = |f: f32, m: &str| {
                pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
                pb.set_message(format!("segmenting the {which}: {m}"));
                true
            };
            let m = hepaview::segment::segment_study(&study, &model_path, &report).with_context(|| {
                format!("no --{which}-mask was given, and segmenting the {which} with {} failed", model_path.display())
            })?;
            pb.finish_and_clear();
            eprintln!("! {which}: no mask given; liver and tumours were outlined by the shipped U-Net ({}); check them (written as {which}_mask.nii.gz)", model_path.display());
            segmented.push((which.to_string(), m.clone()));
            m
        };
        let phases = aligned(&study, &mask, a.no_register)?;
        Ok((study, mask, phases))
    };
    let (bs, bmask, bphases) = open(a.baseline, a.baseline_mask, "baseline")?;
    let (fs, fmask, fphases) = open(a.followup, a.followup_mask, "followup")?;
    if !segmented.is_empty() {
        std::fs::create_dir_all(a.out).with_context(|| format!("creating {}", a.out.display()))?;
    }
    for (which, m) in &segmented {
        nifti::write_volume(m, &a.out.join(format!("{which}_mask.nii.gz")))?;
    }
    if !fphases.iter().any(|p| p.phase == hepaview::io::phase::Phase::Arterial) {
        eprintln!("! the follow-up has no arterial phase: viable tumour and mRECIST cannot be measured; RECIST 1.1 and volumes are given");
    }
    let label = |s: &Study, fallback: &str| if s.title.is_empty() { fallback.to_string() } else { s.title.clone() };
    let (bl, fl) = (label(&bs, "baseline"), label(&fs, "follow-up"));
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let c =
        analysis::compare_visits(&bl, &bphases, &bmask, &fl, &fphases, &fmask, &ResponseOptions::default(), &report);
    pb.finish_and_clear();
    let c = c?;
    let base = VisitInput { label: bl.clone(), phases: &bphases, mask: &bmask };
    let follow = VisitInput { label: fl.clone(), phases: &fphases, mask: &fmask };
    let files = write_compare_report(&c, &base, &follow, a.out)?;
    nifti::write_volume(&c.baseline.parts_mask, &a.out.join("baseline_parts.nii.gz"))?;
    nifti::write_volume(&c.followup.parts_mask, &a.out.join("followup_parts.nii.gz"))?;
    let r = &c.response;
    println!(
        "visits aligned (rigid part): rotation {:.1} deg, translation ({:.1}, {:.1}, {:.1}) mm, NCC {:.3} -> {:.3}",
        c.rigid.transform.rotation_deg(),
        c.rigid.transform.translation_mm[0],
        c.rigid.transform.translation_mm[1],
        c.rigid.transform.translation_mm[2],
        c.rigid.ncc_before,
        c.affine.ncc_after.max(c.rigid.ncc_after)
    );
    match &c.liver_demons {
        Some(d) => println!("then Demons on the liver: RMSD {:.1} -> {:.1} HU, max displacement {:.1} mm, {:.1} s", d.rmsd_before_hu, d.rmsd_after_hu, d.max_displacement_mm, d.seconds),
        None => eprintln!("! Demons on the liver did not run (no liver in the baseline mask, or it failed): lesions paired through the affine alignment alone"),
    }
    for l in &r.lesions {
        let p = &l.pairing;
        let what = match (p.baseline, p.followup) {
            (Some(b), Some(f)) => format!("lesion {b} -> {f}: {:.2} -> {:.2} mL", l.baseline_ml, l.followup_ml),
            (Some(b), None) => format!("lesion {b}: {:.2} mL, gone", l.baseline_ml),
            (None, Some(f)) => format!("NEW lesion {f}: {:.2} mL", l.followup_ml),
            (None, None) => continue,
        };
        let parts = match (&l.followup_parts, l.followup_lipiodol_ml) {
            (Some(p), _) => {
                format!(" (viable {:.2}, necrotic {:.2}, lipiodol {:.2} mL)", p.viable_ml, p.necrotic_ml, p.lipiodol_ml)
            }
            (None, Some(lip)) if lip > 0.0 => {
                format!(" (lipiodol {lip:.2} mL; viable and necrotic need an arterial phase)")
            }
            _ => String::new(),
        };
        println!("{what}{parts}");
    }
    println!("RECIST 1.1: {:?} ({})", r.recist.category, r.recist.reason);
    match &r.mrecist {
        Some(m) => println!("mRECIST: {:?} ({})", m.category, m.reason),
        None => println!("mRECIST: not assessed (no arterial phase)"),
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
