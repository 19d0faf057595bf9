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
//!
//! Files: `claimed_lengths.rs` checks every element's length against the file before
//! dicom-rs reads it (dicom-rs reserves what an element claims); `scan.rs` lists the files under a folder and reads each one's header;
//! `series.rs` groups the headers into studies and series and plans each series' geometry
//! (slice order, steps, strays); `pixels.rs` decodes a planned series into a volume. This
//! file holds the types they share, the errors, transfer syntax names and the attribute
//! getters `io::seg` and `io::dicom_write` use too.

mod claimed_lengths;
mod pixels;
mod scan;
mod series;

use std::path::PathBuf;

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use super::Warning;
use crate::volume::{Geometry, Lps};

pub use pixels::{load_folder, load_series};
pub(crate) use scan::check_part10_claimed_lengths;
pub use scan::scan;

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
    /// AcquisitionNumber: which acquisition of its series the file belongs to.
    acquisition_number: Option<i64>,
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
    /// Set when the series' acquisitions repeat the same slice positions (two contrast
    /// phases stored under one SeriesInstanceUID, as some scanners do): this is the one
    /// whose AcquisitionNumber it is, offered as a series of its own. Its description then
    /// says so, and the phase is measured rather than read from the words, which name the
    /// whole series.
    pub acquisition: Option<i64>,
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

/// A string value with padding (spaces, NUL) trimmed; `None` when absent or empty.
pub(crate) fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

pub(crate) fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok()
}

pub(crate) fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok()
}

pub(crate) fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

pub(crate) fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Looks a frame attribute up the way enhanced objects define it: per-frame functional
/// group, then shared group, then the top level (classic single-frame files). Shared by the
/// CT scan and the SEG reader.
pub(crate) fn frame_attr<T>(
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
