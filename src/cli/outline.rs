//! `hepaview outline`: open the study, bring its phases onto the portal venous (fixed)
//! phase's grid (registered unless told not to), outline the lesion under the clicks with
//! `hepaview::outline`, write the mask and print the lesion's measurements as JSON on
//! stdout. A refused click exits non-zero with what it found.
//!
//! Without `--mask` (and no label file opened with the study) it runs without a liver
//! mask: the parenchyma's statistics then come from the most common soft-tissue value
//! around the click, and growth stops at fat, air and bone by HU. The U-Net is not run here
//! (it takes longer than the outline itself; run `hepaview segment` first and pass its mask).
//!
//! With `--carry-from LESION --baseline STUDY` this study is a follow-up visit: the baseline
//! lesion mask is carried here through the visits' alignment and outlined from the carried
//! position (`hepaview::follow_up::carry`); a lesion not found there (gone after treatment)
//! is said so in the JSON, exits zero and writes no mask.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::io::phase::Phase;
use hepaview::outline::{self, OutlineOptions, Prompts};
use hepaview::volume::{CtVolume, Geometry, Interp, Lps, Mask};

use super::common::{new_nifti_out, open_study, progress_bar_1000};

/// `X,Y,Z` in LPS mm.
pub fn parse_point(s: &str) -> std::result::Result<Lps, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>().map_err(|_| format!("'{x}' in '{s}' is not a number")))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [x, y, z] if v.iter().all(|c| c.is_finite()) => Ok([*x, *y, *z]),
        _ => Err(format!("'{s}': give a point as X,Y,Z in LPS mm, e.g. -95,10,-210")),
    }
}

/// `X0,Y0,Z0,X1,Y1,Z1`: two opposite corners of a box, LPS mm.
pub fn parse_box(s: &str) -> std::result::Result<[Lps; 2], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>().map_err(|_| format!("'{x}' in '{s}' is not a number")))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [x0, y0, z0, x1, y1, z1] if v.iter().all(|c| c.is_finite()) => Ok([[*x0, *y0, *z0], [*x1, *y1, *z1]]),
        _ => {
            Err(format!("'{s}': give a box as two corners X0,Y0,Z0,X1,Y1,Z1 in LPS mm, e.g. -110,-5,-210,-80,25,-210"))
        }
    }
}

/// `hepaview outline`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder or NIfTI files of one study.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A point on the lesion, X,Y,Z in LPS mm. Repeatable: each adds a part.
    #[arg(long = "at", value_name = "X,Y,Z", required_unless_present_any = ["box_corners", "carry_from"], value_parser = parse_point, allow_hyphen_values = true)]
    pub at: Vec<[f64; 3]>,
    /// A box drawn around the lesion on one slice: two opposite corners X0,Y0,Z0,X1,Y1,Z1
    /// in LPS mm. Its centre is the click when no --at is given; the outline stays inside it.
    #[arg(long = "box", value_name = "X0,Y0,Z0,X1,Y1,Z1", value_parser = parse_box, allow_hyphen_values = true)]
    pub box_corners: Option<[[f64; 3]; 2]>,
    /// A point that is not lesion (removes the part holding it). Repeatable.
    #[arg(long, value_name = "X,Y,Z", value_parser = parse_point, allow_hyphen_values = true)]
    pub exclude: Vec<[f64; 3]>,
    /// Liver mask (NIfTI, non-zero = liver); default the label file opened with a NIfTI
    /// study, else none (liver statistics from around the click).
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Half-size of the working box around the clicks in mm (default 40).
    #[arg(long)]
    pub box_mm: Option<f64>,
    /// The phases are registered already: resample only.
    #[arg(long)]
    pub no_register: bool,
    /// Output lesion mask (.nii.gz or .nii; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
    /// A baseline lesion mask (NIfTI, non-zero = lesion, e.g. an earlier `outline --out`) to
    /// carry to this study, a follow-up visit: mapped through the visits' alignment and
    /// outlined here from its carried centre and box. Needs --baseline.
    #[arg(long, value_name = "LESION", requires = "baseline", conflicts_with_all = ["at", "box_corners", "exclude"])]
    pub carry_from: Option<PathBuf>,
    /// The baseline study (a DICOM folder or NIfTI files) the --carry-from mask belongs to;
    /// its fixed phase is aligned with this study's (rigid, then affine).
    #[arg(long, num_args = 1.., requires = "carry_from")]
    pub baseline: Vec<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    if let Some(lesion) = &a.carry_from {
        return carry_cmd(&a, lesion);
    }
    outline_cmd(OutlineArgs {
        paths: &a.paths,
        overrides: &a.phase_overrides,
        at: &a.at,
        box_corners: a.box_corners,
        exclude: &a.exclude,
        mask: a.mask.as_deref(),
        box_half_mm: a.box_mm,
        no_register: a.no_register,
        out: &a.out,
    })
}

struct OutlineArgs<'a> {
    pub paths: &'a [PathBuf],
    pub overrides: &'a [String],
    pub at: &'a [Lps],
    pub exclude: &'a [Lps],
    pub mask: Option<&'a Path>,
    pub box_half_mm: Option<f64>,
    pub box_corners: Option<[Lps; 2]>,
    pub no_register: bool,
    pub out: &'a Path,
}

