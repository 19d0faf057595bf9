//! How well two images or masks agree, and how far a field is from a known one.

use crate::volume::{Field, Mask, Volume};
use rayon::prelude::*;

const CHUNK: usize = 65536;

/// Sums over `mask`ed voxels, chunked in a fixed order so the result does not depend on
/// the thread count.
fn masked_sums<F>(n: usize, mask: Option<&[u8]>, f: F) -> Vec<f64>
where
    F: Fn(usize) -> [f64; 5] + Sync,
{
    let parts: Vec<[f64; 6]> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut acc = [0f64; 6];
            for p in c * CHUNK..((c + 1) * CHUNK).min(n) {
                if mask.is_none_or(|m| m[p] != 0) {
                    let v = f(p);
                    for t in 0..5 {
                        acc[t] += v[t];
                    }
                    acc[5] += 1.0;
                }
            }
            acc
        })
        .collect();
    parts.iter().fold(vec![0f64; 6], |mut a, b| {
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        a
    })
}

/// Root mean square difference inside the mask (all voxels when `None`).
pub fn rmsd(a: &[f32], b: &[f32], mask: Option<&[u8]>) -> f64 {
    let s = masked_sums(a.len(), mask, |p| {
        let d = (a[p] - b[p]) as f64;
        [d * d, 0.0, 0.0, 0.0, 0.0]
    });
    if s[5] == 0.0 {
        0.0
    } else {
        (s[0] / s[5]).sqrt()
    }
}

/// Normalised cross-correlation inside the mask (1 = identical up to a linear map).
pub fn ncc(a: &[f32], b: &[f32], mask: Option<&[u8]>) -> f64 {
    let s = masked_sums(a.len(), mask, |p| {
        let (x, y) = (a[p] as f64, b[p] as f64);
        [x, y, x * x, y * y, x * y]
    });
    let n = s[5];
    if n == 0.0 {
        return 0.0;
    }
    let (ma, mb) = (s[0] / n, s[1] / n);
    let va = s[2] / n - ma * ma;
    let vb = s[3] / n - mb * mb;
    let cov = s[4] / n - ma * mb;
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Dice overlap of `label` in two masks on the same grid (1 when both are empty).
pub fn dice(a: &Mask, b: &Mask, label: u8) -> f64 {
    dice_where(a, b, |v| v == label)
}

/// Dice overlap of the voxels whose label satisfies `inside` (e.g. any non-zero label).
pub fn dice_where(a: &Mask, b: &Mask, inside: impl Fn(u8) -> bool) -> f64 {
    let (mut both, mut na, mut nb) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.data.iter().zip(b.data.iter()) {
        let (x, y) = (inside(x), inside(y));
        both += (x && y) as u64;
        na += x as u64;
        nb += y as u64;
    }
    if na + nb == 0 {
        1.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    }
}

/// Summary of a set of per-voxel values.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Distribution {
    pub median: f64,
    pub p95: f64,
    pub max: f64,
    pub count: usize,
}

impl Distribution {
    pub fn of(mut v: Vec<f32>) -> Distribution {
        if v.is_empty() {
            return Distribution::default();
        }
        let n = v.len();
        let pick = |v: &mut Vec<f32>, q: f64| {
            let i = ((q * (n - 1) as f64).round() as usize).min(n - 1);
            *v.select_nth_unstable_by(i, |a, b| a.total_cmp(b)).1 as f64
        };
        let median = pick(&mut v, 0.5);
        let p95 = pick(&mut v, 0.95);
        let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        Distribution { median, p95, max, count: n }
    }
}

/// Endpoint error |a − b| in mm between two fields on the same grid, inside the mask.
pub fn endpoint_error(a: &Field, b: &Field, mask: Option<&Mask>) -> Distribution {
    let (sa, sb) = (a.data.as_slice().expect("layout"), b.data.as_slice().expect("layout"));
    let m = mask.map(|m| m.data.as_slice().expect("layout"));
    let v: Vec<f32> = (0..sa.len() / 3)
        .into_par_iter()
        .filter(|&p| m.is_none_or(|m| m[p] != 0))
        .map(|p| {
            let d = [sa[p * 3] - sb[p * 3], sa[p * 3 + 1] - sb[p * 3 + 1], sa[p * 3 + 2] - sb[p * 3 + 2]];
            (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
        })
        .collect();
    Distribution::of(v)
}

/// Smallest Jacobian determinant and the number of folded voxels (J ≤ 0), inside the mask.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Folding {
    pub min_jacobian: f64,
    pub max_jacobian: f64,
    pub folded_voxels: usize,
}

pub fn folding(jac: &Volume<f32>, mask: Option<&Mask>) -> Folding {
    let j = jac.data.as_slice().expect("layout");
    let m = mask.map(|m| m.data.as_slice().expect("layout"));
    let (mn, mx, folded) = (0..j.len())
        .into_par_iter()
        .filter(|&p| m.is_none_or(|m| m[p] != 0))
        .map(|p| (j[p], j[p], (j[p] <= 0.0) as usize))
        .reduce(|| (f32::INFINITY, f32::NEG_INFINITY, 0), |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 + b.2));
    Folding { min_jacobian: mn as f64, max_jacobian: mx as f64, folded_voxels: folded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsd_and_ncc_of_known_pairs() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [3.0f32, 4.0, 5.0, 6.0];
        assert!((rmsd(&a, &b, None) - 2.0).abs() < 1e-12);
        assert!((ncc(&a, &b, None) - 1.0).abs() < 1e-12);
        let c = [4.0f32, 3.0, 2.0, 1.0];
        assert!((ncc(&a, &c, None) + 1.0).abs() < 1e-12);
        assert!((rmsd(&a, &b, Some(&[1, 0, 0, 0])) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn distribution_percentiles() {
        let d = Distribution::of((0..101).map(|x| x as f32).collect());
        assert_eq!((d.median, d.p95, d.max, d.count), (50.0, 95.0, 100.0, 101));
    }
}
