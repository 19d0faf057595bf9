//! Writing a CT volume as a DICOM series: one CT Image Storage file per slice, Explicit VR
//! Little Endian, signed 16-bit HU. Owns the attribute set of the CT Image IOD that we
//! emit, deterministic UIDs (`uid_from`), and the never-overwrite file policy (each file is
//! written to a temporary name and then linked into place, refusing an existing target).
//!
//! Geometry goes out exactly as `volume::Geometry` defines it: ImagePositionPatient is the
//! world position of voxel `(0, 0, k)`, ImageOrientationPatient the row then column
//! direction, PixelSpacing `[row spacing (sy), column spacing (sx)]`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::volume::random::splitmix64;
use crate::volume::{cross, dot, norm, CtVolume};

/// Everything about a series that is not in the voxels. Dates are `YYYYMMDD`, times
/// `HHMMSS` (fractions allowed), as DICOM writes them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesMeta {
    /// `FAMILY^GIVEN`.
    pub patient_name: String,
    pub patient_id: String,
    /// `YYYYMMDD`, or empty when unknown.
    pub patient_birth_date: String,
    /// `M`, `F`, `O`, or empty when unknown.
    pub patient_sex: String,
    pub study_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession_number: String,
    pub series_uid: String,
    pub series_number: u32,
    pub series_description: String,
    /// Also used as SeriesTime and ContentTime.
    pub acquisition_time: String,
    /// When `Some`, the Contrast/Bolus module is written with this ContrastBolusAgent.
    pub contrast_agent: Option<String>,
    pub frame_of_reference_uid: String,
    pub manufacturer: String,
    /// Seed for the SOP Instance UIDs, so that writing the same series twice gives the
    /// same files (see [`uid_from`]).
    pub uid_seed: String,
    /// Tube voltage; CT Image requires the attribute, so a plausible value beats none.
    #[serde(default = "default_kvp")]
    pub kvp: f64,
}

fn default_kvp() -> f64 {
    120.0
}

/// The metadata of a series derived from `source` (e.g. a phase registered onto another):
/// the same patient and study, a new series (UID from `seed`, `description`, `number`) in
/// the frame of reference `frame_of_reference_uid` (the registered image lies in the fixed
/// series' frame). Reads the patient and study attributes from the source's first file;
/// values the source lacks or holds in a form our writer refuses are left empty where DICOM
/// allows, or given a neutral value (time 000000) where it requires one.
pub fn derived_meta(
    source: &crate::io::dicom::SeriesInfo,
    frame_of_reference_uid: &str,
    description: &str,
    number: u32,
    seed: &str,
) -> Result<SeriesMeta, WriteError> {
    use crate::io::dicom::{get_f64s, get_str};
    let path = source.frames.first().map(|f| f.path.clone()).ok_or_else(|| WriteError::InvalidMeta {
        field: "source",
        value: source.description.clone(),
        hint: "the source series has no files".into(),
    })?;
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(&path)
        .map_err(|e| WriteError::Encode { path: path.clone(), message: format!("reading the source header: {e}") })?;
    let text = |tag| get_str(&obj, tag).unwrap_or_default();
    let date =
        |tag| Some(text(tag)).filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())).unwrap_or_default();
    let time = |tag| {
        let t = text(tag);
        let hms: String = t.split('.').next().unwrap_or("").chars().take(6).collect();
        if hms.len() == 6 && hms.bytes().all(|b| b.is_ascii_digit()) {
            hms
        } else {
            "000000".to_string()
        }
    };
    let sex = Some(text(tags::PATIENT_SEX)).filter(|s| matches!(s.as_str(), "M" | "F" | "O")).unwrap_or_default();
    let study_date = Some(date(tags::STUDY_DATE))
        .filter(|d| !d.is_empty())
        .or_else(|| Some(date(tags::SERIES_DATE)).filter(|d| !d.is_empty()));
    Ok(SeriesMeta {
        patient_name: text(tags::PATIENT_NAME),
        patient_id: text(tags::PATIENT_ID),
        patient_birth_date: date(tags::PATIENT_BIRTH_DATE),
        patient_sex: sex,
        study_uid: source.study_uid.clone(),
        // required by our writer; 19000101 marks "unknown" rather than inventing a day
        study_date: study_date.unwrap_or_else(|| "19000101".into()),
        study_time: time(tags::STUDY_TIME),
        study_id: text(tags::STUDY_ID),
        accession_number: text(tags::ACCESSION_NUMBER),
        series_uid: uid_from(&format!("{seed}/series")),
        series_number: number,
        series_description: description.chars().take(64).collect(),
        acquisition_time: time(tags::ACQUISITION_TIME),
        contrast_agent: source.contrast_agent.clone(),
        frame_of_reference_uid: frame_of_reference_uid.to_string(),
        manufacturer: text(tags::MANUFACTURER),
        uid_seed: seed.to_string(),
        kvp: get_f64s(&obj, tags::KVP).and_then(|v| v.first().copied()).unwrap_or(120.0),
    })
}

