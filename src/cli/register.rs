//! `hepaview register`: every moving phase onto the fixed one (Demons), written as warped
//! phases, displacement fields, carried masks and optional DICOM series, with a JSON
//! report; the output folder is written whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::io::nifti;
use hepaview::io::phase::Phase;
use hepaview::register::{self, LevelPlan, Params as RegisterParams};
use hepaview::study::Demons;

use super::common::{open_study, progress_bar_1000, source_series};

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

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder or NIfTI files of one study.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Phase the others are moved onto.
    #[arg(long, value_enum, default_value_t = FixedArg::PortalVenous)]
    pub fixed: FixedArg,
    /// Phases to register, comma-separated (default: every other phase).
    #[arg(long, value_delimiter = ',')]
    pub moving: Vec<String>,
    /// Demons variant.
    #[arg(long, value_enum, default_value_t = VariantArg::Diffeomorphic)]
    pub variant: VariantArg,
    /// Gaussian σ (mm) smoothing the field every iteration (instead of the default 3 voxels of each level).
    #[arg(long, conflicts_with = "sigma_vox")]
    pub sigma_mm: Option<f64>,
    /// Gaussian σ smoothing the field every iteration, in voxels of each pyramid level (default 3).
    #[arg(long)]
    pub sigma_vox: Option<f64>,
    /// Gaussian σ (mm) smoothing each update (fluid); 0 = off.
    #[arg(long)]
    pub fluid_sigma_mm: Option<f64>,
    /// Pyramid, coarse to fine, as FACTOR:ITERATIONS,… (factor × the finest voxel size), e.g. 4:50,2:25,1:10.
    #[arg(long)]
    pub levels: Option<String>,
    /// Skip the global translation by phase correlation.
    #[arg(long)]
    pub no_prealign: bool,
    /// Stop a level once its mean squared difference fell by less than this fraction over 5 iterations (0 = run every iteration).
    #[arg(long)]
    pub stop_relative: Option<f32>,
    /// Largest step per iteration, voxels.
    #[arg(long)]
    pub max_step_vox: Option<f32>,
    /// Quantiles matched between the phases' histograms (0 = no matching).
    #[arg(long)]
    pub histogram_points: Option<usize>,
    /// A mask on the fixed grid (NIfTI; non-zero = inside) where forces act and metrics are taken.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Also write each registered phase as a DICOM series (new UIDs, same patient and
    /// study, the fixed series' frame of reference) under OUT/dicom/. DICOM input only.
    #[arg(long)]
    pub dicom: bool,
    /// A label mask drawn on a moving phase, carried onto the fixed grid through that
    /// phase's field: PHASE=MASK.nii.gz (e.g. arterial=lesions_art.nii.gz). Repeatable.
    #[arg(long = "warp-mask", value_name = "PHASE=MASK")]
    pub warp_masks: Vec<String>,
    /// How --warp-mask resamples: linear (label-wise: each label's indicator
    /// interpolated, the strongest wins; smooth boundaries) or nearest.
    #[arg(long, default_value = "linear", value_parser = ["linear", "nearest"])]
    pub mask_interp: String,
    /// Write the displacement fields on a grid of this spacing (mm, each axis; an axis
    /// already coarser keeps its own) instead of the fixed phase's voxels: e.g. 4 makes
    /// them 30–60× smaller. Warped phases and masks still use the full field.
    #[arg(long, value_name = "S")]
    pub field_spacing_mm: Option<f64>,
    /// Output folder, new (or empty): written whole or not at all, through a temporary
    /// folder beside it that is renamed when done; never overwritten.
    #[arg(long)]
    pub out: PathBuf,
    /// Set a phase by hand: N=PHASE (phases numbered in display order from 0). Repeatable.
    #[arg(long = "phase", value_name = "N=PHASE")]
    pub phase_overrides: Vec<String>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args {
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
    } = a;
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
        if hepaview::io::taken(&path) {
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
        if hepaview::io::taken(out) {
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
    if hepaview::io::taken(out)
        && !(out.is_dir() && std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false))
    {
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
    // one bar per phase, as long as its registration runs
    let bar = std::sync::Mutex::new(progress_bar_1000());
    let what = |i: usize| format!("{} → {}", slug(i), slug(fi));
    let report = |n: usize, f: f32, m: &str| {
        if let Ok(pb) = bar.lock() {
            pb.set_position((f * 1000.0) as u64);
            pb.set_message(format!("{}: {m}", what(moving_idx[n])));
        }
        true
    };
    let demons = Demons::Full { params, mask: mask.as_ref() };
    study.register_phases(fi, &moving_idx, demons, &report, |i, reg| -> Result<()> {
        let reg = reg.with_context(|| format!("registering {} onto {}", slug(i), slug(fi)))?;
        if let Ok(mut pb) = bar.lock() {
            std::mem::replace(&mut *pb, progress_bar_1000()).finish_and_clear();
        }
        let what = what(i);
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
        Ok(())
    })?;
    if let Ok(pb) = bar.lock() {
        pb.finish_and_clear();
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
