//! The lesion report a radiologist files or forwards: `report.json` (everything, for
//! programs), `lesions.csv` (one row per lesion, for spreadsheets) and `report.html` (one
//! self-contained page: key images of each lesion in each phase, its enhancement curve
//! against the liver, the measurements and the pattern hint with its evidence). Nothing is
//! fetched from the network when the page opens.

pub mod compare;
mod html;
pub(crate) use html::esc;
pub mod images;

use std::path::{Path, PathBuf};

use crate::cluster::ClusterReport;
use crate::lesion::LesionReport;
use crate::register::aligned::AlignedPhase;
use crate::volume::Mask;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} already exists; choose another output folder (Hepaview never overwrites files)")]
    Exists(PathBuf),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("writing {path}: {detail}")]
    Encode { path: PathBuf, detail: String },
}

/// What goes into a report.
pub struct ReportInput<'a> {
    /// Patient / study line at the top.
    pub title: String,
    /// The phases the numbers were taken from, on the mask's grid.
    pub phases: &'a [AlignedPhase],
    pub mask: &'a Mask,
    /// Where the mask came from (file name), for the record.
    pub mask_source: String,
    pub lesions: &'a LesionReport,
    pub clusters: Option<&'a ClusterReport>,
    /// How the phases were aligned, software version, anything the reader should know.
    pub notes: Vec<String>,
}

/// The files a report consists of.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub csv: PathBuf,
    pub html: PathBuf,
}

impl ReportFiles {
    pub fn in_dir(dir: &Path) -> ReportFiles {
        ReportFiles { json: dir.join("report.json"), csv: dir.join("lesions.csv"), html: dir.join("report.html") }
    }

    fn all(&self) -> [&Path; 3] {
        [&self.json, &self.csv, &self.html]
    }
}

/// Writes the three report files into `dir` (created if missing). Refuses before writing
/// anything if one of them exists; each file is written to a temporary name and renamed,
/// so a crash never leaves half a report under the final name.
pub fn write_report(input: &ReportInput, dir: &Path) -> Result<ReportFiles, ReportError> {
    let files = ReportFiles::in_dir(dir);
    if let Some(p) = files.all().into_iter().find(|p| crate::io::taken(p)) {
        return Err(ReportError::Exists(p.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_path_buf(), source })?;
    let json = serde_json::to_vec_pretty(&json_value(input))
        .map_err(|e| ReportError::Encode { path: files.json.clone(), detail: e.to_string() })?;
    write_atomic(&files.json, &json)?;
    write_atomic(
        &files.csv,
        &csv_bytes(input).map_err(|detail| ReportError::Encode { path: files.csv.clone(), detail })?,
    )?;
    write_atomic(&files.html, html::page(input).as_bytes())?;
    Ok(files)
}

fn json_value(input: &ReportInput) -> serde_json::Value {
    serde_json::json!({
        "title": input.title,
        "software": format!("Hepaview {}", env!("CARGO_PKG_VERSION")),
        "mask": input.mask_source,
        "phases": input.phases.iter().map(|p| serde_json::json!({
            "phase": p.phase.slug(),
            "series": p.description,
            "registered": p.registered,
        })).collect::<Vec<_>>(),
        "notes": input.notes,
        "lesions": input.lesions,
        "clusters": input.clusters,
    })
}

/// One row per lesion; per-phase columns for every phase present.
fn csv_bytes(input: &ReportInput) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "lesion",
        "volume_ml",
        "recist_long_mm",
        "recist_short_mm",
        "longest_3d_mm",
        "centroid_l_mm",
        "centroid_p_mm",
        "centroid_s_mm",
        "touches_edge",
        "pattern_hint",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in input.phases {
        let s = p.phase.slug();
        header.extend([
            format!("{s}_mean_hu"),
            format!("{s}_sd_hu"),
            format!("{s}_liver_ring_mean_hu"),
            format!("{s}_lesion_minus_liver_hu"),
        ]);
    }
    w.write_record(&header).map_err(|e| e.to_string())?;
    let f = |v: f64| format!("{v:.2}");
    let opt = |v: Option<f64>| v.map(f).unwrap_or_default();
    for l in &input.lesions.lesions {
        let mut row = vec![
            l.id.to_string(),
            format!("{:.3}", l.volume_ml),
            f(l.recist.long_axis_mm),
            f(l.recist.short_axis_mm),
            f(l.longest_diameter_3d_mm),
            f(l.centroid_mm[0]),
            f(l.centroid_mm[1]),
            f(l.centroid_mm[2]),
            l.touches_edge.to_string(),
            l.pattern.summary.clone(),
        ];
        for p in input.phases {
            match l.phases.iter().find(|s| s.phase == p.phase) {
                Some(s) => row.extend([
                    f(s.lesion.mean_hu),
                    f(s.lesion.sd_hu),
                    opt(s.liver_ring.as_ref().map(|r| r.mean_hu)),
                    opt(s.lesion_minus_liver_hu),
                ]),
                None => row.extend([String::new(), String::new(), String::new(), String::new()]),
            }
        }
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::io::write_new_file(path, bytes).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ReportError::Exists(path.to_path_buf()),
        _ => ReportError::Io { path: path.to_path_buf(), source },
    })
}

/// Colour of cluster `label` (1..=k) on a viridis-like ramp: clusters are numbered by
/// increasing portal-venous HU, so dark means low HU and yellow high, in the viewer's
/// overlay and in the report alike.
pub fn cluster_colour(label: u8, k: usize) -> [u8; 3] {
    const RAMP: [[f32; 3]; 5] =
        [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let t = if k <= 1 { 0.5 } else { (label.max(1) - 1) as f32 / (k - 1) as f32 }.clamp(0.0, 1.0);
    let x = t * (RAMP.len() - 1) as f32;
    let i = (x.floor() as usize).min(RAMP.len() - 2);
    let f = x - i as f32;
    let c = |a: usize| (RAMP[i][a] + f * (RAMP[i + 1][a] - RAMP[i][a])).round() as u8;
    [c(0), c(1), c(2)]
}
