//! DICOM Segmentation (SEG) objects: writing a label mask as a BINARY segmentation that
//! references its source CT series, and reading BINARY, FRACTIONAL and LABELMAP
//! segmentations back onto the grid of the series they segment (or onto their own grid).
//!
//! Writing follows what dcmqi (the reference SEG writer) produces, and what `dciodvfy`
//! checks: one segment per label with a name, a recommended display colour (CIELab) and
//! SNOMED CT category/type codes; one frame per slice that holds the segment (slices
//! without it are left out); per frame the plane position, the segment number, the
//! dimension index and the source slice it derives from; pixel measures and orientation
//! shared; patient, study and frame of reference copied from the source series; new
//! series and instance UIDs. Bits are packed 8 per byte, least significant first, and run
//! on across frame boundaries.
//!
//! Reading places frames by their ImagePositionPatient, never by frame number (dcmqi
//! writes frames in any slice order), with RLE decoded here (1-bit RLE is not supported
//! by the pixel codecs). A file that is not a segmentation, or whose transfer syntax
//! cannot be decoded, gets an error naming the file and the syntax.
//!
//! Files: `write.rs` writes (its `write_seg` in named steps), `read.rs` reads and decodes;
//! this file holds what both directions share: the error type, segment definitions and
//! what a read gives, segment meanings (LiTS labels) and colours (the DICOM attribute
//! getters are `io::dicom`'s).

mod read;
mod write;

use std::path::{Path, PathBuf};

use super::dicom_write::WriteError;
use super::Warning;
use crate::volume::{Geometry, Mask, Volume};

pub use read::read_seg;
pub use write::write_seg;

pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
pub const LABEL_MAP_SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.7";

#[derive(Debug, thiserror::Error)]
pub enum SegError {
    #[error("{}: could not read as DICOM: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: not a DICOM segmentation (SOP class {sop_class}{what}); open the SEG file, or load this file as an image", path.display())]
    NotSeg { path: PathBuf, sop_class: String, what: String },
    #[error("{}: cannot decode the segmentation's pixel data in transfer syntax {transfer_syntax}: {message}; convert it to Explicit VR Little Endian (e.g. `dcmconv +te` or `gdcmconv --raw`)", path.display())]
    Decode { path: PathBuf, transfer_syntax: String, message: String },
    #[error("{}: malformed segmentation: {what}", path.display())]
    Malformed { path: PathBuf, what: String },
    #[error("the mask's grid does not match the source series {series}: {detail}. Resample the mask onto the series first (`hepaview mask-convert … --resample` does it by nearest neighbour), or pick the series the mask was drawn on")]
    GridMismatch { series: String, detail: String },
    #[error("{}: cannot read the source slice's header: {message}", path.display())]
    Source { path: PathBuf, message: String },
    #[error(
        "the mask holds no voxels of the labels to export ({labels}); a segmentation needs at least one labelled voxel"
    )]
    Empty { labels: String },
    #[error("{field} = {value:?} cannot be written: {hint}")]
    Invalid { field: &'static str, value: String, hint: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A coded concept (SNOMED CT unless said otherwise).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Code {
    pub value: String,
    pub scheme: String,
    pub meaning: String,
}

impl Code {
    pub fn sct(value: &str, meaning: &str) -> Self {
        Code { value: value.into(), scheme: "SCT".into(), meaning: meaning.into() }
    }
}

/// Who made a segment, as SegmentAlgorithmType says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    Manual,
    SemiAutomatic,
    Automatic,
}

impl Algorithm {
    fn as_cs(self) -> &'static str {
        match self {
            Algorithm::Manual => "MANUAL",
            Algorithm::SemiAutomatic => "SEMIAUTOMATIC",
            Algorithm::Automatic => "AUTOMATIC",
        }
    }
}

/// How one mask label is written as a segment.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentDef {
    /// The mask value.
    pub label: u8,
    /// SegmentLabel (at most 64 characters).
    pub name: String,
    pub rgb: [u8; 3],
    pub category: Code,
    pub property_type: Code,
    pub algorithm: Algorithm,
}

impl SegmentDef {
    /// LiTS codes for labels 1 (liver), 2 (tumour), 3 (vessel); "tissue" otherwise.
    pub fn for_label(label: u8, name: &str, rgb: [u8; 3]) -> Self {
        let anatomical = Code::sct("123037004", "Anatomical Structure");
        let (category, property_type) = match label {
            1 => (anatomical, Code::sct("10200004", "Liver")),
            2 => (Code::sct("49755003", "Morphologically Altered Structure"), Code::sct("108369006", "Neoplasm")),
            3 => (anatomical, Code::sct("59820001", "Blood vessel")),
            _ => (Code::sct("85756007", "Tissue"), Code::sct("85756007", "Tissue")),
        };
        SegmentDef { label, name: name.into(), rgb, category, property_type, algorithm: Algorithm::SemiAutomatic }
    }

