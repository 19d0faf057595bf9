//! Tissue clustering across contrast phases (the report this product follows clusters
//! liver voxels with k = 7 on their HU in each phase, because tissues differ in how they
//! enhance and wash out).
//!
//! Pipeline: [`build_features`] (phases on one grid + a label mask, optionally dilated by a
//! margin in mm) → [`cluster_voxels`] (k-means, clusters renumbered by the mean of one
//! feature, usually portal venous HU, so colours are stable; optional 3×3×3 majority
//! filter) → a label volume (0 outside the region, 1..=k inside) and a serialisable
//! [`ClusterReport`]. [`kmeans`] works on any [`FeatureMatrix`] (n points × d ≤ 8 dims).
//!
//! Files: `kmeans/` is the k-means engine, which works on any [`FeatureMatrix`] and knows
//! nothing of volumes (its seeding in `kmeans/seeding.rs`); `features.rs` turns phases and
//! a label mask into a feature matrix; this file holds the limits, the error type and the
//! pipeline end to end (k-means on the features, the label volume, per-cluster summaries,
//! the majority filter).

mod features;
mod kmeans;

use ndarray::Axis;
use rayon::prelude::*;

use crate::volume::region::{std_slice, voxel_volume_ml};
use crate::volume::{Mask, Volume};

pub use features::{build_features, region_mask, FeatureOptions, VoxelFeatures};
pub use kmeans::{kmeans, kmeans_with_progress, FeatureMatrix, KMeansOptions, KMeansResult};

/// The k the report this product follows uses.
pub const DEFAULT_K: usize = 7;
/// Labels are `u8` with 0 kept for "outside", so at most 255 clusters.
pub const MAX_K: usize = 255;
/// Features per point the fast kernels are built for.
pub const MAX_DIMS: usize = 8;
/// Points per reduction chunk. Fixed (not derived from the thread count), so partial sums
/// are always formed and combined the same way.
pub const CHUNK: usize = 8192;

pub use crate::volume::no_progress;
use crate::volume::Progress;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("k = 0: ask for at least one cluster (the default is {DEFAULT_K})")]
    ZeroClusters,
    #[error("k = {k} is more than {MAX_K}, the most a u8 label volume can number; pick a smaller k")]
    TooManyClusters { k: usize },
    #[error("k = {k} but there are only {n} points to cluster; pick k ≤ {n} or a larger mask")]
    TooFewPoints { k: usize, n: usize },
    #[error("max_iter = 0: k-means needs at least one iteration (the default is 300)")]
    ZeroIterations,
    #[error("tol = {tol} is negative or not a number; use a small positive value such as 1e-4")]
    BadTolerance { tol: f64 },
    #[error("no features: give at least one phase or feature column")]
    NoFeatures,
    #[error("{dims} features per point; clustering supports 1 to {MAX_DIMS}")]
    TooManyFeatures { dims: usize },
    #[error("feature data do not form a matrix: {detail}")]
    BadShape { detail: String },
    #[error("feature {feature} of point {index} is {value}; features must be finite numbers, so check the input for NaN or infinite values")]
    NonFinite { index: usize, feature: usize, value: f32 },
    #[error("the mask has no voxels with label(s) {labels:?} (empty list: any non-zero label); draw or load a mask that covers the region to cluster")]
    EmptyMask { labels: Vec<u8> },
    #[error("phase '{name}' is on a different grid from the mask ({detail}); resample or register it onto the mask's grid first")]
    GridMismatch { name: String, detail: String },
    #[error("feature index {index} is out of range: there are {dims} features")]
    FeatureOutOfRange { index: usize, dims: usize },
    #[error("margin {margin_mm} mm is negative or not a number; give a margin ≥ 0 mm")]
    BadMargin { margin_mm: f64 },
    #[error("{labels} labels for {points} points; give one label per point")]
    LabelCount { labels: usize, points: usize },
    #[error("initial centres: {detail}; give k × features finite values, row by row")]
    BadInit { detail: String },
    #[error("clustering was cancelled")]
    Cancelled,
}

// ---------------------------------------------------------------------------------------
// Clustering voxels end to end
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterOptions {
    pub kmeans: KMeansOptions,
    /// Number the clusters by increasing mean of this feature (usually portal venous HU).
    pub order_by_feature: Option<usize>,
    /// Iterations of the 3×3×3 majority filter afterwards (0: none).
    pub majority_iterations: usize,
}