fn outline_cmd(a: OutlineArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    new_nifti_out(a.out)?;
    if a.at.is_empty() && a.box_corners.is_none() {
        bail!("give at least one --at X,Y,Z (LPS mm) on the lesion, or a --box around it");
    }
    let study = open_study(a.paths, a.overrides)?;
    let grid = study.phases[study.fixed_index()].volume.geometry.clone();
    let liver = liver_mask(&study, a.mask, &grid)?;
    let (aligned, _) = super::analysis::align_with_bar(&study, &grid, liver.as_ref(), a.no_register)?;
    let phases: Vec<(Phase, &CtVolume)> = aligned.iter().map(|p| (p.phase, p.volume.as_ref())).collect();
    let prompts = Prompts {
        include: a.at.to_vec(),
        exclude: a.exclude.to_vec(),
        box_half_mm: a.box_half_mm,
        box_mm: a.box_corners,
    };
    let t1 = std::time::Instant::now();
    let o = outline::outline_lesion(&phases, liver.as_ref(), &prompts, &OutlineOptions::default())?;
    let row = outline::measure_outline(&o, &phases, liver.as_ref())?;
    let outline_s = t1.elapsed().as_secs_f64();
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    nifti::write_volume(&o.mask, a.out)?;
    for w in &o.warnings {
        eprintln!("! {w}");
    }
    let json = serde_json::json!({
        "found": o.found,
        "mask": a.out.display().to_string(),
        "liver_mask": a.mask.map(|p| p.display().to_string()).or_else(|| study.labels.as_ref().map(|l| l.source.display().to_string())),
        "phases": aligned.iter().map(|p| serde_json::json!({"phase": p.phase.slug(), "series": p.description, "registered": p.registered})).collect::<Vec<_>>(),
        "prompts": prompts,
        "parenchyma": o.parenchyma,
        "rims": o.rims,
        "threshold_raised": o.tightened,
        "warnings": o.warnings,
        "lesion": row,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    eprintln!(
        "outlined {:.2} mL in {:.2} s ({:.1} s with loading and registration); written {}",
        o.volume_ml,
        outline_s,
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// The liver mask the outline works in: `--mask`, else the label file opened with the
/// study, else none; put on `grid` (nearest) when it lies on another.
fn liver_mask(study: &hepaview::study::Study, mask: Option<&Path>, grid: &Geometry) -> Result<Option<Mask>> {
    let liver: Option<Mask> = match mask {
        Some(p) => {
            let (m, warnings) = nifti::read_mask(p).with_context(|| format!("reading the mask {}", p.display()))?;
            for w in warnings {
                eprintln!("! {w}");
            }
            Some(m)
        }
        None => study.labels.as_ref().map(|l| (*l.mask).clone()),
    };
    Ok(liver.map(|m| {
        if m.geometry.same_grid(grid) {
            m
        } else {
            eprintln!("! the mask is on another grid: resampled (nearest) onto the fixed phase's");
            m.resample_to(grid, Interp::Nearest, 0)
        }
    }))
}

/// `outline FOLLOW-UP --carry-from LESION --baseline STUDY`: the baseline lesion carried to
/// this study through the visits' alignment and outlined here.
fn carry_cmd(a: &Args, lesion_path: &Path) -> Result<()> {
    use hepaview::follow_up::carry::{carry_lesion, measure_carry, CarryOptions};
    let t0 = std::time::Instant::now();
    new_nifti_out(&a.out)?;
    let study = open_study(&a.paths, &a.phase_overrides)?;
    let grid = study.phases[study.fixed_index()].volume.geometry.clone();
    let liver = liver_mask(&study, a.mask.as_deref(), &grid)?;
    let (aligned, _) = super::analysis::align_with_bar(&study, &grid, liver.as_ref(), a.no_register)?;
    let phases: Vec<(Phase, &CtVolume)> = aligned.iter().map(|p| (p.phase, p.volume.as_ref())).collect();
    let base = open_study(&a.baseline, &[])?;
    let (lesion, warnings) =
        nifti::read_mask(lesion_path).with_context(|| format!("reading the lesion mask {}", lesion_path.display()))?;
    for w in warnings {
        eprintln!("! {w}");
    }
    let pb = progress_bar_1000();
    let report = |f: f32, m: &str| {
        pb.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        pb.set_message(m.to_string());
        true
    };
    let t = hepaview::study::analysis::visit_transform(
        &base.phases[base.fixed_index()].volume,
        &study.phases[study.fixed_index()].volume,
        "follow-up",
        &report,
    );
    pb.finish_and_clear();
    let t = t?;
    let t1 = std::time::Instant::now();
    let c = carry_lesion(&lesion, &t, &phases, liver.as_ref(), &CarryOptions::default())
        .with_context(|| format!("carrying {} to the follow-up", lesion_path.display()))?;
    let row = measure_carry(&c, &phases, liver.as_ref())?;
    let carry_s = t1.elapsed().as_secs_f64();
    if let Some(m) = &c.mask {
        if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        nifti::write_volume(m, &a.out)?;
    }
    for w in &c.warnings {
        eprintln!("! {w}");
    }
    let json = serde_json::json!({
        "carried": c.carried,
        "says": c.carried.words(),
        "mask": c.mask.as_ref().map(|_| a.out.display().to_string()),
        "carried_from": lesion_path.display().to_string(),
        "baseline_to_followup": t,
        "carried_ml": c.mapped_ml,
        "prompts": c.prompts,
        "phases": aligned.iter().map(|p| serde_json::json!({"phase": p.phase.slug(), "series": p.description, "registered": p.registered})).collect::<Vec<_>>(),
        "warnings": c.warnings,
        "lesion": row,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    eprintln!(
        "{} in {:.2} s ({:.1} s with loading and alignment){}",
        c.carried.words(),
        carry_s,
        t0.elapsed().as_secs_f64(),
        if c.mask.is_some() { format!("; written {}", a.out.display()) } else { "; no mask written".into() }
    );
    Ok(())
}
