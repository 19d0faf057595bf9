//! NIfTI-1 (`.nii`, `.nii.gz`) volumes, label masks and displacement fields.
//!
//! NIfTI headers are RAS; everything above this module is LPS. This is the one place that
//! converts: `LPS = diag(−1, −1, 1) · RAS`. Written files carry the same affine in both
//! sform and qform (code 1, scanner), so ITK-SNAP, 3D Slicer, nibabel and SimpleITK agree on
//! where every voxel is. Displacement fields follow ITK: vector components stay in LPS mm,
//! intent "vector" (1007), dims `[nx, ny, nz, 1, 3]`.
//!
//! The header and file handling is the `nifti` crate's; this module adds the geometry
//! conversion, the checks a clinical tool needs (truncated gzip, degenerate affine) and
//! errors that name the file.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Axis, Ix3, Ix5};
use nifti::writer::WriterOptions;
pub use nifti::NiftiHeader;
use nifti::{IntoNdArray, NiftiObject, NiftiType, ReaderOptions};

use super::Warning;
use crate::volume::{cross, det3, dot, norm, Field, Geometry, Lps, Volume};

#[derive(Debug, thiserror::Error)]
pub enum NiftiError {
    #[error("{path}: the file ends early (truncated gzip or NIfTI data); re-export or re-copy it")]
    Truncated { path: PathBuf },
    #[error("{path}: degenerate voxel size or orientation ({what}); fix the header's pixdim/sform/qform")]
    Degenerate { path: PathBuf, what: String },
    #[error("{path}: unsupported NIfTI content: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: the compressed data is damaged ({what}); re-export or re-copy it")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: not a readable NIfTI-1 file: {source}")]
    Read { path: PathBuf, source: nifti::NiftiError },
    #[error("{path}: could not open: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: could not write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; choose another output name (Hepaview never overwrites files)")]
    Exists { path: PathBuf },
}

/// Voxel types Hepaview reads and writes.
pub trait NiftiSample: nifti::DataElement + bytemuck::Pod + Copy + Send + Sync {
    /// NIfTI intent code written for this type (labels for `u8`).
    const INTENT: i16;
}
impl NiftiSample for i16 {
    const INTENT: i16 = 0;
}
impl NiftiSample for u8 {
    const INTENT: i16 = 1002; // NIFTI_INTENT_LABEL: viewers show a label map
}
impl NiftiSample for f32 {
    const INTENT: i16 = 0;
}

const RAS_FROM_LPS: [f64; 3] = [-1.0, -1.0, 1.0];

fn read_object(path: &Path) -> Result<nifti::InMemNiftiObject, NiftiError> {
    check_size_plausible(path)?;
    let read = || -> Result<nifti::InMemNiftiObject, NiftiError> {
        if !is_gz(path) {
            return ReaderOptions::new().read_file(path).map_err(|e| classify_read_error(path, e));
        }
        let file = std::fs::File::open(path).map_err(|source| NiftiError::Open { path: path.to_path_buf(), source })?;
        let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
        let obj = nifti::InMemNiftiObject::from_reader(&mut gz).map_err(|e| classify_read_error(path, e))?;
        // The reader stops after the voxels; reading on to the end makes flate2 check the
        // gzip trailer (CRC-32 and length), so a flipped bit mid-stream is an error, not
        // a silently wrong voxel.
        std::io::copy(&mut gz, &mut std::io::sink())
            .map_err(|e| NiftiError::Corrupt { path: path.to_path_buf(), what: e.to_string() })?;
        Ok(obj)
    };
    // The header was checked (`check_size_plausible`) so the crate should not panic; if a
    // header it does not expect still makes it, that is an error about this file.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(NiftiError::Unsupported { path: path.to_path_buf(), what: "the NIfTI reader failed on this header".into() })
    })
}

