//! Surfaces from label masks: extraction ([`surface`]), smoothing ([`smooth`]),
//! decimation ([`decimate`]), the named objects of a liver study ([`objects`]) and files
//! for 3-D printing and other viewers ([`export`]).
//!
//! Owns [`TriMesh`], an indexed triangle mesh in LPS millimetres. Uses only `volume` (and
//! `lesion`'s connected components); `study`, `cli` and `app` call in. The pipeline for
//! one object is extract → Taubin smoothing → quadric decimation → vertex normals; every
//! step keeps a closed mesh closed and gives the same output on any number of threads.

pub mod decimate;
pub mod export;
pub mod objects;
pub mod smooth;
pub mod surface;
mod tables;
mod trimesh;

use std::path::PathBuf;

pub use decimate::decimate;
pub use export::{export_objects, write_objects, ExportSummary, Format, Frame, ObjectSummary};
pub use objects::{build_objects, build_objects_with_progress, MeshObject, MeshOptions, ObjectKind};
pub use smooth::{taubin, TaubinOptions};
pub use surface::surface;
pub use trimesh::TriMesh;

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("the mask's grid is not usable: {0}")]
    BadGeometry(String),
    #[error("the mask holds {voxels} voxels but its geometry says {shape:?}; rebuild the volume with Volume::new")]
    ShapeMismatch { voxels: usize, shape: [usize; 3] },
    #[error("no labels to mesh; give at least one non-zero label")]
    NoLabels,
    #[error("label 0 is background and cannot be meshed; give the object's labels (liver 1, tumour 2, vessels 3)")]
    BackgroundLabel,
    #[error("nothing to mesh: the mask has no voxels with the labels {labels:?} (liver, tumour, vessels); check the mask and the label options")]
    NothingToMesh { labels: Vec<u8> },
    #[error("{what} = {value} is out of range: {hint}")]
    BadOption { what: &'static str, value: f64, hint: &'static str },
    #[error("{} already exists; Hepaview never overwrites files: remove it or choose another output folder", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("meshing was cancelled")]
    Cancelled,
}
