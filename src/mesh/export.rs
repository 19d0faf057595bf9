//! Files for 3-D printing and other viewers: binary STL (one file per object), Wavefront
//! OBJ (one file, an `o`/`g` group per object, vertex normals) and a JSON summary.
//!
//! Coordinates are millimetres in LPS (Hepaview's and DICOM's frame) or RAS (NIfTI's,
//! 3D Slicer's). RAS negates x and y; two sign flips keep handedness, so the winding — and
//! with it which side is outside — stays as it is. The code flips the winding whenever the
//! product of the signs is negative, so a mirrored frame added later stays correct.
//!
//! Files are never overwritten, and appear whole or not at all: every file is first written
//! to a hidden temporary file in the output folder, then all are published with
//! `hard_link` (which fails, atomically, if the name exists) and the temporaries removed.
//! On a file system without hard links, publishing falls back to check-then-rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::objects::{build_objects, MeshObject, MeshOptions, ObjectKind};
use super::trimesh::{dot3, face_normal};
use super::{MeshError, TriMesh};
use crate::volume::Mask;

/// Which mesh files to write (the JSON summary is always written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `<object>.stl` per object, binary.
    Stl,
    /// One `objects.obj` with every object.
    Obj,
    /// Both of the above.
    Both,
}

/// The coordinate frame of the written files, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Frame {
    /// x → patient's left, y → posterior, z → superior (DICOM, Hepaview).
    Lps,
    /// x → right, y → anterior, z → superior (NIfTI, 3D Slicer).
    Ras,
}

impl Frame {
    /// Per-axis sign taking LPS to this frame.
    pub fn signs(self) -> [f32; 3] {
        match self {
            Frame::Lps => [1.0, 1.0, 1.0],
            Frame::Ras => [-1.0, -1.0, 1.0],
        }
    }

    /// True when the frame change mirrors space, so triangles must be rewound.
    pub fn mirrors(self) -> bool {
        self.signs().iter().product::<f32>() < 0.0
    }

    fn name(self) -> &'static str {
        match self {
            Frame::Lps => "LPS",
            Frame::Ras => "RAS",
        }
    }
}

/// Name of the OBJ file in the output folder.
pub const OBJ_FILE: &str = "objects.obj";
/// Name of the JSON summary in the output folder.
pub const SUMMARY_FILE: &str = "objects.json";

/// One object in the summary. Volumes and area are frame-independent; bounds are in the
/// written frame.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectSummary {
    pub name: String,
    pub kind: ObjectKind,
    /// The object's first mask label (the liver's is 1 even though it includes tumours).
    pub label: u8,
    pub labels: Vec<u8>,
    pub voxels: usize,
    pub voxel_volume_ml: f64,
    pub mesh_volume_ml: f64,
    pub mesh_over_voxel_volume: f64,
    pub area_mm2: f64,
    pub triangles: usize,
    pub vertices: usize,
    pub closed: bool,
    pub bounds_min_mm: [f32; 3],
    pub bounds_max_mm: [f32; 3],
    /// The object's STL file name, when STL was written.
    pub stl_file: Option<String>,
}

/// What [`export_objects`] wrote; also the content of `objects.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSummary {
    pub frame: Frame,
    pub format: Format,
    pub out_dir: PathBuf,
    /// Every file written, the summary last.
    pub files: Vec<PathBuf>,
    pub objects: Vec<ObjectSummary>,
}

/// Builds the objects of `mask` ([`build_objects`]) and writes them to `out_dir` (created
/// if missing): `<name>.stl` per object and/or `objects.obj`, plus `objects.json`, in
/// `frame` millimetres.
///
/// Errors: [`MeshError::NothingToMesh`] when the mask has none of the object labels;
/// [`MeshError::Exists`] naming the first file that is already there (nothing is written
/// then); [`MeshError::Io`] naming the file that could not be written.
pub fn export_objects(
    mask: &Mask,
    opts: &MeshOptions,
    out_dir: &Path,
    format: Format,
    frame: Frame,
) -> Result<ExportSummary, MeshError> {
    let objects = build_objects(mask, opts)?;
    write_objects(&objects, out_dir, format, frame)
}

