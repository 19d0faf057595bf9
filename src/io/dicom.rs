//! DICOM folders → studies → series → `CtVolume`s.
//!
//! Two passes, so a study is read once and held once:
//! 1. [`scan`] reads only the headers (up to PixelData) of every file under a folder, in
//!    parallel, skips what is not an image (with a reason), groups the rest by study and
//!    series, and plans each series' volume: slices sorted by position along the slice
//!    normal (never by file name or InstanceNumber), steps checked, strays set aside.
//! 2. [`load_series`] decodes the pixel data of the planned slices straight into their
//!    z-slab of one preallocated `[z, y, x]` i16 array (HU from each slice's own
//!    RescaleSlope/Intercept), in parallel.
//!
//! Problems that still let a series load come back as [`Warning`]s; files that cannot be
//! used are skipped with a warning naming them; hard failures are [`DicomError`]s that name
//! the file and say what to do. dicom-rs does the parsing and the codecs (RLE, JPEG
//! lossless/baseline, JPEG 2000, deflate); 12-bit lossy JPEG and JPEG-LS are refused with
//! a clear message.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::Warning;
use crate::volume::{cross, dot, norm, sub, CtVolume, Geometry, Lps, Volume};

#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: not a DICOM file ({why})")]
    NotDicom { path: PathBuf, why: String },
    #[error("{path}: not an image ({what}); open the image series it refers to instead")]
    NotAnImage { path: PathBuf, what: String },
    #[error("{path}: could not read: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: pixel data truncated ({detail}); the file was cut short, copy it again")]
    PixelDataTruncated { path: PathBuf, detail: String },
    #[error("{path}: cannot decode pixel data in transfer syntax {transfer_syntax}: {message}")]
    Decode { path: PathBuf, transfer_syntax: String, message: String },
    #[error("{path}: unsupported image: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: no DICOM image series found ({files} files looked at){hint}")]
    NoImages { path: PathBuf, files: usize, hint: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("loading cancelled")]
    Cancelled,
}

/// Names of the transfer syntaxes a user may meet, and whether Hepaview decodes them.
pub fn transfer_syntax_name(uid: &str) -> (&'static str, bool) {
    match uid.trim_end_matches('\0') {
        "1.2.840.10008.1.2" => ("Implicit VR Little Endian", true),
        "1.2.840.10008.1.2.1" => ("Explicit VR Little Endian", true),
        "1.2.840.10008.1.2.1.99" => ("Deflated Explicit VR Little Endian", true),
        "1.2.840.10008.1.2.2" => ("Explicit VR Big Endian", true),
        "1.2.840.10008.1.2.4.50" => ("JPEG Baseline (lossy)", true),
        "1.2.840.10008.1.2.4.51" => ("JPEG Extended 12-bit (lossy)", false),
        "1.2.840.10008.1.2.4.57" => ("JPEG Lossless", true),
        "1.2.840.10008.1.2.4.70" => ("JPEG Lossless SV1", true),
        "1.2.840.10008.1.2.4.80" => ("JPEG-LS Lossless", false),
        "1.2.840.10008.1.2.4.81" => ("JPEG-LS Near-Lossless", false),
        "1.2.840.10008.1.2.4.90" => ("JPEG 2000 Lossless", true),
        "1.2.840.10008.1.2.4.91" => ("JPEG 2000 (lossy)", true),
        "1.2.840.10008.1.2.5" => ("RLE Lossless", true),
        _ => ("unknown transfer syntax", false),
    }
}

fn is_lossy(uid: &str) -> bool {
    matches!(
        uid.trim_end_matches('\0'),
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.81" | "1.2.840.10008.1.2.4.91"
    )
}

/// What a non-image SOP class is, in words.
fn non_image_sop_class(uid: &str) -> Option<&'static str> {
    let uid = uid.trim_end_matches('\0');
    Some(match uid {
        "1.2.840.10008.5.1.4.1.1.481.3" => "RT Structure Set",
        "1.2.840.10008.5.1.4.1.1.66.4" => "Segmentation (DICOM SEG); load it as a mask",
        "1.2.840.10008.5.1.4.1.1.11.1" => "Presentation State",
        "1.2.840.10008.1.3.10" => "DICOMDIR (media index)",
        "1.2.840.10008.5.1.4.1.1.104.1" => "Encapsulated PDF",
        u if u.starts_with("1.2.840.10008.5.1.4.1.1.88.") => "Structured Report (SR)",
        u if u.starts_with("1.2.840.10008.5.1.4.1.1.481.") => "RT object",
        _ => return None,
    })
}

/// Pixel layout needed to turn stored values into HU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PixelFormat {
    pub rows: usize,
    pub columns: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub samples_per_pixel: u16,
}

/// One 2-D image: a single-frame file, or one frame of an enhanced (multi-frame) file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Frame {
    pub path: PathBuf,
    /// Frame number inside the file (0 for single-frame files).
    pub frame: u32,
    pub position_mm: Lps,
    /// Row and column directions (ImageOrientationPatient).
    pub orientation: [Lps; 2],
    /// (row spacing, column spacing) = (sy, sx) mm.
    pub pixel_spacing_mm: [f64; 2],
    pub slice_thickness_mm: Option<f64>,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub instance_number: Option<i64>,
    /// False when the file has no usable ImagePositionPatient/ImageOrientationPatient.
    pub placed: bool,
    /// False when PixelSpacing was missing (1 mm assumed).
    pub spacing_known: bool,
    /// False when RescaleIntercept was missing or not a number (0 assumed).
    pub intercept_known: bool,
    /// What was wrong with ImageOrientationPatient and how it was repaired (not unit
    /// length: normalised; not orthogonal: the column made orthogonal to the row).
    pub orientation_repaired: Option<String>,
}

/// What a file's header says, as much as Hepaview needs.
#[derive(Clone, Debug)]
struct FileHeader {
    path: PathBuf,
    file_len: u64,
    transfer_syntax: String,
    sop_class: String,
    study_uid: String,
    series_uid: String,
    patient_name: String,
    patient_id: String,
    study_date: String,
    study_description: String,
    series_number: Option<i64>,
    series_description: String,
    modality: String,
    image_type: Vec<String>,
    acquisition_time: Option<String>,
    contrast_agent: Option<String>,
    frame_of_reference: String,
    gantry_tilt_deg: Option<f64>,
    pixel: PixelFormat,
    photometric: String,
    frames: Vec<Frame>,
}

/// A series found by [`scan`], planned but not decoded.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeriesInfo {
    pub study_uid: String,
    pub series_uid: String,
    pub series_number: Option<i64>,
    pub description: String,
    pub modality: String,
    pub acquisition_time: Option<String>,
    pub contrast_agent: Option<String>,
    pub frame_of_reference: String,
    pub transfer_syntaxes: Vec<String>,
    pub pixel: PixelFormat,
    /// Slices in volume order (ascending along the slice direction), one per position.
    pub frames: Vec<Frame>,
    /// The grid the volume will have (after resampling uneven steps).
    pub geometry: Geometry,
    /// Positions along the slice direction (mm from the first slice) of `frames`.
    pub slice_offsets_mm: Vec<f64>,
    /// True when the slice steps were uneven and the volume is resampled onto `geometry`.
    pub resampled: bool,
    pub warnings: Vec<Warning>,
    /// Files of this series left out of the volume (scouts, odd sizes, duplicates…).
    pub set_aside: Vec<PathBuf>,
}

