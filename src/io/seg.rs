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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value, C};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};

use super::dicom::{get_f64s, get_str, transfer_syntax_name, SeriesInfo};
use super::dicom_write::{ds, uid_from, write_new_file, WriteError};
use super::Warning;
use crate::volume::{cross, dot, norm, Geometry, Interp, Lps, Mask, Volume};

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

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

type El = DataElement<InMemDicomObject>;

fn st(tag: Tag, vr: VR, v: &str) -> El {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn us(tag: Tag, v: u16) -> El {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

fn sq(tag: Tag, items: Vec<InMemDicomObject>) -> El {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn ds_multi(tag: Tag, vs: &[f64]) -> El {
    DataElement::new(tag, VR::DS, PrimitiveValue::Strs(vs.iter().map(|&v| ds(v)).collect()))
}

fn code_item(c: &Code) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        st(tags::CODE_VALUE, VR::SH, &c.value),
        st(tags::CODING_SCHEME_DESIGNATOR, VR::SH, &c.scheme),
        st(tags::CODE_MEANING, VR::LO, &c.meaning),
    ])
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

/// `(YYYYMMDD, HHMMSS)` of now, UTC.
fn now_utc() -> (String, String) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::io::dicom_write::civil_from_days(days);
    (format!("{y:04}{m:02}{d:02}"), format!("{:02}{:02}{:02}", rem / 3600, (rem / 60) % 60, rem % 60))
}

/// FNV-1a 64 over some byte strings, for content-derived UIDs.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The source slice a mask slice derives from.
#[derive(Clone, Debug)]
struct SourceRef {
    sop_class: String,
    sop_instance: String,
    /// 1-based frame within a multi-frame source file.
    frame_number: Option<u32>,
}

fn open_header(path: &Path) -> Result<dicom_object::DefaultDicomObject, SegError> {
    OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| SegError::Source { path: path.to_path_buf(), message: e.to_string() })
}

fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Writes the labels of `mask` named in `segments` as a BINARY SEG at `out`, referencing
/// the slices of `source` (the series the mask was drawn on; the grids must match).
/// Labels absent from the mask are left out with a warning; never overwrites `out`.
pub fn write_seg(
    mask: &Mask,
    source: &SeriesInfo,
    segments: &[SegmentDef],
    out: &Path,
    opts: &SegWriteOptions,
) -> Result<SegWritten, SegError> {
    if out.exists() {
        return Err(SegError::Write(WriteError::Exists { path: out.to_path_buf() }));
    }
    check_grid(mask, source)?;
    check_options(opts, segments)?;
    let g = &mask.geometry;
    let [nz, ny, nx] = g.shape;
    let mut warnings = Vec::new();

    // Which slices hold which label.
    let data = mask.data.as_standard_layout();
    let data = data.as_slice().unwrap_or(&[]);
    let plane = ny * nx;
    let mut present = vec![[false; 256]; nz];
    for (k, p) in present.iter_mut().enumerate() {
        for &v in &data[k * plane..(k + 1) * plane] {
            p[v as usize] = true;
        }
    }
    let mut written: Vec<(&SegmentDef, u16, Vec<usize>)> = Vec::new();
    for def in segments {
        let ks: Vec<usize> = (0..nz).filter(|&k| present[k][def.label as usize]).collect();
        if ks.is_empty() {
            warnings.push(Warning::new(
                out,
                format!("label {} ({}) has no voxels", def.label, def.name),
                "left out of the segmentation",
            ));
            continue;
        }
        let number = written.len() as u16 + 1;
        written.push((def, number, ks));
    }
    if written.is_empty() {
        let labels = segments.iter().map(|d| d.label.to_string()).collect::<Vec<_>>().join(", ");
        return Err(SegError::Empty { labels });
    }

    // Source slices: their SOP UIDs, and the study-level attributes of the first.
    let refs = source_refs(source, g)?;
    let first = open_header(&source.frames[0].path)?;
    for (k, r) in refs.iter().enumerate() {
        if r.is_none() && written.iter().any(|(_, _, ks)| ks.contains(&k)) {
            warnings.push(Warning::new(
                out,
                format!("mask slice {k} has no source slice at its position (the series was resampled)"),
                "its frame carries no derivation reference",
            ));
        }
    }

    // Pixel data: frames in segment order, slices ascending, bits packed across frames.
    let n_frames: usize = written.iter().map(|(_, _, ks)| ks.len()).sum();
    let mut bits = vec![0u8; (n_frames * plane).div_ceil(8)];
    let mut f = 0usize;
    for (def, _, ks) in &written {
        for &k in ks {
            let base = f * plane;
            for (p, &v) in data[k * plane..(k + 1) * plane].iter().enumerate() {
                if v == def.label {
                    let b = base + p;
                    bits[b / 8] |= 1 << (b % 8);
                }
            }
            f += 1;
        }
    }
    if bits.len() % 2 == 1 {
        bits.push(0);
    }

    let (date, time) = opts.content_datetime.clone().unwrap_or_else(now_utc);
    let defs_json = serde_json::to_vec(&written.iter().map(|(d, _, _)| *d).collect::<Vec<_>>()).unwrap_or_default();
    let seed = format!(
        "hepaview-seg/{}/{:016x}/{date}{time}",
        source.series_uid,
        fnv(&[&bits, &defs_json, opts.series_description.as_bytes()])
    );
    let series_uid = uid_from(&format!("{seed}/series"));
    let sop_uid = uid_from(&format!("{seed}/instance"));
    let dim_uid = uid_from(&format!("{seed}/dimensions"));

    let mut obj = InMemDicomObject::new_empty();
    let charset = first.get(tags::SPECIFIC_CHARACTER_SET).cloned();
    match charset {
        Some(c) => obj.put(c),
        None => obj.put(st(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")),
    };
    obj.put(st(tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE));
    obj.put(st(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid));
    obj.put(st(tags::INSTANCE_CREATION_DATE, VR::DA, &date));
    obj.put(st(tags::INSTANCE_CREATION_TIME, VR::TM, &time));
    // Patient, study and frame of reference: copied as the source has them; type-2
    // attributes the source lacks are written empty.
    for (tag, vr) in [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_INSTANCE_UID, VR::UI),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
        (tags::FRAME_OF_REFERENCE_UID, VR::UI),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO),
    ] {
        match first.get(tag) {
            Some(e) => obj.put(e.clone()),
            None => obj.put(st(tag, vr, "")),
        };
    }
    for tag in [tags::PATIENT_AGE, tags::PATIENT_SIZE, tags::PATIENT_WEIGHT, tags::STUDY_DESCRIPTION] {
        if let Some(e) = first.get(tag) {
            obj.put(e.clone());
        }
    }
    if get_str(&first, tags::FRAME_OF_REFERENCE_UID).is_none() {
        return Err(SegError::Source {
            path: source.frames[0].path.clone(),
            message: "no FrameOfReferenceUID, so a segmentation cannot be placed on it".into(),
        });
    }
    // General Series + Segmentation Series
    obj.put(st(tags::MODALITY, VR::CS, "SEG"));
    obj.put(st(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid));
    obj.put(st(tags::SERIES_NUMBER, VR::IS, &opts.series_number.to_string()));
    obj.put(st(tags::SERIES_DATE, VR::DA, &date));
    obj.put(st(tags::SERIES_TIME, VR::TM, &time));
    obj.put(st(tags::SERIES_DESCRIPTION, VR::LO, &opts.series_description));
    // General Equipment + Enhanced General Equipment
    obj.put(st(tags::MANUFACTURER, VR::LO, "Hepaview"));
    obj.put(st(tags::MANUFACTURER_MODEL_NAME, VR::LO, "hepaview"));
    obj.put(st(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"));
    obj.put(st(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")));
    // General Image, Segmentation Image, Content Identification
    obj.put(st(tags::INSTANCE_NUMBER, VR::IS, "1"));
    obj.put(st(tags::CONTENT_DATE, VR::DA, &date));
    obj.put(st(tags::CONTENT_TIME, VR::TM, &time));
    obj.put(DataElement::new(
        tags::IMAGE_TYPE,
        VR::CS,
        PrimitiveValue::Strs(C::from_vec(vec!["DERIVED".into(), "PRIMARY".into()])),
    ));
    obj.put(st(tags::CONTENT_LABEL, VR::CS, &opts.content_label));
    obj.put(st(tags::CONTENT_DESCRIPTION, VR::LO, &opts.content_description));
    obj.put(st(tags::CONTENT_CREATOR_NAME, VR::PN, &opts.creator));
    obj.put(st(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"));
    obj.put(st(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    // Image Pixel
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(st(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    obj.put(us(tags::ROWS, ny as u16));
    obj.put(us(tags::COLUMNS, nx as u16));
    obj.put(us(tags::BITS_ALLOCATED, 1));
    obj.put(us(tags::BITS_STORED, 1));
    obj.put(us(tags::HIGH_BIT, 0));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    obj.put(st(tags::NUMBER_OF_FRAMES, VR::IS, &n_frames.to_string()));

    // Segments
    let seg_items: Vec<InMemDicomObject> = written
        .iter()
        .map(|(def, number, _)| {
            let mut it = InMemDicomObject::from_element_iter([
                us(tags::SEGMENT_NUMBER, *number),
                st(tags::SEGMENT_LABEL, VR::LO, &def.name),
                st(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, def.algorithm.as_cs()),
                sq(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code_item(&def.category)]),
                sq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code_item(&def.property_type)]),
                DataElement::new(
                    tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
                    VR::US,
                    PrimitiveValue::U16(C::from_slice(&rgb_to_dicom_lab(def.rgb))),
                ),
            ]);
            if def.algorithm != Algorithm::Manual {
                it.put(st(tags::SEGMENT_ALGORITHM_NAME, VR::LO, &opts.algorithm_name));
            }
            it
        })
        .collect();
    obj.put(sq(tags::SEGMENT_SEQUENCE, seg_items));

    // Multi-frame dimensions: segment number, then position
    obj.put(sq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([st(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid)])],
    ));
    let dim = |pointer: Tag, group: Tag, label: &str| {
        InMemDicomObject::from_element_iter([
            st(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid),
            DataElement::new(tags::DIMENSION_INDEX_POINTER, VR::AT, PrimitiveValue::Tags(C::from_slice(&[pointer]))),
            DataElement::new(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, PrimitiveValue::Tags(C::from_slice(&[group]))),
            st(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    obj.put(sq(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "ReferencedSegmentNumber"),
            dim(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "ImagePositionPatient"),
        ],
    ));

    // Shared functional groups: pixel measures and orientation
    let iop = [
        g.direction[0][0],
        g.direction[0][1],
        g.direction[0][2],
        g.direction[1][0],
        g.direction[1][1],
        g.direction[1][2],
    ];
    let thickness = source.frames[0].slice_thickness_mm.filter(|t| *t > 0.0).unwrap_or(g.spacing_mm[0]);
    let shared = InMemDicomObject::from_element_iter([
        sq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                ds_multi(tags::PIXEL_SPACING, &[g.spacing_mm[1], g.spacing_mm[2]]),
                ds_multi(tags::SLICE_THICKNESS, &[thickness]),
                ds_multi(tags::SPACING_BETWEEN_SLICES, &[slice_step(g)]),
            ])],
        ),
        sq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([ds_multi(tags::IMAGE_ORIENTATION_PATIENT, &iop)])],
        ),
    ]);
    obj.put(sq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));

    // Per-frame functional groups
    let mut per_frame = Vec::with_capacity(n_frames);
    for (_, number, ks) in &written {
        for &k in ks {
            let mut item = InMemDicomObject::new_empty();
            if let Some(r) = &refs[k] {
                let mut src = InMemDicomObject::from_element_iter([
                    st(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &r.sop_class),
                    st(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &r.sop_instance),
                    sq(
                        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                        vec![code_item(&dcm_code("121322", "Source image for image processing operation"))],
                    ),
                ]);
                if let Some(n) = r.frame_number {
                    src.put(DataElement::new(
                        tags::REFERENCED_FRAME_NUMBER,
                        VR::IS,
                        PrimitiveValue::from(n.to_string()),
                    ));
                }
                item.put(sq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([
                        sq(tags::SOURCE_IMAGE_SEQUENCE, vec![src]),
                        sq(tags::DERIVATION_CODE_SEQUENCE, vec![code_item(&dcm_code("113076", "Segmentation"))]),
                    ])],
                ));
            }
            item.put(sq(
                tags::FRAME_CONTENT_SEQUENCE,
                vec![InMemDicomObject::from_element_iter([DataElement::new(
                    tags::DIMENSION_INDEX_VALUES,
                    VR::UL,
                    PrimitiveValue::U32(C::from_slice(&[*number as u32, k as u32 + 1])),
                )])],
            ));
            item.put(sq(
                tags::PLANE_POSITION_SEQUENCE,
                vec![InMemDicomObject::from_element_iter([ds_multi(
                    tags::IMAGE_POSITION_PATIENT,
                    &g.index_to_world([0.0, 0.0, k as f64]),
                )])],
            ));
            item.put(sq(
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                vec![InMemDicomObject::from_element_iter([us(tags::REFERENCED_SEGMENT_NUMBER, *number)])],
            ));
            per_frame.push(item);
        }
    }
    obj.put(sq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));

    // Common Instance Reference: every source slice a frame derives from
    let mut referenced: Vec<&SourceRef> = Vec::new();
    for (_, _, ks) in &written {
        for &k in ks {
            if let Some(r) = &refs[k] {
                if !referenced.iter().any(|x| x.sop_instance == r.sop_instance) {
                    referenced.push(r);
                }
            }
        }
    }
    if !referenced.is_empty() {
        let instances = referenced
            .iter()
            .map(|r| {
                InMemDicomObject::from_element_iter([
                    st(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &r.sop_class),
                    st(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &r.sop_instance),
                ])
            })
            .collect();
        obj.put(sq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                sq(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
                st(tags::SERIES_INSTANCE_UID, VR::UI, &source.series_uid),
            ])],
        ));
    }

    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(C::from_vec(bits))));

    let file_obj = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
                .media_storage_sop_instance_uid(&sop_uid)
                .implementation_class_uid(uid_from("hepaview implementation"))
                .implementation_version_name(format!("HEPAVIEW_{}", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| WriteError::Encode { path: out.to_path_buf(), message: e.to_string() })?;
    let mut bytes = Vec::new();
    file_obj
        .write_all(&mut bytes)
        .map_err(|e| WriteError::Encode { path: out.to_path_buf(), message: e.to_string() })?;
    write_new_file(out, &bytes)?;
    Ok(SegWritten {
        path: out.to_path_buf(),
        series_instance_uid: series_uid,
        sop_instance_uid: sop_uid,
        segments: written.iter().map(|(d, n, ks)| (d.label, *n, ks.len())).collect(),
        frames: n_frames,
        warnings,
    })
}