/// One cluster of the final label volume.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSummary {
    /// Its value in the label volume, 1..=k.
    pub label: u8,
    /// Mean of each feature over its voxels (HU for phase features).
    pub mean: Vec<f32>,
    pub voxel_count: usize,
    pub volume_ml: f64,
}

/// What a clustering found, ready for a legend, a table or JSON.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterReport {
    pub feature_names: Vec<String>,
    pub k: usize,
    pub clusters: Vec<ClusterSummary>,
    /// Of the k-means fit (before any majority filtering).
    pub inertia: f64,
    pub iterations: usize,
    pub converged: bool,
    pub majority_iterations: usize,
    pub ordered_by: Option<String>,
}

/// A clustering: the label volume (0 outside the region, 1..=k inside) and its report.
#[derive(Clone, Debug)]
pub struct Clustering {
    pub labels: Mask,
    pub report: ClusterReport,
    /// The k-means fit the labels came from (labels 0..k per point, before filtering).
    pub fit: KMeansResult,
}

/// k-means of the voxel features, clusters ordered, written as a label volume and
/// optionally majority-filtered; cluster means and counts describe the final labels.
pub fn cluster_voxels(
    features: &VoxelFeatures,
    opts: &ClusterOptions,
    progress: Progress,
) -> Result<Clustering, ClusterError> {
    let mut fit = kmeans_with_progress(&features.matrix, &opts.kmeans, progress)?;
    if let Some(f) = opts.order_by_feature {
        fit.order_by_feature(f)?;
    }
    let mut labels = label_volume(features, &fit.labels)?;
    if opts.majority_iterations > 0 {
        labels = majority_filter(&labels, opts.majority_iterations);
    }
    let clusters = summarise(features, &labels, fit.k);
    let report = ClusterReport {
        feature_names: features.names.clone(),
        k: fit.k,
        clusters,
        inertia: fit.inertia,
        iterations: fit.iterations,
        converged: fit.converged,
        majority_iterations: opts.majority_iterations,
        ordered_by: opts.order_by_feature.and_then(|f| features.names.get(f).cloned()),
    };
    Ok(Clustering { labels, report, fit })
}

/// The label volume of per-point labels `0..k`: 0 outside the region, label + 1 inside.
pub fn label_volume(features: &VoxelFeatures, labels: &[u8]) -> Result<Mask, ClusterError> {
    if labels.len() != features.voxels.len() {
        return Err(ClusterError::LabelCount { labels: labels.len(), points: features.voxels.len() });
    }
    let n = features.geometry.len();
    if let Some(&v) = features.voxels.iter().find(|&&v| v >= n) {
        return Err(ClusterError::BadShape {
            detail: format!("voxel index {v} is outside the {:?} grid", features.geometry.shape),
        });
    }
    let mut out = Volume::filled(features.geometry.clone(), 0u8);
    if let Some(data) = out.data.as_slice_mut() {
        for (&v, &l) in features.voxels.iter().zip(labels) {
            data[v] = l.saturating_add(1);
        }
    }
    Ok(out)
}

/// Mean features, count and volume of each label 1..=k of `labels` over the points.
fn summarise(features: &VoxelFeatures, labels: &Mask, k: usize) -> Vec<ClusterSummary> {
    let dims = features.matrix.dims();
    let lab = std_slice(&labels.data);
    let mut sums = vec![0f64; k * dims];
    let mut counts = vec![0usize; k];
    for (p, &v) in features.voxels.iter().enumerate() {
        let l = lab[v] as usize;
        if (1..=k).contains(&l) {
            counts[l - 1] += 1;
            for d in 0..dims {
                sums[(l - 1) * dims + d] += features.matrix.get(p, d) as f64;
            }
        }
    }
    let voxel_ml = voxel_volume_ml(&features.geometry);
    (0..k)
        .map(|c| ClusterSummary {
            label: (c + 1) as u8,
            mean: (0..dims)
                .map(|d| if counts[c] > 0 { (sums[c * dims + d] / counts[c] as f64) as f32 } else { f32::NAN })
                .collect(),
            voxel_count: counts[c],
            volume_ml: counts[c] as f64 * voxel_ml,
        })
        .collect()
}

