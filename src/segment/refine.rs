//! Liver edge refinement at the study's own resolution. The network sees 4 mm pixels, so
//! its liver edge is uncertain by half of one; on a finer study grid (0.7–1 mm pixels) the
//! last millimetres are decided by the study's own parenchyma: the liver grows, within
//! axial slices and by at most `reach_mm`, into neighbouring voxels that look like it.
//! Statistics come from the study itself (median and MAD of the mask's interior), so no
//! scanner's HU are built in. It only grows: on `dcmqi-liver` the network's edge lay
//! about 2.5 mm inside the drawn outline all round, and peeling edge voxels below the
//! band took partial-volume voxels that outlines include (worse Dice on `ts-abdomen`).

use ndarray::Array3;

use crate::volume::{CtVolume, Mask};

/// How far and how strictly edges move.
#[derive(Clone, Copy, Debug)]
pub struct RefineOptions {
    /// Largest move of the edge, mm (half a model pixel: a study with pixels coarser than
    /// that is left as it is).
    pub reach_mm: f64,
    /// Parenchyma: within this many robust standard deviations of the liver's median.
    pub band_sigmas: f32,
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions { reach_mm: 2.0, band_sigmas: 2.5 }
    }
}

/// What moved, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RefineReport {
    pub median_hu: f32,
    pub sigma_hu: f32,
    pub grown: usize,
}

const N4: [(isize, isize); 4] = [(0, 1), (0, -1), (1, 0), (-1, 0)];

/// Refines label 1 (liver) of `mask` against `ct` on the same grid; tumour (2) is left as
/// it is. Returns `None` (and changes nothing) when the grids differ, the study's pixels
/// are coarser than `reach_mm`, or the liver is too small to measure.
pub fn refine_liver_edge(mask: &mut Mask, ct: &CtVolume, opts: &RefineOptions) -> Option<RefineReport> {
    let sp = ct.geometry.spacing_mm;
    let steps = (opts.reach_mm / sp[1].min(sp[2]).max(1e-3)).floor() as usize;
    if mask.data.dim() != ct.data.dim() || steps == 0 {
        return None;
    }
    let (nz, ny, nx) = mask.data.dim();
    let hu = &ct.data;
    // 3 × 3 in-plane mean: thin-slice CT is noisy voxel by voxel
    let smooth = |k: usize, j: usize, i: usize| -> f32 {
        let (j0, j1, i0, i1) = (j.saturating_sub(1), (j + 1).min(ny - 1), i.saturating_sub(1), (i + 1).min(nx - 1));
        let mut s = 0f32;
        for jj in j0..=j1 {
            for ii in i0..=i1 {
                s += hu[[k, jj, ii]] as f32;
            }
        }
        s / ((j1 - j0 + 1) * (i1 - i0 + 1)) as f32
    };
    let lab = &mask.data;
    let neighbours = |k: usize, j: usize, i: usize| {
        N4.iter().filter_map(move |&(dj, di)| {
            let (q, r) = (j as isize + dj, i as isize + di);
            (q >= 0 && r >= 0 && (q as usize) < ny && (r as usize) < nx).then_some((k, q as usize, r as usize))
        })
    };
    // interior liver: every in-plane neighbour liver or tumour too; sampled for speed
    let mut values: Vec<f32> = Vec::new();
    let stride = ((nz * ny * nx) / 2_000_000).max(1);
    for (n, ((k, j, i), &v)) in lab.indexed_iter().enumerate() {
        if v == 1 && n % stride == 0 && neighbours(k, j, i).all(|p| lab[p] > 0) {
            values.push(smooth(k, j, i));
        }
    }
    if values.len() < 200 {
        return None;
    }
    let median = quantile(&mut values, 0.5);
    let mut dev: Vec<f32> = values.iter().map(|v| (v - median).abs()).collect();
    let sigma = (1.4826 * quantile(&mut dev, 0.5)).max(5.0);
    let (lo, hi) = (median - opts.band_sigmas * sigma, median + opts.band_sigmas * sigma);
    // grow: background beside the liver that looks like its parenchyma, from the inside out
    let mut out: Array3<u8> = lab.clone();
    let mut report = RefineReport { median_hu: median, sigma_hu: sigma, ..Default::default() };
    let mut frontier: Vec<(usize, usize, usize)> = Vec::new();
    for ((k, j, i), &v) in lab.indexed_iter() {
        if v == 0 && neighbours(k, j, i).any(|p| lab[p] == 1) {
            frontier.push((k, j, i));
        }
    }
    for _ in 0..steps {
        frontier.sort_unstable();
        frontier.dedup();
        let grow: Vec<_> = frontier
            .iter()
            .copied()
            .filter(|&(k, j, i)| out[[k, j, i]] == 0 && lab[[k, j, i]] == 0 && {
                let s = smooth(k, j, i);
                s >= lo && s <= hi
            })
            .collect();
        if grow.is_empty() {
            break;
        }
        for &p in &grow {
            out[p] = 1;
        }
        report.grown += grow.len();
        frontier = grow.iter().flat_map(|&(k, j, i)| neighbours(k, j, i)).filter(|&p| out[p] == 0 && lab[p] == 0).collect();
    }
    mask.data = out;
    Some(report)
}

