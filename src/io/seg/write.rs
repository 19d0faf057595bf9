//! Writing a label mask as a BINARY segmentation (what is written: see the `seg` module's
//! documentation). `write_seg` runs the steps below in order: check the grid and options,
//! find the slices of each segment, find the source slices, pack the bits, derive the
//! UIDs, then put the header, segments, dimensions, functional groups, references and
//! pixels, and write the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PrimitiveValue, C};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};

use super::{
    rgb_to_dicom_lab, Algorithm, Code, SegError, SegWriteOptions, SegWritten, SegmentDef, SEGMENTATION_STORAGE,
};
use crate::io::dicom::{get_int, get_str, SeriesInfo};
use crate::io::dicom_write::{ds, uid_from, write_new_file, WriteError};
use crate::io::Warning;
use crate::volume::{cross, dot, norm, Geometry, Mask};

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

/// One segment to write: its definition, its SegmentNumber (from 1, in the order given)
/// and the mask slices that hold it, ascending.
type Planned<'a> = (&'a SegmentDef, u16, Vec<usize>);

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
    let [_, ny, nx] = g.shape;
    let mut warnings = Vec::new();
    let data = mask.data.as_standard_layout();
    let data = data.as_slice().unwrap_or(&[]);
    let written = plan_segments(data, g.shape, segments, out, &mut warnings)?;

    // Source slices: their SOP UIDs, and the study-level attributes of the first.
    let refs = source_refs(source, g)?;
    let first = open_header(&source.frames[0].path)?;
    warn_unreferenced(&refs, &written, out, &mut warnings);

    let (bits, n_frames) = pack_frames(data, ny * nx, &written);
    let (date, time) = opts.content_datetime.clone().unwrap_or_else(now_utc);
    let uids = Uids::new(source, &bits, &written, opts, &date, &time);

    let mut obj = InMemDicomObject::new_empty();
    put_identity(&mut obj, &first, source, &uids, &date, &time)?;
    put_series_and_image(&mut obj, opts, &uids, &date, &time, [ny, nx], n_frames);
    obj.put(segment_sequence(&written, opts));
    put_dimensions(&mut obj, &uids.dimensions);
    obj.put(sq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared_groups(g, source)]));
    obj.put(sq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame_groups(&written, &refs, g, n_frames)));
    put_common_instance_reference(&mut obj, &written, &refs, source);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(C::from_vec(bits))));
    encode_new_file(obj, &uids.instance, out)?;
    Ok(SegWritten {
        path: out.to_path_buf(),
        series_instance_uid: uids.series,
        sop_instance_uid: uids.instance,
        segments: written.iter().map(|(d, n, ks)| (d.label, *n, ks.len())).collect(),
        frames: n_frames,
        warnings,
    })
}

/// Which slices hold which label: the segments to write, each with its slices; a label
/// with no voxels is left out with a warning, and none at all is an error.
fn plan_segments<'a>(
    data: &[u8],
    shape: [usize; 3],
    segments: &'a [SegmentDef],
    out: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Planned<'a>>, SegError> {
    let [nz, ny, nx] = shape;
    let plane = ny * nx;
    let mut present = vec![[false; 256]; nz];
    for (k, p) in present.iter_mut().enumerate() {
        for &v in &data[k * plane..(k + 1) * plane] {
            p[v as usize] = true;
        }
    }
    let mut written: Vec<Planned> = Vec::new();
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
    Ok(written)
}

/// A warning for each written slice with no source slice at its position.
fn warn_unreferenced(refs: &[Option<SourceRef>], written: &[Planned], out: &Path, warnings: &mut Vec<Warning>) {
    for (k, r) in refs.iter().enumerate() {
        if r.is_none() && written.iter().any(|(_, _, ks)| ks.contains(&k)) {
            warnings.push(Warning::new(
                out,
                format!("mask slice {k} has no source slice at its position (the series was resampled)"),
                "its frame carries no derivation reference",
            ));
        }
    }
}