/// What a NIfTI-1 datatype code is, and its bits per voxel: Hepaview reads the scalar
/// types; colour (RGB24, RGBA32), complex and 128-bit floats are refused by name before
/// the `nifti` crate sees them (it panics on some of them).
fn datatype_bits(datatype: i16) -> Result<i16, &'static str> {
    match datatype {
        2 | 256 => Ok(8),
        4 | 512 => Ok(16),
        8 | 16 | 768 => Ok(32),
        64 | 1024 | 1280 => Ok(64),
        128 => Err("RGB24 colour"),
        2304 => Err("RGBA32 colour"),
        32 => Err("complex64"),
        1792 => Err("complex128"),
        2048 => Err("complex256"),
        1536 => Err("float128"),
        1 => Err("1-bit binary"),
        _ => Err("an unknown datatype code"),
    }
}

/// The file's header, refused when its dims claim more data than the file can hold,
/// before the reader reserves memory for it: a corrupt header must not cost gigabytes. Deflate cannot
/// expand more than about 1032:1, which bounds what a `.nii.gz` can hold.
fn check_size_plausible(path: &Path) -> Result<NiftiHeader, NiftiError> {
    let h = std::panic::catch_unwind(|| NiftiHeader::from_file(path))
        .map_err(|_| NiftiError::Unsupported { path: path.to_path_buf(), what: "the header cannot be parsed".into() })?
        .map_err(|e| classify_read_error(path, e))?;
    let unsupported = |what: String| NiftiError::Unsupported { path: path.to_path_buf(), what };
    match datatype_bits(h.datatype) {
        Err(kind) => {
            return Err(unsupported(format!(
                "datatype {} ({kind}); Hepaview reads scalar volumes (integers or floats)",
                h.datatype
            )))
        }
        Ok(bits) if bits != h.bitpix => {
            return Err(unsupported(format!(
                "bitpix {} contradicts datatype {} (which has {bits} bits per voxel): the header is damaged",
                h.bitpix, h.datatype
            )))
        }
        Ok(_) => {}
    }
    let dims = h.dim().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?;
    let voxels = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let bytes = voxels.and_then(|v| v.checked_mul((h.bitpix.max(8) as u64) / 8));
    let file_len =
        std::fs::metadata(path).map_err(|source| NiftiError::Open { path: path.to_path_buf(), source })?.len();
    let capacity = if is_gz(path) { file_len.saturating_mul(1100) } else { file_len };
    match bytes {
        Some(b) if b <= capacity => Ok(h),
        _ => Err(NiftiError::Truncated { path: path.to_path_buf() }),
    }
}

fn classify_read_error(path: &Path, e: nifti::NiftiError) -> NiftiError {
    if let nifti::NiftiError::Io(io) = &e {
        if matches!(io.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) {
            let source = std::io::Error::new(io.kind(), io.to_string());
            return NiftiError::Open { path: path.to_path_buf(), source };
        }
    }
    match &e {
        nifti::NiftiError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            NiftiError::Truncated { path: path.to_path_buf() }
        }
        nifti::NiftiError::IncompatibleLength(..) => NiftiError::Truncated { path: path.to_path_buf() },
        // flate2 reports a gzip stream cut short as "invalid gzip header"/"corrupt deflate" too
        nifti::NiftiError::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidInput || io.kind() == std::io::ErrorKind::InvalidData =>
        {
            NiftiError::Truncated { path: path.to_path_buf() }
        }
        // the crate's own text for an I/O error is Rust debug output: say the OS's words
        nifti::NiftiError::Io(io) => {
            NiftiError::Open { path: path.to_path_buf(), source: std::io::Error::new(io.kind(), io.to_string()) }
        }
        _ => NiftiError::Read { path: path.to_path_buf(), source: e },
    }
}