impl SeriesInfo {
    pub fn voxel_count(&self) -> usize {
        self.geometry.len()
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct StudyInfo {
    pub study_uid: String,
    pub patient_name: String,
    pub patient_id: String,
    pub study_date: String,
    pub description: String,
    pub series: Vec<SeriesInfo>,
}

/// What [`scan`] found under a folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DicomScan {
    pub root: PathBuf,
    pub files_seen: usize,
    pub studies: Vec<StudyInfo>,
    /// Problems not tied to one series: files skipped and why.
    pub warnings: Vec<Warning>,
}

impl DicomScan {
    pub fn all_series(&self) -> impl Iterator<Item = &SeriesInfo> {
        self.studies.iter().flat_map(|s| s.series.iter())
    }
}

/// Progress callback: `(done, total)`; return `false` to cancel.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) -> bool + Sync);

/// Never cancels, reports nothing.
pub fn no_progress(_: usize, _: usize) -> bool {
    true
}

/// Lists every regular file under `root` (or `root` itself when it is a file), with a
/// warning for each folder or link that could not be read: a subfolder without read
/// permission must not silently drop its slices.
fn list_files(root: &Path) -> Result<(Vec<PathBuf>, Vec<Warning>), DicomError> {
    if !root.exists() {
        return Err(DicomError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    }
    let mut warnings = Vec::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        // the viewer's own autosave folder beside a study holds no images: not a problem to report
        .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && e.file_name() == super::SESSION_DIR_NAME))
        .filter_map(|e| match e {
            Ok(e) => Some(e),
            Err(err) => {
                let path = err.path().unwrap_or(root).to_path_buf();
                let why = err.io_error().map(|e| e.to_string()).unwrap_or_else(|| err.to_string());
                warnings.push(Warning::new(
                    path,
                    format!("could not be read ({why}): any slices in it are missing"),
                    "check its permissions or the link, then open the study again",
                ));
                None
            }
        })
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    Ok((files, warnings))
}

/// Scans a folder (recursively) or one file and plans every image series in it.
pub fn scan(root: &Path, progress: Progress) -> Result<DicomScan, DicomError> {
    let (files, listing_warnings) = list_files(root)?;
    let total = files.len();
    let done = AtomicUsize::new(0);
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<FileHeader, DicomError>> = files
        .par_iter()
        .map(|p| {
            if cancelled.load(Ordering::Relaxed) {
                return Err(DicomError::Cancelled);
            }
            let r = read_header(p);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if !progress(n, total) {
                cancelled.store(true, Ordering::Relaxed);
            }
            r
        })
        .collect();
    if cancelled.load(Ordering::Relaxed) {
        return Err(DicomError::Cancelled);
    }
    // One file asked for by name: its own error says more than "no images found".
    let mut results = results;
    if root.is_file() && matches!(results.first(), Some(Err(_))) {
        results.swap_remove(0)?;
    }
    let mut warnings = listing_warnings;
    let mut headers = Vec::new();
    let mut skipped_reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in results {
        match r {
            Ok(h) => headers.push(h),
            Err(e) => {
                let kind = match &e {
                    DicomError::NotDicom { .. } => "not DICOM",
                    DicomError::Empty { .. } => "empty",
                    DicomError::NotAnImage { .. } => "not an image",
                    _ => "unreadable",
                };
                *skipped_reasons.entry(kind).or_default() += 1;
                let path = error_path(&e).unwrap_or(root).to_path_buf();
                warnings.push(Warning::new(path, format!("skipped: {e}"), ""));
            }
        }
    }
    let studies = group(headers, &mut warnings);
    if studies.is_empty() {
        let mut hint = String::new();
        if !skipped_reasons.is_empty() {
            hint = format!(
                "; skipped: {}",
                skipped_reasons.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
            );
        }
        if !warnings.is_empty() {
            let first: Vec<String> = warnings.iter().take(3).map(|w| w.to_string()).collect();
            hint.push_str(&format!("; problems: {}", first.join("; ")));
        }
        return Err(DicomError::NoImages { path: root.to_path_buf(), files: total, hint });
    }
    Ok(DicomScan { root: root.to_path_buf(), files_seen: total, studies, warnings })
}

fn error_path(e: &DicomError) -> Option<&Path> {
    match e {
        DicomError::Empty { path }
        | DicomError::NotDicom { path, .. }
        | DicomError::NotAnImage { path, .. }
        | DicomError::Read { path, .. }
        | DicomError::PixelDataTruncated { path, .. }
        | DicomError::Decode { path, .. }
        | DicomError::Unsupported { path, .. }
        | DicomError::NoImages { path, .. }
        | DicomError::Io { path, .. } => Some(path),
        DicomError::Cancelled => None,
    }
}

/// How a file starts, decided from its first bytes before any parser sees it.
enum Layout {
    /// 128-byte preamble then "DICM" (Part 10).
    Part10,
    /// File meta group at offset 0, no preamble.
    MetaNoPreamble,
    /// A dataset with no file meta group (old ACR-NEMA style), starting at `offset`
    /// (0, or 132 after a preamble and "DICM"); `explicit` when VR letters follow the tag.
    Bare { explicit: bool, offset: u64 },
}

fn sniff(path: &Path) -> Result<Layout, DicomError> {
    let mut f = std::fs::File::open(path).map_err(|source| DicomError::Io { path: path.to_path_buf(), source })?;
    let mut head = [0u8; 132];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => return Err(DicomError::Io { path: path.to_path_buf(), source }),
        }
    }
    if n == 0 {
        return Err(DicomError::Empty { path: path.to_path_buf() });
    }
    if n >= 132 && &head[128..132] == b"DICM" {
        // Some writers put "DICM" and then the dataset itself, with no meta group.
        let mut next = [0u8; 6];
        if f.read_exact(&mut next).is_ok() && u16::from_le_bytes([next[0], next[1]]) != 0x0002 {
            let explicit = next[4].is_ascii_uppercase() && next[5].is_ascii_uppercase();
            return Ok(Layout::Bare { explicit, offset: 132 });
        }
        return Ok(Layout::Part10);
    }
    if n >= 8 {
        let group = u16::from_le_bytes([head[0], head[1]]);
        let element = u16::from_le_bytes([head[2], head[3]]);
        let vr_letters = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
        if group == 0x0002 && vr_letters {
            return Ok(Layout::MetaNoPreamble);
        }
        // A bare dataset starts with a low group (0008 identifying, sometimes 0000/0018)
        // and a small element number; text or other binaries almost never do.
        if matches!(group, 0x0008 | 0x0010 | 0x0018 | 0x0020 | 0x0028) && element < 0x0200 {
            return Ok(Layout::Bare { explicit: vr_letters, offset: 0 });
        }
    }
    if n >= 132 && &head[128..132] != b"DICM" && head[..128].iter().all(|&b| b == 0) {
        return Err(DicomError::NotDicom {
            path: path.to_path_buf(),
            why: format!(
                "a 128-byte preamble is followed by {:?} instead of \"DICM\"",
                String::from_utf8_lossy(&head[128..132])
            ),
        });
    }
    Err(DicomError::NotDicom {
        path: path.to_path_buf(),
        why: "no DICM marker and no recognisable DICOM dataset at the start".into(),
    })
}

