//! The liver's ends, completed from the slice beside them. The first network reads one
//! axial slice at a time, and where a slice cuts the liver obliquely (the dome under the
//! lung, the lateral tip of the right lobe among fat and bowel) partial volume makes the
//! liver look unlike the liver it learned: on real CT it leaves out the dome's last slices
//! and a rim of the lower tip (`tests/data/crlm-1006`: 14 mL of dome and 27 mL of tip).
//! A reader fills those in from the slice next door: tissue that looks like this study's
//! parenchyma and lies over the liver of the neighbouring slice is the liver going on.
//!
//! In each slice, the voxels not yet labelled whose 3 × 3-smoothed HU lie in the liver's
//! own band (median ± 2.5 robust SD of its interior, as the edge refinement measures it)
//! form in-plane components. A component that lies over the neighbouring slice's liver
//! for at least `1 − outside_share` of its area, and touches this slice's liver (or this
//! slice has none yet), joins the liver there, over that liver only. A component that
//! spreads well beyond it is another organ of liver-like density (the spleen, the heart's
//! wall, bowel) touching the liver's footprint, and stays out; one apart from this slice's
//! liver lies under an error of the slice next door (the network's piece of stomach) and
//! stays out too.
//! Slices are swept upwards (each from the one below) and downwards, so the dome grows
//! slice by slice, never further than `reach_mm` along the slice axis from the network's
//! own liver. Statistics are the study's own: no scanner's HU are built in.

use ndarray::{s, Array2, Array3};

use super::refine::{liver_box, smooth3, Parenchyma};
use crate::volume::{CtVolume, Mask};

/// How the ends are completed.
#[derive(Clone, Copy, Debug)]
pub struct CompleteOptions {
    /// Parenchyma: within this many robust standard deviations of the liver's median.
    pub band_sigmas: f32,
    /// A component of liver-like voxels joins when at most this share of it lies beyond
    /// the neighbouring slice's liver.
    pub outside_share: f64,
    /// Furthest reach along the slice axis from the network's own liver, mm (its misses at
    /// the dome and tip span one to four slices of 2.5–5 mm).
    pub reach_mm: f64,
    /// Upward and downward sweeps, repeated at most this many times.
    pub max_rounds: usize,
}

impl Default for CompleteOptions {
    fn default() -> Self {
        CompleteOptions { band_sigmas: 2.5, outside_share: 0.25, reach_mm: 20.0, max_rounds: 3 }
    }
}

/// What was added, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompleteReport {
    pub median_hu: f32,
    pub sigma_hu: f32,
    /// Voxels now liver.
    pub added: usize,
}

/// Adds to label 1 of `mask` the liver-like tissue lying over the liver of the slice
/// beside it (module doc). Returns `None`, changing nothing, when the grids differ or the
/// liver is too small to measure.
pub fn complete_liver_ends(mask: &mut Mask, ct: &CtVolume, opts: &CompleteOptions) -> Option<CompleteReport> {
    if mask.data.dim() != ct.data.dim() {
        return None;
    }
    let band = Parenchyma::measure(&mask.data, &ct.data, opts.band_sigmas)?;
    let (nz, _, _) = mask.data.dim();
    let dz = ct.geometry.spacing_mm[0].abs().max(1e-3);
    let reach = (opts.reach_mm / dz).floor() as usize;
    let (lo, hi) = liver_box(mask, 2)?;
    let (z0, z1) = (lo[0].saturating_sub(reach), (hi[0] + reach).min(nz));
    let (y0, y1, x0, x1) = (lo[1], hi[1], lo[2], hi[2]);
    let original = mask.data.slice(s![z0..z1, y0..y1, x0..x1]).mapv(|l| l > 0);
    let mut out = original.clone();
    let (bz, by, bx) = out.dim();
    // within `reach` slices of the network's liver in its own column (one pass up and one
    // down each column, so thin slices cost no more), then not liver yet and liver-like
    let mut candidate = Array3::from_elem((bz, by, bx), false);
    for j in 0..by {
        for i in 0..bx {
            let mut last = None;
            for k in 0..bz {
                last = if original[[k, j, i]] { Some(k) } else { last };
                candidate[[k, j, i]] = last.is_some_and(|q| k - q <= reach);
            }
            let mut next = None;
            for k in (0..bz).rev() {
                next = if original[[k, j, i]] { Some(k) } else { next };
                candidate[[k, j, i]] |= next.is_some_and(|q| q - k <= reach);
            }
        }
    }
    for ((k, j, i), c) in candidate.indexed_iter_mut() {
        *c =
            *c && !original[[k, j, i]] && smooth3(&ct.data, (k + z0, j + y0, i + x0)).is_some_and(|v| band.contains(v));
    }
    let mut added = 0usize;
    for _ in 0..opts.max_rounds {
        let before = added;
        for upwards in [true, false] {
            let order: Box<dyn Iterator<Item = usize>> =
                if upwards { Box::new(1..bz) } else { Box::new((0..bz.saturating_sub(1)).rev()) };
            for k in order {
                let support = if upwards { k - 1 } else { k + 1 };
                added += join_over_support(&mut out, &candidate, k, support, opts.outside_share);
            }
        }
        if added == before {
            break;
        }
    }
    if added > 0 {
        let mut view = mask.data.slice_mut(s![z0..z1, y0..y1, x0..x1]);
        ndarray::Zip::from(&mut view).and(&out).and(&original).for_each(|l, &o, &was| {
            if o && !was {
                *l = 1;
            }
        });
    }
    Some(CompleteReport { median_hu: band.median_hu, sigma_hu: band.sigma_hu, added })
}