    /// Liver, tumour and vessel with the viewer's colours.
    pub fn lits() -> Vec<SegmentDef> {
        vec![
            SegmentDef::for_label(1, "Liver", [217, 115, 89]),
            SegmentDef::for_label(2, "Tumour", [51, 230, 77]),
            SegmentDef::for_label(3, "Vessel", [77, 128, 255]),
        ]
    }
}

/// Series-level choices for a written SEG.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegWriteOptions {
    pub series_description: String,
    pub series_number: u32,
    /// ContentLabel: upper case letters, digits, space and underscore, at most 16.
    pub content_label: String,
    pub content_description: String,
    /// `FAMILY^GIVEN`, or empty.
    pub creator: String,
    /// SegmentAlgorithmName for segments not drawn by hand.
    pub algorithm_name: String,
    /// `(YYYYMMDD, HHMMSS)`; `None` uses the current UTC time. Fix it for byte-identical
    /// output (the UIDs derive from the content and this time).
    pub content_datetime: Option<(String, String)>,
}

impl Default for SegWriteOptions {
    fn default() -> Self {
        SegWriteOptions {
            series_description: "Hepaview segmentation".into(),
            series_number: 300,
            content_label: "HEPAVIEW".into(),
            content_description: "Liver and lesion segmentation".into(),
            creator: String::new(),
            algorithm_name: "Hepaview".into(),
            content_datetime: None,
        }
    }
}

/// What [`write_seg`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SegWritten {
    pub path: PathBuf,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    /// `(label, segment number, frames)` per written segment.
    pub segments: Vec<(u8, u16, usize)>,
    pub frames: usize,
    pub warnings: Vec<Warning>,
}

/// sRGB → DICOM CIELab (D65 white, L 0…100 → 0…65535, a and b −128…127 → 0…65535), as
/// dcmqi converts RecommendedDisplayRGBValue.
pub fn rgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = 0.4124 * r + 0.3576 * g + 0.1805 * b;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = 0.0193 * r + 0.1192 * g + 0.9505 * b;
    let f =
        |t: f64| if t > (6.0f64 / 29.0).powi(3) { t.cbrt() } else { t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0 };
    let (fx, fy, fz) = (f(x / 0.95047), f(y), f(z / 1.08883));
    let l = 116.0 * fy - 16.0;
    let a = 500.0 * (fx - fy);
    let bb = 200.0 * (fy - fz);
    let q = |v: f64| v.round().clamp(0.0, 65535.0) as u16;
    [q(l * 65535.0 / 100.0), q((a + 128.0) * 65535.0 / 255.0), q((bb + 128.0) * 65535.0 / 255.0)]
}

/// The inverse of [`rgb_to_dicom_lab`] (clamped to the sRGB gamut).
pub fn dicom_lab_to_rgb(lab: [u16; 3]) -> [u8; 3] {
    let l = lab[0] as f64 * 100.0 / 65535.0;
    let a = lab[1] as f64 * 255.0 / 65535.0 - 128.0;
    let b = lab[2] as f64 * 255.0 / 65535.0 - 128.0;
    let fy = (l + 16.0) / 116.0;
    let (fx, fz) = (fy + a / 500.0, fy - b / 200.0);
    let finv = |t: f64| if t > 6.0 / 29.0 { t.powi(3) } else { 3.0 * (6.0f64 / 29.0).powi(2) * (t - 4.0 / 29.0) };
    let (x, y, z) = (finv(fx) * 0.95047, finv(fy), finv(fz) * 1.08883);
    let r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
    let g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
    let bl = 0.0557 * x - 0.2040 * y + 1.0570 * z;
    let gamma = |c: f64| {
        let c = c.clamp(0.0, 1.0);
        let v = if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 };
        (v * 255.0).round().clamp(0.0, 255.0) as u8
    };
    [gamma(r), gamma(g), gamma(bl)]
}

/// The kind of segmentation read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SegKind {
    Binary,
    /// Probabilities or occupancies up to `max`; kept where ≥ half of `max`.
    Fractional {
        max: u32,
    },
    /// One label value per pixel (the newer Label Map Segmentation).
    Labelmap,
}

