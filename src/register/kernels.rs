//! The hot loops of registration over flat `[z, y, x]` buffers on one grid, with
//! displacements in **voxel units** of that grid (`[di, dj, dk]` interleaved per voxel).
//!
//! Working in voxels inside the loops saves a matrix product per sample; the public API in
//! `warp.rs` converts to and from LPS millimetres at its boundary. Sampling outside the
//! grid replicates the border (zero-flux), so a field never pulls in made-up values.

use rayon::prelude::*;

/// Grid size `[nz, ny, nx]`.
pub type Shape = [usize; 3];

#[inline]
fn split(x: f32, n: usize) -> (usize, usize, f32) {
    // clamp into [0, n-1]; the pair (i0, i1) and weight of i1
    let x = x.clamp(0.0, (n - 1) as f32);
    let i0 = (x as usize).min(n.saturating_sub(2));
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, x - i0 as f32)
}

/// Trilinear sample of a scalar image at voxel position `(x, y, z)`, border replicated.
#[inline]
pub fn sample(img: &[f32], shape: Shape, x: f32, y: f32, z: f32) -> f32 {
    let [nz, ny, nx] = shape;
    let (i0, i1, fx) = split(x, nx);
    let (j0, j1, fy) = split(y, ny);
    let (k0, k1, fz) = split(z, nz);
    let at = |k: usize, j: usize, i: usize| img[(k * ny + j) * nx + i];
    let c00 = at(k0, j0, i0) + fx * (at(k0, j0, i1) - at(k0, j0, i0));
    let c01 = at(k0, j1, i0) + fx * (at(k0, j1, i1) - at(k0, j1, i0));
    let c10 = at(k1, j0, i0) + fx * (at(k1, j0, i1) - at(k1, j0, i0));
    let c11 = at(k1, j1, i0) + fx * (at(k1, j1, i1) - at(k1, j1, i0));
    let c0 = c00 + fy * (c01 - c00);
    let c1 = c10 + fy * (c11 - c10);
    c0 + fz * (c1 - c0)
}

/// Trilinear sample of a 3-vector field at voxel position `(x, y, z)`, border replicated.
#[inline]
pub fn sample3(f: &[f32], shape: Shape, x: f32, y: f32, z: f32) -> [f32; 3] {
    let [nz, ny, nx] = shape;
    let (i0, i1, fx) = split(x, nx);
    let (j0, j1, fy) = split(y, ny);
    let (k0, k1, fz) = split(z, nz);
    let w = [
        (1.0 - fx) * (1.0 - fy) * (1.0 - fz),
        fx * (1.0 - fy) * (1.0 - fz),
        (1.0 - fx) * fy * (1.0 - fz),
        fx * fy * (1.0 - fz),
        (1.0 - fx) * (1.0 - fy) * fz,
        fx * (1.0 - fy) * fz,
        (1.0 - fx) * fy * fz,
        fx * fy * fz,
    ];
    let idx = [
        (k0 * ny + j0) * nx + i0,
        (k0 * ny + j0) * nx + i1,
        (k0 * ny + j1) * nx + i0,
        (k0 * ny + j1) * nx + i1,
        (k1 * ny + j0) * nx + i0,
        (k1 * ny + j0) * nx + i1,
        (k1 * ny + j1) * nx + i0,
        (k1 * ny + j1) * nx + i1,
    ];
    let mut out = [0f32; 3];
    for (wi, &ii) in w.iter().zip(&idx) {
        let v = &f[ii * 3..ii * 3 + 3];
        out[0] += wi * v[0];
        out[1] += wi * v[1];
        out[2] += wi * v[2];
    }
    out
}

/// `out(p) = img(p + d(p))`.
pub fn warp_image(img: &[f32], disp: &[f32], shape: Shape, out: &mut [f32]) {
    let [_, ny, nx] = shape;
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = j * nx + i;
                let d = &disp[((k * ny) * nx + p) * 3..((k * ny) * nx + p) * 3 + 3];
                slab[p] = sample(img, shape, i as f32 + d[0], j as f32 + d[1], k as f32 + d[2]);
            }
        }
    });
}

/// As [`warp_image`], but NaN where `p + d(p)` lies more than half a voxel outside the
/// grid: Demons must not take forces from made-up border values (a field that pulls
/// across the top slice would otherwise keep sampling that slice and drift).
pub fn warp_image_or_nan(img: &[f32], disp: &[f32], shape: Shape, out: &mut [f32]) {
    let [nz, ny, nx] = shape;
    let (hx, hy, hz) = (nx as f32 - 0.5, ny as f32 - 0.5, nz as f32 - 0.5);
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = j * nx + i;
                let d = &disp[((k * ny) * nx + p) * 3..((k * ny) * nx + p) * 3 + 3];
                let (x, y, z) = (i as f32 + d[0], j as f32 + d[1], k as f32 + d[2]);
                slab[p] = if x >= -0.5 && y >= -0.5 && z >= -0.5 && x <= hx && y <= hy && z <= hz {
                    sample(img, shape, x, y, z)
                } else {
                    f32::NAN
                };
            }
        }
    });
}

/// `out(p) = e(p) + d(p + e(p))`: the field of `φ_d ∘ φ_e` where `φ(p) = p + field(p)`.
pub fn compose(d: &[f32], e: &[f32], shape: Shape, out: &mut [f32]) {
    let [_, ny, nx] = shape;
    out.par_chunks_mut(ny * nx * 3).enumerate().for_each(|(k, slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = (j * nx + i) * 3;
                let q = (k * ny * nx) * 3 + p;
                let ev = [e[q], e[q + 1], e[q + 2]];
                // zero updates (air, outside a mask) are common: no interpolation needed
                let dv = if ev == [0.0; 3] {
                    [d[q], d[q + 1], d[q + 2]]
                } else {
                    sample3(d, shape, i as f32 + ev[0], j as f32 + ev[1], k as f32 + ev[2])
                };
                slab[p] = ev[0] + dv[0];
                slab[p + 1] = ev[1] + dv[1];
                slab[p + 2] = ev[2] + dv[2];
            }
        }
    });
}