/// The RAS affine (3×4: rotation·scale | translation) the header says, sform first.
fn ras_affine(h: &NiftiHeader, path: &Path, warnings: &mut Vec<Warning>) -> Result<[[f64; 4]; 3], NiftiError> {
    if h.sform_code > 0 {
        let r = [h.srow_x, h.srow_y, h.srow_z];
        let mut a = [[0.0; 4]; 3];
        for i in 0..3 {
            for j in 0..4 {
                a[i][j] = r[i][j] as f64;
            }
        }
        return Ok(a);
    }
    let raw = [h.pixdim[1] as f64, h.pixdim[2] as f64, h.pixdim[3] as f64];
    // The voxel size is pixdim's magnitude, as nifti1_io and nibabel read it: a negative
    // pixdim must not mirror the image (the orientation is the quaternion's and qfac's).
    let pix = raw.map(f64::abs);
    if h.qform_code > 0 && raw.iter().any(|v| *v < 0.0) {
        warnings.push(Warning::new(
            path,
            format!("negative voxel size in pixdim {raw:?}"),
            "its magnitude is used, as nibabel and the NIfTI reference library do (no flip)",
        ));
    }
    if h.qform_code > 0 {
        let (mut b, mut c, mut d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let bcd = (b * b + c * c + d * d).sqrt();
        if bcd > 1.0 + 1e-4 {
            // As nifti1_io: (b, c, d) of length > 1 is a 180° turn; normalise it, never
            // let it scale the axes.
            warnings.push(Warning::new(
                path,
                format!("the qform quaternion has length {bcd:.4} > 1"),
                "normalised, as the NIfTI reference library does; check the orientation",
            ));
            (b, c, d) = (b / bcd, c / bcd, d / bcd);
        }
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let s = [pix[0], pix[1], pix[2] * qfac];
        let off = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
        let mut m = [[0.0; 4]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * s[j];
            }
            m[i][3] = off[i];
        }
        return Ok(m);
    }
    warnings.push(Warning::new(
        path,
        "no sform or qform: orientation unknown",
        "assumed axial RAS with the header's voxel size; check left/right before relying on it",
    ));
    Ok([[pix[0], 0.0, 0.0, 0.0], [0.0, pix[1], 0.0, 0.0], [0.0, 0.0, pix[2], 0.0]])
}

/// Geometry (LPS) of a NIfTI header whose spatial dims are `nx, ny, nz`.
pub fn header_geometry(h: &NiftiHeader, path: &Path, warnings: &mut Vec<Warning>) -> Result<Geometry, NiftiError> {
    let dims = h.dim().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?;
    let n = |i: usize| dims.get(i).copied().unwrap_or(1) as usize;
    let a = ras_affine(h, path, warnings)?;
    let degenerate = |what: String| NiftiError::Degenerate { path: path.to_path_buf(), what };
    if a.iter().flatten().any(|v| !v.is_finite()) {
        return Err(degenerate(format!("the voxel-to-world affine holds NaN or infinity: {a:?}")));
    }
    let mut cols = [[0.0; 3]; 3];
    for (axis, col) in cols.iter_mut().enumerate() {
        for row in 0..3 {
            col[row] = a[row][axis] * RAS_FROM_LPS[row];
        }
    }
    let m = [
        [cols[0][0], cols[1][0], cols[2][0]],
        [cols[0][1], cols[1][1], cols[2][1]],
        [cols[0][2], cols[1][2], cols[2][2]],
    ];
    if !det3(&m).is_finite() || det3(&m).abs() < 1e-9 {
        return Err(degenerate(format!("the voxel-to-world matrix is singular: {:?}", a)));
    }
    let mut spacing = [0.0; 3];
    let mut dir: [Lps; 3] = [[0.0; 3]; 3];
    for axis in 0..3 {
        let s = norm(cols[axis]);
        if !(s.is_finite() && s > 1e-6) {
            return Err(degenerate(format!("axis {axis} has zero length")));
        }
        spacing[axis] = s;
        dir[axis] = [cols[axis][0] / s, cols[axis][1] / s, cols[axis][2] / s];
    }
    let shear = dot(dir[0], dir[1]).abs().max(dot(dir[0], dir[2]).abs()).max(dot(dir[1], dir[2]).abs());
    if shear > 1e-3 {
        warnings.push(Warning::new(
            path,
            format!("axes are not perpendicular (largest cosine {shear:.4}); the affine has shear"),
            "kept as given; other tools that assume perpendicular axes may place it differently",
        ));
    }
    let origin = [a[0][3] * RAS_FROM_LPS[0], a[1][3] * RAS_FROM_LPS[1], a[2][3] * RAS_FROM_LPS[2]];
    Ok(Geometry {
        shape: [n(2), n(1), n(0)],
        spacing_mm: [spacing[2], spacing[1], spacing[0]],
        origin_mm: origin,
        direction: dir,
    })
}