/// One segment as the file describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SegmentInfo {
    pub number: u16,
    pub label: String,
    pub description: Option<String>,
    pub rgb: Option<[u8; 3]>,
    pub category: Option<Code>,
    pub property_type: Option<Code>,
    pub algorithm_type: Option<String>,
}

/// A segmentation read onto a grid.
#[derive(Clone, Debug)]
pub struct SegRead {
    pub path: PathBuf,
    pub kind: SegKind,
    pub transfer_syntax: String,
    pub segments: Vec<SegmentInfo>,
    /// The grid the segments are on: the reference given to [`read_seg`], or the
    /// segmentation's own.
    pub geometry: Geometry,
    pub referenced_series_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub warnings: Vec<Warning>,
    /// The label each segment gets in [`SegRead::label_mask`] (aligned with `segments`):
    /// see [`assign_labels`]. `None` for a label map's background segment.
    pub segment_labels: Vec<Option<u8>>,
    /// Per segment: `(k, 0/1 per pixel of slice k)`, ascending k.
    slices: Vec<Vec<(usize, Vec<u8>)>>,
}

/// One label value of [`SegRead::label_mask`] and the segments it was made from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SegLabel {
    pub value: u8,
    /// `liver`, `tumour`, `vessel`, or a segment's own name (its SegmentLabel, else its
    /// code meaning).
    pub name: String,
    /// The first of its segments' recommended display colour, if any.
    pub rgb: Option<[u8; 3]>,
    /// The SegmentNumbers written with this value.
    pub segments: Vec<u16>,
}

impl SegRead {
    /// Voxels in each segment (aligned with `segments`).
    pub fn voxel_counts(&self) -> Vec<usize> {
        self.slices.iter().map(|s| s.iter().map(|(_, p)| p.iter().filter(|&&v| v != 0).count()).sum()).collect()
    }

    /// Segment `index` (into `segments`) as a 0/1 mask.
    pub fn segment_mask(&self, index: usize) -> Mask {
        let mut m: Mask = Volume::filled(self.geometry.clone(), 0);
        if let Some(slices) = self.slices.get(index) {
            let [_, ny, nx] = self.geometry.shape;
            for (k, p) in slices {
                let mut s = m.data.index_axis_mut(ndarray::Axis(0), *k);
                for (o, &v) in s.iter_mut().zip(p.iter().take(ny * nx)) {
                    *o = v;
                }
            }
        }
        m
    }

    /// One label mask, each segment written with its label in `segment_labels` (liver 1,
    /// tumour 2, vessel 3, any other segment a value of its own from 4), in segment order
    /// (a later segment wins where segments overlap). Returns the mask and how many voxels
    /// were claimed by more than one segment. [`SegRead::labels`] names the values.
    pub fn label_mask(&self) -> (Mask, usize) {
        let by_number: std::collections::HashMap<u16, Option<u8>> =
            self.segments.iter().zip(&self.segment_labels).map(|(s, &l)| (s.number, l)).collect();
        self.label_mask_with(|s| by_number.get(&s.number).copied().flatten())
    }

    /// The values [`SegRead::label_mask`] writes, ascending, with their names.
    pub fn labels(&self) -> Vec<SegLabel> {
        let mut out: Vec<SegLabel> = Vec::new();
        for (seg, &label) in self.segments.iter().zip(&self.segment_labels) {
            let Some(value) = label else { continue };
            match out.iter_mut().find(|l| l.value == value) {
                Some(l) => {
                    l.segments.push(seg.number);
                    l.rgb = l.rgb.or(seg.rgb);
                }
                None => out.push(SegLabel {
                    value,
                    name: match value {
                        1 => "liver".into(),
                        2 => "tumour".into(),
                        3 => "vessel".into(),
                        _ => segment_name(seg),
                    },
                    rgb: seg.rgb,
                    segments: vec![seg.number],
                }),
            }
        }
        out.sort_by_key(|l| l.value);
        out
    }

    /// As [`SegRead::label_mask`] with a chosen label per segment (`None` leaves a
    /// segment out).
    pub fn label_mask_with(&self, label_of: impl Fn(&SegmentInfo) -> Option<u8>) -> (Mask, usize) {
        let mut m: Mask = Volume::filled(self.geometry.clone(), 0);
        let mut overlaps = 0;
        let [_, ny, nx] = self.geometry.shape;
        for (seg, slices) in self.segments.iter().zip(&self.slices) {
            let Some(label) = label_of(seg) else { continue };
            for (k, p) in slices {
                let mut s = m.data.index_axis_mut(ndarray::Axis(0), *k);
                for (o, &v) in s.iter_mut().zip(p.iter().take(ny * nx)) {
                    if v != 0 {
                        if *o != 0 && *o != label {
                            overlaps += 1;
                        }
                        *o = label;
                    }
                }
            }
        }
        (m, overlaps)
    }
}

