//! `hepaview demo`: the built-in phantom study written to a folder, or with
//! `--from-study` a baseline and a simulated follow-up made from a real study, with known
//! truth. The phantom is `hepaview::phantom`, the simulation `hepaview::follow_up::sim`;
//! here only arguments, the liver seed, progress and files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use hepaview::follow_up::sim::{self, SimOptions, SimPhase, SimulatedPair};
use hepaview::io::dicom_write::{self, add_days, uid_from};
use hepaview::io::nifti;
use hepaview::io::phase::Phase;
use hepaview::phantom;
use hepaview::segment::{self, InferOptions};
use hepaview::volume::{Field, Lps};

use super::common::{is_nifti, open_study, progress_bar_1000, source_series};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(long)]
    pub out: PathBuf,
    /// A small, fast version (for tests).
    #[arg(long)]
    pub small: bool,
    /// The follow-up visit of the same patient after TACE (moved on the table, HCC
    /// treated, hemangioma gone, a new HCC); adds parts.nii.gz and follow_up_truth.json.
    #[arg(long)]
    pub follow_up: bool,
    /// Instead of the phantom: a real study (DICOM folder or NIfTI phases). A lesion is
    /// implanted deep in its liver, and a follow-up is simulated from it (lesion treated:
    /// shrunk to a lipiodol core, necrosis and a viable rim; patient moved by a known
    /// rigid transform). Writes baseline/, followup/ (DICOM when the source is DICOM),
    /// their masks, followup/parts.nii.gz and truth.json.
    #[arg(long = "from-study", num_args = 1.., conflicts_with_all = ["small", "follow_up"])]
    pub from_study: Vec<PathBuf>,
    /// With --from-study: a phase's true displacement onto the portal venous phase
    /// (ITK convention), so the lesion sits at the same anatomy in that phase, e.g.
    /// arterial=true_field_arterial.nii.gz. Repeatable.
    #[arg(long = "true-field", value_name = "PHASE=FILE", requires = "from_study")]
    pub true_field: Vec<String>,
    /// With --from-study: a point in the liver parenchyma (LPS mm, X,Y,Z) to grow the
    /// liver from; without it the U-Net finds one.
    #[arg(long = "liver-seed", value_name = "X,Y,Z", requires = "from_study", allow_hyphen_values = true)]
    pub liver_seed: Option<String>,
    /// With --from-study: the follow-up lesion's size over the baseline's.
    #[arg(long, default_value_t = 0.65, requires = "from_study")]
    pub shrink: f64,
}

pub(crate) fn run(a: Args) -> Result<()> {
    match a {
        Args { out, from_study, true_field, liver_seed, shrink, .. } if !from_study.is_empty() => {
            demo_from_study(FromStudyArgs { paths: from_study, true_fields: true_field, liver_seed, shrink, out })
        }
        Args { out, small, follow_up, .. } => {
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

pub(crate) struct FromStudyArgs {
    pub paths: Vec<PathBuf>,
    pub true_fields: Vec<String>,
    pub liver_seed: Option<String>,
    pub shrink: f64,
    pub out: PathBuf,
}

fn parse_point(s: &str) -> Result<Lps> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--liver-seed {s:?}: expected X,Y,Z in LPS mm, e.g. -82,-40,-281"))?;
    match v.as_slice() {
        [x, y, z] => Ok([*x, *y, *z]),
        _ => bail!("--liver-seed {s:?}: expected three numbers X,Y,Z (LPS mm)"),
    }
}

/// Days between the visits: two months, a usual first check after TACE.
const FOLLOW_UP_DAYS: i64 = 61;

pub(crate) fn demo_from_study(a: FromStudyArgs) -> Result<()> {
    let out = &a.out;
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() {
            bail!("{}: folder is not empty; the simulated pair is only written into a new or empty folder (Hepaview never overwrites files)", out.display());
        }
    }
    let study = open_study(&a.paths, &[])?;
    let fields: Vec<(Phase, Field)> = a
        .true_fields
        .iter()
        .map(|s| {
            let (p, path) = s.split_once('=').with_context(|| {
                format!("--true-field {s:?}: expected PHASE=FILE, e.g. arterial=true_field_arterial.nii.gz")
            })?;
            let phase: Phase = p.trim().parse().map_err(anyhow::Error::msg)?;
            if !study.phases.iter().any(|x| x.phase() == phase) {
                bail!("--true-field {s:?}: the study has no {} phase", phase.slug());
            }
            let (f, _) =
                nifti::read_field(Path::new(path)).with_context(|| format!("reading the true field {path}"))?;
            Ok((phase, f))
        })
        .collect::<Result<_>>()?;
    let reference = study.phases[study.fixed_index()].volume.clone();

    let seed = match &a.liver_seed {
        Some(s) => parse_point(s)?,
        None => {
            let model_path = segment::default_model_path();
            let model = segment::load_unet(&model_path)
                .context("finding the liver for the lesion needs the U-Net, or give --liver-seed X,Y,Z")?;
            let pb = progress_bar_1000();
            let report = |f: f32, m: &str| {
                pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
                pb.set_message(format!("finding the liver: {m}"));
                true
            };
            let rough = hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &report);
            pb.finish_and_clear();
            let rough = rough?;
            sim::liver_seed(&reference, &rough)
                .context("the U-Net found no liver parenchyma to start from; give --liver-seed X,Y,Z (LPS mm)")?
        }
    };
    eprintln!("Growing the liver from {seed:.1?} mm…");
    let liver = sim::grow_liver(&reference, seed)?;
    let phases: Vec<SimPhase> = study
        .phases
        .iter()
        .map(|p| SimPhase {
            phase: p.phase(),
            volume: p.volume.as_ref(),
            true_field: fields.iter().find(|(f, _)| *f == p.phase()).map(|(_, f)| f),
        })
        .collect();
    let opts = SimOptions { shrink: a.shrink, ..SimOptions::new(reference.geometry.centre_mm()) };
    eprintln!("Implanting the lesion and simulating the follow-up…");
    let pair = sim::simulate_follow_up(&phases, &liver, &opts)?;
    // as `Study::open` decides: DICOM unless every path is NIfTI
    let dicom = !a.paths.iter().all(|p| is_nifti(p));
    write_pair(&a, &study, &pair, dicom)?;
    let t = &pair.truth;
    println!(
        "Liver {:.0} mL; lesion at {:.1?} mm: {:.2} mL → {:.2} mL (viable {:.2}, necrotic {:.2}, lipiodol {:.2}); longest axial diameter {:.1} → {:.1} mm (viable {:.1}): RECIST 1.1 {:?}, mRECIST {:?}",
        t.liver_ml, t.lesion_centre_mm, t.baseline_ml, t.followup_ml, t.viable_ml, t.necrotic_ml, t.lipiodol_ml, t.baseline_long_axis_mm, t.followup_long_axis_mm, t.followup_viable_long_axis_mm, t.recist, t.mrecist
    );
    println!("Written to {}; truth in truth.json. Next:", out.display());
    let (b, f) = (visit_input(out, "baseline", &study, dicom), visit_input(out, "followup", &study, dicom));
    println!("  hepaview compare --baseline {b} --baseline-mask {0}/baseline/mask.nii.gz --followup {f} --followup-mask {0}/followup/mask.nii.gz --out {0}/compare", out.display());
    println!("  hepaview open {b} {0}/baseline/mask.nii.gz --follow-up {f} {0}/followup/mask.nii.gz", out.display());
    Ok(())
}

