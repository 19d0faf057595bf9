//! The numbers the outline compares voxels by: every phase smoothed inside the working box
//! (one feature vector per voxel), the liver parenchyma's robust centre and spread per
//! phase (over the box, or in a shell around a grown region), the signature of a small ball
//! around a click, and distances between feature
//! vectors in units of the parenchyma's spread (a Mahalanobis distance with a diagonal,
//! robust covariance), with the chi-square quantile that calls a vector "not liver".

use ndarray::{s, Array3};
use rayon::prelude::*;

use super::region::WorkBox;
use crate::volume::CtVolume;

/// Below this a voxel is fat, lung or air; above [`DENSE_HU`], bone, calcium or contrast-dense
/// material. Neither is liver tissue: without a liver mask they bound the growth.
pub const FAT_HU: f32 = -30.0;
pub const DENSE_HU: f32 = 400.0;

/// Values the resampling fills outside a phase's coverage (`analysis::onto_grid`).
const NO_DATA: i16 = -1024;

/// Each phase of the box smoothed by a separable binomial [1, 2, 1] / 4 kernel along every
/// axis whose spacing is at most `reach_mm` (noise SD × 0.23 for white noise when all three
/// are smoothed; edges sharp to about one voxel). Along a coarser axis (5 mm slices) the
/// neighbours are other anatomy, not the same tissue's noise: mixing them in would halve the
/// contrast of a lesion two slices thick and join it to whatever lies a slice away. Box
/// edges replicate.
pub fn smoothed_box(ct: &CtVolume, b: &WorkBox, reach_mm: f64) -> Array3<f32> {
    let (lo, hi) = (b.vox.lo, b.vox.hi);
    let sp = ct.geometry.spacing_mm;
    let mut a = ct.data.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).mapv(|v| v as f32);
    for axis in 0..3 {
        let n = a.len_of(ndarray::Axis(axis));
        if n < 2 || sp[axis] > reach_mm {
            continue;
        }
        let src = a.clone();
        ndarray::Zip::from(a.lanes_mut(ndarray::Axis(axis))).and(src.lanes(ndarray::Axis(axis))).for_each(
            |mut out, inp| {
                for x in 0..n {
                    let l = inp[x.saturating_sub(1)];
                    let r = inp[(x + 1).min(n - 1)];
                    out[x] = 0.25 * l + 0.5 * inp[x] + 0.25 * r;
                }
            },
        );
    }
    a
}

/// All phases' smoothed boxes, in the order given, plus where every phase has data.
pub struct Features {
    pub phases: Vec<Array3<f32>>,
    /// Raw HU of the reference phase (for the non-liver test, which must not blur).
    pub ref_raw: Array3<f32>,
    pub covered: Array3<bool>,
}

impl Features {
    /// `reach_mm`: see [`smoothed_box`].
    pub fn build(phases: &[&CtVolume], reference: usize, b: &WorkBox, reach_mm: f64) -> Features {
        let smoothed: Vec<Array3<f32>> = phases.par_iter().map(|ct| smoothed_box(ct, b, reach_mm)).collect();
        let (lo, hi) = (b.vox.lo, b.vox.hi);
        let mut covered = Array3::from_elem(b.shape(), true);
        for ct in phases {
            let v = ct.data.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
            ndarray::Zip::from(&mut covered).and(&v).for_each(|c, &x| *c &= x != NO_DATA);
        }
        let ref_raw = phases[reference].data.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).mapv(|v| v as f32);
        Features { phases: smoothed, ref_raw, covered }
    }

    pub fn at(&self, v: [usize; 3]) -> Vec<f32> {
        self.phases.iter().map(|p| p[v]).collect()
    }

    pub fn dims(&self) -> usize {
        self.phases.len()
    }
}

/// A robust centre and spread per phase (HU, phases in the order given).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signature {
    pub median_hu: Vec<f32>,
    /// 1.4826 × MAD of the smoothed values (what voxel-by-voxel comparisons see).
    pub sd_hu: Vec<f32>,
    pub voxels: usize,
}

fn median(v: &mut [f32]) -> f32 {
    let n = v.len();
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f32::total_cmp);
    *m
}

/// The median of `vals` and its robust SD, 1.4826 × the median absolute deviation (`vals`
/// is reordered and overwritten). `vals` must not be empty.
pub fn median_and_robust_sd(vals: &mut [f32]) -> (f32, f32) {
    let m = median(vals);
    for x in vals.iter_mut() {
        *x = (*x - m).abs();
    }
    (m, 1.4826 * median(vals))
}