/// Opens a file fully (`until_pixels = false`) or up to its pixel data.
fn open(path: &Path, until_pixels: bool) -> Result<DefaultDicomObject, DicomError> {
    let layout = sniff(path)?;
    let read_err =
        |e: dicom_object::ReadError| DicomError::Read { path: path.to_path_buf(), message: flatten_error(&e) };
    match layout {
        Layout::Part10 | Layout::MetaNoPreamble => {
            let mut opts = OpenFileOptions::new();
            if until_pixels {
                opts = opts.read_until(tags::PIXEL_DATA);
            }
            if matches!(layout, Layout::MetaNoPreamble) {
                opts = opts.read_preamble(dicom_object::file::ReadPreamble::Never);
            } else {
                opts = opts.read_preamble(dicom_object::file::ReadPreamble::Always);
            }
            opts.open_file(path).map_err(read_err)
        }
        Layout::Bare { explicit, offset } => {
            let ts = if explicit {
                dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased()
            } else {
                dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()
            };
            let mut file =
                std::fs::File::open(path).map_err(|source| DicomError::Io { path: path.to_path_buf(), source })?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
                .map_err(|source| DicomError::Io { path: path.to_path_buf(), source })?;
            let obj = InMemDicomObject::read_dataset_with_ts(std::io::BufReader::new(file), &ts).map_err(read_err)?;
            let sop_class = get_str(&obj, tags::SOP_CLASS_UID).unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.2".into());
            let sop_inst = get_str(&obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| "2.25.0".into());
            let meta = dicom_object::FileMetaTableBuilder::new()
                .transfer_syntax(ts.uid())
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_inst);
            obj.with_meta(meta).map_err(|e| DicomError::Read { path: path.to_path_buf(), message: e.to_string() })
        }
    }
}

/// dicom-rs errors nest their causes; a user needs the innermost words too.
fn flatten_error(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A string value with padding (spaces, NUL) trimmed; `None` when absent or empty.
pub(crate) fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

pub(crate) fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok()
}

fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok()
}

fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Looks a frame attribute up the way enhanced objects define it: per-frame functional
/// group, then shared group, then the top level (classic single-frame files).
fn frame_attr<T>(
    obj: &InMemDicomObject,
    per_frame: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
    seq: Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    per_frame
        .and_then(|g| first_item(g, seq))
        .and_then(&get)
        .or_else(|| shared.and_then(|g| first_item(g, seq)).and_then(&get))
        .or_else(|| get(obj))
}