/// Pixel data: frames in segment order, slices ascending, bits packed across frames
/// (padded to an even length); and the number of frames.
fn pack_frames(data: &[u8], plane: usize, written: &[Planned]) -> (Vec<u8>, usize) {
    let n_frames: usize = written.iter().map(|(_, _, ks)| ks.len()).sum();
    let mut bits = vec![0u8; (n_frames * plane).div_ceil(8)];
    let mut f = 0usize;
    for (def, _, ks) in written {
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
    (bits, n_frames)
}

/// The new UIDs, derived from the source series, the content (bits, segment definitions,
/// series description) and the content time: the same inputs give the same file.
struct Uids {
    series: String,
    instance: String,
    dimensions: String,
}

impl Uids {
    fn new(
        source: &SeriesInfo,
        bits: &[u8],
        written: &[Planned],
        opts: &SegWriteOptions,
        date: &str,
        time: &str,
    ) -> Uids {
        let defs_json = serde_json::to_vec(&written.iter().map(|(d, _, _)| *d).collect::<Vec<_>>()).unwrap_or_default();
        let seed = format!(
            "hepaview-seg/{}/{:016x}/{date}{time}",
            source.series_uid,
            fnv(&[bits, &defs_json, opts.series_description.as_bytes()])
        );
        Uids {
            series: uid_from(&format!("{seed}/series")),
            instance: uid_from(&format!("{seed}/instance")),
            dimensions: uid_from(&format!("{seed}/dimensions")),
        }
    }
}

/// SOP Common, and patient, study and frame of reference copied from the first source
/// slice (as the source has them; type-2 attributes it lacks are written empty). A source
/// without a frame of reference is refused.
fn put_identity(
    obj: &mut InMemDicomObject,
    first: &InMemDicomObject,
    source: &SeriesInfo,
    uids: &Uids,
    date: &str,
    time: &str,
) -> Result<(), SegError> {
    let charset = first.get(tags::SPECIFIC_CHARACTER_SET).cloned();
    match charset {
        Some(c) => obj.put(c),
        None => obj.put(st(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")),
    };
    obj.put(st(tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE));
    obj.put(st(tags::SOP_INSTANCE_UID, VR::UI, &uids.instance));
    obj.put(st(tags::INSTANCE_CREATION_DATE, VR::DA, date));
    obj.put(st(tags::INSTANCE_CREATION_TIME, VR::TM, time));
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
    if get_str(first, tags::FRAME_OF_REFERENCE_UID).is_none() {
        return Err(SegError::Source {
            path: source.frames[0].path.clone(),
            message: "no FrameOfReferenceUID, so a segmentation cannot be placed on it".into(),
        });
    }
    Ok(())
}

/// General and Segmentation Series, equipment, General and Segmentation Image, Content
/// Identification and Image Pixel (1 bit a pixel, `rows_cols` per frame).
fn put_series_and_image(
    obj: &mut InMemDicomObject,
    opts: &SegWriteOptions,
    uids: &Uids,
    date: &str,
    time: &str,
    [ny, nx]: [usize; 2],
    n_frames: usize,
) {
    // General Series + Segmentation Series
    obj.put(st(tags::MODALITY, VR::CS, "SEG"));
    obj.put(st(tags::SERIES_INSTANCE_UID, VR::UI, &uids.series));
    obj.put(st(tags::SERIES_NUMBER, VR::IS, &opts.series_number.to_string()));
    obj.put(st(tags::SERIES_DATE, VR::DA, date));
    obj.put(st(tags::SERIES_TIME, VR::TM, time));
    obj.put(st(tags::SERIES_DESCRIPTION, VR::LO, &opts.series_description));
    // General Equipment + Enhanced General Equipment
    obj.put(st(tags::MANUFACTURER, VR::LO, "Hepaview"));
    obj.put(st(tags::MANUFACTURER_MODEL_NAME, VR::LO, "hepaview"));
    obj.put(st(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"));
    obj.put(st(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")));
    // General Image, Segmentation Image, Content Identification
    obj.put(st(tags::INSTANCE_NUMBER, VR::IS, "1"));
    obj.put(st(tags::CONTENT_DATE, VR::DA, date));
    obj.put(st(tags::CONTENT_TIME, VR::TM, time));
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
}

/// The Segment Sequence: per segment its number, name, algorithm, category and type codes
/// and display colour.
fn segment_sequence(written: &[Planned], opts: &SegWriteOptions) -> El {
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
    sq(tags::SEGMENT_SEQUENCE, seg_items)
}

/// Multi-frame dimensions: segment number, then position.
fn put_dimensions(obj: &mut InMemDicomObject, dim_uid: &str) {
    obj.put(sq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([st(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid)])],
    ));
    let dim = |pointer: Tag, group: Tag, label: &str| {
        InMemDicomObject::from_element_iter([
            st(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid),
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
}

/// Shared functional groups: pixel measures and orientation.
fn shared_groups(g: &Geometry, source: &SeriesInfo) -> InMemDicomObject {
    let iop = [
        g.direction[0][0],
        g.direction[0][1],
        g.direction[0][2],
        g.direction[1][0],
        g.direction[1][1],
        g.direction[1][2],
    ];
    let thickness = source.frames[0].slice_thickness_mm.filter(|t| *t > 0.0).unwrap_or(g.spacing_mm[0]);
    InMemDicomObject::from_element_iter([
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
    ])
}

/// Per-frame functional groups, in frame order: the source slice the frame derives from
/// (when there is one at its position), dimension index values, plane position and
/// segment number.
fn per_frame_groups(
    written: &[Planned],
    refs: &[Option<SourceRef>],
    g: &Geometry,
    n_frames: usize,
) -> Vec<InMemDicomObject> {
    let mut per_frame = Vec::with_capacity(n_frames);
    for (_, number, ks) in written {
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
    per_frame
}

/// Common Instance Reference: every source slice a frame derives from, once (left out
/// when no frame has one).
fn put_common_instance_reference(
    obj: &mut InMemDicomObject,
    written: &[Planned],
    refs: &[Option<SourceRef>],
    source: &SeriesInfo,
) {
    let mut referenced: Vec<&SourceRef> = Vec::new();
    for (_, _, ks) in written {
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
}

/// The file: meta header (Explicit VR Little Endian), encoded in memory, then written to
/// `out`, which must not exist.
fn encode_new_file(obj: InMemDicomObject, sop_uid: &str, out: &Path) -> Result<(), SegError> {
    let file_obj = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
                .media_storage_sop_instance_uid(sop_uid)
                .implementation_class_uid(uid_from("hepaview implementation"))
                .implementation_version_name(format!("HEPAVIEW_{}", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| WriteError::Encode { path: out.to_path_buf(), message: e.to_string() })?;
    let mut bytes = Vec::new();
    file_obj
        .write_all(&mut bytes)
        .map_err(|e| WriteError::Encode { path: out.to_path_buf(), message: e.to_string() })?;
    write_new_file(out, &bytes)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_is_plausible() {
        let (d, t) = now_utc();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.as_str() >= "20240101", "{d}");
    }
}
