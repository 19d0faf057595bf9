//! The named surfaces of a liver study, from one label mask (LiTS-style labels by
//! default: 1 liver, 2 tumour, 3 vessels):
//! - `liver`: the outer surface of the liver **including** its tumours (labels 1 and 2), as
//!   a surgeon sees the organ; a surface of label 1 alone would have a cavity per tumour;
//! - `tumour_1`, `tumour_2`, …: each 26-connected component of the tumour label, largest
//!   first (the numbering of `lesion`), specks below a minimum volume left out;
//! - `vessels`: label 3, all components in one object, when present.
//!
//! Each object is extracted, Taubin-smoothed and decimated to its triangle budget; the
//! objects run in parallel and come back in the order above.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ndarray::Array3;
use rayon::prelude::*;

use super::smooth::TaubinOptions;
use super::{decimate, surface, taubin, MeshError, TriMesh};
use crate::volume::region::{connected_components, Component};
use crate::volume::{det3, no_progress, Mask, Progress, Volume};

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Liver,
    Tumour,
    Vessels,
}

/// Which labels make which object, and how far to smooth and simplify.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MeshOptions {
    /// Labels inside the liver's outer surface (empty: no liver object).
    pub liver_labels: Vec<u8>,
    /// Label whose connected components are the tumours (`None`: no tumour objects).
    pub tumour_label: Option<u8>,
    /// Labels of the vessel object (empty: none).
    pub vessel_labels: Vec<u8>,
    /// Tumour components smaller than this are left out (specks of an automatic mask);
    /// the same default as `lesion`.
    pub min_tumour_ml: f64,
    pub smoothing: TaubinOptions,
    /// Triangle budgets. 300k keeps a liver's shape at sub-millimetre error and loads
    /// in any viewer or slicer; tumours and vessels are smaller or thinner.
    pub max_triangles_liver: usize,
    pub max_triangles_tumour: usize,
    pub max_triangles_vessels: usize,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            liver_labels: vec![1, 2],
            tumour_label: Some(2),
            vessel_labels: vec![3],
            min_tumour_ml: 0.05,
            smoothing: TaubinOptions::default(),
            max_triangles_liver: 300_000,
            max_triangles_tumour: 50_000,
            max_triangles_vessels: 200_000,
        }
    }
}

impl MeshOptions {
    pub fn validate(&self) -> Result<(), MeshError> {
        self.smoothing.validate()?;
        if !(self.min_tumour_ml >= 0.0 && self.min_tumour_ml.is_finite()) {
            return Err(MeshError::BadOption {
                what: "minimum tumour volume (mL)",
                value: self.min_tumour_ml,
                hint: "give a volume ≥ 0 mL",
            });
        }
        for (what, n) in [
            ("liver triangle budget", self.max_triangles_liver),
            ("tumour triangle budget", self.max_triangles_tumour),
            ("vessel triangle budget", self.max_triangles_vessels),
        ] {
            if n < 4 {
                return Err(MeshError::BadOption {
                    what,
                    value: n as f64,
                    hint: "a closed surface needs at least 4 triangles",
                });
            }
        }
        if self.liver_labels.contains(&0) || self.vessel_labels.contains(&0) || self.tumour_label == Some(0) {
            return Err(MeshError::BackgroundLabel);
        }
        Ok(())
    }

    /// Every label some object is made of, sorted.
    pub fn all_labels(&self) -> Vec<u8> {
        let mut l: Vec<u8> =
            self.liver_labels.iter().chain(&self.vessel_labels).chain(self.tumour_label.as_ref()).copied().collect();
        l.sort_unstable();
        l.dedup();
        l
    }
}

/// One named surface and the voxels it came from.
#[derive(Clone, Debug)]
pub struct MeshObject {
    /// `liver`, `tumour_1`, …, `vessels`: also the STL file name and OBJ group.
    pub name: String,
    pub kind: ObjectKind,
    /// The mask labels the object is made of.
    pub labels: Vec<u8>,
    /// Voxels in the object and their volume (count × voxel volume).
    pub voxels: usize,
    pub voxel_volume_ml: f64,
    /// Closed, smoothed, decimated, with vertex normals; LPS mm.
    pub mesh: TriMesh,
}

/// Builds every object present in `mask` (see the module docs). Objects with no voxels are
/// left out; if none is present at all this is [`MeshError::NothingToMesh`].
pub fn build_objects(mask: &Mask, opts: &MeshOptions) -> Result<Vec<MeshObject>, MeshError> {
    build_objects_with_progress(mask, opts, &no_progress)
}

/// What to mesh for one object.
enum Source {
    Labels(Vec<u8>),
    Component(Component),
}

struct Job {
    name: String,
    kind: ObjectKind,
    labels: Vec<u8>,
    source: Source,
    budget: usize,
}