fn quantile(v: &mut [f32], q: f64) -> f32 {
    let n = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(n, |a, b| a.total_cmp(b));
    *x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// A liver disc (60 HU, noisy) in fat, a kidney-bright disc against it, on 0.8 mm pixels.
    fn scene() -> (CtVolume, Array3<bool>) {
        let (nz, n) = (3, 120);
        let g = Geometry { shape: [nz, n, n], spacing_mm: [2.0, 0.8, 0.8], origin_mm: [0.0; 3], direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] };
        let mut rng = super::super::Rng::new(5);
        let mut hu = Array3::<i16>::zeros((nz, n, n));
        let mut liver = Array3::<bool>::from_elem((nz, n, n), false);
        for ((k, j, i), v) in hu.indexed_iter_mut() {
            let (y, x) = (j as f32 - 55.0, i as f32 - 55.0);
            let (ky, kx) = (j as f32 - 55.0, i as f32 - 100.0);
            let base = if y * y + x * x <= 35.0 * 35.0 {
                liver[[k, j, i]] = true;
                60.0
            } else if ky * ky + kx * kx <= 12.0 * 12.0 {
                170.0
            } else {
                -100.0
            };
            *v = (base + 12.0 * rng.normal()).round() as i16;
        }
        (CtVolume::new(hu, g), liver)
    }

    #[test]
    fn grows_an_undersegmented_liver_to_its_edge_and_no_further() {
        let (ct, liver) = scene();
        // the network's edge 3 px (2.4 mm) inside the true one, a tumour voxel on it
        let mut data = Array3::<u8>::zeros(liver.dim());
        for ((k, j, i), v) in data.indexed_iter_mut() {
            let (y, x) = (j as f32 - 55.0, i as f32 - 55.0);
            *v = (y * y + x * x <= 32.0 * 32.0) as u8;
            if k == 1 && j == 55 && i == 23 {
                *v = 2;
            }
        }
        let mut mask = Mask::new(data.clone(), ct.geometry.clone());
        let r = refine_liver_edge(&mut mask, &ct, &RefineOptions::default()).expect("refined");
        assert!((r.median_hu - 60.0).abs() < 5.0, "{r:?}");
        assert!(r.grown > 0);
        let mut outside = 0;
        for ((p, &after), &before) in mask.data.indexed_iter().zip(data.iter()) {
            if after != before {
                assert_eq!((before, after), (0, 1), "only background becomes liver, at {p:?}");
                outside += !liver[p] as usize;
            }
        }
        assert_eq!(outside, 0, "grew past the liver's edge into fat or the kidney");
        assert_eq!(mask.data[[1, 55, 23]], 2, "tumour kept");
        let dice = |m: &Array3<u8>| {
            let (mut both, mut a, mut b) = (0, 0, 0);
            for (&v, &t) in m.iter().zip(liver.iter()) {
                both += (v > 0 && t) as usize;
                a += (v > 0) as usize;
                b += t as usize;
            }
            2.0 * both as f64 / (a + b) as f64
        };
        assert!(dice(&mask.data) > dice(&data) + 0.02, "{} → {}", dice(&data), dice(&mask.data));
    }

    #[test]
    fn leaves_coarse_studies_and_other_grids_alone() {
        let (ct, liver) = scene();
        let mut mask = Mask::new(liver.mapv(|l| l as u8), ct.geometry.clone());
        let coarse = RefineOptions { reach_mm: 0.5, ..RefineOptions::default() };
        assert_eq!(refine_liver_edge(&mut mask, &ct, &coarse), None);
        let mut other = Mask::new(Array3::<u8>::ones((2, 4, 4)), ct.geometry.clone());
        assert_eq!(refine_liver_edge(&mut other, &ct, &RefineOptions::default()), None);
        assert!(other.data.iter().all(|&v| v == 1));
    }
}
