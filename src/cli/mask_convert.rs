//! `hepaview mask-convert MASK --study STUDY --out OUT`: a label mask between NIfTI
//! (`.nii`, `.nii.gz`) and DICOM SEG (`.dcm`), either direction, on the grid of a series
//! of the DICOM study it belongs to. The work is in `hepaview::io::{nifti, seg}`; this
//! file picks the series, checks (or, when asked, resamples) the grid and prints.
//!
//! Only `hepaview::` paths are used so the file also compiles inside the tests
//! (`tests/seg.rs` includes it), which exercise exactly the code the binary runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hepaview::edit::LabelTable;
use hepaview::io::dicom::{self, SeriesInfo};
use hepaview::io::{nifti, seg};
use hepaview::volume::{Geometry, Interp, Mask};

/// Choices beyond the three paths.
#[allow(dead_code)] // the binary may use only some of it
#[derive(Clone, Debug, Default)]
pub struct MaskConvertOptions {
    /// Resample a mask whose grid differs from the series onto it (nearest neighbour).
    pub resample: bool,
    /// The series to use, numbered as `hepaview info` lists them (from 0). By default:
    /// the series the mask's grid matches, or the one a SEG references.
    pub series: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The mask to convert (.nii / .nii.gz, or a DICOM SEG).
    pub mask: PathBuf,
    /// The DICOM folder of the study the mask belongs to.
    #[arg(long)]
    pub study: PathBuf,
    /// Output: .nii.gz or .dcm.
    #[arg(long)]
    pub out: PathBuf,
    /// Resample a mask on another grid onto the series (nearest neighbour).
    #[arg(long)]
    pub resample: bool,
    /// Series number as `hepaview info` lists them (default: the one the mask fits or the SEG references).
    #[arg(long)]
    pub series: Option<usize>,
}

pub(crate) fn run(a: Args) -> Result<()> {
    match a {
        Args { mask, study, out, resample: false, series: None } => mask_convert(&mask, &study, &out),
        Args { mask, study, out, resample, series } => {
            mask_convert_with(&mask, &study, &out, &MaskConvertOptions { resample, series }).map(|_| ())
        }
    }
}

/// What was converted (also printed).
#[allow(dead_code)] // read by tests and by callers that want more than the printout
#[derive(Clone, Debug)]
pub struct MaskConvertReport {
    pub series_index: usize,
    pub resampled: bool,
    /// `(label, voxels)` in the written mask.
    pub labels: Vec<(u8, usize)>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Nifti,
    Seg,
}

fn format_of(path: &Path, what: &str) -> Result<Format> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        Ok(Format::Nifti)
    } else if name.ends_with(".dcm") || (what == "input" && path.is_file() && is_dicom_file(path)) {
        // an input SEG may come without the extension (PACS exports often have none)
        Ok(Format::Seg)
    } else {
        bail!("{}: the {what} must be NIfTI (.nii or .nii.gz) or DICOM SEG (.dcm)", path.display())
    }
}

fn is_dicom_file(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
        && &head[128..132] == b"DICM"
}

/// Converts with default options (no resampling, series chosen by grid or reference).
pub fn mask_convert(mask: &Path, study: &Path, out: &Path) -> Result<()> {
    mask_convert_with(mask, study, out, &MaskConvertOptions::default()).map(|_| ())
}