/// `(year, month, day)` of `days` since 1970-01-01 (H. Hinnant's civil-from-days), so DICOM
/// dates are real calendar dates without a date crate.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// Days since 1970-01-01 of a calendar date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A DICOM date (`YYYYMMDD`) moved by `days`; `None` when `date` is not one.
pub fn add_days(date: &str, days: i64) -> Option<String> {
    let field = |r: std::ops::Range<usize>| {
        date.get(r).filter(|s| s.bytes().all(|b| b.is_ascii_digit())).and_then(|s| s.parse::<i64>().ok())
    };
    let (y, m, d) = (field(0..4)?, field(4..6)?, field(6..8)?);
    if date.len() != 8 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + days);
    Some(format!("{y:04}{m:02}{d:02}"))
}

/// Why a series could not be written. Each message names the file or field and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: file already exists; Hepaview never overwrites files, so write into an empty folder or move the old file away", path.display())]
    Exists { path: PathBuf },
    #[error("cannot create folder {}: {source}; check the path and that you may write there", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}; check free disk space and write permission", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot encode the DICOM data of {}: {message}", path.display())]
    Encode { path: PathBuf, message: String },
    #[error("series metadata field `{field}` = {value:?} is not valid DICOM: {hint}")]
    InvalidMeta { field: &'static str, value: String, hint: String },
    #[error("the volume cannot be written as DICOM slices: {reason}")]
    InvalidVolume { reason: String },
}

/// A DICOM UID `2.25.<decimal>` made from a 128-bit hash of `seed`. The 2.25 root is the
/// standard's home for UUID-derived UIDs, so no organisation root is needed; the hash is
/// written out here (not `std`'s hasher, which may change between Rust releases) so the
/// same seed gives the same UID on every build and machine.
pub fn uid_from(seed: &str) -> String {
    format!("2.25.{}", hash128(seed.as_bytes()))
}

/// Two independent FNV-1a passes (different offsets), each finished by splitmix64 so that
/// seeds differing in one character spread over all bits.
fn hash128(bytes: &[u8]) -> u128 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        a = (a ^ byte as u64).wrapping_mul(PRIME);
        b = (b ^ (byte as u64).rotate_left(3) ^ 0x5a).wrapping_mul(PRIME);
    }
    let hi = splitmix64(a ^ (bytes.len() as u64));
    let lo = splitmix64(b.wrapping_add(hi));
    ((hi as u128) << 64) | lo as u128
}

/// The file name slice `k` gets: `NNNN.dcm`, numbered from 1 like InstanceNumber.
pub fn slice_file_name(k: usize) -> String {
    format!("{:04}.dcm", k + 1)
}