/// What to give `compare` or `open` for one visit: its DICOM folder, or its NIfTI phases.
fn visit_input(out: &Path, visit: &str, study: &hepaview::study::Study, dicom: bool) -> String {
    if dicom {
        out.join(visit).join("dicom").display().to_string()
    } else {
        study
            .phases
            .iter()
            .map(|p| out.join(visit).join(format!("{}.nii.gz", p.phase().slug())).display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Each visit as the source came (DICOM series of a new study, or NIfTI phases), its mask,
/// the follow-up's parts and the truth.
fn write_pair(a: &FromStudyArgs, study: &hepaview::study::Study, pair: &SimulatedPair, dicom: bool) -> Result<()> {
    let out = &a.out;
    let series = if dicom { Some(source_series(&a.paths, study)?) } else { None };
    let source_uid =
        series.as_ref().and_then(|s| s.iter().flatten().next()).map(|s| s.study_uid.clone()).unwrap_or_default();
    for (visit, phases, days) in [("baseline", &pair.baseline, 0), ("followup", &pair.followup, FOLLOW_UP_DAYS)] {
        let dir = out.join(visit);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let seed = format!("hepaview-demo-from-study/{source_uid}/{visit}");
        for (i, (phase, vol)) in phases.iter().enumerate() {
            match series.as_ref().and_then(|s| s.get(i).cloned().flatten()) {
                Some(src) => {
                    let mut meta = dicom_write::derived_meta(
                        &src,
                        &uid_from(&format!("{seed}/frame-of-reference")),
                        &src.description,
                        src.series_number.unwrap_or(i as i64).clamp(0, 1_000_000) as u32,
                        &format!("{seed}/{}", phase.slug()),
                    )?;
                    // another visit: a study of its own, days later, a frame of reference of its own
                    meta.study_uid = uid_from(&format!("{seed}/study"));
                    meta.study_date = add_days(&meta.study_date, days).unwrap_or(meta.study_date.clone());
                    meta.study_id = if days == 0 { "SIM1".into() } else { "SIM2".into() };
                    dicom_write::write_ct_series(vol, &meta, &dir.join("dicom").join(phase.slug()))?;
                }
                None if series.is_some() => bail!(
                    "could not find the DICOM series of the {} phase again under {}",
                    phase.slug(),
                    a.paths[0].display()
                ),
                None => nifti::write_volume(vol, &dir.join(format!("{}.nii.gz", phase.slug())))?,
            }
        }
    }
    nifti::write_volume(&pair.baseline_mask, &out.join("baseline").join("mask.nii.gz"))?;
    nifti::write_volume(&pair.followup_mask, &out.join("followup").join("mask.nii.gz"))?;
    nifti::write_volume(&pair.followup_parts, &out.join("followup").join("parts.nii.gz"))?;
    let truth = serde_json::json!({
        "what": "a lesion implanted in the real liver of every phase, and a follow-up simulated from the same study: lesion shrunk to a lipiodol core, necrosis and a viable rim, patient moved by a known rigid transform",
        "masks": "mask.nii.gz: 1 liver, 2 lesion (reference phase's grid); followup/parts.nii.gz: 4 viable, 5 necrotic, 6 lipiodol",
        "source": a.paths,
        "truth": pair.truth,
    });
    let bytes = serde_json::to_vec_pretty(&truth)?;
    dicom_write::write_new_file(&out.join("truth.json"), &bytes)?;
    Ok(())
}
