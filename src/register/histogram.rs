//! Histogram matching of the moving phase onto the fixed one before Demons.
//!
//! Contrast phases relate non-linearly (vessels 330 HU arterial vs 230 portal venous, liver
//! the other way), and Demons' sum of squared differences assumes equal intensities. As
//! ITK's `HistogramMatchingImageFilter` (which the SimpleITK anchor uses), quantiles above
//! the mean are matched piecewise linearly and below it the map is linear down to the
//! minima; unlike ITK, the source knot at the threshold is the same quantile as the
//! reference's mean rather than the source's own mean, which a non-linear remap moves.
//! Only voxels where both images have data count.

use rayon::prelude::*;

const BINS: usize = 4096;

/// The monotone piecewise-linear map found, as `(source, reference)` knots.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IntensityMap {
    pub knots: Vec<(f32, f32)>,
}

impl IntensityMap {
    pub fn apply(&self, v: f32) -> f32 {
        let k = &self.knots;
        if k.len() < 2 {
            return v;
        }
        let seg = match k.iter().position(|&(s, _)| v < s) {
            Some(0) => 0,
            Some(p) => p - 1,
            None => k.len() - 2,
        };
        let (s0, r0) = k[seg];
        let (s1, r1) = k[seg + 1];
        if s1 - s0 <= f32::EPSILON {
            return r0;
        }
        r0 + (v - s0) * (r1 - r0) / (s1 - s0)
    }
}

struct Stats {
    min: f32,
    max: f32,
    mean: f32,
}

fn stats(img: &[f32], valid: Option<&[u8]>) -> Option<Stats> {
    let (min, max, sum, n) = img
        .par_chunks(65536)
        .enumerate()
        .map(|(c, ch)| {
            let mut acc = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0usize);
            for (t, &v) in ch.iter().enumerate() {
                if valid.is_none_or(|m| m[c * 65536 + t] != 0) {
                    acc = (acc.0.min(v), acc.1.max(v), acc.2 + v as f64, acc.3 + 1);
                }
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY, 0f64, 0usize), |a, b| {
            (a.0.min(b.0), a.1.max(b.1), a.2 + b.2, a.3 + b.3)
        });
    (n > 0).then(|| Stats { min, max, mean: (sum / n as f64) as f32 })
}

/// A fine histogram of the valid voxels over `[min, max]`.
struct Histogram {
    counts: Vec<u64>,
    min: f32,
    width: f32,
    total: u64,
}

impl Histogram {
    fn new(img: &[f32], valid: Option<&[u8]>, st: &Stats) -> Histogram {
        let width = ((st.max - st.min) / BINS as f32).max(1e-6);
        let counts = img
            .par_chunks(65536)
            .enumerate()
            .map(|(c, ch)| {
                let mut h = vec![0u64; BINS];
                for (t, &v) in ch.iter().enumerate() {
                    if valid.is_none_or(|m| m[c * 65536 + t] != 0) {
                        h[(((v - st.min) / width) as usize).min(BINS - 1)] += 1;
                    }
                }
                h
            })
            .reduce(
                || vec![0u64; BINS],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let total = counts.iter().sum();
        Histogram { counts, min: st.min, width, total }
    }

    /// Fraction of voxels below `v`.
    fn cdf(&self, v: f32) -> f64 {
        let pos = ((v - self.min) / self.width).max(0.0);
        let b = (pos as usize).min(BINS);
        let below: u64 = self.counts[..b].iter().sum();
        let part = if b < BINS { self.counts[b] as f64 * (pos - b as f32).min(1.0) as f64 } else { 0.0 };
        (below as f64 + part) / self.total.max(1) as f64
    }

    /// The value below which a fraction `q` of voxels lies (linear within a bin).
    fn quantile(&self, q: f64) -> f32 {
        let target = q * self.total as f64;
        let mut cum = 0f64;
        for (b, &h) in self.counts.iter().enumerate() {
            if h > 0 && cum + h as f64 >= target {
                let frac = ((target - cum) / h as f64).clamp(0.0, 1.0);
                return self.min + (b as f32 + frac as f32) * self.width;
            }
            cum += h as f64;
        }
        self.min + BINS as f32 * self.width
    }
}

/// The map taking `source` intensities to `reference` ones: the minima, the reference's
/// mean (the same quantile in the source, so a non-linear remap does not bend the knot),
/// `points` quantiles evenly spread above it, and the maxima. `None` when either image has
/// no valid voxel or is constant.
pub fn histogram_map(source: &[f32], reference: &[f32], valid: Option<&[u8]>, points: usize) -> Option<IntensityMap> {
    let s = stats(source, valid)?;
    let r = stats(reference, valid)?;
    if s.max <= s.min || r.max <= r.min {
        return None;
    }
    let hs = Histogram::new(source, valid, &s);
    let hr = Histogram::new(reference, valid, &r);
    let q0 = hr.cdf(r.mean);
    let mut knots = vec![(s.min, r.min)];
    for p in 0..=points {
        let q = q0 + (1.0 - q0) * p as f64 / (points + 1) as f64;
        knots.push((hs.quantile(q), hr.quantile(q)));
    }
    knots.push((s.max, r.max));
    // keep the source knots strictly increasing (ties from empty bins)
    knots.dedup_by(|b, a| b.0 <= a.0);
    Some(IntensityMap { knots })
}

/// Applies `map` to every voxel.
pub fn apply_map(img: &mut [f32], map: &IntensityMap) {
    img.par_iter_mut().for_each(|v| *v = map.apply(*v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monotone_remap_is_undone() {
        // reference: a spread of values; source = a monotone non-linear remap of it
        let reference: Vec<f32> = (0..200_000).map(|i| ((i * 7919) % 1000) as f32 - 200.0).collect();
        let remap = |v: f32| if v < 100.0 { 0.7 * v } else { 70.0 + 1.6 * (v - 100.0) };
        let source: Vec<f32> = reference.iter().map(|&v| remap(v)).collect();
        let map = histogram_map(&source, &reference, None, 15).unwrap();
        // above the mean (300) the quantiles carry the non-linear map
        for &v in &[350.0f32, 400.0, 550.0, 700.0] {
            let back = map.apply(remap(v));
            assert!((back - v).abs() < 8.0, "{v} -> {} -> {back}", remap(v));
        }
        // below it the map is linear between the minima and the means: ends exact, order kept
        assert!((map.apply(remap(-200.0)) + 200.0).abs() < 1.0);
        let mut last = f32::NEG_INFINITY;
        for v in (-200..800).step_by(10) {
            let back = map.apply(remap(v as f32));
            assert!(back >= last);
            last = back;
        }
    }

    #[test]
    fn constant_images_give_no_map() {
        assert!(histogram_map(&[1.0; 10], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], None, 7).is_none());
    }
}
