//! Reading a segmentation (BINARY, FRACTIONAL or LABELMAP) onto a grid: its segments,
//! its frames placed by their positions, and its pixel data decoded (RLE here).

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::{
    assign_labels, dicom_lab_to_rgb, Code, SegError, SegKind, SegRead, SegmentInfo, LABEL_MAP_SEGMENTATION_STORAGE,
    SEGMENTATION_STORAGE,
};
use crate::io::dicom::{first_item, frame_attr, get_f64, get_f64s, get_int, get_str, transfer_syntax_name};
use crate::io::Warning;
use crate::volume::{cross, dot, norm, Geometry, Interp, Lps, Mask, Volume};

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
    crate::io::dicom::check_part10_claimed_lengths(path).map_err(|e| SegError::Read {
        path: path.to_path_buf(),
        message: match e {
            crate::io::dicom::DicomError::Read { message, .. } => message,
            other => other.to_string(),
        },
    })?;
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

    // every frame needs its own functional group (its segment and position): a count that
    // claims more frames than the file describes is damaged, and is not reserved for
    let described = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).map_or(1, |i| i.len());
    if n_frames > described.max(1) {
        return Err(malformed(format!(
            "NumberOfFrames is {n_frames} but the file describes {described} frame(s) (PerFrameFunctionalGroupsSequence)"
        )));
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
        .and_then(|m| get_f64(m, tags::SPACING_BETWEEN_SLICES))
        .or_else(|| get_f64(obj, tags::SPACING_BETWEEN_SLICES));
    let thickness =
        measures.and_then(|m| get_f64(m, tags::SLICE_THICKNESS)).or_else(|| get_f64(obj, tags::SLICE_THICKNESS));
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
}
