//! `hepaview compare`: a follow-up study against its baseline (the U-Net outlines a visit
//! given without a mask), written as compare.html, lesions.csv, compare.json and the parts
//! masks, with RECIST 1.1 and mRECIST said on stdout. All the work is in
//! `hepaview::study::analysis`, `hepaview::follow_up` and `hepaview::report::compare`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::study::analysis::{self, AlignedPhase};
use hepaview::study::Study;
use hepaview::volume::Mask;

use super::analysis::{aligned, load_mask};
use super::common::{open_study, progress_bar_1000};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The baseline study (a DICOM folder, or NIfTI files).
    #[arg(long, required = true, num_args = 1..)]
    pub baseline: Vec<PathBuf>,
    /// The follow-up study.
    #[arg(long, required = true, num_args = 1..)]
    pub followup: Vec<PathBuf>,
    /// Label mask of the baseline (liver 1, tumour 2), on its grid. Without one, the
    /// shipped U-Net outlines liver and tumours (written beside the report; check it).
    #[arg(long)]
    pub baseline_mask: Option<PathBuf>,
    /// Label mask of the follow-up (without one: the U-Net, as for the baseline).
    #[arg(long)]
    pub followup_mask: Option<PathBuf>,
    /// The phases within each visit are registered already: resample only.
    #[arg(long)]
    pub no_register: bool,
    /// Output folder (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { baseline, followup, baseline_mask, followup_mask, no_register, out } = a;
    compare(CompareArgs {
        baseline: &baseline,
        followup: &followup,
        baseline_mask: baseline_mask.as_deref(),
        followup_mask: followup_mask.as_deref(),
        no_register,
        out: &out,
    })
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
        if hepaview::io::taken(&p) {
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
            let m = hepaview::study::segment_study(&study, &model_path, &report).with_context(|| {
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
