//! Grouping headers into studies and series, and planning each series' volume: slices
//! sorted by position along the slice normal (never by file name or InstanceNumber),
//! steps checked, strays and duplicates set aside, the geometry fixed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::{is_lossy, transfer_syntax_name, FileHeader, Frame, PixelFormat, SeriesInfo, StudyInfo};
use crate::io::Warning;
use crate::volume::{cross, dot, norm, sub, Geometry};

/// Groups headers into studies and series and plans each series.
pub(super) fn group(headers: Vec<FileHeader>, warnings: &mut Vec<Warning>) -> Vec<StudyInfo> {
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
            let parts = split_repeated_acquisitions(files);
            let count = parts.len();
            for (acquisition, part) in parts {
                let Some(mut s) = plan_series(part, warnings) else { continue };
                if let (Some(n), true) = (acquisition, count > 1) {
                    let lead = s.frames.first().map(|f| f.path.clone()).unwrap_or_default();
                    s.warnings.push(Warning::new(
                        &lead,
                        format!(
                            "series \"{}\" holds {count} acquisitions at the same slice positions (AcquisitionNumber); this is acquisition {n}",
                            s.description
                        ),
                        "each acquisition is offered as a series of its own, its phase measured from its HU",
                    ));
                    s.description = format!("{} [acquisition {n}]", s.description);
                    s.acquisition = Some(n);
                }
                series.push(s);
            }
        }
        series.sort_by(|a, b| {
            a.series_number
                .cmp(&b.series_number)
                .then(a.series_uid.cmp(&b.series_uid))
                .then(a.acquisition.cmp(&b.acquisition))
        });
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

/// A series' files split by AcquisitionNumber when its acquisitions repeat the same slice
/// positions: two or more acquisitions of at least [`MIN_ACQUISITION_FILES`] single-frame
/// files each, and most of the smaller one's positions also in another. A scanner that
/// stores an arterial and a portal venous pass under one SeriesInstanceUID writes them so
/// (TCIA HCC-TACE-Seg HCC_002: 109 + 109 files, acquisitions 1 and 2); without the split
/// the second pass is set aside as duplicates. Acquisitions at different positions (a
/// long range scanned in parts) stay one series. Otherwise one part, acquisition `None`.
fn split_repeated_acquisitions(files: Vec<FileHeader>) -> Vec<(Option<i64>, Vec<FileHeader>)> {
    let single_frame = files.iter().all(|h| h.frames.len() == 1);
    let mut by_number: BTreeMap<i64, Vec<FileHeader>> = BTreeMap::new();
    let mut unnumbered = Vec::new();
    for h in files {
        match h.acquisition_number {
            Some(n) if single_frame => by_number.entry(n).or_default().push(h),
            _ => unnumbered.push(h),
        }
    }
    let key = |h: &FileHeader| h.frames[0].position_mm.map(|x| (x * 100.0).round() as i64);
    // positions decide, so every file must have one (unplaced ones would all share 0, 0, 0)
    let repeated = by_number.len() >= 2
        && unnumbered.is_empty()
        && by_number.values().flatten().all(|h| h.frames[0].placed)
        && by_number.values().all(|v| v.len() >= MIN_ACQUISITION_FILES)
        && {
            // most of the smaller acquisition's positions are taken by another
            let (small, _) = by_number.iter().min_by_key(|(_, v)| v.len()).expect("two or more");
            let others: std::collections::HashSet<[i64; 3]> =
                by_number.iter().filter(|(n, _)| *n != small).flat_map(|(_, v)| v.iter().map(key)).collect();
            let small = &by_number[small];
            2 * small.iter().filter(|h| others.contains(&key(h))).count() > small.len()
        };
    if repeated {
        by_number.into_iter().map(|(n, v)| (Some(n), v)).collect()
    } else {
        let mut all: Vec<FileHeader> = by_number.into_values().flatten().collect();
        all.extend(unnumbered);
        vec![(None, all)]
    }
}

/// An acquisition split off a series holds at least this many files (a volume, not a
/// scout or a stray slice).
const MIN_ACQUISITION_FILES: usize = 8;

/// The placed frames (four or more, sorted along `normal`) whose position lies off the
/// straight line the others follow within the slice plane (a constant for a plain series,
/// a slope for a gantry tilt) by more than a quarter pixel, with how far. The line is
/// robust to a few such frames: its slope is the median over pairs of frames half the
/// series apart, its offset the median. Nothing when half or more would be off: that is
/// no straight series, and the tilt check speaks for it.
fn off_the_line(frames: &[Frame], row: [f64; 3], col: [f64; 3], normal: [f64; 3]) -> Vec<(Frame, f64)> {
    let n = frames.len();
    if n < 4 || frames.iter().any(|f| !f.placed) {
        return Vec::new();
    }
    let origin = frames[0].position_mm;
    let at: Vec<[f64; 3]> = frames
        .iter()
        .map(|f| {
            let d = sub(f.position_mm, origin);
            [dot(normal, d), dot(row, d), dot(col, d)]
        })
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            0.5 * (v[m - 1] + v[m])
        }
    };
    let half = n / 2;
    let mut residual = vec![0.0f64; n];
    for axis in [1, 2] {
        let slopes: Vec<f64> = (0..n - half)
            .filter(|&i| (at[i + half][0] - at[i][0]).abs() > 1e-6)
            .map(|i| (at[i + half][axis] - at[i][axis]) / (at[i + half][0] - at[i][0]))
            .collect();
        if slopes.is_empty() {
            return Vec::new();
        }
        let slope = median(slopes);
        let offset = median(at.iter().map(|p| p[axis] - slope * p[0]).collect());
        for (r, p) in residual.iter_mut().zip(&at) {
            *r = r.hypot(p[axis] - slope * p[0] - offset);
        }
    }
    let [sy, sx] = frames[0].pixel_spacing_mm;
    let tolerance = 0.25 * sy.min(sx).max(1e-3);
    let off: Vec<(Frame, f64)> =
        frames.iter().zip(&residual).filter(|(_, &r)| r > tolerance).map(|(f, &r)| (f.clone(), r)).collect();
    if 2 * off.len() >= n {
        return Vec::new();
    }
    off
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

pub(super) fn is_native(ts: &str) -> bool {
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
        // The series' step: the median of the steps longer than a fifth of the slice
        // thickness (interleaved copies a hair apart make half the steps tiny), or of all
        // steps when none is (thick slices reconstructed closely overlapping, 5 mm every
        // 0.8 mm, are a series of their own, not copies).
        let thickness = frames[0].slice_thickness_mm.unwrap_or(0.0);
        let long: Vec<f64> = steps.iter().copied().filter(|s| *s > 0.2 * thickness).collect();
        let typical = if long.is_empty() { steps[steps.len() / 2] } else { long[long.len() / 2] };
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
    // One slice shifted within its plane (a damaged position) lies on no grid the others
    // make, and a shifted first or last slice would pass for a gantry tilt: set it aside.
    for (f, off_mm) in off_the_line(&frames, row, col, normal) {
        series_warnings.push(Warning::new(
            &f.path,
            format!("set aside: ImagePositionPatient lies {off_mm:.2} mm off the line of the other slices, within the slice plane"),
            "the other slices make the volume; the gap is interpolated",
        ));
        frames.retain(|g| !(g.path == f.path && g.frame == f.frame));
        // a file is set aside when none of its frames is left (a multi-frame file keeps
        // its other frames)
        if !set_aside.contains(&f.path) && !frames.iter().any(|g| g.path == f.path) {
            set_aside.push(f.path.clone());
        }
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
        acquisition: None,
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