fn dcm_code(value: &str, meaning: &str) -> Code {
    Code { value: value.into(), scheme: "DCM".into(), meaning: meaning.into() }
}

/// Distance between slices along the image normal.
fn slice_step(g: &Geometry) -> f64 {
    let n = cross(g.direction[0], g.direction[1]);
    let nn = norm(n).max(1e-12);
    (g.spacing_mm[0] * dot(g.direction[2], n) / nn).abs()
}

fn check_grid(mask: &Mask, source: &SeriesInfo) -> Result<(), SegError> {
    let series = format!("{} ({})", source.description, source.series_uid);
    let (a, b) = (&mask.geometry, &source.geometry);
    if mask.data.dim() != (a.shape[0], a.shape[1], a.shape[2]) {
        return Err(SegError::GridMismatch {
            series,
            detail: format!("the voxel array {:?} disagrees with the mask's own grid {:?}", mask.data.dim(), a.shape),
        });
    }
    if a.shape != b.shape {
        return Err(SegError::GridMismatch {
            series,
            detail: format!("the mask has {:?} voxels [z, y, x], the series {:?}", a.shape, b.shape),
        });
    }
    let d = a.max_corner_distance_mm(b);
    if d > 0.01 {
        return Err(SegError::GridMismatch {
            series,
            detail: format!("same size, but the corners lie up to {d:.3} mm apart"),
        });
    }
    if a.shape[1] > u16::MAX as usize || a.shape[2] > u16::MAX as usize {
        return Err(SegError::GridMismatch { series, detail: "slices larger than 65535 pixels".into() });
    }
    if dot(a.direction[0], a.direction[1]).abs() > 1e-4 {
        return Err(SegError::GridMismatch { series, detail: "rows and columns are not perpendicular".into() });
    }
    Ok(())
}