/// Converts `mask` to `out` (format by extension) on a series of `study`, printing what it
/// did. Never overwrites `out`.
pub fn mask_convert_with(
    mask: &Path,
    study: &Path,
    out: &Path,
    opts: &MaskConvertOptions,
) -> Result<MaskConvertReport> {
    let from = format_of(mask, "input")?;
    let to = format_of(out, "output")?;
    if from == to {
        bail!(
            "{} and {} are both {}; mask-convert converts between NIfTI and DICOM SEG",
            mask.display(),
            out.display(),
            if from == Format::Nifti { "NIfTI" } else { "DICOM SEG" }
        );
    }
    if hepaview::io::taken(out) {
        bail!("{}: already exists; Hepaview never overwrites files, so choose another name", out.display());
    }
    // a NIfTI gets its label names beside it (ITK-SNAP's label description format)
    let sidecar = LabelTable::sidecar_path(out);
    if to == Format::Nifti && hepaview::io::taken(&sidecar) {
        bail!(
            "{}: already exists (the label names of {} would go there); Hepaview never overwrites files, so choose another output name or move that file away",
            sidecar.display(),
            out.display()
        );
    }
    let scan =
        dicom::scan(study, &dicom::no_progress).with_context(|| format!("reading the study {}", study.display()))?;
    let series: Vec<&SeriesInfo> = scan.all_series().collect();
    let by_index = |i: usize| -> Result<&SeriesInfo> {
        series.get(i).copied().with_context(|| {
            format!(
                "--series {i}: the study has {} series, numbered from 0 (see `hepaview info {}`)",
                series.len(),
                study.display()
            )
        })
    };
    let mut warnings = Vec::new();

    match from {
        Format::Nifti => {
            let (m, w) = nifti::read_mask(mask).with_context(|| format!("reading the mask {}", mask.display()))?;
            warnings.extend(w.iter().map(|w| w.to_string()));
            let index = match opts.series {
                Some(i) => {
                    by_index(i)?;
                    i
                }
                None => match series.iter().position(|s| m.geometry.same_grid(&s.geometry)) {
                    Some(i) => i,
                    None if series.len() == 1 => 0,
                    None => bail!(
                        "{}: the mask's grid ({}) matches none of the {} series of {}:\n{}\nchoose one with --series N, and add --resample to resample the mask onto it (nearest neighbour)",
                        mask.display(),
                        describe(&m.geometry),
                        series.len(),
                        study.display(),
                        list_series(&series)
                    ),
                },
            };
            let s = series[index];
            let (m, resampled) = fit_to(m, s, index, mask, opts.resample)?;
            let labels = label_counts(&m);
            // names of other labels from the label description beside the mask, if any
            let side = LabelTable::sidecar_path(mask);
            let named = match std::fs::read_to_string(&side) {
                Ok(text) => match LabelTable::from_itksnap(&text, &side.display().to_string()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        warnings.push(format!("{e}; labels other than 1–3 are named \"Label N\""));
                        None
                    }
                },
                Err(_) => None,
            };
            let table = LabelTable::lits();
            let defs: Vec<seg::SegmentDef> = labels
                .iter()
                .map(|&(l, _)| {
                    let own = named.as_ref().and_then(|t| t.get(l)).filter(|_| l > 3);
                    let rgba = own.or(table.get(l)).map(|x| x.rgba).unwrap_or(LabelTable::default_colour(l));
                    let name = match (l, own) {
                        (1, _) => "Liver".to_string(),
                        (2, _) => "Tumour".to_string(),
                        (3, _) => "Vessel".to_string(),
                        (_, Some(o)) => o.name.clone(),
                        _ => format!("Label {l}"),
                    };
                    seg::SegmentDef::for_label(l, &name, [rgba[0], rgba[1], rgba[2]])
                })
                .collect();
            let written = seg::write_seg(&m, s, &defs, out, &seg::SegWriteOptions::default())
                .with_context(|| format!("writing {}", out.display()))?;
            warnings.extend(written.warnings.iter().map(|w| w.to_string()));
            println!(
                "Wrote {}: DICOM SEG, {} segment(s) in {} frame(s), referencing series {index} ({}){}",
                out.display(),
                written.segments.len(),
                written.frames,
                s.description,
                if resampled { ", mask resampled onto it" } else { "" }
            );
            for w in &warnings {
                eprintln!("! {w}");
            }
            Ok(MaskConvertReport { series_index: index, resampled, labels, warnings })
        }
        Format::Seg => {
            // the series the SEG references, else the one asked for, else the only one
            let peek =
                seg::read_seg(mask, None).with_context(|| format!("reading the segmentation {}", mask.display()))?;
            let index = match (opts.series, &peek.referenced_series_uid) {
                (Some(i), _) => {
                    by_index(i)?;
                    i
                }
                (None, Some(uid)) => match series.iter().position(|s| &s.series_uid == uid) {
                    Some(i) => i,
                    None if series.len() == 1 => {
                        warnings.push(format!("the segmentation references series {uid}, which is not in {}; placed on its only series by position", study.display()));
                        0
                    }
                    None => bail!(
                        "{}: references series {uid}, which is not in {}; choose a series with --series N:\n{}",
                        mask.display(),
                        study.display(),
                        list_series(&series)
                    ),
                },
                (None, None) if series.len() == 1 => 0,
                (None, None) => bail!(
                    "{}: names no source series; choose one with --series N:\n{}",
                    mask.display(),
                    list_series(&series)
                ),
            };
            let s = series[index];
            if let (Some(a), b) = (&peek.frame_of_reference_uid, &s.frame_of_reference) {
                if !b.is_empty() && a != b {
                    warnings.push(format!("the segmentation's frame of reference {a} differs from the series' {b}; positions may not correspond"));
                }
            }
            let read = seg::read_seg(mask, Some(&s.geometry))
                .with_context(|| format!("reading the segmentation {}", mask.display()))?;
            warnings.extend(read.warnings.iter().map(|w| w.to_string()));
            let (m, overlaps) = read.label_mask();
            if overlaps > 0 {
                warnings.push(format!(
                    "{overlaps} voxels belong to more than one segment; the later segment's label was kept"
                ));
            }
            let labels = label_counts(&m);
            let table = seg_label_table(&read.labels());
            nifti::write_volume(&m, out).with_context(|| format!("writing {}", out.display()))?;
            write_new(&sidecar, &table.to_itksnap())
                .with_context(|| format!("writing the label names of {} to {}", out.display(), sidecar.display()))?;
            println!(
                "Wrote {}: labels {} on the grid of series {index} ({}); label names in {}",
                out.display(),
                labels
                    .iter()
                    .map(|&(l, n)| format!("{l} {} ({n} voxels)", table.name_of(l)))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.description,
                sidecar.display()
            );
            for w in &warnings {
                eprintln!("! {w}");
            }
            Ok(MaskConvertReport { series_index: index, resampled: false, labels, warnings })
        }
    }
}