/// The geometry and header warnings of a NIfTI file, from its header alone (`hepaview
/// info`): the header is checked as for reading, but no voxel is decoded, so a large or
/// damaged file costs nothing.
pub fn read_geometry(path: &Path) -> Result<(Geometry, Vec<Warning>), NiftiError> {
    let h = check_size_plausible(path)?;
    let mut warnings = Vec::new();
    let g = header_geometry(&h, path, &mut warnings)?;
    Ok((g, warnings))
}

/// Reads a scalar NIfTI volume as `T` (scaling by scl_slope/scl_inter applied), in `[z, y, x]`.
pub fn read_volume<T: nifti::DataElement + Clone>(path: &Path) -> Result<(Volume<T>, Vec<Warning>), NiftiError> {
    let obj = read_object(path)?;
    let mut warnings = Vec::new();
    let geometry = header_geometry(obj.header(), path, &mut warnings)?;
    let dims: Vec<u16> =
        obj.header().dim().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?.to_vec();
    if dims.len() > 3 && dims[3..].iter().any(|&d| d > 1) {
        return Err(NiftiError::Unsupported {
            path: path.to_path_buf(),
            what: format!("{}-D image with dims {:?}; Hepaview reads one 3-D volume per file", dims.len(), dims),
        });
    }
    let arr =
        obj.into_volume().into_ndarray::<T>().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?;
    let shape = arr.shape().to_vec();
    let (nx, ny, nz) = (shape[0], *shape.get(1).unwrap_or(&1), *shape.get(2).unwrap_or(&1));
    let arr = arr
        .into_shape_with_order((ndarray::IxDyn(&[nx, ny, nz]), ndarray::Order::ColumnMajor))
        .map_err(|e| NiftiError::Unsupported { path: path.to_path_buf(), what: e.to_string() })?
        .into_dimensionality::<Ix3>()
        .map_err(|e| NiftiError::Unsupported { path: path.to_path_buf(), what: e.to_string() })?;
    // Fortran [x, y, z] reversed is C-ordered [z, y, x]: no copy.
    let data: Array3<T> = arr.reversed_axes();
    let data = if data.is_standard_layout() { data } else { data.as_standard_layout().into_owned() };
    Ok((Volume::new(data, geometry), warnings))
}

/// Reads a CT volume as HU (`i16`), rounding and clamping scaled values; says so if any clip.
pub fn read_ct(path: &Path) -> Result<(Volume<i16>, Vec<Warning>), NiftiError> {
    let (v, mut warnings) = read_volume::<f32>(path)?;
    let mut clipped = 0usize;
    let data = v.data.mapv(|x| {
        let r = x.round();
        if !(-32768.0..=32767.0).contains(&r) {
            clipped += 1;
        }
        r.clamp(-32768.0, 32767.0) as i16
    });
    if clipped > 0 {
        warnings.push(Warning::new(
            path,
            format!("{clipped} voxels outside the 16-bit HU range"),
            "clamped to −32768…32767",
        ));
    }
    Ok((Volume::new(data, v.geometry), warnings))
}

/// Reads a label mask (`u8`); non-integer or out-of-range values are an error, since
/// rounding labels silently would change what they mean.
pub fn read_mask(path: &Path) -> Result<(Volume<u8>, Vec<Warning>), NiftiError> {
    let (v, warnings) = read_volume::<f32>(path)?;
    if let Some(bad) = v.data.iter().find(|&&x| !(x.fract() == 0.0 && (0.0..=255.0).contains(&x))) {
        return Err(NiftiError::Unsupported {
            path: path.to_path_buf(),
            what: format!("value {bad} is not a label 0…255; is this an image rather than a mask?"),
        });
    }
    Ok((Volume::new(v.data.mapv(|x| x as u8), v.geometry), warnings))
}