/// [`build_objects`] reporting each finished object; stops with [`MeshError::Cancelled`]
/// when `progress` returns false (objects already running finish first).
pub fn build_objects_with_progress(
    mask: &Mask,
    opts: &MeshOptions,
    progress: Progress,
) -> Result<Vec<MeshObject>, MeshError> {
    opts.validate()?;
    if mask.data.dim() != (mask.geometry.shape[0], mask.geometry.shape[1], mask.geometry.shape[2]) {
        return Err(MeshError::ShapeMismatch { voxels: mask.data.len(), shape: mask.geometry.shape });
    }
    mask.geometry.validate().map_err(MeshError::BadGeometry)?;
    let voxel_ml = det3(&mask.geometry.index_to_world_matrix()).abs() / 1000.0;
    let jobs = plan(mask, opts, voxel_ml);
    if jobs.is_empty() {
        return Err(MeshError::NothingToMesh { labels: opts.all_labels() });
    }
    let done = AtomicUsize::new(0);
    let cancelled = AtomicBool::new(false);
    let total = jobs.len();
    jobs.into_par_iter()
        .map(|job| {
            if cancelled.load(Ordering::Relaxed) {
                return Err(MeshError::Cancelled);
            }
            let obj = run_job(mask, job, opts, voxel_ml)?;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if !progress(
                n as f32 / total as f32,
                &format!("meshed {} ({} triangles)", obj.name, obj.mesh.triangle_count()),
            ) {
                cancelled.store(true, Ordering::Relaxed);
            }
            Ok(obj)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|objs| if cancelled.load(Ordering::Relaxed) { Err(MeshError::Cancelled) } else { Ok(objs) })
}

/// The objects present in the mask, in output order.
fn plan(mask: &Mask, opts: &MeshOptions, voxel_ml: f64) -> Vec<Job> {
    let mut jobs = Vec::new();
    if !opts.liver_labels.is_empty() && count_labels(mask, &opts.liver_labels) > 0 {
        jobs.push(Job {
            name: "liver".into(),
            kind: ObjectKind::Liver,
            labels: opts.liver_labels.clone(),
            source: Source::Labels(opts.liver_labels.clone()),
            budget: opts.max_triangles_liver,
        });
    }
    if let Some(label) = opts.tumour_label {
        let min_voxels = if voxel_ml > 0.0 { (opts.min_tumour_ml / voxel_ml).ceil() as usize } else { 1 };
        let (comps, _dropped) = connected_components(mask, label, min_voxels.max(1));
        for (i, c) in comps.into_iter().enumerate() {
            jobs.push(Job {
                name: format!("tumour_{}", i + 1),
                kind: ObjectKind::Tumour,
                labels: vec![label],
                source: Source::Component(c),
                budget: opts.max_triangles_tumour,
            });
        }
    }
    if !opts.vessel_labels.is_empty() && count_labels(mask, &opts.vessel_labels) > 0 {
        jobs.push(Job {
            name: "vessels".into(),
            kind: ObjectKind::Vessels,
            labels: opts.vessel_labels.clone(),
            source: Source::Labels(opts.vessel_labels.clone()),
            budget: opts.max_triangles_vessels,
        });
    }
    jobs
}

fn count_labels(mask: &Mask, labels: &[u8]) -> usize {
    let mut member = [false; 256];
    for &l in labels {
        member[l as usize] = true;
    }
    mask.data.as_slice().map_or_else(
        || mask.data.iter().filter(|&&v| member[v as usize]).count(),
        |s| s.par_chunks(1 << 16).map(|c| c.iter().filter(|&&v| member[v as usize]).count()).sum(),
    )
}

fn run_job(mask: &Mask, job: Job, opts: &MeshOptions, voxel_ml: f64) -> Result<MeshObject, MeshError> {
    let (mut mesh, voxels) = match &job.source {
        Source::Labels(labels) => (surface(mask, labels)?, count_labels(mask, labels)),
        Source::Component(c) => (surface(&component_crop(mask, c), &[1])?, c.voxels.len()),
    };
    taubin(&mut mesh, &opts.smoothing)?;
    let mesh = decimate(&mesh, job.budget);
    Ok(MeshObject {
        name: job.name,
        kind: job.kind,
        labels: job.labels,
        voxels,
        voxel_volume_ml: voxels as f64 * voxel_ml,
        mesh,
    })
}

/// A mask of the component's bounding box (1 inside the component), placed where the box
/// is, so that a neighbouring tumour in the same box does not join its surface.
fn component_crop(mask: &Mask, c: &Component) -> Mask {
    let [_, ny, nx] = mask.geometry.shape;
    let kji = |v: usize| [v / (ny * nx), (v / nx) % ny, v % nx];
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for &v in &c.voxels {
        let p = kji(v);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let shape = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let mut data = Array3::<u8>::zeros(shape);
    for &v in &c.voxels {
        let p = kji(v);
        data[[p[0] - lo[0], p[1] - lo[1], p[2] - lo[2]]] = 1;
    }
    let mut geometry = mask.geometry.clone();
    geometry.origin_mm = mask.geometry.index_to_world([lo[2] as f64, lo[1] as f64, lo[0] as f64]);
    Volume::new(data, geometry)
}