fn check_options(o: &SegWriteOptions, segments: &[SegmentDef]) -> Result<(), SegError> {
    let bad = |field: &'static str, value: &str, hint: &str| {
        Err(SegError::Invalid { field, value: value.into(), hint: hint.into() })
    };
    if o.content_label.is_empty()
        || o.content_label.len() > 16
        || !o.content_label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_')
    {
        return bad("content_label", &o.content_label, "1 to 16 characters from A-Z, 0-9, space and underscore");
    }
    for (field, v, max) in [
        ("series_description", &o.series_description, 64),
        ("content_description", &o.content_description, 64),
        ("algorithm_name", &o.algorithm_name, 64),
    ] {
        if v.chars().count() > max || v.contains('\\') {
            return bad(field, v, "at most 64 characters and no backslash");
        }
    }
    if o.algorithm_name.is_empty() {
        return bad("algorithm_name", "", "segments not drawn by hand need the name of the algorithm");
    }
    if let Some((d, t)) = &o.content_datetime {
        if d.len() != 8
            || !d.bytes().all(|b| b.is_ascii_digit())
            || t.len() < 6
            || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return bad("content_datetime", &format!("{d} {t}"), "date YYYYMMDD and time HHMMSS");
        }
    }
    let mut seen = [false; 256];
    for s in segments {
        if s.label == 0 {
            return bad("segment label", "0", "0 is background; segments are labels 1…255");
        }
        if seen[s.label as usize] {
            return bad("segment label", &s.label.to_string(), "each label once");
        }
        seen[s.label as usize] = true;
        if s.name.is_empty() || s.name.chars().count() > 64 || s.name.contains('\\') {
            return bad("segment name", &s.name, "1 to 64 characters, no backslash");
        }
    }
    Ok(())
}