/// Reads a displacement field written by ITK/SimpleITK or by [`write_field`].
pub fn read_field(path: &Path) -> Result<(Field, Vec<Warning>), NiftiError> {
    let obj = read_object(path)?;
    let mut warnings = Vec::new();
    let geometry = header_geometry(obj.header(), path, &mut warnings)?;
    let dims: Vec<u16> =
        obj.header().dim().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?.to_vec();
    if dims.len() != 5 || dims[3] != 1 || dims[4] != 3 {
        return Err(NiftiError::Unsupported {
            path: path.to_path_buf(),
            what: format!("dims {:?} are not a 3-D field of 3-vectors [nx, ny, nz, 1, 3]", dims),
        });
    }
    let arr = obj
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })?;
    let arr = arr
        .into_dimensionality::<Ix5>()
        .map_err(|e| NiftiError::Unsupported { path: path.to_path_buf(), what: e.to_string() })?;
    let [nz, ny, nx] = geometry.shape;
    let mut data = Array4::<f32>::zeros([nz, ny, nx, 3]);
    for ((i, j, k, _, c), &v) in arr.indexed_iter() {
        data[[k, j, i, c]] = v;
    }
    Ok((Field { data, geometry }, warnings))
}

/// Header fields for `geometry` (RAS affine in sform and qform, mm units).
fn header_for(geometry: &Geometry) -> NiftiHeader {
    let mut h = NiftiHeader::default();
    let m = geometry.index_to_world_matrix();
    let mut srow = [[0f32; 4]; 3];
    for row in 0..3 {
        for col in 0..3 {
            srow[row][col] = (m[row][col] * RAS_FROM_LPS[row]) as f32;
        }
        srow[row][3] = (geometry.origin_mm[row] * RAS_FROM_LPS[row]) as f32;
    }
    h.srow_x = srow[0];
    h.srow_y = srow[1];
    h.srow_z = srow[2];
    h.sform_code = 1;
    h.qform_code = 1;
    h.xyzt_units = 2; // mm
    h.scl_slope = 1.0;
    h.scl_inter = 0.0;
    let s = [geometry.spacing_mm[2], geometry.spacing_mm[1], geometry.spacing_mm[0]];
    // Rotation part in RAS; qform needs a proper rotation, so a left-handed grid stores
    // qfac = −1 and the flipped third column.
    let mut r = [[0.0; 3]; 3];
    for row in 0..3 {
        for col in 0..3 {
            r[row][col] = geometry.direction[col][row] * RAS_FROM_LPS[row];
        }
    }
    let third = [r[0][2], r[1][2], r[2][2]];
    let handed = dot(cross([r[0][0], r[1][0], r[2][0]], [r[0][1], r[1][1], r[2][1]]), third);
    let qfac = if handed < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (b, c, d) = quaternion_bcd(&r);
    h.quatern_b = b as f32;
    h.quatern_c = c as f32;
    h.quatern_d = d as f32;
    h.quatern_x = srow[0][3];
    h.quatern_y = srow[1][3];
    h.quatern_z = srow[2][3];
    h.pixdim = [qfac as f32, s[0] as f32, s[1] as f32, s[2] as f32, 1.0, 1.0, 1.0, 1.0];
    h
}