/// `iterations` passes of a 3×3×3 majority filter over the non-zero voxels: each takes the
/// most frequent non-zero label among itself and its 26 neighbours (a tie keeps its own
/// label when it is among the most frequent, else the lowest). Zero voxels stay zero, so
/// the region does not change. Deterministic (each pass reads only the previous one).
pub fn majority_filter(labels: &Mask, iterations: usize) -> Mask {
    let (nz, ny, nx) = labels.data.dim();
    let mut cur = labels.data.as_standard_layout().to_owned();
    let mut next = cur.clone();
    for _ in 0..iterations {
        let src = &cur;
        next.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut out)| {
            let mut counts = [0u8; 256];
            for j in 0..ny {
                for i in 0..nx {
                    let own = src[[k, j, i]];
                    if own == 0 {
                        continue;
                    }
                    for kk in k.saturating_sub(1)..(k + 2).min(nz) {
                        for jj in j.saturating_sub(1)..(j + 2).min(ny) {
                            for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                                let v = src[[kk, jj, ii]];
                                counts[v as usize] += 1;
                            }
                        }
                    }
                    counts[0] = 0;
                    let mut best = own;
                    let mut best_n = counts[own as usize];
                    for kk in k.saturating_sub(1)..(k + 2).min(nz) {
                        for jj in j.saturating_sub(1)..(j + 2).min(ny) {
                            for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                                let v = src[[kk, jj, ii]];
                                let c = counts[v as usize];
                                if v != 0 && (c > best_n || (c == best_n && best != own && v < best)) {
                                    best = v;
                                    best_n = c;
                                }
                            }
                        }
                    }
                    // reset what this voxel counted
                    for kk in k.saturating_sub(1)..(k + 2).min(nz) {
                        for jj in j.saturating_sub(1)..(j + 2).min(ny) {
                            for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                                counts[src[[kk, jj, ii]] as usize] = 0;
                            }
                        }
                    }
                    out[[j, i]] = best;
                }
            }
        });
        std::mem::swap(&mut cur, &mut next);
    }
    Volume { data: cur, geometry: labels.geometry.clone() }
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn inconsistent_volumes_are_errors() {
        let g = Geometry::axis_aligned([3, 3, 3], [1.0; 3], [0.0; 3]);
        let mask = Volume::filled(g.clone(), 1u8);
        let good = Volume::filled(g.clone(), 7i16);
        let broken = Volume { data: Array3::<i16>::zeros((2, 3, 3)), geometry: g.clone() };
        let o = FeatureOptions::default();
        assert!(matches!(
            build_features(&[("a", &good), ("b", &broken)], &mask, &o),
            Err(ClusterError::GridMismatch { .. })
        ));
        let broken_mask = Volume { data: Array3::<u8>::ones((3, 3, 2)), geometry: g.clone() };
        assert!(matches!(build_features(&[("a", &good)], &broken_mask, &o), Err(ClusterError::GridMismatch { .. })));
        let mut f = build_features(&[("a", &good)], &mask, &o).unwrap();
        assert_eq!(f.voxels.len(), 27);
        assert!(matches!(label_volume(&f, &[0; 26]), Err(ClusterError::LabelCount { .. })));
        f.voxels[0] = 27;
        assert!(matches!(label_volume(&f, &[0; 27]), Err(ClusterError::BadShape { .. })));
    }

    #[test]
    fn majority_filter_removes_speckle_and_keeps_region() {
        let g = Geometry::axis_aligned([5, 5, 5], [1.0; 3], [0.0; 3]);
        let mut m = Volume::filled(g, 1u8);
        m.data[[2, 2, 2]] = 2;
        m.data[[0, 0, 0]] = 0;
        let f = majority_filter(&m, 1);
        assert_eq!(f.data[[2, 2, 2]], 1);
        assert_eq!(f.data[[0, 0, 0]], 0);
        assert_eq!(f.data.iter().filter(|&&v| v == 0).count(), 1);
        // a large block survives
        let mut m2 = m.clone();
        for k in 0..5 {
            for j in 0..5 {
                for i in 3..5 {
                    m2.data[[k, j, i]] = 3;
                }
            }
        }
        let f2 = majority_filter(&m2, 2);
        assert_eq!(f2.data[[2, 2, 4]], 3);
        assert_eq!(f2.data[[2, 2, 0]], 1);
    }
}