/// Writes `vol` as one CT Image Storage file per slice (k order) into `dir` (created if
/// missing), named by [`slice_file_name`]. Refuses, before writing anything, when any
/// target file already exists. Returns the paths in slice order.
pub fn write_ct_series(vol: &CtVolume, meta: &SeriesMeta, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    validate_meta(meta)?;
    let g = &vol.geometry;
    g.validate().map_err(|reason| WriteError::InvalidVolume { reason })?;
    let [nz, ny, nx] = g.shape;
    if ny > u16::MAX as usize || nx > u16::MAX as usize {
        return Err(WriteError::InvalidVolume {
            reason: format!("slices of {ny}×{nx} exceed DICOM's 65535 rows/columns"),
        });
    }
    let (row, col) = (g.direction[0], g.direction[1]);
    if dot(row, col).abs() > 1e-4 {
        return Err(WriteError::InvalidVolume {
            reason: "row and column directions are not perpendicular, which ImageOrientationPatient cannot express"
                .into(),
        });
    }
    let normal = cross(row, col);
    // Readers sort slices by position along the normal, so the spacing they will see is the
    // slice step projected on it (equal to sz unless the grid is sheared).
    let step = g.spacing_mm[0] * dot(g.direction[2], normal) / norm(normal);
    if step.abs() < 1e-6 {
        return Err(WriteError::InvalidVolume { reason: "slices do not advance along the image normal".into() });
    }

    fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir { path: dir.to_path_buf(), source })?;
    let paths: Vec<PathBuf> = (0..nz).map(|k| dir.join(slice_file_name(k))).collect();
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(WriteError::Exists { path: p.clone() });
    }

    let common = common_elements(vol, meta, step.abs());
    for (k, path) in paths.iter().enumerate() {
        let sop_uid = uid_from(&format!("{}/sop/{}/{}", meta.uid_seed, meta.series_uid, k));
        let mut obj = InMemDicomObject::from_element_iter(common.iter().cloned());
        let pos = g.index_to_world([0.0, 0.0, k as f64]);
        obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str()));
        obj.put(DataElement::new(tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string()));
        obj.put(DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds_multi(&pos)));
        obj.put(DataElement::new(tags::SLICE_LOCATION, VR::DS, ds(dot(pos, normal) / norm(normal))));
        let slice = vol.data.index_axis(ndarray::Axis(0), k);
        let pixels: C<i16> = slice.iter().copied().collect();
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::I16(pixels)));

        let file_obj = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .implementation_class_uid(uid_from("hepaview implementation"))
                    .implementation_version_name(format!("HEPAVIEW_{}", env!("CARGO_PKG_VERSION"))),
            )
            .map_err(|e| WriteError::Encode { path: path.clone(), message: e.to_string() })?;
        let mut bytes = Vec::with_capacity(nx * ny * 2 + 4096);
        file_obj
            .write_all(&mut bytes)
            .map_err(|e| WriteError::Encode { path: path.clone(), message: e.to_string() })?;
        write_new_file(path, &bytes)?;
    }
    Ok(paths)
}

/// Writes `bytes` to `path` without ever replacing anything there
/// ([`crate::io::write_new_file`]: a temporary sibling, hard-linked into place).
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    crate::io::write_new_file(path, bytes).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => WriteError::Exists { path: path.to_path_buf() },
        _ => WriteError::Io { path: path.to_path_buf(), source },
    })
}

