//! Decoding: the pixel data of a planned series, each slice into its z-slab of one
//! `[z, y, x]` i16 array in HU, in parallel; sizes and fragment lengths checked first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::scan::{flatten_error, open, scan};
use super::series::is_native;
use super::{get_int, no_progress, transfer_syntax_name, DicomError, PixelFormat, Progress, SeriesInfo};
use crate::io::Warning;
use crate::volume::{CtVolume, Geometry, Volume};

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