/// Writes already built objects (as the viewer holds them); see [`export_objects`].
pub fn write_objects(
    objects: &[MeshObject],
    out_dir: &Path,
    format: Format,
    frame: Frame,
) -> Result<ExportSummary, MeshError> {
    let stl = matches!(format, Format::Stl | Format::Both);
    let obj = matches!(format, Format::Obj | Format::Both);
    let names: Vec<String> = objects.iter().map(|o| file_stem(&o.name)).collect();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    if stl {
        let files: Vec<(String, Vec<u8>)> = objects
            .par_iter()
            .zip(&names)
            .map(|(o, stem)| {
                let mut bytes = Vec::new();
                write_stl(&o.mesh, &o.name, frame, &mut bytes).map(|_| (format!("{stem}.stl"), bytes))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| MeshError::Io { path: out_dir.to_path_buf(), source: e })?;
        outputs.extend(files);
    }
    if obj {
        let mut bytes = Vec::new();
        write_obj(objects, frame, &mut bytes).map_err(|e| MeshError::Io { path: out_dir.join(OBJ_FILE), source: e })?;
        outputs.push((OBJ_FILE.to_string(), bytes));
    }
    let mut summary = ExportSummary {
        frame,
        format,
        out_dir: out_dir.to_path_buf(),
        files: outputs.iter().map(|(n, _)| out_dir.join(n)).chain([out_dir.join(SUMMARY_FILE)]).collect(),
        objects: objects
            .iter()
            .zip(&names)
            .map(|(o, stem)| summarise(o, frame, stl.then(|| format!("{stem}.stl"))))
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| MeshError::Io { path: out_dir.join(SUMMARY_FILE), source: e.into() })?;
    outputs.push((SUMMARY_FILE.to_string(), json));
    publish(out_dir, &outputs)?;
    summary.files = outputs.iter().map(|(n, _)| out_dir.join(n)).collect();
    Ok(summary)
}

/// Object names become file names: anything but ASCII letters, digits, `-` and `_` turns
/// into `_`, so a name can never leave the output folder.
fn file_stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() {
        "object".into()
    } else {
        s
    }
}

fn summarise(o: &MeshObject, frame: Frame, stl_file: Option<String>) -> ObjectSummary {
    let mesh_volume_ml = o.mesh.volume_ml();
    let [lo, hi] = o.mesh.bounds_mm().unwrap_or([[0.0; 3]; 2]);
    let s = frame.signs();
    let (mut bmin, mut bmax) = ([0f32; 3], [0f32; 3]);
    for a in 0..3 {
        let (p, q) = (lo[a] * s[a], hi[a] * s[a]);
        bmin[a] = p.min(q);
        bmax[a] = p.max(q);
    }
    ObjectSummary {
        name: o.name.clone(),
        kind: o.kind,
        label: o.labels.first().copied().unwrap_or(0),
        labels: o.labels.clone(),
        voxels: o.voxels,
        voxel_volume_ml: o.voxel_volume_ml,
        mesh_volume_ml,
        mesh_over_voxel_volume: if o.voxel_volume_ml > 0.0 { mesh_volume_ml / o.voxel_volume_ml } else { 0.0 },
        area_mm2: o.mesh.area_mm2(),
        triangles: o.mesh.triangle_count(),
        vertices: o.mesh.vertex_count(),
        closed: o.mesh.is_closed(),
        bounds_min_mm: bmin,
        bounds_max_mm: bmax,
        stl_file,
    }
}

#[inline]
fn to_frame(p: [f32; 3], s: [f32; 3]) -> [f32; 3] {
    [p[0] * s[0], p[1] * s[1], p[2] * s[2]]
}

/// Triangle corners in writing order for the frame.
#[inline]
fn wound(t: [u32; 3], frame: Frame) -> [u32; 3] {
    if frame.mirrors() {
        [t[0], t[2], t[1]]
    } else {
        t
    }
}

