//! `hepaview outline`: open the study, bring its phases onto the portal venous (fixed)
//! phase's grid (registered unless told not to), outline the lesion under the clicks with
//! `hepaview::outline`, write the mask and print the lesion's measurements as JSON on
//! stdout. A refused click exits non-zero with what it found.
//!
//! Without `--mask` (and no label file opened with the study) it runs without a liver
//! mask: the parenchyma's statistics then come from the most common soft-tissue value
//! around the click, and growth stops at fat, air and bone by HU. The U-Net is not run here
//! (it takes longer than the outline itself; run `hepaview segment` first and pass its mask).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::io::phase::Phase;
use hepaview::outline::{self, OutlineOptions, Prompts};
use hepaview::volume::{CtVolume, Interp, Lps, Mask};

use super::open_study;

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

pub struct OutlineArgs<'a> {
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

pub fn outline_cmd(a: OutlineArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    super::new_nifti_out(a.out)?;
    if a.at.is_empty() && a.box_corners.is_none() {
        bail!("give at least one --at X,Y,Z (LPS mm) on the lesion, or a --box around it");
    }
    let study = open_study(a.paths, a.overrides)?;
    let grid = study.phases[study.fixed_index()].volume.geometry.clone();
    let liver: Option<Mask> = match a.mask {
        Some(p) => {
            let (m, warnings) = nifti::read_mask(p).with_context(|| format!("reading the mask {}", p.display()))?;
            for w in warnings {
                eprintln!("! {w}");
            }
            Some(m)
        }
        None => study.labels.as_ref().map(|l| (*l.mask).clone()),
    };
    let liver = liver.map(|m| {
        if m.geometry.same_grid(&grid) {
            m
        } else {
            eprintln!("! the mask is on another grid: resampled (nearest) onto the fixed phase's");
            m.resample_to(&grid, Interp::Nearest, 0)
        }
    });
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