/// The label table of a SEG read as a label mask: its names, and its colours where the
/// SEG gives them.
fn seg_label_table(labels: &[seg::SegLabel]) -> LabelTable {
    let mut table = LabelTable::empty();
    for l in labels {
        let rgba = l.rgb.map(|c| [c[0], c[1], c[2], 255]).unwrap_or(LabelTable::default_colour(l.value));
        // values are distinct and 1…255 by construction
        let _ = table.insert(hepaview::edit::Label {
            value: l.value,
            name: l.name.clone(),
            rgba,
            opacity: 0.5,
            visible: true,
            locked: false,
        });
    }
    table
}

/// Writes `text` to a new file `path` (never over an existing one), through a temporary
/// file beside it, so the file is whole or absent.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    hepaview::io::write_new_file(path, text.as_bytes())
}

fn describe(g: &Geometry) -> String {
    format!(
        "{}×{}×{} voxels of {:.3}×{:.3}×{:.3} mm (x, y, z), first voxel at ({:.2}, {:.2}, {:.2}) mm LPS",
        g.shape[2],
        g.shape[1],
        g.shape[0],
        g.spacing_mm[2],
        g.spacing_mm[1],
        g.spacing_mm[0],
        g.origin_mm[0],
        g.origin_mm[1],
        g.origin_mm[2]
    )
}

fn list_series(series: &[&SeriesInfo]) -> String {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {i}: {} — {}", s.description, describe(&s.geometry)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mask on the series' grid: as it is when the grids agree; resampled by nearest
/// neighbour when allowed; otherwise an error that says how to resample.
fn fit_to(m: Mask, s: &SeriesInfo, index: usize, path: &Path, resample: bool) -> Result<(Mask, bool)> {
    if m.geometry.same_grid(&s.geometry) {
        return Ok((m, false));
    }
    if !resample {
        bail!(
            "{}: the mask's grid does not match series {index} ({}):\n  mask:   {}\n  series: {}\nadd --resample to resample the mask onto the series (nearest neighbour, labels kept), or resample it in ITK-SNAP / 3D Slicer onto that series first",
            path.display(),
            s.description,
            describe(&m.geometry),
            describe(&s.geometry)
        );
    }
    let before = label_counts(&m);
    let r = m.resample_to(&s.geometry, Interp::Nearest, 0);
    if before.iter().any(|&(l, _)| !label_counts(&r).iter().any(|&(x, _)| x == l)) {
        eprintln!("! some labels vanished in resampling (objects smaller than the series' voxels, or outside it)");
    }
    Ok((r, true))
}

fn label_counts(m: &Mask) -> Vec<(u8, usize)> {
    let mut n = [0usize; 256];
    for &v in m.data.iter() {
        n[v as usize] += 1;
    }
    (1..=255u8).filter(|&l| n[l as usize] > 0).map(|l| (l, n[l as usize])).collect()
}