/// Largest displacement length in voxels.
pub fn max_norm(f: &[f32]) -> f32 {
    f.par_chunks(3 * 4096)
        .map(|c| c.chunks_exact(3).map(|v| v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).fold(0f32, f32::max))
        .reduce(|| 0.0, f32::max)
        .sqrt()
}

/// The exponential of a stationary velocity field by scaling and squaring (Vercauteren
/// et al. 2009): scale `v` down until no vector is longer than half a voxel, then compose
/// the small field with itself that many times. Result in `v`; `scratch` reused.
pub fn exp_field(v: &mut Vec<f32>, shape: Shape, scratch: &mut Vec<f32>) {
    let m = max_norm(v);
    if m <= 0.0 {
        return;
    }
    let n = (m / 0.5).log2().ceil().max(0.0) as i32;
    if n == 0 {
        return;
    }
    let s = 0.5f32.powi(n);
    v.par_iter_mut().for_each(|x| *x *= s);
    scratch.resize(v.len(), 0.0);
    for _ in 0..n {
        compose(v, v, shape, scratch);
        std::mem::swap(v, scratch);
    }
}

/// Central-difference Jacobian determinant of `p ↦ p + d(p)` (one-sided at the border).
/// With an orthonormal direction this equals the determinant in millimetres.
pub fn jacobian(d: &[f32], shape: Shape) -> Vec<f32> {
    let [nz, ny, nx] = shape;
    let mut out = vec![0f32; nz * ny * nx];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, slab)| {
        let at = |k: usize, j: usize, i: usize, c: usize| d[((k * ny + j) * nx + i) * 3 + c];
        let diff = |lo: usize, hi: usize| if hi > lo { 1.0 / (hi - lo) as f32 } else { 0.0 };
        let (k0, k1) = (k.saturating_sub(1), (k + 1).min(nz - 1));
        for j in 0..ny {
            let (j0, j1) = (j.saturating_sub(1), (j + 1).min(ny - 1));
            for i in 0..nx {
                let (i0, i1) = (i.saturating_sub(1), (i + 1).min(nx - 1));
                let mut m = [[0f32; 3]; 3]; // m[c][axis] = ∂d_c/∂p_axis
                for c in 0..3 {
                    m[c][0] = (at(k, j, i1, c) - at(k, j, i0, c)) * diff(i0, i1);
                    m[c][1] = (at(k, j1, i, c) - at(k, j0, i, c)) * diff(j0, j1);
                    m[c][2] = (at(k1, j, i, c) - at(k0, j, i, c)) * diff(k0, k1);
                    m[c][c] += 1.0;
                }
                slab[j * nx + i] = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                    - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: Shape) -> Vec<f32> {
        let [nz, ny, nx] = shape;
        (0..nz * ny * nx)
            .map(|n| (n % nx) as f32 * 2.0 + ((n / nx) % ny) as f32 * 3.0 + (n / (nx * ny)) as f32 * 5.0)
            .collect()
    }

    #[test]
    fn trilinear_is_exact_on_linear_images_inside() {
        let shape = [6, 7, 8];
        let img = ramp(shape);
        let v = sample(&img, shape, 2.25, 3.5, 1.75);
        assert!((v - (2.25 * 2.0 + 3.5 * 3.0 + 1.75 * 5.0)).abs() < 1e-4);
        // clamped outside
        assert_eq!(sample(&img, shape, -3.0, 0.0, 0.0), img[0]);
    }

    #[test]
    fn warp_by_a_constant_shift_moves_the_image() {
        let shape = [6, 7, 8];
        let img = ramp(shape);
        let disp: Vec<f32> = (0..img.len()).flat_map(|_| [1.0f32, 0.0, 0.5]).collect();
        let mut out = vec![0f32; img.len()];
        warp_image(&img, &disp, shape, &mut out);
        let p = (2 * 7 + 3) * 8 + 4;
        assert!((out[p] - (5.0 * 2.0 + 3.0 * 3.0 + 2.5 * 5.0)).abs() < 1e-4);
    }

    #[test]
    fn exp_of_a_constant_field_is_the_field_and_jacobian_one() {
        let shape = [5, 5, 5];
        let mut v: Vec<f32> = (0..125).flat_map(|_| [1.3f32, -0.7, 0.2]).collect();
        let mut scratch = Vec::new();
        exp_field(&mut v, shape, &mut scratch);
        for c in v.chunks(3) {
            assert!((c[0] - 1.3).abs() < 1e-5 && (c[1] + 0.7).abs() < 1e-5 && (c[2] - 0.2).abs() < 1e-5);
        }
        assert!(jacobian(&v, shape).iter().all(|j| (j - 1.0).abs() < 1e-5));
    }

    #[test]
    fn jacobian_of_a_linear_stretch() {
        // d = 0.1·p_x along x: J = 1.1
        let shape = [4, 4, 6];
        let d: Vec<f32> = (0..96).flat_map(|n| [0.1 * (n % 6) as f32, 0.0, 0.0]).collect();
        assert!(jacobian(&d, shape).iter().all(|j| (j - 1.1).abs() < 1e-5));
    }
}