/// Median and 1.4826 × MAD of each phase over `voxels` (local indices); `None` if empty.
pub fn signature_of(f: &Features, voxels: &[[usize; 3]]) -> Option<Signature> {
    if voxels.is_empty() {
        return None;
    }
    let mut median_hu = Vec::new();
    let mut sd_hu = Vec::new();
    let mut vals = Vec::with_capacity(voxels.len());
    for p in &f.phases {
        vals.clear();
        vals.extend(voxels.iter().map(|&v| p[v]));
        let (m, sd) = median_and_robust_sd(&mut vals);
        median_hu.push(m);
        // a noise-free image has MAD 0; 1 HU keeps the distances finite
        sd_hu.push(sd.max(1.0));
    }
    Some(Signature { median_hu, sd_hu, voxels: voxels.len() })
}

/// The voxels of the box within `r_mm` of local voxel `c` (at least `c` and its
/// 6-neighbours), restricted by `keep`.
pub fn ball(
    b: &WorkBox,
    spacing_mm: [f64; 3],
    c: [usize; 3],
    r_mm: f64,
    keep: impl Fn([usize; 3]) -> bool,
) -> Vec<[usize; 3]> {
    let n = b.shape();
    let r: [usize; 3] = std::array::from_fn(|a| ((r_mm / spacing_mm[a]).floor() as usize).max(1));
    let r2 = r_mm * r_mm;
    let mut out = Vec::new();
    for k in c[0].saturating_sub(r[0])..(c[0] + r[0] + 1).min(n[0]) {
        for j in c[1].saturating_sub(r[1])..(c[1] + r[1] + 1).min(n[1]) {
            for i in c[2].saturating_sub(r[2])..(c[2] + r[2] + 1).min(n[2]) {
                let d = [k as f64 - c[0] as f64, j as f64 - c[1] as f64, i as f64 - c[2] as f64];
                let d2: f64 = (0..3).map(|a| (d[a] * spacing_mm[a]).powi(2)).sum();
                let steps = d.iter().map(|x| x.abs()).sum::<f64>();
                if (d2 <= r2 || steps <= 1.0) && keep([k, j, i]) {
                    out.push([k, j, i]);
                }
            }
        }
    }
    out
}

/// Squared distance of feature vector `x` from centre `c`, per phase in units of `sd`.
pub fn dist2(x: &[f32], c: &[f32], sd: &[f32]) -> f32 {
    x.iter().zip(c).zip(sd).map(|((a, b), s)| ((a - b) / s).powi(2)).sum()
}

/// The 0.999 quantile of chi-square with `n` degrees of freedom: a parenchyma voxel is
/// further than this from its centre once in a thousand (n ≥ 1; Wilson–Hilferty beyond 8).
pub fn chi2_999(n: usize) -> f32 {
    const T: [f32; 8] = [10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124];
    if (1..=8).contains(&n) {
        return T[n - 1];
    }
    let n = n.max(1) as f32;
    let z = 3.0902f32;
    let a = 2.0 / (9.0 * n);
    n * (1.0 - a + z * a.sqrt()).powi(3)
}

/// How far `x` lies from the segment between `a` (t = 0) and `b` (t = 1), squared, in units of
/// `sd`: small when `x` is a partial-volume mixture of the two.
pub fn off_mixture2(x: &[f32], a: &[f32], b: &[f32], sd: &[f32]) -> f32 {
    let u: Vec<f32> = (0..x.len()).map(|p| (b[p] - a[p]) / sd[p]).collect();
    let w: Vec<f32> = (0..x.len()).map(|p| (x[p] - a[p]) / sd[p]).collect();
    let uu: f32 = u.iter().map(|v| v * v).sum();
    let t = if uu > 0.0 { (u.iter().zip(&w).map(|(p, q)| p * q).sum::<f32>() / uu).clamp(0.0, 1.0) } else { 0.0 };
    u.iter().zip(&w).map(|(p, q)| (q - t * p).powi(2)).sum()
}

/// The parenchyma without a liver mask: the most common soft-tissue value of the reference
/// phase in the box (the liver fills most of a box around a liver lesion), then the voxels
/// within [`PARENCHYMA_WINDOW_HU`] of it.
pub const PARENCHYMA_WINDOW_HU: f32 = 30.0;

pub fn parenchyma_by_mode(f: &Features, reference: usize, domain: &Array3<bool>) -> Option<Signature> {
    signature_of(f, &parenchyma_voxels_by_mode(f, reference, domain))
}