/// Quaternion (b, c, d) of a rotation matrix, as in nifti1_io's `mat44_to_quatern`.
fn quaternion_bcd(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    if trace > 0.5 {
        let a = 0.5 * trace.sqrt();
        return (0.25 * (r[2][1] - r[1][2]) / a, 0.25 * (r[0][2] - r[2][0]) / a, 0.25 * (r[1][0] - r[0][1]) / a);
    }
    let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
    let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
    let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
    let (a, mut b, mut c, mut d);
    if xd > 1.0 {
        b = 0.5 * xd.sqrt();
        c = 0.25 * (r[0][1] + r[1][0]) / b;
        d = 0.25 * (r[0][2] + r[2][0]) / b;
        a = 0.25 * (r[2][1] - r[1][2]) / b;
    } else if yd > 1.0 {
        c = 0.5 * yd.sqrt();
        b = 0.25 * (r[0][1] + r[1][0]) / c;
        d = 0.25 * (r[1][2] + r[2][1]) / c;
        a = 0.25 * (r[0][2] - r[2][0]) / c;
    } else {
        d = 0.5 * zd.sqrt();
        b = 0.25 * (r[0][2] + r[2][0]) / d;
        c = 0.25 * (r[1][2] + r[2][1]) / d;
        a = 0.25 * (r[1][0] - r[0][1]) / d;
    }
    // the same rotation with a ≥ 0, as NIfTI stores it (a is implied)
    if a < 0.0 {
        b = -b;
        c = -c;
        d = -d;
    }
    (b, c, d)
}