/// The attributes shared by every slice of the series.
fn common_elements(vol: &CtVolume, meta: &SeriesMeta, step_mm: f64) -> Vec<DataElement<InMemDicomObject>> {
    let g = &vol.geometry;
    let [_, ny, nx] = g.shape;
    let iop = [
        g.direction[0][0],
        g.direction[0][1],
        g.direction[0][2],
        g.direction[1][0],
        g.direction[1][1],
        g.direction[1][2],
    ];
    let s = |tag: Tag, vr: VR, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let strs = |tag: Tag, vr: VR, vs: &[&str]| {
        DataElement::new(tag, vr, PrimitiveValue::Strs(vs.iter().map(|v| v.to_string()).collect()))
    };
    let mut e = vec![
        // SOP Common
        s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        s(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, &meta.study_date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, &meta.acquisition_time),
        // Patient
        s(tags::PATIENT_NAME, VR::PN, &meta.patient_name),
        s(tags::PATIENT_ID, VR::LO, &meta.patient_id),
        s(tags::PATIENT_BIRTH_DATE, VR::DA, &meta.patient_birth_date),
        s(tags::PATIENT_SEX, VR::CS, &meta.patient_sex),
        // General Study
        s(tags::STUDY_INSTANCE_UID, VR::UI, &meta.study_uid),
        s(tags::STUDY_DATE, VR::DA, &meta.study_date),
        s(tags::STUDY_TIME, VR::TM, &meta.study_time),
        s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        s(tags::STUDY_ID, VR::SH, &meta.study_id),
        s(tags::ACCESSION_NUMBER, VR::SH, &meta.accession_number),
        // General Series
        s(tags::MODALITY, VR::CS, "CT"),
        s(tags::SERIES_INSTANCE_UID, VR::UI, &meta.series_uid),
        s(tags::SERIES_NUMBER, VR::IS, &meta.series_number.to_string()),
        s(tags::SERIES_DATE, VR::DA, &meta.study_date),
        s(tags::SERIES_TIME, VR::TM, &meta.acquisition_time),
        s(tags::SERIES_DESCRIPTION, VR::LO, &meta.series_description),
        s(tags::BODY_PART_EXAMINED, VR::CS, "ABDOMEN"),
        s(tags::PATIENT_POSITION, VR::CS, "HFS"),
        // Frame of Reference
        s(tags::FRAME_OF_REFERENCE_UID, VR::UI, &meta.frame_of_reference_uid),
        s(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        // General Equipment
        s(tags::MANUFACTURER, VR::LO, &meta.manufacturer),
        s(tags::SOFTWARE_VERSIONS, VR::LO, concat!("hepaview ", env!("CARGO_PKG_VERSION"))),
        // General Image + General Acquisition
        strs(tags::IMAGE_TYPE, VR::CS, &["ORIGINAL", "PRIMARY", "AXIAL"]),
        s(tags::ACQUISITION_NUMBER, VR::IS, "1"),
        s(tags::ACQUISITION_DATE, VR::DA, &meta.study_date),
        s(tags::ACQUISITION_TIME, VR::TM, &meta.acquisition_time),
        s(tags::CONTENT_DATE, VR::DA, &meta.study_date),
        s(tags::CONTENT_TIME, VR::TM, &meta.acquisition_time),
        // Image Plane
        DataElement::new(tags::PIXEL_SPACING, VR::DS, ds_multi(&[g.spacing_mm[1], g.spacing_mm[2]])),
        DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds_multi(&iop)),
        DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(g.spacing_mm[0])),
        DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(step_mm)),
        // Image Pixel + CT Image
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, ny as u16),
        us(tags::COLUMNS, nx as u16),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 16),
        us(tags::HIGH_BIT, 15),
        us(tags::PIXEL_REPRESENTATION, 1),
        DataElement::new(tags::KVP, VR::DS, ds(meta.kvp)),
        s(tags::RESCALE_INTERCEPT, VR::DS, "0"),
        s(tags::RESCALE_SLOPE, VR::DS, "1"),
        s(tags::RESCALE_TYPE, VR::LO, "HU"),
        // VOI LUT: a soft-tissue/liver window
        s(tags::WINDOW_CENTER, VR::DS, "60"),
        s(tags::WINDOW_WIDTH, VR::DS, "400"),
    ];
    if let Some(agent) = &meta.contrast_agent {
        e.push(s(tags::CONTRAST_BOLUS_AGENT, VR::LO, agent));
        e.push(s(tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV"));
    }
    e
}

/// A DS value: at most 16 characters, as many decimals as fit, no `-0`.
pub(crate) fn ds(v: f64) -> String {
    for prec in (0..=10).rev() {
        let mut s = format!("{v:.prec$}");
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        if s == "-0" {
            s = "0".into();
        }
        if s.len() <= 16 {
            return s;
        }
    }
    // Only values beyond 1e16 get here; scientific notation is valid DS too.
    format!("{v:.6e}")
}

fn ds_multi(vs: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(vs.iter().map(|&v| ds(v)).collect())
}

fn validate_meta(m: &SeriesMeta) -> Result<(), WriteError> {
    let bad = |field: &'static str, value: &str, hint: &str| {
        Err(WriteError::InvalidMeta { field, value: value.to_string(), hint: hint.to_string() })
    };
    for (field, uid) in [
        ("study_uid", &m.study_uid),
        ("series_uid", &m.series_uid),
        ("frame_of_reference_uid", &m.frame_of_reference_uid),
    ] {
        let ok = !uid.is_empty()
            && uid.len() <= 64
            && uid
                .split('.')
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')));
        if !ok {
            return bad(field, uid, "a UID is dot-separated numbers without leading zeros, at most 64 characters; make one with uid_from(seed)");
        }
    }
    for (field, date, required) in
        [("study_date", &m.study_date, true), ("patient_birth_date", &m.patient_birth_date, false)]
    {
        let ok = (date.is_empty() && !required) || (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return bad(field, date, "dates are written YYYYMMDD");
        }
    }
    for (field, time) in [("study_time", &m.study_time), ("acquisition_time", &m.acquisition_time)] {
        let (hms, frac) = time.split_once('.').unwrap_or((time.as_str(), ""));
        let ok = hms.len() == 6
            && hms.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 6
            && frac.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return bad(field, time, "times are written HHMMSS or HHMMSS.FFFFFF");
        }
    }
    if !matches!(m.patient_sex.as_str(), "" | "M" | "F" | "O") {
        return bad("patient_sex", &m.patient_sex, "use M, F, O or leave empty");
    }
    for (field, v, max) in [
        ("patient_id", &m.patient_id, 64),
        ("patient_name", &m.patient_name, 64),
        ("study_id", &m.study_id, 16),
        ("accession_number", &m.accession_number, 16),
        ("series_description", &m.series_description, 64),
        ("manufacturer", &m.manufacturer, 64),
    ] {
        if v.chars().count() > max || v.contains('\\') {
            return bad(field, v, &format!("at most {max} characters and no backslash"));
        }
    }
    if let Some(agent) = &m.contrast_agent {
        if agent.chars().count() > 64 || agent.contains('\\') {
            return bad("contrast_agent", agent, "at most 64 characters and no backslash");
        }
    }
    if !(m.kvp.is_finite() && m.kvp > 0.0) {
        return bad("kvp", &m.kvp.to_string(), "tube voltage must be a positive number of kV");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};

    #[test]
    fn dates_cross_months_years_and_leap_days() {
        assert_eq!(add_days("20010812", 61).as_deref(), Some("20011012"));
        assert_eq!(add_days("20241215", 61).as_deref(), Some("20250214"));
        assert_eq!(add_days("20240130", 30).as_deref(), Some("20240229"));
        assert_eq!(add_days("20230130", 30).as_deref(), Some("20230301"));
        assert_eq!(add_days("19700101", 0).as_deref(), Some("19700101"));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for bad in ["bad", "2001081", "20011312", "2001-08-12", "+0010812"] {
            assert_eq!(add_days(bad, 1), None, "{bad}");
        }
    }

    pub(crate) fn meta() -> SeriesMeta {
        SeriesMeta {
            patient_name: "PHANTOM^LIVER".into(),
            patient_id: "HV-0001".into(),
            patient_birth_date: "19600101".into(),
            patient_sex: "O".into(),
            study_uid: uid_from("t/study"),
            study_date: "20260101".into(),
            study_time: "100000".into(),
            study_id: "1".into(),
            accession_number: "A1".into(),
            series_uid: uid_from("t/series"),
            series_number: 2,
            series_description: "TEST".into(),
            acquisition_time: "100105".into(),
            contrast_agent: Some("IOPAMIDOL 370".into()),
            frame_of_reference_uid: uid_from("t/for"),
            manufacturer: "Hepaview".into(),
            uid_seed: "t".into(),
            kvp: 120.0,
        }
    }

    #[test]
    fn uids_are_deterministic_valid_and_distinct() {
        let a = uid_from("seed");
        assert_eq!(a, uid_from("seed"));
        assert_ne!(a, uid_from("seee"));
        assert!(a.starts_with("2.25.") && a.len() <= 64, "{a}");
        // pinned so a change to the hash (which would re-identify every written file) is noticed
        assert_eq!(uid_from(""), format!("2.25.{}", hash128(b"")));
    }

    #[test]
    fn ds_fits_sixteen_characters() {
        assert_eq!(ds(-192.0), "-192");
        assert_eq!(ds(1.5), "1.5");
        assert_eq!(ds(-1e-12), "0");
        assert_eq!(ds(6.1e-17), "0");
        assert!(ds(-123456.123456789).len() <= 16);
        assert!(ds(std::f64::consts::PI).len() <= 16);
    }

    #[test]
    fn writes_readable_slices_and_refuses_overwrite() {
        let g = Geometry::axis_aligned([3, 4, 5], [2.5, 1.5, 1.2], [-10.0, 20.0, -300.0]);
        let data =
            ndarray::Array3::from_shape_fn(g.shape, |(k, j, i)| (k as i16 * 100 - j as i16 * 10 + i as i16) - 50);
        let vol = Volume::new(data.clone(), g.clone());
        let dir = tempfile::tempdir().unwrap();
        let paths = write_ct_series(&vol, &meta(), dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        let obj = dicom_object::open_file(&paths[2]).unwrap();
        let ipp = obj.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
        assert_eq!(ipp, vec![-10.0, 20.0, -295.0]);
        let ps = obj.element(tags::PIXEL_SPACING).unwrap().to_multi_float64().unwrap();
        assert_eq!(ps, vec![1.5, 1.2]);
        let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        let vals: Vec<i16> = px.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(vals, data.index_axis(ndarray::Axis(0), 2).iter().copied().collect::<Vec<_>>());
        match write_ct_series(&vol, &meta(), dir.path()) {
            Err(WriteError::Exists { path }) => assert_eq!(path, paths[0]),
            other => panic!("expected Exists, got {other:?}"),
        }
        // no temporary files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn bad_meta_is_rejected_with_the_field_named() {
        let mut m = meta();
        m.study_uid = "1.2.03".into();
        let g = Geometry::axis_aligned([1, 2, 2], [1.0; 3], [0.0; 3]);
        let err = write_ct_series(&Volume::filled(g, 0), &m, Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("study_uid"), "{err}");
    }
}