/// For each mask slice `k`, the source slice at the same position (if any).
fn source_refs(source: &SeriesInfo, g: &Geometry) -> Result<Vec<Option<SourceRef>>, SegError> {
    let nz = g.shape[0];
    let mut out: Vec<Option<SourceRef>> = vec![None; nz];
    let mut headers: BTreeMap<PathBuf, (String, String, usize)> = BTreeMap::new();
    for f in &source.frames {
        let ijk = g.world_to_index(f.position_mm);
        let k = ijk[2].round();
        if (ijk[2] - k).abs() > 0.05 || ijk[0].abs() > 0.05 || ijk[1].abs() > 0.05 || k < 0.0 || k >= nz as f64 {
            continue;
        }
        if !headers.contains_key(&f.path) {
            let h = open_header(&f.path)?;
            let class = get_str(&h, tags::SOP_CLASS_UID)
                .unwrap_or_else(|| h.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
            let inst = get_str(&h, tags::SOP_INSTANCE_UID)
                .unwrap_or_else(|| h.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string());
            let frames = get_int(&h, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
            headers.insert(f.path.clone(), (class, inst, frames));
        }
        let (class, inst, frames) = &headers[&f.path];
        out[k as usize] = Some(SourceRef {
            sop_class: class.clone(),
            sop_instance: inst.clone(),
            frame_number: (*frames > 1).then_some(f.frame + 1),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

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

/// Per-frame facts needed to place a frame.
struct FrameInfo {
    position: Lps,
    row: Lps,
    col: Lps,
    spacing: [f64; 2],
    segment: Option<u16>,
}

/// Reads a SEG file. With `reference` (the grid of the series it segments) the frames
/// are placed onto that grid by their positions; without, onto the segmentation's own
/// grid (from its first to its last frame position, at its slice spacing).
pub fn read_seg(path: &Path, reference: Option<&Geometry>) -> Result<SegRead, SegError> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| SegError::Read { path: path.to_path_buf(), message: e.to_string() })?;
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let (ts_name, _) = transfer_syntax_name(&ts);
    let ts_label = format!("{ts_name} ({ts})");
    let sop_class = get_str(&obj, tags::SOP_CLASS_UID)
        .unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    if sop_class != SEGMENTATION_STORAGE && sop_class != LABEL_MAP_SEGMENTATION_STORAGE {
        let modality = get_str(&obj, tags::MODALITY).map(|m| format!(", modality {m}")).unwrap_or_default();
        return Err(SegError::NotSeg { path: path.to_path_buf(), sop_class, what: modality });
    }
    let malformed = |what: String| SegError::Malformed { path: path.to_path_buf(), what };
    let rows = get_int(&obj, tags::ROWS).filter(|&r| r > 0).ok_or_else(|| malformed("no Rows".into()))? as usize;
    let cols = get_int(&obj, tags::COLUMNS).filter(|&c| c > 0).ok_or_else(|| malformed("no Columns".into()))? as usize;
    let n_frames = get_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    let bits_allocated = get_int(&obj, tags::BITS_ALLOCATED).unwrap_or(1) as usize;
    let seg_type = get_str(&obj, tags::SEGMENTATION_TYPE).unwrap_or_else(|| "BINARY".into()).to_uppercase();
    let kind = match seg_type.as_str() {
        "BINARY" => SegKind::Binary,
        "FRACTIONAL" => {
            SegKind::Fractional { max: get_int(&obj, tags::MAXIMUM_FRACTIONAL_VALUE).unwrap_or(255).max(1) as u32 }
        }
        "LABELMAP" => SegKind::Labelmap,
        other => return Err(malformed(format!("SegmentationType {other:?} is not BINARY, FRACTIONAL or LABELMAP"))),
    };
    match (kind, bits_allocated) {
        (SegKind::Binary, 1) | (SegKind::Fractional { .. }, 8) | (SegKind::Labelmap, 8) | (SegKind::Labelmap, 16) => {}
        _ => return Err(malformed(format!("{seg_type} segmentation with {bits_allocated} bits allocated"))),
    }
    if rows.saturating_mul(cols).saturating_mul(n_frames) > 4_000_000_000 {
        return Err(malformed(format!("{n_frames} frames of {rows}×{cols} is implausibly large")));
    }

    let segments = read_segments(&obj);
    if segments.is_empty() {
        return Err(malformed("no SegmentSequence".into()));
    }
    let frames = read_frames(&obj, n_frames, path)?;
    let pixels = decode_frames(&obj, &ts, &ts_label, path, rows, cols, n_frames, bits_allocated)?;

    // Frame → (segment index, 0/1 plane) pairs.
    let seg_index = |number: u16| segments.iter().position(|s| s.number == number);
    let mut planes: Vec<(usize, usize, Vec<u8>)> = Vec::new(); // (frame, segment index, plane)
    let mut warnings = Vec::new();
    for (f, (info, px)) in frames.iter().zip(&pixels).enumerate() {
        match kind {
            SegKind::Binary | SegKind::Fractional { .. } => {
                let number = match (info.segment, segments.len()) {
                    (Some(n), _) => n,
                    (None, 1) => segments[0].number,
                    (None, _) => {
                        return Err(malformed(format!(
                            "frame {} names no segment (SegmentIdentificationSequence)",
                            f + 1
                        )))
                    }
                };
                let Some(si) = seg_index(number) else {
                    return Err(malformed(format!(
                        "frame {} refers to segment {number}, which SegmentSequence does not define",
                        f + 1
                    )));
                };
                let plane = match kind {
                    SegKind::Fractional { max } => px.iter().map(|&v| (2 * v as u32 >= max) as u8).collect(),
                    _ => px.iter().map(|&v| (v != 0) as u8).collect(),
                };
                planes.push((f, si, plane));
            }
            SegKind::Labelmap => {
                for (si, s) in segments.iter().enumerate() {
                    if s.number == 0 {
                        continue; // the background segment of a label map
                    }
                    if px.contains(&s.number) {
                        planes.push((f, si, px.iter().map(|&v| (v == s.number) as u8).collect()));
                    }
                }
            }
        }
    }

    let own = own_geometry(&obj, &frames, rows, cols).map_err(malformed)?;
    let mut slices: Vec<BTreeMap<usize, Vec<u8>>> = vec![BTreeMap::new(); segments.len()];
    let geometry = match reference {
        None => {
            place_on(&own, rows, cols, &frames, &planes, &mut slices, &mut warnings, path);
            own
        }
        Some(r) => {
            if fits_directly(r, &frames, rows, cols) {
                place_on(r, rows, cols, &frames, &planes, &mut slices, &mut warnings, path);
            } else {
                // Not on the reference's lattice: place on the own grid, then resample
                // each segment by nearest neighbour.
                let mut own_slices: Vec<BTreeMap<usize, Vec<u8>>> = vec![BTreeMap::new(); segments.len()];
                place_on(&own, rows, cols, &frames, &planes, &mut own_slices, &mut warnings, path);
                for (si, s) in own_slices.iter().enumerate() {
                    let mut m: Mask = Volume::filled(own.clone(), 0);
                    for (k, p) in s {
                        let mut sl = m.data.index_axis_mut(ndarray::Axis(0), *k);
                        for (o, &v) in sl.iter_mut().zip(p) {
                            *o = v;
                        }
                    }
                    let on_ref = m.resample_to(r, Interp::Nearest, 0);
                    for (k, sl) in on_ref.data.axis_iter(ndarray::Axis(0)).enumerate() {
                        if sl.iter().any(|&v| v != 0) {
                            slices[si].insert(k, sl.iter().copied().collect());
                        }
                    }
                }
                warnings.push(Warning::new(
                    path,
                    "the segmentation's frames are not on the referenced series' voxel grid",
                    "resampled onto it by nearest neighbour",
                ));
            }
            r.clone()
        }
    };

    let (segment_labels, label_warnings) = assign_labels(&segments, kind, path);
    warnings.extend(label_warnings);
    let referenced_series_uid =
        first_item(&obj, tags::REFERENCED_SERIES_SEQUENCE).and_then(|i| get_str(i, tags::SERIES_INSTANCE_UID));
    Ok(SegRead {
        path: path.to_path_buf(),
        kind,
        transfer_syntax: ts,
        segments,
        geometry,
        referenced_series_uid,
        frame_of_reference_uid: get_str(&obj, tags::FRAME_OF_REFERENCE_UID),
        warnings,
        segment_labels,
        slices: slices.into_iter().map(|m| m.into_iter().collect()).collect(),
    })
}

fn read_code(item: &InMemDicomObject, tag: Tag) -> Option<Code> {
    let c = first_item(item, tag)?;
    Some(Code {
        value: get_str(c, tags::CODE_VALUE)
            .or_else(|| get_str(c, tags::LONG_CODE_VALUE))
            .or_else(|| get_str(c, tags::URN_CODE_VALUE))?,
        scheme: get_str(c, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        meaning: get_str(c, tags::CODE_MEANING).unwrap_or_default(),
    })
}

fn read_segments(obj: &InMemDicomObject) -> Vec<SegmentInfo> {
    let Some(items) = obj.get(tags::SEGMENT_SEQUENCE).and_then(|e| e.items()) else { return Vec::new() };
    items
        .iter()
        .enumerate()
        .map(|(n, it)| {
            let lab = it
                .get(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE)
                .and_then(|e| e.to_multi_int::<u16>().ok())
                .filter(|v| v.len() == 3);
            SegmentInfo {
                number: get_int(it, tags::SEGMENT_NUMBER).and_then(|v| u16::try_from(v).ok()).unwrap_or(n as u16 + 1),
                label: get_str(it, tags::SEGMENT_LABEL).unwrap_or_else(|| format!("segment {}", n + 1)),
                description: get_str(it, tags::SEGMENT_DESCRIPTION),
                rgb: lab.map(|v| dicom_lab_to_rgb([v[0], v[1], v[2]])),
                category: read_code(it, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE),
                property_type: read_code(it, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE),
                algorithm_type: get_str(it, tags::SEGMENT_ALGORITHM_TYPE),
            }
        })
        .collect()
}

/// A frame attribute: per-frame group, then shared group, then top level.
fn frame_attr<T>(
    obj: &InMemDicomObject,
    pf: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
    seq: Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    pf.and_then(|g| first_item(g, seq))
        .and_then(&get)
        .or_else(|| shared.and_then(|g| first_item(g, seq)).and_then(&get))
        .or_else(|| get(obj))
}

fn read_frames(obj: &InMemDicomObject, n: usize, path: &Path) -> Result<Vec<FrameInfo>, SegError> {
    let per_frame = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut out = Vec::with_capacity(n);
    for f in 0..n {
        let pf = per_frame.and_then(|items| items.get(f));
        let malformed =
            |what: &str| SegError::Malformed { path: path.to_path_buf(), what: format!("frame {}: {what}", f + 1) };
        let ipp =
            frame_attr(obj, pf, shared, tags::PLANE_POSITION_SEQUENCE, |o| get_f64s(o, tags::IMAGE_POSITION_PATIENT))
                .filter(|v| v.len() >= 3 && v.iter().all(|x| x.is_finite()))
                .ok_or_else(|| {
                    malformed("no ImagePositionPatient (PlanePositionSequence), so the frame cannot be placed")
                })?;
        let iop = frame_attr(obj, pf, shared, tags::PLANE_ORIENTATION_SEQUENCE, |o| {
            get_f64s(o, tags::IMAGE_ORIENTATION_PATIENT)
        })
        .filter(|v| v.len() >= 6 && v.iter().all(|x| x.is_finite()))
        .ok_or_else(|| malformed("no ImageOrientationPatient (PlaneOrientationSequence)"))?;
        let spacing = frame_attr(obj, pf, shared, tags::PIXEL_MEASURES_SEQUENCE, |o| get_f64s(o, tags::PIXEL_SPACING))
            .filter(|v| v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0)
            .ok_or_else(|| malformed("no PixelSpacing (PixelMeasuresSequence)"))?;
        let segment = frame_attr(obj, pf, shared, tags::SEGMENT_IDENTIFICATION_SEQUENCE, |o| {
            get_int(o, tags::REFERENCED_SEGMENT_NUMBER)
        })
        .and_then(|v| u16::try_from(v).ok());
        let unit = |v: Lps| {
            let n = norm(v);
            [v[0] / n, v[1] / n, v[2] / n]
        };
        let (row, col) = (unit([iop[0], iop[1], iop[2]]), unit([iop[3], iop[4], iop[5]]));
        if !(row.iter().all(|x| x.is_finite()) && col.iter().all(|x| x.is_finite()) && norm(cross(row, col)) > 1e-3) {
            return Err(malformed("degenerate ImageOrientationPatient"));
        }
        out.push(FrameInfo {
            position: [ipp[0], ipp[1], ipp[2]],
            row,
            col,
            spacing: [spacing[0], spacing[1]],
            segment,
        });
    }
    Ok(out)
}

/// The segmentation's own grid: in-plane from the first frame, slices along the normal
/// from the lowest to the highest frame position at SpacingBetweenSlices (else the
/// smallest step between distinct positions, else SliceThickness, else 1 mm).
fn own_geometry(obj: &InMemDicomObject, frames: &[FrameInfo], rows: usize, cols: usize) -> Result<Geometry, String> {
    let f0 = &frames[0];
    let n = cross(f0.row, f0.col);
    let nn = norm(n);
    let normal = [n[0] / nn, n[1] / nn, n[2] / nn];
    let mut d: Vec<f64> = frames.iter().map(|f| dot(normal, f.position)).collect();
    d.sort_by(f64::total_cmp);
    d.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let measures = shared.and_then(|s| first_item(s, tags::PIXEL_MEASURES_SEQUENCE));
    let between = measures
        .and_then(|m| obj_f64(m, tags::SPACING_BETWEEN_SLICES))
        .or_else(|| obj_f64(obj, tags::SPACING_BETWEEN_SLICES));
    let thickness =
        measures.and_then(|m| obj_f64(m, tags::SLICE_THICKNESS)).or_else(|| obj_f64(obj, tags::SLICE_THICKNESS));
    let min_step = d.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let step = between
        .filter(|s| *s > 1e-3)
        .or_else(|| min_step.is_finite().then_some(min_step))
        .or(thickness.filter(|t| *t > 1e-3))
        .unwrap_or(1.0);
    let span = d.last().copied().unwrap_or(0.0) - d[0];
    let nz = (span / step).round() as usize + 1;
    if nz > 20_000 {
        return Err(format!("frames span {span:.1} mm at {step} mm steps: {nz} slices is implausible"));
    }
    // origin: the first frame's in-plane origin moved to the lowest position
    let shift = d[0] - dot(normal, f0.position);
    let origin =
        [f0.position[0] + normal[0] * shift, f0.position[1] + normal[1] * shift, f0.position[2] + normal[2] * shift];
    Ok(Geometry {
        shape: [nz, rows, cols],
        spacing_mm: [step, f0.spacing[0], f0.spacing[1]],
        origin_mm: origin,
        direction: [f0.row, f0.col, normal],
    })
}

fn obj_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok()
}

/// True when every frame lies on `g`'s voxel lattice with `g`'s in-plane axes and
/// spacing, so that pixels map to voxels one to one.
fn fits_directly(g: &Geometry, frames: &[FrameInfo], _rows: usize, _cols: usize) -> bool {
    frames.iter().all(|f| {
        let same_axes = dot(f.row, g.direction[0]) > 1.0 - 1e-4 && dot(f.col, g.direction[1]) > 1.0 - 1e-4;
        let same_spacing = (f.spacing[0] - g.spacing_mm[1]).abs() <= 1e-3 * g.spacing_mm[1]
            && (f.spacing[1] - g.spacing_mm[2]).abs() <= 1e-3 * g.spacing_mm[2];
        let c = g.world_to_index(f.position);
        same_axes && same_spacing && c.iter().all(|v| (v - v.round()).abs() < 0.05)
    })
}

/// Puts each frame's plane at its slice of `g` (which must pass [`fits_directly`] for
/// the frames or be their own grid), clipping what falls outside.
#[allow(clippy::too_many_arguments)]
fn place_on(
    g: &Geometry,
    rows: usize,
    cols: usize,
    frames: &[FrameInfo],
    planes: &[(usize, usize, Vec<u8>)],
    slices: &mut [BTreeMap<usize, Vec<u8>>],
    warnings: &mut Vec<Warning>,
    path: &Path,
) {
    let [nz, ny, nx] = g.shape;
    let mut outside = 0usize;
    for (f, si, plane) in planes {
        let c = g.world_to_index(frames[*f].position);
        let (i0, j0, k) = (c[0].round() as i64, c[1].round() as i64, c[2].round() as i64);
        if k < 0 || k >= nz as i64 {
            if plane.iter().any(|&v| v != 0) {
                outside += 1;
            }
            continue;
        }
        let dst = slices[*si].entry(k as usize).or_insert_with(|| vec![0u8; ny * nx]);
        for r in 0..rows {
            let j = j0 + r as i64;
            if j < 0 || j >= ny as i64 {
                continue;
            }
            for cidx in 0..cols {
                let i = i0 + cidx as i64;
                if i < 0 || i >= nx as i64 {
                    continue;
                }
                if plane[r * cols + cidx] != 0 {
                    dst[j as usize * nx + i as usize] = 1;
                }
            }
        }
    }
    if outside > 0 {
        warnings.push(Warning::new(
            path,
            format!("{outside} frame(s) lie outside the grid they were read onto"),
            "left out",
        ));
    }
}

/// Every frame's pixel values (0/1 for 1-bit data, raw for 8/16-bit).
#[allow(clippy::too_many_arguments)]
fn decode_frames(
    obj: &InMemDicomObject,
    ts: &str,
    ts_label: &str,
    path: &Path,
    rows: usize,
    cols: usize,
    n_frames: usize,
    bits: usize,
) -> Result<Vec<Vec<u16>>, SegError> {
    let decode_err =
        |message: String| SegError::Decode { path: path.to_path_buf(), transfer_syntax: ts_label.to_string(), message };
    let plane = rows * cols;
    let value = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| SegError::Malformed { path: path.to_path_buf(), what: "no PixelData".into() })?
        .value();
    let native =
        matches!(ts, "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.2");
    let big_endian = ts == "1.2.840.10008.1.2.2";
    let short = |have: usize, need: usize| SegError::Malformed {
        path: path.to_path_buf(),
        what: format!("pixel data holds {have} bytes; {n_frames} frames of {rows}×{cols} need {need}"),
    };
    if native {
        let bytes = match value {
            Value::Primitive(p) => {
                // dicom-rs keeps OW in native order; big-endian files need swapping back
                let mut b = p.to_bytes().into_owned();
                if big_endian && bits == 16 && matches!(p, PrimitiveValue::U8(_)) {
                    for c in b.chunks_exact_mut(2) {
                        c.swap(0, 1);
                    }
                }
                b
            }
            _ => return Err(decode_err("pixel data is encapsulated although the transfer syntax is native".into())),
        };
        return match bits {
            1 => {
                let need = (n_frames * plane).div_ceil(8);
                if bytes.len() < need {
                    return Err(short(bytes.len(), need));
                }
                Ok((0..n_frames)
                    .map(|f| {
                        (0..plane).map(|p| ((bytes[(f * plane + p) / 8] >> ((f * plane + p) % 8)) & 1) as u16).collect()
                    })
                    .collect())
            }
            8 => {
                let need = n_frames * plane;
                if bytes.len() < need {
                    return Err(short(bytes.len(), need));
                }
                Ok(bytes[..need].chunks_exact(plane).map(|c| c.iter().map(|&v| v as u16).collect()).collect())
            }
            _ => {
                let need = n_frames * plane * 2;
                if bytes.len() < need {
                    return Err(short(bytes.len(), need));
                }
                Ok(bytes[..need]
                    .chunks_exact(plane * 2)
                    .map(|c| c.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect())
                    .collect())
            }
        };
    }
    if ts != "1.2.840.10008.1.2.5" {
        return Err(decode_err("segmentations are read uncompressed or RLE only".into()));
    }
    let Some(fragments) = value.fragments() else {
        return Err(decode_err("RLE pixel data is not encapsulated".into()));
    };
    if fragments.len() != n_frames {
        return Err(decode_err(format!(
            "{} RLE fragments for {n_frames} frames; frames split over several fragments are not supported",
            fragments.len()
        )));
    }
    fragments
        .iter()
        .enumerate()
        .map(|(f, frag)| {
            let expected = if bits == 1 { plane.div_ceil(8) } else { plane };
            let segs = rle_segments(frag, expected).map_err(|m| decode_err(format!("frame {}: {m}", f + 1)))?;
            match bits {
                1 => {
                    let need = plane.div_ceil(8);
                    let s = segs
                        .first()
                        .filter(|s| s.len() >= need)
                        .ok_or_else(|| decode_err(format!("frame {}: RLE segment too short", f + 1)))?;
                    Ok((0..plane).map(|p| ((s[p / 8] >> (p % 8)) & 1) as u16).collect())
                }
                8 => {
                    let s = segs
                        .first()
                        .filter(|s| s.len() >= plane)
                        .ok_or_else(|| decode_err(format!("frame {}: RLE segment too short", f + 1)))?;
                    Ok(s[..plane].iter().map(|&v| v as u16).collect())
                }
                _ => {
                    if segs.len() < 2 || segs[0].len() < plane || segs[1].len() < plane {
                        return Err(decode_err(format!(
                            "frame {}: 16-bit RLE needs two segments of {plane} bytes",
                            f + 1
                        )));
                    }
                    Ok((0..plane).map(|p| ((segs[0][p] as u16) << 8) | segs[1][p] as u16).collect())
                }
            }
        })
        .collect()
}

/// Decodes one RLE frame (PS3.5 Annex G): a 64-byte header of segment offsets, then
/// PackBits segments of `expected` bytes each. Decoding stops there: encoders pad a
/// segment to even length, and the pad byte reads as the start of another run.
fn rle_segments(frag: &[u8], expected: usize) -> Result<Vec<Vec<u8>>, String> {
    if frag.len() < 64 {
        return Err("RLE header cut short".into());
    }
    let word = |i: usize| u32::from_le_bytes([frag[4 * i], frag[4 * i + 1], frag[4 * i + 2], frag[4 * i + 3]]) as usize;
    let n = word(0);
    if n == 0 || n > 15 {
        return Err(format!("{n} RLE segments"));
    }
    let offsets: Vec<usize> = (1..=n).map(word).collect();
    let mut out = Vec::with_capacity(n);
    for s in 0..n {
        let start = offsets[s];
        let end = if s + 1 < n { offsets[s + 1] } else { frag.len() };
        if start < 64 || start > end || end > frag.len() {
            return Err(format!("RLE segment {} has offsets {start}…{end} outside the fragment", s + 1));
        }
        let src = &frag[start..end];
        let mut dst = Vec::with_capacity(expected);
        let mut i = 0;
        while i < src.len() && dst.len() < expected {
            let h = src[i] as i8;
            i += 1;
            if h >= 0 {
                let len = h as usize + 1;
                let lit = src.get(i..i + len).ok_or("RLE literal run cut short")?;
                dst.extend_from_slice(lit);
                i += len;
            } else if h != -128 {
                let b = *src.get(i).ok_or("RLE repeat run cut short")?;
                dst.extend(std::iter::repeat_n(b, (1 - h as isize) as usize));
                i += 1;
            }
        }
        out.push(dst);
    }
    Ok(out)
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

    #[test]
    fn rle_packbits() {
        let mut frag = vec![0u8; 64];
        frag[0] = 1;
        frag[4] = 64;
        frag.extend_from_slice(&[2, 1, 2, 3, 0xFE, 9, 0x80]);
        let s = rle_segments(&frag, 6).unwrap();
        assert_eq!(s, vec![vec![1, 2, 3, 9, 9, 9]]);
        // a pad byte after the last run is not read as a run cut short
        frag.push(0);
        assert_eq!(rle_segments(&frag, 6).unwrap(), s);
        assert!(rle_segments(&frag[..10], 6).is_err());
    }

    #[test]
    fn utc_date_is_plausible() {
        let (d, t) = now_utc();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.as_str() >= "20240101", "{d}");
    }
}