/// Anything at `path` (a file, a folder, or a link, even one pointing nowhere: writing
/// "through" a dangling link would replace the link) is refused.
fn refuse_existing(path: &Path) -> Result<(), NiftiError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(NiftiError::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

/// Temporary files an earlier write of `name` left beside it when its process was killed
/// (`.tmp-<pid>-<name>` whose process is gone) are removed, so a SIGKILL leaves no hidden
/// hundred-megabyte file behind for long.
fn remove_stale_temps(dir: &Path, name: &str) {
    let suffix = temp_name(name, 0).trim_start_matches(".tmp-0").to_string();
    super::remove_stale_temps(dir, |file| file.strip_prefix(".tmp-").and_then(|r| r.strip_suffix(suffix.as_str())));
}

/// The temporary name a write of `name` goes to first: `.tmp-<pid>-<stem>.nii[.gz]`, the
/// ending kept (the writer compresses by it) and the stem's dots replaced, since the
/// `nifti` crate swaps whatever follows the last dot for its own ending
/// (`a.nii.part.nii` would be written as `a.nii.nii`).
fn temp_name(name: &str, pid: u32) -> String {
    let (stem, ending) = if let Some(s) = name.strip_suffix(".nii.gz") {
        (s, ".nii.gz")
    } else if let Some(s) = name.strip_suffix(".nii") {
        (s, ".nii")
    } else {
        (name, "")
    };
    format!(".tmp-{pid}-{}{ending}", stem.replace('.', "_"))
}

/// Writes to a temporary name beside `path`, then links it into place, so a crash never
/// leaves a half-written file under the real name and a file that appeared meanwhile is
/// never replaced (a hard link, unlike a rename, fails when the name is taken).
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<(), nifti::NiftiError>) -> Result<(), NiftiError> {
    refuse_existing(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    remove_stale_temps(dir, &name);
    let tmp = path.with_file_name(temp_name(&name, std::process::id()));
    let res = write(&tmp).map_err(|e| match e {
        nifti::NiftiError::Io(source) => NiftiError::Write { path: path.to_path_buf(), source },
        other => NiftiError::Write { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    });
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let write_err = |source| NiftiError::Write { path: path.to_path_buf(), source };
    match super::link_new(&tmp, path) {
        // linked: the temporary is a second name to remove (renamed: it is gone)
        Ok(()) => match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(write_err),
        },
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            Err(NiftiError::Exists { path: path.to_path_buf() })
        }
        Err(e) => Err(write_err(e)),
    }
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Writes a volume (`i16` CT, `u8` labels, `f32`) as `.nii` or `.nii.gz` (by extension).
/// Refuses to overwrite an existing file.
pub fn write_volume<T: NiftiSample>(vol: &Volume<T>, path: &Path) -> Result<(), NiftiError> {
    let mut h = header_for(&vol.geometry);
    h.intent_code = T::INTENT;
    let gz = is_gz(path);
    write_atomic(path, |tmp| {
        // the writer takes [x, y, z] in logical order; our [z, y, x].t() is exactly that
        WriterOptions::new(tmp).reference_header(&h).compress(gz).write_nifti(&vol.data.t())
    })
}

/// Writes a displacement field (LPS mm vectors, ITK convention) as a 5-D vector NIfTI.
pub fn write_field(field: &Field, path: &Path) -> Result<(), NiftiError> {
    let mut h = header_for(&field.geometry);
    h.intent_code = 1007; // NIFTI_INTENT_VECTOR, as ITK writes displacement fields
    let gz = is_gz(path);
    // [z, y, x, c] → logical [x, y, z, 1, c]
    let view = field.data.view().permuted_axes([2, 1, 0, 3]).insert_axis(Axis(3));
    write_atomic(path, |tmp| WriterOptions::new(tmp).reference_header(&h).compress(gz).write_nifti(&view))
}

/// Type of the voxels stored in a file (for `info`), without reading the data.
pub fn stored_type(path: &Path) -> Result<NiftiType, NiftiError> {
    let h = NiftiHeader::from_file(path).map_err(|e| classify_read_error(path, e))?;
    h.data_type().map_err(|e| NiftiError::Read { path: path.to_path_buf(), source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique_geometry() -> Geometry {
        let (c, s) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        Geometry {
            shape: [4, 5, 6],
            spacing_mm: [2.5, 0.75, 0.7],
            origin_mm: [-100.0, 50.5, -300.25],
            direction: [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        }
    }

    #[test]
    fn ct_round_trip_keeps_data_and_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let g = oblique_geometry();
        let data = Array3::from_shape_fn(g.shape, |(k, j, i)| (k as i16 * 1000 - j as i16 * 10 + i as i16) - 1024);
        let v = Volume::new(data.clone(), g.clone());
        for name in ["a.nii", "a.nii.gz"] {
            let p = dir.path().join(name);
            write_volume(&v, &p).unwrap();
            let (back, w) = read_ct(&p).unwrap();
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(back.data, data);
            assert!(back.geometry.max_corner_distance_mm(&g) < 1e-3, "{:?} vs {:?}", back.geometry, g);
        }
    }

    #[test]
    fn left_handed_grid_round_trips() {
        // DICOM series sorted head-first can give a left-handed RAS grid; qfac must be −1
        let dir = tempfile::tempdir().unwrap();
        let mut g = Geometry::axis_aligned([3, 4, 5], [2.0, 1.0, 1.0], [0.0; 3]);
        g.direction[2] = [0.0, 0.0, -1.0];
        let v = Volume::filled(g.clone(), 3u8);
        let p = dir.path().join("m.nii.gz");
        write_volume(&v, &p).unwrap();
        let h = NiftiHeader::from_file(&p).unwrap();
        assert_eq!(h.pixdim[0], -1.0);
        let (back, _) = read_mask(&p).unwrap();
        assert!(back.geometry.max_corner_distance_mm(&g) < 1e-4);
        // qform alone must give the same grid as sform
        let mut hq = h.clone();
        hq.sform_code = 0;
        let gq = header_geometry(&hq, &p, &mut Vec::new()).unwrap();
        assert!(gq.max_corner_distance_mm(&g) < 1e-4, "{gq:?}");
    }

    #[test]
    fn field_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let g = oblique_geometry();
        let mut f = Field::zeros(g.clone());
        for ((k, j, i, c), v) in f.data.indexed_iter_mut() {
            *v = (k * 1000 + j * 100 + i * 10 + c) as f32 * 0.01;
        }
        let p = dir.path().join("u.nii.gz");
        write_field(&f, &p).unwrap();
        let (back, _) = read_field(&p).unwrap();
        assert_eq!(back.data, f.data);
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.nii");
        std::fs::write(&p, b"user data").unwrap();
        let v = Volume::filled(Geometry::axis_aligned([1, 1, 1], [1.0; 3], [0.0; 3]), 0i16);
        assert!(matches!(write_volume(&v, &p), Err(NiftiError::Exists { .. })));
        assert_eq!(std::fs::read(&p).unwrap(), b"user data");
    }
}