/// Slice `k`'s components of candidate voxels not yet liver that lie over slice
/// `support`'s liver for all but `outside_share` of their area, and touch slice `k`'s own
/// liver (or slice `k` has none: the dome's or tip's last slices), join the liver there,
/// over that liver only. Returns the voxels added.
fn join_over_support(out: &mut Array3<bool>, candidate: &Array3<bool>, k: usize, support: usize, share: f64) -> usize {
    let (_, ny, nx) = out.dim();
    let free = Array2::from_shape_fn((ny, nx), |(j, i)| candidate[[k, j, i]] && !out[[k, j, i]]);
    let below = out.slice(s![support, .., ..]).to_owned();
    let over = |j: usize, i: usize| below[[j, i]];
    let here = out.slice(s![k, .., ..]).to_owned();
    let ends_here = !here.iter().any(|&l| l);
    // beside this slice's own liver (8-connected), so an error of the slice next door (a
    // piece of stomach, an island at the pancreas) is not copied onto tissue apart from it
    let touches = |q: usize, r: usize| {
        (q.saturating_sub(1)..(q + 2).min(ny)).any(|a| (r.saturating_sub(1)..(r + 2).min(nx)).any(|b| here[[a, b]]))
    };
    let mut seen = Array2::from_elem((ny, nx), false);
    let mut added = 0;
    let mut stack = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            if !free[[j, i]] || seen[[j, i]] {
                continue;
            }
            // one 4-connected component
            let mut part = Vec::new();
            seen[[j, i]] = true;
            stack.push((j, i));
            while let Some((q, r)) = stack.pop() {
                part.push((q, r));
                let steps = [(q.wrapping_sub(1), r), (q + 1, r), (q, r.wrapping_sub(1)), (q, r + 1)];
                for (a, b) in steps {
                    if a < ny && b < nx && free[[a, b]] && !seen[[a, b]] {
                        seen[[a, b]] = true;
                        stack.push((a, b));
                    }
                }
            }
            let inside = part.iter().filter(|&&(q, r)| over(q, r)).count();
            let beyond = part.len() - inside;
            let continues = ends_here || part.iter().any(|&(q, r)| touches(q, r));
            if inside > 0 && beyond as f64 <= share * part.len() as f64 && continues {
                for &(q, r) in &part {
                    if over(q, r) {
                        out[[k, q, r]] = true;
                        added += 1;
                    }
                }
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};

    /// A liver-like dome (110 HU, ±8 HU texture) in "lung" (−800 HU), narrowing upwards;
    /// a wide slab of liver-like "spleen" beside it in the upper slices; the network's mask
    /// misses the dome's top two slices.
    fn scene() -> (CtVolume, Mask) {
        let (nz, n) = (12, 64);
        let g = Geometry::axis_aligned([nz, n, n], [5.0, 1.5, 1.5], [0.0; 3]);
        let mut ct = Array3::<i16>::from_elem((nz, n, n), -800);
        let mut lab = Array3::<u8>::zeros((nz, n, n));
        for ((k, j, i), v) in ct.indexed_iter_mut() {
            let r = (k as f64 - 2.0).max(0.0) * 2.0;
            let radius = (22.0 - r).max(0.0);
            let d = ((j as f64 - 24.0).powi(2) + (i as f64 - 24.0).powi(2)).sqrt();
            let tex = (((k * 7 + j * 13 + i * 29) % 17) as i16) - 8;
            if d < radius {
                *v = 110 + tex;
                if k < 9 {
                    lab[[k, j, i]] = 1;
                }
            } else if k >= 8 && i >= 40 && (10..60).contains(&j) {
                // beside the dome and far beyond its footprint
                *v = 112 + tex;
            }
        }
        (Volume::new(ct, g.clone()), Volume::new(lab, g))
    }

    #[test]
    fn the_domes_missed_slices_join_and_the_organ_beside_it_does_not() {
        let (ct, mut mask) = scene();
        let r = complete_liver_ends(&mut mask, &ct, &CompleteOptions::default()).expect("measured");
        assert!(r.added > 0);
        // the dome's top slices: liver-like voxels inside its footprint, and how many are labelled
        let dome = |k: usize, j: usize, i: usize| ct.data[[k, j, i]] > 0 && i < 40;
        let top = mask.data.slice(s![9..12, .., ..]);
        let (mut inside, mut labelled, mut stray) = (0usize, 0usize, 0usize);
        for ((k, j, i), &l) in top.indexed_iter() {
            match (dome(k + 9, j, i), l == 1) {
                (true, true) => {
                    inside += 1;
                    labelled += 1
                }
                (true, false) => inside += 1,
                (false, true) => stray += 1,
                _ => {}
            }
        }
        assert!(labelled as f64 >= 0.6 * inside as f64, "{labelled} of the dome's {inside} top voxels labelled");
        assert_eq!(stray, 0, "nothing labelled above the mask outside the dome");
        // the slab beside it: none of it, except where it lies over the dome's own footprint
        let slab = mask.data.indexed_iter().filter(|&((k, j, i), &l)| l == 1 && k >= 8 && i >= 46 && j >= 10).count();
        assert_eq!(slab, 0, "the wide liver-like organ beside the dome stays out");
    }

    #[test]
    fn a_mask_on_another_grid_or_too_small_changes_nothing() {
        let (ct, mask) = scene();
        let mut other =
            Volume::new(Array3::<u8>::zeros((3, 4, 4)), Geometry::axis_aligned([3, 4, 4], [1.0; 3], [0.0; 3]));
        assert!(complete_liver_ends(&mut other, &ct, &CompleteOptions::default()).is_none());
        let mut empty = Volume::new(Array3::<u8>::zeros(mask.data.dim()), mask.geometry.clone());
        assert!(complete_liver_ends(&mut empty, &ct, &CompleteOptions::default()).is_none());
        assert!(empty.data.iter().all(|&l| l == 0));
    }
}