fn read_header(path: &Path) -> Result<FileHeader, DicomError> {
    let obj = open(path, true)?;
    let transfer_syntax = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let sop_class = get_str(&obj, tags::SOP_CLASS_UID)
        .unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    if let Some(what) = non_image_sop_class(&sop_class) {
        return Err(DicomError::NotAnImage { path: path.to_path_buf(), what: what.into() });
    }
    let (rows, columns) = match (get_int(&obj, tags::ROWS), get_int(&obj, tags::COLUMNS)) {
        (Some(r), Some(c)) if r > 0 && c > 0 => (r as usize, c as usize),
        _ => {
            return Err(DicomError::NotAnImage {
                path: path.to_path_buf(),
                what: "no Rows/Columns, so no pixel data to show".into(),
            })
        }
    };
    let pixel = PixelFormat {
        rows,
        columns,
        bits_allocated: get_int(&obj, tags::BITS_ALLOCATED).unwrap_or(16) as u16,
        bits_stored: get_int(&obj, tags::BITS_STORED).or_else(|| get_int(&obj, tags::BITS_ALLOCATED)).unwrap_or(16)
            as u16,
        signed: get_int(&obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1,
        samples_per_pixel: get_int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
    };
    let claimed_frames = get_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // A claimed frame count is checked against the bytes present before anything is sized
    // by it: NumberOfFrames = 1e9 in a 0.5 MB file must be refused at once, not allocated.
    // Uncompressed frames need their full size; a compressed one at least a fragment header.
    let frame_bytes = (rows as u64) * (columns as u64) * (pixel.bits_allocated.max(8) as u64 / 8);
    let is_native_ts = is_native(&transfer_syntax);
    let min_frame_bytes = if is_native_ts { frame_bytes.max(1) } else { 8 };
    if (claimed_frames as u64).saturating_mul(min_frame_bytes) > file_len.saturating_add(min_frame_bytes) {
        return Err(DicomError::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "NumberOfFrames says {claimed_frames} frames, but the file's {file_len} bytes cannot hold them \
                 (each needs at least {min_frame_bytes}); the header is damaged"
            ),
        });
    }
    let n_frames = claimed_frames as usize;
    let per_frame_items = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    let shared = first_item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut frames = Vec::with_capacity(n_frames.min(4096));
    for f in 0..n_frames {
        let pf = per_frame_items.and_then(|items| items.get(f));
        let ipp =
            frame_attr(&obj, pf, shared, tags::PLANE_POSITION_SEQUENCE, |o| get_f64s(o, tags::IMAGE_POSITION_PATIENT));
        let iop = frame_attr(&obj, pf, shared, tags::PLANE_ORIENTATION_SEQUENCE, |o| {
            get_f64s(o, tags::IMAGE_ORIENTATION_PATIENT)
        });
        let spacing = frame_attr(&obj, pf, shared, tags::PIXEL_MEASURES_SEQUENCE, |o| get_f64s(o, tags::PIXEL_SPACING))
            .or_else(|| get_f64s(&obj, tags::IMAGER_PIXEL_SPACING));
        let thickness =
            frame_attr(&obj, pf, shared, tags::PIXEL_MEASURES_SEQUENCE, |o| get_f64(o, tags::SLICE_THICKNESS));
        let slope = frame_attr(&obj, pf, shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |o| {
            get_f64(o, tags::RESCALE_SLOPE)
        });
        let intercept = frame_attr(&obj, pf, shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |o| {
            get_f64(o, tags::RESCALE_INTERCEPT)
        });
        // Positions beyond 10 km are damaged values, not a patient (1e15, 1e300).
        let ipp = ipp.filter(|v| v.len() >= 3 && v.iter().all(|x| x.is_finite() && x.abs() < 1e7));
        let iop = iop.filter(|v| {
            v.len() >= 6
                && v.iter().all(|x| x.is_finite())
                && norm(cross([v[0], v[1], v[2]], [v[3], v[4], v[5]])) > 1e-3
        });
        let placed = ipp.is_some() && iop.is_some();
        // Without a position the slice can still be shown, but not placed in the patient:
        // stack such slices by InstanceNumber (or frame) and say so.
        let stack_z = get_int(&obj, tags::INSTANCE_NUMBER).unwrap_or(0) as f64 + f as f64;
        let ipp = ipp.unwrap_or_else(|| vec![0.0, 0.0, stack_z * thickness.filter(|t| *t > 0.0).unwrap_or(1.0)]);
        let iop = iop.unwrap_or_else(|| vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let (iop, orientation_repaired) = orthonormal_orientation(&iop);
        // A pixel is more than a micrometre and less than a metre wide (inf, 1e39: damaged).
        let spacing_known = spacing
            .as_ref()
            .is_some_and(|s| s.len() >= 2 && s[..2].iter().all(|v| v.is_finite() && *v > 1e-3 && *v < 1e3));
        let thickness = thickness.filter(|t| t.is_finite() && *t > 0.0 && *t < 1e3);
        let spacing = if spacing_known { spacing.unwrap_or_default() } else { vec![1.0, 1.0] };
        let slope = slope.filter(|s| *s != 0.0 && s.is_finite()).unwrap_or(1.0);
        frames.push(Frame {
            path: path.to_path_buf(),
            frame: f as u32,
            position_mm: [ipp[0], ipp[1], ipp[2]],
            orientation: [[iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]],
            pixel_spacing_mm: [spacing[0], spacing[1]],
            slice_thickness_mm: thickness,
            rescale_slope: slope,
            rescale_intercept: intercept.filter(|v| v.is_finite()).unwrap_or(0.0),
            intercept_known: intercept.is_some_and(|v| v.is_finite()),
            orientation_repaired,
            instance_number: get_int(&obj, tags::INSTANCE_NUMBER),
            placed,
            spacing_known,
        });
    }
    let image_type = obj
        .get(tags::IMAGE_TYPE)
        .and_then(|e| e.to_multi_str().ok().map(|v| v.iter().map(|s| s.trim().to_uppercase()).collect()))
        .unwrap_or_default();
    Ok(FileHeader {
        path: path.to_path_buf(),
        file_len: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        transfer_syntax,
        sop_class,
        study_uid: get_str(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        series_uid: get_str(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        patient_name: get_str(&obj, tags::PATIENT_NAME).unwrap_or_default(),
        patient_id: get_str(&obj, tags::PATIENT_ID).unwrap_or_default(),
        study_date: get_str(&obj, tags::STUDY_DATE).unwrap_or_default(),
        study_description: get_str(&obj, tags::STUDY_DESCRIPTION).unwrap_or_default(),
        series_number: get_int(&obj, tags::SERIES_NUMBER),
        series_description: get_str(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        modality: get_str(&obj, tags::MODALITY).unwrap_or_default(),
        image_type,
        acquisition_time: get_str(&obj, tags::ACQUISITION_TIME)
            .or_else(|| get_str(&obj, tags::ACQUISITION_DATE_TIME).map(|s| s.chars().skip(8).collect()))
            .or_else(|| get_str(&obj, tags::CONTENT_TIME))
            .or_else(|| get_str(&obj, tags::SERIES_TIME)),
        contrast_agent: get_str(&obj, tags::CONTRAST_BOLUS_AGENT),
        frame_of_reference: get_str(&obj, tags::FRAME_OF_REFERENCE_UID).unwrap_or_default(),
        gantry_tilt_deg: get_f64(&obj, tags::GANTRY_DETECTOR_TILT),
        photometric: get_str(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        pixel,
        frames,
    })
}

/// ImageOrientationPatient as two unit, orthogonal directions, and what had to be repaired:
/// a row or column of length ≠ 1 would scale every voxel size derived from it (0.703 mm
/// written as 1.406), and non-orthogonal ones make a grid no NIfTI qform can hold.
fn orthonormal_orientation(v: &[f64]) -> (Vec<f64>, Option<String>) {
    let (r, c) = ([v[0], v[1], v[2]], [v[3], v[4], v[5]]);
    let (nr, nc) = (norm(r), norm(c));
    let mut notes = Vec::new();
    if (nr - 1.0).abs() > 1e-3 || (nc - 1.0).abs() > 1e-3 {
        notes.push(format!("its row and column vectors have lengths {nr:.4} and {nc:.4}, not 1 (normalised)"));
    }
    let r = r.map(|x| x / nr);
    let c = c.map(|x| x / nc);
    let d = dot(r, c);
    let c = if d.abs() > 1e-3 {
        notes.push(format!(
            "its row and column are {:.2}° apart, not 90° (the column made orthogonal to the row)",
            d.clamp(-1.0, 1.0).acos().to_degrees()
        ));
        let o = sub(c, r.map(|x| x * d));
        let n = norm(o);
        o.map(|x| x / n)
    } else {
        c
    };
    let repaired = (!notes.is_empty()).then(|| format!("ImageOrientationPatient is damaged: {}", notes.join("; ")));
    (vec![r[0], r[1], r[2], c[0], c[1], c[2]], repaired)
}

/// Groups headers into studies and series and plans each series.
fn group(headers: Vec<FileHeader>, warnings: &mut Vec<Warning>) -> Vec<StudyInfo> {
    // study uid → series uid → headers; BTreeMaps give a stable order.
    let mut by_study: BTreeMap<String, BTreeMap<String, Vec<FileHeader>>> = BTreeMap::new();
    for h in headers {
        by_study.entry(h.study_uid.clone()).or_default().entry(h.series_uid.clone()).or_default().push(h);
    }
    let mut studies = Vec::new();
    for (study_uid, series_map) in by_study {
        let first = series_map.values().next().and_then(|v| v.first()).cloned();
        let Some(first) = first else { continue };
        let mut series = Vec::new();
        for (_, files) in series_map {
            if let Some(s) = plan_series(files, warnings) {
                series.push(s);
            }
        }
        series.sort_by(|a, b| a.series_number.cmp(&b.series_number).then(a.series_uid.cmp(&b.series_uid)));
        if series.is_empty() {
            continue;
        }
        studies.push(StudyInfo {
            study_uid,
            patient_name: first.patient_name.clone(),
            patient_id: first.patient_id.clone(),
            study_date: first.study_date.clone(),
            description: first.study_description.clone(),
            series,
        });
    }
    studies
}

fn round_key(v: f64, step: f64) -> i64 {
    (v / step).round() as i64
}

/// Rows, columns, rounded orientation and pixel spacing: slices with equal keys can share
/// one grid.
type StackKey = (usize, usize, [i64; 6], [i64; 2]);

/// Key of a "stack": slices that can share one grid (same orientation and size).
fn stack_key(h: &FileHeader, f: &Frame) -> StackKey {
    let o = f.orientation;
    (
        h.pixel.rows,
        h.pixel.columns,
        [
            round_key(o[0][0], 1e-3),
            round_key(o[0][1], 1e-3),
            round_key(o[0][2], 1e-3),
            round_key(o[1][0], 1e-3),
            round_key(o[1][1], 1e-3),
            round_key(o[1][2], 1e-3),
        ],
        [round_key(f.pixel_spacing_mm[0], 1e-3), round_key(f.pixel_spacing_mm[1], 1e-3)],
    )
}

fn is_native(ts: &str) -> bool {
    matches!(ts, "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2")
}

/// Bytes the uncompressed pixels of a file take.
fn pixel_bytes(h: &FileHeader) -> u64 {
    (h.pixel.rows as u64)
        * (h.pixel.columns as u64)
        * (h.pixel.samples_per_pixel.max(1) as u64)
        * (h.pixel.bits_allocated.max(8) as u64 / 8)
        * h.frames.len() as u64
}

fn plan_series(files: Vec<FileHeader>, warnings: &mut Vec<Warning>) -> Option<SeriesInfo> {
    let mut series_warnings = Vec::new();
    let mut set_aside = Vec::new();
    let mut kept = Vec::new();
    let is_sc = |h: &FileHeader| {
        h.sop_class == "1.2.840.10008.5.1.4.1.1.7" || h.sop_class.starts_with("1.2.840.10008.5.1.4.1.1.7.")
    };
    // Screenshots mixed into a scan are set aside; a series made only of them is shown.
    let has_acquired = files.iter().any(|h| !is_sc(h));
    for h in files {
        let why = if h.image_type.iter().any(|t| t == "LOCALIZER") {
            Some("scout/localizer image (ImageType LOCALIZER)".to_string())
        } else if has_acquired && is_sc(&h) {
            Some("secondary capture (a screenshot, not a slice of the scan)".to_string())
        } else if h.pixel.samples_per_pixel != 1 {
            Some(format!(
                "colour image ({}, {} samples per pixel), not a CT slice",
                h.photometric, h.pixel.samples_per_pixel
            ))
        } else if !matches!(h.pixel.bits_allocated, 8 | 16 | 32) {
            Some(format!("{} bits allocated per pixel is not a CT image layout", h.pixel.bits_allocated))
        } else if is_native(&h.transfer_syntax) && h.file_len < pixel_bytes(&h) {
            // uncompressed pixels must all be in the file: caught here without decoding
            Some(format!(
                "PixelData missing or truncated (the file is {} bytes; its pixels need {})",
                h.file_len,
                pixel_bytes(&h)
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                series_warnings.push(Warning::new(&h.path, format!("set aside: {why}"), "not part of the volume"));
                set_aside.push(h.path.clone());
            }
            None => kept.push(h),
        }
    }
    if kept.is_empty() {
        warnings.extend(series_warnings);
        return None;
    }
    if !has_acquired {
        series_warnings.push(Warning::new(
            &kept[0].path,
            "secondary capture series (derived images, not an acquisition)",
            "shown as stored; positions may be unknown",
        ));
    }
    // Largest stack of compatible frames forms the volume; the rest are set aside by name.
    let mut stacks: HashMap<StackKey, Vec<(usize, usize)>> = HashMap::new();
    for (hi, h) in kept.iter().enumerate() {
        for (fi, f) in h.frames.iter().enumerate() {
            stacks.entry(stack_key(h, f)).or_default().push((hi, fi));
        }
    }
    let mut stack_list: Vec<_> = stacks.into_iter().collect();
    stack_list.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let (main_key, main) = stack_list[0].clone();
    for (key, members) in stack_list.iter().skip(1) {
        for &(hi, _) in members {
            let h = &kept[hi];
            let what = if (key.0, key.1) != (main_key.0, main_key.1) {
                format!("slice is {}×{} but the series is {}×{}", key.1, key.0, main_key.1, main_key.0)
            } else if key.3 != main_key.3 {
                format!(
                    "PixelSpacing {:.3} × {:.3} mm differs from the series' {:.3} × {:.3} mm",
                    key.3[0] as f64 * 1e-3,
                    key.3[1] as f64 * 1e-3,
                    main_key.3[0] as f64 * 1e-3,
                    main_key.3[1] as f64 * 1e-3
                )
            } else {
                "slice orientation differs from the rest of the series (scout or reformat?)".into()
            };
            series_warnings.push(Warning::new(&h.path, format!("set aside: {what}"), "left out of the volume"));
            if !set_aside.contains(&h.path) {
                set_aside.push(h.path.clone());
            }
        }
    }
    let lead = &kept[main[0].0];
    let mut frames: Vec<Frame> = main.iter().map(|&(hi, fi)| kept[hi].frames[fi].clone()).collect();
    let row = frames[0].orientation[0];
    let col = frames[0].orientation[1];
    let normal = cross(row, col);
    let nn = norm(normal);
    if nn < 1e-6 {
        warnings.push(Warning::new(
            &lead.path,
            "ImageOrientationPatient rows and columns are parallel",
            "series skipped",
        ));
        return None;
    }
    let normal = [normal[0] / nn, normal[1] / nn, normal[2] / nn];
    frames.sort_by(|a, b| {
        dot(normal, a.position_mm)
            .partial_cmp(&dot(normal, b.position_mm))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.path.cmp(&b.path))
            .then(a.frame.cmp(&b.frame))
    });
    // Duplicate positions: keep the first, set the others aside.
    let mut unique: Vec<Frame> = Vec::with_capacity(frames.len());
    // One warning per file, however many of its frames are duplicates.
    let mut duplicates: BTreeMap<PathBuf, (usize, PathBuf)> = BTreeMap::new();
    for f in frames {
        if let Some(prev) = unique.last() {
            if norm(sub(f.position_mm, prev.position_mm)) < 1e-3 {
                duplicates.entry(f.path.clone()).or_insert((0, prev.path.clone())).0 += 1;
                continue;
            }
        }
        unique.push(f);
    }
    for (path, (count, first)) in duplicates {
        let frames_note = if count > 1 {
            format!("{count} frames at positions already taken by")
        } else {
            "same ImagePositionPatient as".into()
        };
        series_warnings.push(Warning::new(
            &path,
            format!("duplicate slice position ({frames_note} {})", first.display()),
            "set aside; only the first slice at each position is used",
        ));
        if !set_aside.contains(&path) {
            set_aside.push(path);
        }
    }
    let mut frames = unique;
    // A slice without a usable position among placed ones cannot be stacked by its
    // InstanceNumber with them (that invents a gantry tilt): it is set aside.
    if frames.iter().any(|f| f.placed) && frames.iter().any(|f| !f.placed) {
        for f in frames.iter().filter(|f| !f.placed) {
            series_warnings.push(Warning::new(
                &f.path,
                "set aside: no usable ImagePositionPatient (missing, not a number or absurd) or ImageOrientationPatient",
                "the other slices are placed by their positions",
            ));
            if !set_aside.contains(&f.path) {
                set_aside.push(f.path.clone());
            }
        }
        frames.retain(|f| f.placed);
    }
    // Two reconstructions of one series a hair apart (interleaved under one
    // SeriesInstanceUID) would make the hair the "most common step": thousands of slices.
    // Positions closer than a fifth of the slice spacing are taken as the same position.
    if frames.len() >= 3 {
        let mut steps: Vec<f64> =
            frames.windows(2).map(|w| dot(normal, sub(w[1].position_mm, w[0].position_mm))).collect();
        steps.sort_by(|a, b| a.total_cmp(b));
        let upper_median = steps[steps.len() / 2];
        let typical = frames[0].slice_thickness_mm.unwrap_or(0.0).max(upper_median);
        let mut kept_frames: Vec<Frame> = Vec::with_capacity(frames.len());
        let mut near = 0usize;
        for f in frames {
            if let Some(prev) = kept_frames.last() {
                if dot(normal, sub(f.position_mm, prev.position_mm)).abs() < 0.2 * typical {
                    near += 1;
                    if !set_aside.contains(&f.path) {
                        set_aside.push(f.path.clone());
                    }
                    continue;
                }
            }
            kept_frames.push(f);
        }
        if near > 0 {
            series_warnings.push(Warning::new(
                &lead.path,
                format!(
                    "{near} slice(s) lie within {:.2} mm of another slice along the slice direction (two \
                     reconstructions interleaved in one series?)",
                    0.2 * typical
                ),
                "the first slice at each position is used, the others set aside",
            ));
        }
        frames = kept_frames;
    }
    if frames.iter().any(|f| !f.placed) {
        series_warnings.push(Warning::new(
            &lead.path,
            "no ImagePositionPatient/ImageOrientationPatient: slices stacked by InstanceNumber, position in the patient unknown",
            "measurements within a slice are valid; do not link this series to others",
        ));
    }
    if let Some(what) = frames.iter().find_map(|f| f.orientation_repaired.clone()) {
        series_warnings.push(Warning::new(&lead.path, what, "voxel sizes and directions use the repaired orientation"));
    }
    if (lead.modality == "CT" || lead.modality.is_empty()) && frames.iter().any(|f| !f.intercept_known) {
        series_warnings.push(Warning::new(
            &lead.path,
            "RescaleIntercept missing or not a number: intercept 0 assumed",
            "if air reads about +1000 instead of -1000, the values are stored + 1024: the HU are shifted",
        ));
    }
    if frames.iter().any(|f| !f.spacing_known) {
        series_warnings.push(Warning::new(
            &lead.path,
            "no PixelSpacing: 1 mm assumed",
            "distances and volumes are not in real millimetres",
        ));
    }
    let origin = frames[0].position_mm;
    let offsets: Vec<f64> = frames.iter().map(|f| dot(normal, sub(f.position_mm, origin))).collect();
    let [sy, sx] = frames[0].pixel_spacing_mm;
    let mut direction_k = normal;
    let mut sz = frames[0].slice_thickness_mm.filter(|t| *t > 0.0).unwrap_or(1.0);
    let mut resampled = false;
    let mut nz = frames.len();
    if frames.len() >= 2 {
        let steps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        // most common step, to 0.01 mm
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for s in &steps {
            *counts.entry(round_key(*s, 0.01)).or_default() += 1;
        }
        let common_key = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| *k).unwrap_or(0);
        let common =
            steps.iter().filter(|s| round_key(**s, 0.01) == common_key).sum::<f64>() / counts[&common_key] as f64;
        sz = common;
        let tol = (0.01 * common).max(0.005);
        let uneven: Vec<usize> =
            steps.iter().enumerate().filter(|(_, s)| (**s - common).abs() > tol).map(|(i, _)| i).collect();
        // Resampling to the common step must not invent a volume far larger than the
        // slices present (z0, z0 + 0.01, z0 + 1000 would ask for 100,000 slices): memory
        // stays within about twice the voxels really there, or the series is refused.
        let span = offsets[offsets.len() - 1];
        let planned = span / common + 1.0;
        if !uneven.is_empty() && (!planned.is_finite() || planned > 2.0 * frames.len() as f64 + 1.0) {
            warnings.extend(series_warnings);
            warnings.push(Warning::new(
                &lead.path,
                format!(
                    "series {:?} left out: its slice positions span {span:.1} mm in uneven steps (most common \
                     {common:.3} mm), so a regular grid would need {planned:.0} slices for its {} files",
                    lead.series_description,
                    frames.len()
                ),
                "the positions (ImagePositionPatient) are damaged or the series mixes scans; split it or fix the files",
            ));
            return None;
        }
        if !uneven.is_empty() {
            let gaps: Vec<String> = uneven
                .iter()
                .take(5)
                .map(|&i| {
                    format!(
                        "{:.2} mm after {}",
                        steps[i],
                        frames[i].path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    )
                })
                .collect();
            let missing: f64 = uneven.iter().map(|&i| (steps[i] / common).round() - 1.0).filter(|m| *m > 0.0).sum();
            let what = if missing > 0.0
                && uneven.iter().all(|&i| ((steps[i] / common) - (steps[i] / common).round()).abs() < 0.05)
            {
                format!("gap: about {} slice(s) missing ({})", missing as usize, gaps.join("; "))
            } else {
                format!("uneven slice steps ({})", gaps.join("; "))
            };
            series_warnings.push(Warning::new(
                &lead.path,
                what,
                format!("resampled to the most common step {common:.3} mm; voxels in gaps are interpolated"),
            ));
            resampled = true;
            let span = offsets[offsets.len() - 1];
            nz = (span / common).round() as usize + 1;
        }
        // Gantry tilt: the slices march along a direction that is not the normal.
        let total = sub(frames[frames.len() - 1].position_mm, origin);
        let tn = norm(total);
        if tn > 1e-6 {
            let cos = dot(total, normal) / tn;
            let angle = cos.clamp(-1.0, 1.0).acos().to_degrees();
            if angle > 0.01 && angle < 89.0 {
                series_warnings.push(Warning::new(
                    &lead.path,
                    format!("gantry tilt {angle:.2}° (slices are sheared)"),
                    "kept exact by a sheared grid; a NIfTI export carries the shear in its sform",
                ));
                direction_k = [total[0] / tn, total[1] / tn, total[2] / tn];
                sz = common / cos;
            }
        }
    } else if let Some(t) = lead.gantry_tilt_deg.filter(|t| t.abs() > 0.01) {
        series_warnings.push(Warning::new(&lead.path, format!("gantry tilt {t:.2}° (single slice)"), ""));
    }
    if frames.len() == 1 {
        series_warnings.push(Warning::new(
            &lead.path,
            "series has a single slice",
            "slice thickness used as the z voxel size",
        ));
    }
    let mut tss: Vec<String> = kept.iter().map(|h| h.transfer_syntax.clone()).collect();
    tss.sort();
    tss.dedup();
    for ts in &tss {
        let (name, ok) = transfer_syntax_name(ts);
        if !ok {
            series_warnings.push(Warning::new(
                &lead.path,
                format!("pixel data in {name} ({ts}), which Hepaview cannot decode"),
                "convert it to an uncompressed or JPEG 2000 series (e.g. dcmdjpeg / gdcmconv) and load that",
            ));
        } else if is_lossy(ts) {
            series_warnings.push(Warning::new(
                &lead.path,
                format!("lossy compression ({name}): HU values are approximate"),
                "",
            ));
        }
    }
    if lead.pixel.samples_per_pixel == 1 && lead.modality != "CT" && !lead.modality.is_empty() {
        series_warnings.push(Warning::new(
            &lead.path,
            format!("modality {} is not CT; values are shown as stored × slope + intercept, not HU", lead.modality),
            "",
        ));
    }
    let geometry = Geometry {
        shape: [nz, lead.pixel.rows, lead.pixel.columns],
        spacing_mm: [sz.abs().max(1e-6), sy, sx],
        origin_mm: origin,
        direction: [row, col, direction_k],
    };
    Some(SeriesInfo {
        study_uid: lead.study_uid.clone(),
        series_uid: lead.series_uid.clone(),
        series_number: lead.series_number,
        description: lead.series_description.clone(),
        modality: lead.modality.clone(),
        acquisition_time: lead.acquisition_time.clone(),
        contrast_agent: lead.contrast_agent.clone(),
        frame_of_reference: lead.frame_of_reference.clone(),
        transfer_syntaxes: tss,
        pixel: PixelFormat { rows: lead.pixel.rows, columns: lead.pixel.columns, ..lead.pixel },
        frames,
        geometry,
        slice_offsets_mm: offsets,
        resampled,
        warnings: series_warnings,
        set_aside,
    })
}

/// Decodes a planned series into a CT volume (HU, `i16`).
pub fn load_series(series: &SeriesInfo, progress: Progress) -> Result<(CtVolume, Vec<Warning>), DicomError> {
    let n = series.frames.len();
    let (rows, cols) = (series.pixel.rows, series.pixel.columns);
    check_size_plausible(series)?;
    let mut stack = Array3::<i16>::zeros([n, rows, cols]);
    // Files → the slabs their frames fill, so each file is opened and decoded once.
    let mut by_file: BTreeMap<&Path, Vec<(usize, ArrayViewMut2<i16>)>> = BTreeMap::new();
    for (z, slab) in stack.axis_iter_mut(Axis(0)).enumerate() {
        by_file.entry(series.frames[z].path.as_path()).or_default().push((z, slab));
    }
    let done = AtomicUsize::new(0);
    let clipped = AtomicUsize::new(0);
    by_file.into_iter().collect::<Vec<_>>().into_par_iter().try_for_each(
        |(path, slabs)| -> Result<(), DicomError> {
            let obj = open(path, false).map_err(|e| match e {
                // the header was read in the scan, so a read failure now is in the pixel data
                DicomError::Read { path, message } if message.contains("(7FE0,0010)") => {
                    let expected = rows * cols * (series.pixel.bits_allocated as usize / 8);
                    let file_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    DicomError::PixelDataTruncated {
                        path,
                        detail: format!("the file is {file_len} bytes; one frame alone needs {expected}"),
                    }
                }
                other => other,
            })?;
            let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
            let (ts_name, supported) = transfer_syntax_name(&ts);
            let decode_err = |message: String| DicomError::Decode {
                path: path.to_path_buf(),
                transfer_syntax: format!("{ts_name} ({ts})"),
                message,
            };
            if obj.get(tags::PIXEL_DATA).is_none() {
                return Err(DicomError::NotAnImage { path: path.to_path_buf(), what: "no PixelData element".into() });
            }
            if !supported {
                return Err(decode_err(
                    "this transfer syntax is not supported; convert the series to an uncompressed one".into(),
                ));
            }
            let pixel = file_pixel_format(&obj, series.pixel);
            let frame_bytes = rows * cols * (pixel.bits_allocated as usize / 8);
            let n_frames = get_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
            check_encapsulated_length(&obj, path)?;
            // Uncompressed pixels longer than Rows × Columns × BitsAllocated say (Rows
            // halved, 16-bit data declared 8-bit) would be read as garbage: refuse them. One
            // pad byte keeps an odd length even.
            if is_native(&ts) {
                let have = raw_pixel_len(&obj);
                let want = frame_bytes * n_frames;
                if have > want + 1 {
                    return Err(DicomError::Unsupported {
                        path: path.to_path_buf(),
                        what: format!(
                            "PixelData holds {have} bytes but Rows {rows} × Columns {cols} × {} bits × {n_frames} \
                             frame(s) make {want}: the header does not describe the pixels",
                            pixel.bits_allocated
                        ),
                    });
                }
            }
            // dicom-rs 0.10's codecs can panic on corrupt streams (an RLE segment shorter than
            // its header says, found by fuzzing); a bad file must give an error, not a crash.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
                .map_err(|_| decode_err("the decoder failed on corrupt compressed data".into()))?
                .map_err(|e| {
                    let msg = flatten_error(&e);
                    if msg.contains("fewer bytes")
                        || msg.contains("too short")
                        || msg.contains("nsufficient")
                        || msg.contains("out of bounds")
                    {
                        DicomError::PixelDataTruncated {
                            path: path.to_path_buf(),
                            detail: format!("{} of {} bytes", raw_pixel_len(&obj), frame_bytes * n_frames),
                        }
                    } else {
                        decode_err(msg)
                    }
                })?;
            let bytes = decoded.data();
            let big_endian = ts == "1.2.840.10008.1.2.2" && pixel_data_is_raw_bytes(&obj);
            for (z, mut slab) in slabs {
                let frame = &series.frames[z];
                let start = frame.frame as usize * frame_bytes;
                let Some(src) = bytes.get(start..start + frame_bytes) else {
                    return Err(DicomError::PixelDataTruncated {
                        path: path.to_path_buf(),
                        detail: format!("{} of {} bytes", bytes.len(), frame_bytes * n_frames),
                    });
                };
                let c = convert_frame(src, &pixel, big_endian, frame.rescale_slope, frame.rescale_intercept, &mut slab);
                clipped.fetch_add(c, Ordering::Relaxed);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if !progress(d, n) {
                    return Err(DicomError::Cancelled);
                }
            }
            Ok(())
        },
    )?;
    let mut warnings = series.warnings.clone();
    let clipped = clipped.into_inner();
    if clipped > 0 {
        warnings.push(Warning::new(
            &series.frames[0].path,
            format!("{clipped} voxels outside the 16-bit HU range"),
            "clamped to −32768…32767",
        ));
    }
    let data =
        if series.resampled { resample_slices(&stack, &series.slice_offsets_mm, &series.geometry) } else { stack };
    Ok((Volume::new(data, series.geometry.clone()), warnings))
}

/// Refuses a series whose headers claim far more pixel data than its files hold, before
/// memory is reserved for it: a corrupt Rows/Columns must not cost gigabytes. Native
/// encodings must hold every byte; compressed ones cannot shrink CT by 1000:1.
fn check_size_plausible(series: &SeriesInfo) -> Result<(), DicomError> {
    let mut files: Vec<&Path> = series.frames.iter().map(|f| f.path.as_path()).collect();
    files.dedup();
    let on_disk: u64 = files.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let claimed = (series.frames.len() as u64)
        .saturating_mul(series.pixel.rows as u64)
        .saturating_mul(series.pixel.columns as u64)
        .saturating_mul((series.pixel.bits_allocated as u64).max(8) / 8);
    let native = series.transfer_syntaxes.iter().all(|t| is_native(t));
    let capacity = if native { on_disk } else { on_disk.saturating_mul(1000) };
    if claimed > capacity {
        return Err(DicomError::PixelDataTruncated {
            path: series.frames[0].path.clone(),
            detail: format!("the headers claim {claimed} bytes of pixels but the files hold only {on_disk} bytes: PixelData missing or cut short"),
        });
    }
    Ok(())
}

/// The pixel format of one file (a series may mix bit depths between files).
fn file_pixel_format(obj: &InMemDicomObject, series: PixelFormat) -> PixelFormat {
    PixelFormat {
        bits_allocated: get_int(obj, tags::BITS_ALLOCATED).map(|v| v as u16).unwrap_or(series.bits_allocated),
        bits_stored: get_int(obj, tags::BITS_STORED).map(|v| v as u16).unwrap_or(series.bits_stored),
        signed: get_int(obj, tags::PIXEL_REPRESENTATION).map(|v| v == 1).unwrap_or(series.signed),
        ..series
    }
}

fn raw_pixel_len(obj: &InMemDicomObject) -> usize {
    obj.get(tags::PIXEL_DATA).map(|e| e.value().to_bytes().map(|b| b.len()).unwrap_or(0)).unwrap_or(0)
}

/// dicom-rs keeps big-endian native pixel data as raw bytes when it was read as OB.
fn pixel_data_is_raw_bytes(obj: &InMemDicomObject) -> bool {
    matches!(
        obj.get(tags::PIXEL_DATA).map(|e| e.value()),
        Some(dicom_core::value::Value::Primitive(dicom_core::PrimitiveValue::U8(_)))
    )
}

/// dicom-rs accepts encapsulated pixel data whose last fragment is cut short (no
/// sequence delimiter); the codec then decodes garbage or fails obscurely. Refuse it here.
fn check_encapsulated_length(obj: &DefaultDicomObject, path: &Path) -> Result<(), DicomError> {
    if let Some(dicom_core::value::Value::PixelSequence(seq)) = obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
        let total: usize = seq.fragments().iter().map(|f| f.len()).sum();
        if total == 0 {
            return Err(DicomError::PixelDataTruncated {
                path: path.to_path_buf(),
                detail: "no compressed fragments".into(),
            });
        }
        // A complete encapsulated PixelData ends with a sequence delimitation item
        // (FFFE,E0DD); a file cut inside its last fragment has none.
        const DELIMITER: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        let bytes = std::fs::read(path).map_err(|source| DicomError::Io { path: path.to_path_buf(), source })?;
        let tail = &bytes[bytes.len().saturating_sub(total.min(bytes.len()) + 64)..];
        if !tail.windows(8).any(|w| w == DELIMITER) {
            return Err(DicomError::PixelDataTruncated {
                path: path.to_path_buf(),
                detail: "the compressed pixel data has no end marker (sequence delimiter)".into(),
            });
        }
    }
    Ok(())
}

/// Stored values → HU, written into `out`. Returns how many voxels were clamped.
fn convert_frame(
    src: &[u8],
    px: &PixelFormat,
    big_endian: bool,
    slope: f64,
    intercept: f64,
    out: &mut ArrayViewMut2<i16>,
) -> usize {
    let bits = px.bits_stored.clamp(1, px.bits_allocated.max(1));
    let mask: u32 = if bits >= 32 { u32::MAX } else { (1u32 << bits) - 1 };
    let shift = 32 - bits as u32;
    // Raw stored value as i64, honouring BitsStored and PixelRepresentation (trust the
    // dataset, as pydicom does, even when a codestream says otherwise).
    let raw = |v: u32| -> i64 {
        let v = v & mask;
        if px.signed && bits < 32 {
            (((v << shift) as i32) >> shift) as i64
        } else if px.signed {
            v as i32 as i64
        } else {
            v as i64
        }
    };
    let integer = slope == 1.0 && intercept.fract() == 0.0;
    let inter_i = intercept as i64;
    let mut clipped = 0usize;
    let mut put = |o: &mut i16, v: i64| {
        let hu = if integer { v + inter_i } else { (v as f64 * slope + intercept).round() as i64 };
        if hu < i16::MIN as i64 || hu > i16::MAX as i64 {
            clipped += 1;
        }
        *o = hu.clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    };
    let out = out.as_slice_mut().expect("slabs of a standard-layout array are contiguous");
    match px.bits_allocated {
        8 => {
            for (o, &b) in out.iter_mut().zip(src) {
                put(o, raw(b as u32));
            }
        }
        16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                let v = if big_endian { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
                put(o, raw(v as u32));
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                let v = if big_endian {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                };
                put(o, raw(v));
            }
        }
    }
    clipped
}

/// Linear interpolation along the slice axis from slices at `offsets_mm` onto the even grid.
fn resample_slices(stack: &Array3<i16>, offsets_mm: &[f64], g: &Geometry) -> Array3<i16> {
    let [nz, ny, nx] = g.shape;
    // offsets are along the normal, so step by the span over the slice count (a sheared
    // grid's step along its own axis is longer than this)
    let normal_step = offsets_mm.last().copied().unwrap_or(0.0) / (nz.max(2) - 1) as f64;
    let mut out = Array3::<i16>::zeros([nz, ny, nx]);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        let t = k as f64 * normal_step;
        let hi = offsets_mm.partition_point(|&o| o < t).min(offsets_mm.len() - 1);
        let lo = hi.saturating_sub(1);
        let (o0, o1) = (offsets_mm[lo], offsets_mm[hi]);
        let w = if (o1 - o0).abs() < 1e-9 { 0.0 } else { ((t - o0) / (o1 - o0)).clamp(0.0, 1.0) } as f32;
        let a = stack.index_axis(Axis(0), lo);
        let b = stack.index_axis(Axis(0), hi);
        ndarray::Zip::from(&mut slab).and(&a).and(&b).for_each(|o, &x, &y| {
            *o = (x as f32 * (1.0 - w) + y as f32 * w).round() as i16;
        });
    });
    out
}

/// Scans `path` and loads its one series (or the series numbered `series_index` in scan
/// order when there are several). Convenience for tests and the CLI.
pub fn load_folder(
    path: &Path,
    series_index: Option<usize>,
) -> Result<(CtVolume, SeriesInfo, Vec<Warning>), DicomError> {
    let scan = scan(path, &no_progress)?;
    let all: Vec<&SeriesInfo> = scan.all_series().collect();
    let chosen = match (series_index, all.len()) {
        (Some(i), _) if i < all.len() => all[i],
        (None, 1) => all[0],
        (Some(i), n) => {
            return Err(DicomError::Unsupported {
                path: path.to_path_buf(),
                what: format!("series {i} requested but only {n} found (numbered from 0)"),
            })
        }
        (None, n) => {
            return Err(DicomError::Unsupported {
                path: path.to_path_buf(),
                what: format!("{n} series found; choose one with --series N (see `hepaview info`)"),
            })
        }
    };
    let (vol, mut warnings) = load_series(chosen, &no_progress)?;
    warnings.extend(scan.warnings.iter().cloned());
    Ok((vol, chosen.clone(), warnings))
}