/// LiTS label of a segment by its property type code (SNOMED CT, or the older SRT codes
/// dcmqi and Slicer wrote; else by the code's meaning): liver 1; neoplasm, tumour or mass
/// 2; vessels (veins, arteries, the liver's named vessels) 3; `None` for anything else.
pub fn lits_label(seg: &SegmentInfo) -> Option<u8> {
    let code = seg.property_type.as_ref().map(|c| c.value.as_str()).unwrap_or("");
    let meaning = seg.property_type.as_ref().map(|c| c.meaning.trim().to_lowercase()).unwrap_or_default();
    match code {
        "10200004" | "T-62000" => return Some(1),
        "108369006" | "86049000" | "4147007" | "126851005" | "93870000" | "94381002" | "M-80003" | "M-03000" => {
            return Some(2)
        }
        "59820001" | "32764006" | "8993003" | "7869007" | "64131007" | "29092000" | "51114001" | "T-48810"
        | "T-48720" | "T-48610" => return Some(3),
        _ => {}
    }
    match meaning.as_str() {
        "liver" => Some(1),
        "neoplasm" | "tumor" | "tumour" | "mass" | "lesion" => Some(2),
        "blood vessel" | "vein" | "artery" | "portal vein" | "hepatic vein" | "inferior vena cava"
        | "hepatic artery" => Some(3),
        _ => None,
    }
}

/// A segment's name for a label table: its SegmentLabel, else its property type's meaning.
fn segment_name(seg: &SegmentInfo) -> String {
    let meaning = seg.property_type.as_ref().map(|c| c.meaning.trim()).filter(|m| !m.is_empty());
    match (seg.label.trim(), meaning) {
        (l, Some(m)) if l.is_empty() || l == format!("segment {}", seg.number) => m.to_string(),
        (l, _) if !l.is_empty() => l.to_string(),
        _ => format!("segment {}", seg.number),
    }
}

/// The label of each segment: liver, tumour and vessel segments get 1, 2 and 3 (by
/// [`lits_label`]); every other segment keeps a value of its own, the lowest from 4 not yet
/// taken, so bone or oedema is never read as a liver label. Each such segment is said
/// in a warning. A label map's segment 0 (its background) gets no label.
pub fn assign_labels(segments: &[SegmentInfo], kind: SegKind, path: &Path) -> (Vec<Option<u8>>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut next = 4u16;
    let labels = segments
        .iter()
        .map(|seg| {
            if kind == SegKind::Labelmap && seg.number == 0 {
                return None;
            }
            if let Some(l) = lits_label(seg) {
                return Some(l);
            }
            let code = seg
                .property_type
                .as_ref()
                .map(|c| format!("{} {} \"{}\"", c.scheme, c.value, c.meaning))
                .unwrap_or_else(|| "no property type code".into());
            let name = segment_name(seg);
            if next > 255 {
                warnings.push(Warning::new(
                    path,
                    format!("segment {} \"{name}\" ({code}) is not liver, tumour or vessel", seg.number),
                    "left out: all 255 label values are taken",
                ));
                return None;
            }
            let value = next as u8;
            next += 1;
            warnings.push(Warning::new(
                path,
                format!("segment {} \"{name}\" ({code}) is not liver, tumour or vessel", seg.number),
                format!("kept as label {value} \"{name}\", not as a liver label"),
            ));
            Some(value)
        })
        .collect();
    (labels, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_round_trip_and_dcmqi_value() {
        // dcmqi's liver colour (221, 130, 101) is stored as [41661, 41167, 40792]
        assert_eq!(rgb_to_dicom_lab([221, 130, 101]), [41661, 41167, 40792]);
        for rgb in [[0, 0, 0], [255, 255, 255], [217, 115, 89], [51, 230, 77], [77, 128, 255]] {
            let back = dicom_lab_to_rgb(rgb_to_dicom_lab(rgb));
            for c in 0..3 {
                assert!((back[c] as i32 - rgb[c] as i32).abs() <= 1, "{rgb:?} → {back:?}");
            }
        }
    }
}
