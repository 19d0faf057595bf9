//! Global translation by phase correlation (rustfft), run on a coarse level before Demons
//! so that a large shift (a different table position, a deep breath) does not have to be
//! found by local forces.

use super::kernels::Shape;
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// 3-D FFT in place over `[z, y, x]` complex data (forward or inverse, unnormalised).
fn fft3(buf: &mut [Complex32], shape: Shape, inverse: bool) {
    let [nz, ny, nx] = shape;
    let mut planner = FftPlanner::<f32>::new();
    let plan = |n: usize, p: &mut FftPlanner<f32>| if inverse { p.plan_fft_inverse(n) } else { p.plan_fft_forward(n) };
    // x: contiguous rows
    let fx = plan(nx, &mut planner);
    fx.process(buf);
    // y and z: gather each strided line into a contiguous buffer, transform, scatter back
    let mut line = vec![Complex32::default(); ny.max(nz)];
    let lines_y = (0..nz).flat_map(|k| (0..nx).map(move |i| k * ny * nx + i));
    fft_strided(buf, &mut line[..ny], nx, lines_y, plan(ny, &mut planner).as_ref());
    let lines_z = (0..ny).flat_map(|j| (0..nx).map(move |i| j * nx + i));
    fft_strided(buf, &mut line[..nz], ny * nx, lines_z, plan(nz, &mut planner).as_ref());
}

/// Transforms the lines of `buf` that start at each of `starts` with elements `stride` apart.
fn fft_strided(
    buf: &mut [Complex32],
    line: &mut [Complex32],
    stride: usize,
    starts: impl Iterator<Item = usize>,
    fft: &dyn rustfft::Fft<f32>,
) {
    for s in starts {
        for (t, v) in line.iter_mut().enumerate() {
            *v = buf[s + t * stride];
        }
        fft.process(line);
        for (t, v) in line.iter().enumerate() {
            buf[s + t * stride] = *v;
        }
    }
}

/// Hann-windowed, mean-removed copy as complex.
fn windowed(img: &[f32], shape: Shape) -> Vec<Complex32> {
    let [nz, ny, nx] = shape;
    let mean = img.iter().map(|&v| v as f64).sum::<f64>() / img.len().max(1) as f64;
    let hann = |t: usize, n: usize| {
        if n < 3 {
            1.0
        } else {
            0.5 - 0.5 * (2.0 * std::f32::consts::PI * t as f32 / (n - 1) as f32).cos()
        }
    };
    let wz: Vec<f32> = (0..nz).map(|k| hann(k, nz)).collect();
    let wy: Vec<f32> = (0..ny).map(|j| hann(j, ny)).collect();
    let wx: Vec<f32> = (0..nx).map(|i| hann(i, nx)).collect();
    let mut out = Vec::with_capacity(img.len());
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let v = (img[(k * ny + j) * nx + i] as f64 - mean) as f32 * wz[k] * wy[j] * wx[i];
                out.push(Complex32::new(v, 0.0));
            }
        }
    }
    out
}

/// The translation `t` (voxels, `[x, y, z]`) with `moving(p + t) ≈ fixed(p)`, and the
/// height of the correlation peak (1 = perfect match, near 0 = no clear answer).
pub fn phase_correlation(fixed: &[f32], moving: &[f32], shape: Shape) -> ([f64; 3], f32) {
    let [nz, ny, nx] = shape;
    let mut f = windowed(fixed, shape);
    let mut m = windowed(moving, shape);
    fft3(&mut f, shape, false);
    fft3(&mut m, shape, false);
    // conj(F)·M = |F|² e^{-iωt} when moving(q) = fixed(q − t): its inverse peaks at +t
    for (a, b) in f.iter_mut().zip(&m) {
        let c = a.conj() * b;
        let n = c.norm();
        *a = if n > 1e-12 { c / n } else { Complex32::default() };
    }
    fft3(&mut f, shape, true);
    let total = f.len() as f32;
    let (best, peak) =
        f.iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |acc, (i, c)| if c.re > acc.1 { (i, c.re) } else { acc });
    let (k, j, i) = (best / (ny * nx), (best / nx) % ny, best % nx);
    let at = |k: usize, j: usize, i: usize| f[(k * ny + j) * nx + i].re;
    // parabolic sub-voxel refinement along each axis (periodic neighbours)
    let refine = |c: usize, n: usize, get: &dyn Fn(usize) -> f32| -> f64 {
        if n < 3 {
            return c as f64;
        }
        let (l, m0, r) = (get((c + n - 1) % n), get(c), get((c + 1) % n));
        let den = l - 2.0 * m0 + r;
        let off = if den.abs() > 1e-12 { (0.5 * (l - r) / den).clamp(-0.5, 0.5) } else { 0.0 };
        c as f64 + off as f64
    };
    let wrap = |x: f64, n: usize| if x > n as f64 / 2.0 { x - n as f64 } else { x };
    let ti = wrap(refine(i, nx, &|t| at(k, j, t)), nx);
    let tj = wrap(refine(j, ny, &|t| at(k, t, i)), ny);
    let tk = wrap(refine(k, nz, &|t| at(t, j, i)), nz);
    ([ti, tj, tk], peak / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_known_integer_and_fractional_shift() {
        let shape = [24, 32, 40];
        let blob = |x: f32, y: f32, z: f32| {
            (-((x - 20.0).powi(2) / 30.0 + (y - 15.0).powi(2) / 20.0 + (z - 12.0).powi(2) / 10.0)).exp()
                + 0.5 * (-((x - 10.0).powi(2) + (y - 22.0).powi(2) + (z - 8.0).powi(2)) / 8.0).exp()
        };
        let t = [3.0f32, -2.0, 1.5];
        let mut fixed = Vec::new();
        let mut moving = Vec::new();
        for k in 0..24 {
            for j in 0..32 {
                for i in 0..40 {
                    let (x, y, z) = (i as f32, j as f32, k as f32);
                    fixed.push(blob(x, y, z));
                    // moving(p + t) = fixed(p)  ⇔  moving(q) = fixed(q − t)
                    moving.push(blob(x - t[0], y - t[1], z - t[2]));
                }
            }
        }
        let (found, peak) = phase_correlation(&fixed, &moving, shape);
        assert!(peak > 0.05, "peak {peak}");
        for a in 0..3 {
            assert!((found[a] - t[a] as f64).abs() < 0.35, "axis {a}: {found:?}");
        }
    }
}
