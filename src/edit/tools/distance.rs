//! Exact Euclidean distance transforms in mm (Felzenszwalb & Huttenlocher's lower
//! envelope of parabolas, one pass per axis), for interpolation and morphology. Distances
//! are between voxel centres through the axis spacings, i.e. exact for grids whose axes
//! are perpendicular (all CT grids but gantry-tilted ones, where they approximate).

use ndarray::{Array2, Array3, ArrayViewMut1, Axis};
use rayon::prelude::*;

/// Stands for "no feature on this line".
pub const FAR: f32 = f32::INFINITY;

/// Squared distance along one line: `f` holds 0 at features and [`FAR`] elsewhere on
/// entry (or squared distances from an earlier pass); on exit the squared distance in mm²
/// combining both. Scratch is reused between lines to keep allocation out of the loop.
fn pass_1d(mut line: ArrayViewMut1<f32>, spacing: f64, scratch: &mut Scratch) {
    let n = line.len();
    scratch.f.clear();
    scratch.f.extend(line.iter().map(|&v| v as f64));
    let f = &scratch.f;
    let v = &mut scratch.v;
    let z = &mut scratch.z;
    v.clear();
    z.clear();
    for q in 0..n {
        if !f[q].is_finite() {
            continue;
        }
        let xq = q as f64 * spacing;
        loop {
            match v.last() {
                None => {
                    v.push(q);
                    z.push(f64::NEG_INFINITY);
                    break;
                }
                Some(&p) => {
                    let xp = p as f64 * spacing;
                    let s = ((f[q] + xq * xq) - (f[p] + xp * xp)) / (2.0 * (xq - xp));
                    if s <= *z.last().unwrap_or(&f64::NEG_INFINITY) {
                        v.pop();
                        z.pop();
                        if v.is_empty() {
                            v.push(q);
                            z.push(f64::NEG_INFINITY);
                            break;
                        }
                    } else {
                        v.push(q);
                        z.push(s);
                        break;
                    }
                }
            }
        }
    }
    if v.is_empty() {
        line.fill(FAR);
        return;
    }
    let mut k = 0;
    for (p, out) in line.iter_mut().enumerate() {
        let xp = p as f64 * spacing;
        while k + 1 < v.len() && z[k + 1] < xp {
            k += 1;
        }
        let xv = v[k] as f64 * spacing;
        *out = ((xp - xv) * (xp - xv) + f[v[k]]) as f32;
    }
}

#[derive(Default)]
struct Scratch {
    f: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
}

/// Squared distance (mm²) from every pixel to the nearest pixel where `feature` is true,
/// for a slice with row spacing `sv` and column spacing `su`. [`FAR`] when there is none.
pub fn distance_sq_2d(feature: &Array2<bool>, sv: f64, su: f64) -> Array2<f32> {
    let mut d = feature.mapv(|b| if b { 0.0 } else { FAR });
    let mut s = Scratch::default();
    for row in d.axis_iter_mut(Axis(0)) {
        pass_1d(row, su, &mut s);
    }
    for col in d.axis_iter_mut(Axis(1)) {
        pass_1d(col, sv, &mut s);
    }
    d
}

/// Squared distance (mm²) from every voxel to the nearest voxel where `feature` is true,
/// spacing `[sz, sy, sx]`. Parallel over lines; the same result on any thread count.
pub fn distance_sq_3d(feature: &Array3<bool>, spacing: [f64; 3]) -> Array3<f32> {
    let mut d = feature.mapv(|b| if b { 0.0 } else { FAR });
    // x lines, then y lines, then z lines; each pass is independent per line
    d.axis_iter_mut(Axis(0)).into_par_iter().for_each_init(Scratch::default, |s, mut slab| {
        for row in slab.axis_iter_mut(Axis(0)) {
            pass_1d(row, spacing[2], s);
        }
        for col in slab.axis_iter_mut(Axis(1)) {
            pass_1d(col, spacing[1], s);
        }
    });
    d.axis_iter_mut(Axis(1)).into_par_iter().for_each_init(Scratch::default, |s, mut plane| {
        // plane is [z, x]; pass along z for every x
        for col in plane.axis_iter_mut(Axis(1)) {
            pass_1d(col, spacing[0], s);
        }
    });
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force_anisotropic() {
        let shape = (5, 7, 6);
        let feature = Array3::from_shape_fn(shape, |(k, j, i)| (k * 7 + j * 3 + i * 5) % 11 == 0 && k != 2);
        let sp = [2.5, 0.8, 1.3];
        let d = distance_sq_3d(&feature, sp);
        for ((k, j, i), &got) in d.indexed_iter() {
            let mut best = f64::INFINITY;
            for ((a, b, c), &f) in feature.indexed_iter() {
                if f {
                    let dz = (k as f64 - a as f64) * sp[0];
                    let dy = (j as f64 - b as f64) * sp[1];
                    let dx = (i as f64 - c as f64) * sp[2];
                    best = best.min(dz * dz + dy * dy + dx * dx);
                }
            }
            assert!((got as f64 - best).abs() < 1e-3, "at {k},{j},{i}: {got} vs {best}");
        }
        let f2 = Array2::from_shape_fn((6, 9), |(j, i)| j == 2 && i == 7);
        let d2 = distance_sq_2d(&f2, 2.0, 0.5);
        assert_eq!(d2[[2, 7]], 0.0);
        assert!((d2[[0, 0]] - (16.0 + 12.25)).abs() < 1e-4);
        let none = distance_sq_2d(&Array2::from_elem((3, 3), false), 1.0, 1.0);
        assert!(none.iter().all(|v| v.is_infinite()));
    }
}
