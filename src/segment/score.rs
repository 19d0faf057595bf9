//! Scoring a segmentation against a reference the way the real-CT goals are stated: liver
//! Dice, tumour Dice, and per lesion: which reference tumours were found, which were
//! missed, and which predicted lesions lie where the reference has none (false lesions).
//! Voxel Dice alone hides a missed 10 mm metastasis behind a large one found, and says
//! nothing about a "tumour" in the stomach; a radiologist counts lesions.

use crate::volume::region::{connected_components, voxel_volume_ml, Component};
use crate::volume::{Geometry, Mask};

/// Label of tumour in the masks (0 background, 1 liver, 2 tumour).
const TUMOUR: u8 = 2;

/// One lesion of the reference or of the prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredLesion {
    pub ml: f64,
    /// Longest extent of the lesion's voxels along the grid's axes, mm (a box, not RECIST:
    /// enough to sort lesions into "10 mm or more" and smaller).
    pub extent_mm: f64,
    /// Centre of its voxels, LPS mm.
    pub centre_mm: [f64; 3],
    /// Reference lesion: some predicted tumour voxel overlaps it. Predicted lesion: it
    /// overlaps some reference tumour voxel.
    pub matched: bool,
}

/// The lesion-level score of one study.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionScore {
    /// Every tumour of the reference (26-connected), largest first.
    pub reference: Vec<ScoredLesion>,
    /// Every predicted tumour (26-connected), largest first.
    pub predicted: Vec<ScoredLesion>,
}

impl LesionScore {
    /// Reference tumours of at least `min_extent_mm` that some predicted tumour overlaps,
    /// and how many such reference tumours there are.
    pub fn found(&self, min_extent_mm: f64) -> (usize, usize) {
        let big: Vec<_> = self.reference.iter().filter(|l| l.extent_mm >= min_extent_mm).collect();
        (big.iter().filter(|l| l.matched).count(), big.len())
    }

    /// Predicted lesions of at least `min_ml` that overlap no reference tumour.
    pub fn false_lesions(&self, min_ml: f64) -> Vec<&ScoredLesion> {
        self.predicted.iter().filter(|l| !l.matched && l.ml >= min_ml).collect()
    }
}

/// Scores `predicted` against `reference` (same grid; tumour = label 2).
///
/// # Panics
/// When the grids' shapes differ (resample the reference first, as `segment --truth` does).
pub fn score_lesions(predicted: &Mask, reference: &Mask) -> LesionScore {
    assert_eq!(predicted.data.dim(), reference.data.dim(), "score_lesions: masks on different grids");
    let is_tumour = |m: &Mask| m.data.iter().map(|&v| v == TUMOUR).collect::<Vec<bool>>();
    let (pred_t, ref_t) = (is_tumour(predicted), is_tumour(reference));
    let reference_lesions = connected_components(reference, TUMOUR, 1).0;
    let predicted_lesions = connected_components(predicted, TUMOUR, 1).0;
    let describe = |c: &Component, other: &[bool]| describe(c, other, &reference.geometry);
    LesionScore {
        reference: reference_lesions.iter().map(|c| describe(c, &pred_t)).collect(),
        predicted: predicted_lesions.iter().map(|c| describe(c, &ref_t)).collect(),
    }
}

fn describe(c: &Component, other: &[bool], g: &Geometry) -> ScoredLesion {
    let [_, ny, nx] = g.shape;
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let mut sum = [0f64; 3];
    for &v in &c.voxels {
        let ijk = [v % nx, (v / nx) % ny, v / (ny * nx)];
        for a in 0..3 {
            lo[a] = lo[a].min(ijk[a]);
            hi[a] = hi[a].max(ijk[a]);
            sum[a] += ijk[a] as f64;
        }
    }
    let n = c.voxels.len() as f64;
    // spacing_mm is [sz, sy, sx]; ijk is [x, y, z]
    let extent_mm = (0..3).map(|a| (hi[a] - lo[a] + 1) as f64 * g.spacing_mm[2 - a]).fold(0.0, f64::max);
    ScoredLesion {
        ml: n * voxel_volume_ml(g),
        extent_mm,
        centre_mm: g.index_to_world([sum[0] / n, sum[1] / n, sum[2] / n]),
        matched: c.voxels.iter().any(|&v| other[v]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Volume;
    use ndarray::Array3;

    fn grid() -> Geometry {
        Geometry::axis_aligned([10, 40, 40], [5.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    }

    fn mask(boxes: &[([usize; 3], [usize; 3])]) -> Mask {
        let mut data = Array3::<u8>::from_elem((10, 40, 40), 1);
        for (lo, hi) in boxes {
            for k in lo[0]..hi[0] {
                for j in lo[1]..hi[1] {
                    for i in lo[2]..hi[2] {
                        data[[k, j, i]] = TUMOUR;
                    }
                }
            }
        }
        Volume::new(data, grid())
    }

    #[test]
    fn found_missed_and_false_lesions_are_told_apart() {
        // reference: a 12 mm lesion and a 4 mm one; prediction: part of the first and one
        // elsewhere
        let reference = mask(&[([2, 5, 5], [4, 17, 17]), ([6, 30, 30], [7, 34, 34])]);
        let predicted = mask(&[([2, 8, 8], [3, 12, 12]), ([7, 2, 30], [8, 6, 34])]);
        let s = score_lesions(&predicted, &reference);
        assert_eq!(s.reference.len(), 2);
        assert_eq!(s.reference[0].extent_mm, 12.0);
        assert!(s.reference[0].matched && !s.reference[1].matched);
        assert_eq!(s.found(10.0), (1, 1));
        assert_eq!(s.found(0.0), (1, 2));
        let false_lesions = s.false_lesions(0.0);
        assert_eq!(false_lesions.len(), 1);
        assert!((false_lesions[0].ml - 4.0 * 4.0 * 5.0 / 1000.0).abs() < 1e-9);
        assert!(s.false_lesions(0.1).is_empty());
    }

    #[test]
    fn no_tumour_anywhere_scores_empty() {
        let s = score_lesions(&mask(&[]), &mask(&[]));
        assert!(s.reference.is_empty() && s.predicted.is_empty());
        assert_eq!(s.found(10.0), (0, 0));
    }
}