/// Binary STL: 80-byte header (not starting with `solid`, which readers take for ASCII
/// STL), triangle count, then per triangle its unit normal, three corners and a zero
/// attribute word, all little-endian f32.
pub fn write_stl(mesh: &TriMesh, name: &str, frame: Frame, out: &mut impl Write) -> std::io::Result<()> {
    let mut header = [b' '; 80];
    let text = format!("Hepaview binary STL, object {}, {} mm", file_stem(name), frame.name());
    let n = text.len().min(80);
    header[..n].copy_from_slice(&text.as_bytes()[..n]);
    let count = u32::try_from(mesh.triangles.len())
        .map_err(|_| std::io::Error::other("more than 2³² triangles do not fit STL"))?;
    let mut buf = Vec::with_capacity(84 + 50 * mesh.triangles.len());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&count.to_le_bytes());
    let s = frame.signs();
    let pos: Vec<[f32; 3]> = mesh.positions_mm.iter().map(|&p| to_frame(p, s)).collect();
    for &t in &mesh.triangles {
        let t = wound(t, frame);
        let fnorm = face_normal(&pos, t);
        let len = dot3(fnorm, fnorm).sqrt();
        let unit = if len > 0.0 { fnorm.map(|x| x / len) } else { [0.0; 3] };
        for v in std::iter::once(unit).chain(t.iter().map(|&i| pos[i as usize])) {
            for x in v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        buf.extend_from_slice(&[0, 0]);
    }
    out.write_all(&buf)
}

/// Wavefront OBJ of all objects: an `o` and a `g` line per object, its `v` and `vn`
/// lines, then faces `f a//a b//b c//c` (1-based, numbered across the whole file).
pub fn write_obj(objects: &[MeshObject], frame: Frame, out: &mut impl Write) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    writeln!(
        w,
        "# Hepaview mesh export: {} objects, {} millimetres, counter-clockwise faces seen from outside",
        objects.len(),
        frame.name()
    )?;
    let s = frame.signs();
    let mut base = 1usize;
    for o in objects {
        let stem = file_stem(&o.name);
        writeln!(w, "o {stem}\ng {stem}")?;
        let normals: Vec<[f32; 3]> = if o.mesh.normals.len() == o.mesh.positions_mm.len() {
            o.mesh.normals.clone()
        } else {
            let mut m = o.mesh.clone();
            m.compute_normals();
            m.normals
        };
        for &p in &o.mesh.positions_mm {
            let p = to_frame(p, s);
            writeln!(w, "v {} {} {}", p[0], p[1], p[2])?;
        }
        for &n in &normals {
            let n = to_frame(n, s);
            writeln!(w, "vn {} {} {}", n[0], n[1], n[2])?;
        }
        for &t in &o.mesh.triangles {
            let [a, b, c] = wound(t, frame).map(|i| i as usize + base);
            writeln!(w, "f {a}//{a} {b}//{b} {c}//{c}")?;
        }
        base += o.mesh.positions_mm.len();
    }
    w.flush()
}

/// Writes every `(file name, bytes)` into `dir`, all or nothing, never replacing a file.
fn publish(dir: &Path, outputs: &[(String, Vec<u8>)]) -> Result<(), MeshError> {
    std::fs::create_dir_all(dir).map_err(|e| MeshError::Io { path: dir.to_path_buf(), source: e })?;
    if let Some((name, _)) = outputs.iter().find(|(n, _)| dir.join(n).symlink_metadata().is_ok()) {
        return Err(MeshError::Exists { path: dir.join(name) });
    }
    // Process id and a per-process counter keep concurrent exports' temporaries apart.
    static EXPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temps: Vec<PathBuf> =
        outputs.iter().map(|(n, _)| dir.join(format!(".{n}.{}-{run}.part", std::process::id()))).collect();
    let cleanup = |paths: &[PathBuf]| {
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
    };
    for ((_, bytes), tmp) in outputs.iter().zip(&temps) {
        if let Err(e) = write_new(tmp, bytes) {
            cleanup(&temps);
            return Err(MeshError::Io { path: tmp.clone(), source: e });
        }
    }
    let mut published: Vec<PathBuf> = Vec::new();
    for ((name, _), tmp) in outputs.iter().zip(&temps) {
        let target = dir.join(name);
        if let Err(err) = link_new(tmp, &target) {
            cleanup(&published);
            cleanup(&temps);
            return Err(err);
        }
        published.push(target);
    }
    cleanup(&temps);
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Gives the finished temporary file its name, failing if the name is taken
/// ([`crate::io::link_new`]).
fn link_new(tmp: &Path, target: &Path) -> Result<(), MeshError> {
    crate::io::link_new(tmp, target).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => MeshError::Exists { path: target.to_path_buf() },
        _ => MeshError::Io { path: target.to_path_buf(), source: e },
    })
}
