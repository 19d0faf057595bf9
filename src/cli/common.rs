//! Helpers every command shares: progress bars, opening a study with the user's phase
//! overrides, NIfTI output names, a DICOM scan with a bar, and the source series of a
//! study's phases.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use hepaview::io::dicom::{self, DicomScan, SeriesInfo};
use hepaview::io::phase::Phase;
use hepaview::study::Study;

pub(crate) fn bar(total: usize, what: &str) -> ProgressBar {
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

pub(crate) fn parse_overrides(raw: &[String]) -> Result<Vec<(usize, Phase)>> {
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

pub(crate) fn scan_with_bar(path: &Path) -> Result<DicomScan> {
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

/// A comma-separated list of `flag`'s values (`--features 8,16,32`), each parsed, the
/// first bad one named with `what` it should be.
pub(crate) fn parse_list<T: std::str::FromStr>(list: &str, flag: &str, what: &str) -> Result<Vec<T>> {
    list.split(',').map(|v| v.trim().parse().ok().with_context(|| format!("{flag}: {v:?} is not {what}"))).collect()
}

/// A `--label-map CT.nii.gz,LABELS.nii.gz` read, with its CT's file name, after checking
/// the labels hold one of the `liver` classes.
pub(crate) struct LabelMap {
    pub name: String,
    pub ct_path: String,
    pub lab_path: String,
    pub ct: hepaview::volume::CtVolume,
    pub labels: hepaview::volume::Mask,
}

pub(crate) fn read_label_map(spec: &str, liver: &[u8]) -> Result<LabelMap> {
    use hepaview::io::nifti;
    let Some((ct_path, lab_path)) = spec.split_once(',') else {
        bail!("--label-map {spec:?}: give the CT and its label map as CT.nii.gz,LABELS.nii.gz");
    };
    let (ct, _) =
        nifti::read_ct(Path::new(ct_path)).with_context(|| format!("reading the --label-map CT {ct_path}"))?;
    let (labels, _) =
        nifti::read_mask(Path::new(lab_path)).with_context(|| format!("reading the --label-map labels {lab_path}"))?;
    if !labels.data.iter().any(|c| liver.contains(c)) {
        bail!("--label-map {lab_path}: no voxel has a liver class {liver:?}; set --liver-class");
    }
    let name = Path::new(ct_path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(LabelMap { name, ct_path: ct_path.to_string(), lab_path: lab_path.to_string(), ct, labels })
}

/// Writes a training run's record as `<stem>.train.json` beside the weights `out`;
/// returns its path.
pub(crate) fn write_train_record(out: &Path, record: &serde_json::Value) -> Result<PathBuf> {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let json = out.with_file_name(format!("{stem}.train.json"));
    std::fs::write(&json, serde_json::to_string_pretty(record)?)
        .with_context(|| format!("writing {}", json.display()))?;
    Ok(json)
}