/// The voxels [`parenchyma_by_mode`] takes its statistics from (empty when the box holds no
/// soft tissue).
pub fn parenchyma_voxels_by_mode(f: &Features, reference: usize, domain: &Array3<bool>) -> Vec<[usize; 3]> {
    let r = &f.phases[reference];
    // 2 HU bins over the soft-tissue range, smoothed over 5 bins
    let (lo, bin) = (FAT_HU, 2.0f32);
    let nb = ((DENSE_HU - lo) / bin) as usize;
    let mut h = vec![0u32; nb];
    for (v, &d) in r.iter().zip(domain.iter()) {
        if d && *v >= lo && *v < DENSE_HU {
            h[((v - lo) / bin) as usize] += 1;
        }
    }
    let sm: Vec<u32> = (0..nb).map(|b| h[b.saturating_sub(2)..(b + 3).min(nb)].iter().sum()).collect();
    let Some((best, &count)) = sm.iter().enumerate().max_by_key(|(b, &c)| (c, std::cmp::Reverse(*b))) else {
        return Vec::new();
    };
    if count == 0 {
        return Vec::new();
    }
    let mode = lo + (best as f32 + 0.5) * bin;
    r.indexed_iter()
        .filter(|&((k, j, i), &v)| domain[[k, j, i]] && (v - mode).abs() <= PARENCHYMA_WINDOW_HU)
        .map(|((k, j, i), _)| [k, j, i])
        .collect()
}

/// The parenchyma next to a grown region: the statistics of the parenchyma voxels (`liver`)
/// lying between `shell_mm[0]` and `shell_mm[1]` from `region`; `None` when fewer than
/// `min_voxels` lie there (a region filling the box, a lesion at the liver's tip).
pub fn parenchyma_around(
    f: &Features,
    liver: &Array3<bool>,
    region: &Array3<bool>,
    spacing_mm: [f64; 3],
    shell_mm: [f64; 2],
    min_voxels: usize,
) -> Option<Signature> {
    let d2 = crate::volume::region::squared_distance_mm2(region, spacing_mm);
    let (a2, b2) = ((shell_mm[0] * shell_mm[0]) as f32, (shell_mm[1] * shell_mm[1]) as f32 * (1.0 + 1e-6));
    let vox: Vec<[usize; 3]> = d2
        .indexed_iter()
        .filter(|&((k, j, i), &d)| d > a2 && d <= b2 && liver[[k, j, i]])
        .map(|((k, j, i), _)| [k, j, i])
        .collect();
    if vox.len() < min_voxels {
        return None;
    }
    signature_of(f, &vox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_table_and_approximation_agree_near_the_seam() {
        let approx8 = {
            let n = 8f32;
            let a = 2.0 / (9.0 * n);
            n * (1.0 - a + 3.0902 * a.sqrt()).powi(3)
        };
        assert!((approx8 - chi2_999(8)).abs() < 0.3, "{approx8}");
        assert!(chi2_999(9) > chi2_999(8));
    }

    #[test]
    fn smoothing_does_not_reach_across_coarse_slices() {
        use crate::volume::{Geometry, Volume};
        // one dark slice in bright liver: on 5 mm slices the slices around it stay as they are
        let vol = |sz: f64| {
            let mut d = ndarray::Array3::<i16>::from_elem((5, 5, 5), 120);
            d.index_axis_mut(ndarray::Axis(0), 2).fill(40);
            Volume::new(d, Geometry::axis_aligned([5, 5, 5], [sz, 1.0, 1.0], [0.0; 3]))
        };
        let b = WorkBox::around(&[[2, 2, 2]], 20.0, [1.0; 3], [5, 5, 5]);
        let coarse = smoothed_box(&vol(5.0), &b, 3.0);
        assert_eq!((coarse[[2, 2, 2]], coarse[[1, 2, 2]]), (40.0, 120.0));
        let fine = smoothed_box(&vol(2.5), &b, 3.0);
        assert_eq!((fine[[2, 2, 2]], fine[[1, 2, 2]]), (80.0, 100.0));
    }

    #[test]
    fn a_mixture_is_on_the_segment_and_a_rim_is_off_it() {
        let sd = [2.0, 2.0, 2.0];
        let (core, liver) = ([135.0, 92.0, 70.0], [75.0, 110.0, 90.0]);
        let mix: Vec<f32> = (0..3).map(|p| 0.5 * core[p] + 0.5 * liver[p]).collect();
        assert!(off_mixture2(&mix, &liver, &core, &sd) < 1e-3);
        let capsule = [95.0, 108.0, 118.0];
        assert!(off_mixture2(&capsule, &liver, &core, &sd) > 4.0 * chi2_999(3));
    }
}
