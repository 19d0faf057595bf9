//! Voxel features: which voxels of a label mask to cluster (its labels, grown by a margin
//! in mm) and their HU in every phase, as a [`FeatureMatrix`] with the voxels' indices.

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use super::{ClusterError, FeatureMatrix, MAX_DIMS};
use crate::volume::region::{dilate_mm, std_slice};
use crate::volume::{CtVolume, Geometry, Mask, SAME_GRID_MM};

/// Which voxels to cluster.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureOptions {
    /// Mask labels that make up the region (empty: every non-zero label).
    pub mask_labels: Vec<u8>,
    /// Grow the region by this many mm (0: none), e.g. to include the liver edge.
    pub margin_mm: f64,
}

impl Default for FeatureOptions {
    /// Liver and tumour of a LiTS-style mask (labels 1 and 2), no margin.
    fn default() -> Self {
        FeatureOptions { mask_labels: vec![1, 2], margin_mm: 0.0 }
    }
}

/// Feature vectors of the voxels of a region, with where they came from.
#[derive(Clone, Debug)]
pub struct VoxelFeatures {
    pub matrix: FeatureMatrix,
    /// One name per feature (e.g. the phase names).
    pub names: Vec<String>,
    /// Linear index (`[z, y, x]` C order) of each point's voxel.
    pub voxels: Vec<usize>,
    /// The grid the voxels are on.
    pub geometry: Geometry,
}

impl VoxelFeatures {
    /// Index of the feature called `name` (ASCII case-insensitive).
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }
}

fn check_grid(name: &str, data: (usize, usize, usize), g: &Geometry, mask: &Geometry) -> Result<(), ClusterError> {
    let dims = [data.0, data.1, data.2];
    if dims != g.shape {
        return Err(ClusterError::GridMismatch {
            name: name.into(),
            detail: format!("its voxel array is {dims:?} but its geometry says {:?}", g.shape),
        });
    }
    if g.shape != mask.shape {
        return Err(ClusterError::GridMismatch {
            name: name.into(),
            detail: format!("shape {:?} vs mask {:?} ([z, y, x])", g.shape, mask.shape),
        });
    }
    let d = g.max_corner_distance_mm(mask);
    if d.is_nan() || d > SAME_GRID_MM {
        return Err(ClusterError::GridMismatch {
            name: name.into(),
            detail: format!("corners differ by up to {d:.3} mm"),
        });
    }
    Ok(())
}

/// The region as booleans: voxels of `mask` with one of `labels` (empty: any non-zero),
/// grown by `margin_mm`.
pub fn region_mask(mask: &Mask, labels: &[u8], margin_mm: f64) -> Result<Array3<bool>, ClusterError> {
    if !(margin_mm >= 0.0 && margin_mm.is_finite()) {
        return Err(ClusterError::BadMargin { margin_mm });
    }
    let mut table = [labels.is_empty(); 256];
    table[0] = false;
    for &l in labels {
        table[l as usize] = true;
    }
    let region = mask.data.map(|&v| table[v as usize]);
    if !region.iter().any(|&b| b) {
        return Err(ClusterError::EmptyMask { labels: labels.to_vec() });
    }
    if margin_mm > 0.0 {
        Ok(dilate_mm(&region, mask.geometry.spacing_mm, margin_mm))
    } else {
        Ok(region)
    }
}

/// Builds one feature per phase (HU as f32) for the voxels of the region of `mask`.
/// Every phase must be on the mask's grid (resample or register first).
pub fn build_features(
    phases: &[(&str, &CtVolume)],
    mask: &Mask,
    opts: &FeatureOptions,
) -> Result<VoxelFeatures, ClusterError> {
    if phases.is_empty() {
        return Err(ClusterError::NoFeatures);
    }
    if phases.len() > MAX_DIMS {
        return Err(ClusterError::TooManyFeatures { dims: phases.len() });
    }
    check_grid("mask", mask.data.dim(), &mask.geometry, &mask.geometry)?;
    for (name, v) in phases {
        check_grid(name, v.data.dim(), &v.geometry, &mask.geometry)?;
    }
    let region = region_mask(mask, &opts.mask_labels, opts.margin_mm)?;
    let [_, ny, nx] = mask.geometry.shape;
    let slab = ny * nx;
    // voxel indices in C order: per slab in parallel, concatenated in slab order
    let per_slab: Vec<Vec<usize>> = region
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(k, s)| s.iter().enumerate().filter(|(_, &b)| b).map(|(o, _)| k * slab + o).collect())
        .collect();
    let voxels: Vec<usize> = per_slab.concat();
    let columns: Vec<Vec<f32>> = phases
        .iter()
        .map(|(_, v)| {
            let data = std_slice(&v.data);
            voxels.par_iter().map(|&i| data[i] as f32).collect()
        })
        .collect();
    Ok(VoxelFeatures {
        matrix: FeatureMatrix::from_columns(columns)?,
        names: phases.iter().map(|(n, _)| n.to_string()).collect(),
        voxels,
        geometry: mask.geometry.clone(),
    })
}
