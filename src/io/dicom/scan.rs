//! Listing: every file under a folder, what each is (DICOM or not, image or not), and the
//! header of each image read up to its pixel data, in parallel; then grouped into series.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use rayon::prelude::*;

use super::claimed_lengths::{find_overrun, Start};
use super::series::{group, is_native};
use super::{
    first_item, frame_attr, get_f64, get_f64s, get_int, get_str, non_image_sop_class, DicomError, DicomScan,
    FileHeader, Frame, PixelFormat, Progress,
};
use crate::io::Warning;
use crate::volume::{cross, dot, norm, sub};

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
        .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && e.file_name() == crate::io::SESSION_DIR_NAME))
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
#[derive(Clone, Copy)]
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
pub(super) fn open(path: &Path, until_pixels: bool) -> Result<DefaultDicomObject, DicomError> {
    let layout = sniff(path)?;
    check_claimed_lengths(path, layout, until_pixels)?;
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

/// Refuses a file with an element that claims more bytes than the file holds, before
/// dicom-rs reserves memory for it (see `claimed_lengths`).
fn check_claimed_lengths(path: &Path, layout: Layout, until_pixels: bool) -> Result<(), DicomError> {
    let start = match layout {
        Layout::Part10 => Start::Meta { offset: 132 },
        Layout::MetaNoPreamble => Start::Meta { offset: 0 },
        Layout::Bare { explicit, offset } => Start::Dataset { offset, explicit },
    };
    // a bare data set is read whole by dicom-rs even for its header (there is no
    // read-until for it), so every element of it is checked
    let stop_at_pixels = until_pixels && !matches!(layout, Layout::Bare { .. });
    match find_overrun(path, start, stop_at_pixels) {
        Ok(None) => Ok(()),
        Ok(Some(overrun)) => Err(DicomError::Read { path: path.to_path_buf(), message: overrun.to_string() }),
        Err(source) => Err(DicomError::Io { path: path.to_path_buf(), source }),
    }
}

/// The same check for a reader that opens Part 10 files with dicom-rs itself (the SEG
/// reader); other layouts are left to that reader's own refusal.
pub(crate) fn check_part10_claimed_lengths(path: &Path) -> Result<(), DicomError> {
    match sniff(path) {
        Ok(Layout::Part10) => check_claimed_lengths(path, Layout::Part10, false),
        _ => Ok(()),
    }
}

/// dicom-rs errors nest their causes; a user needs the innermost words too.
pub(super) fn flatten_error(e: &dyn std::error::Error) -> String {
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
        acquisition_number: get_int(&obj, tags::ACQUISITION_NUMBER),
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
