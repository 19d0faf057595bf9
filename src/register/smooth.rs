//! Separable Gaussian smoothing of `[z, y, x, c]` f32 buffers (images with `c = 1`,
//! displacement fields with `c = 3`), the regulariser Demons runs every iteration.
//!
//! Each pass reads one buffer and writes another, so the caller hands in a scratch buffer
//! of the same length that is reused across iterations (no allocation per iteration).
//! Every inner loop is an `axpy` over a contiguous run of `nx · c` floats, which the
//! compiler vectorises; the z pass works one row at a time across slices so the rows it
//! reads stay in cache. Edges replicate the border value (zero-flux, as ITK's operator).

use rayon::prelude::*;

/// Gaussian taps for `sigma_vox` voxels, truncated at 3σ (at most `max_radius`), normalised
/// to sum 1. `sigma_vox <= 0.1` gives the identity `[1]`.
pub fn gaussian_kernel(sigma_vox: f64, max_radius: usize) -> Vec<f32> {
    if sigma_vox <= 0.1 {
        return vec![1.0];
    }
    let r = ((3.0 * sigma_vox).ceil() as usize).clamp(1, max_radius.max(1));
    let w: Vec<f64> =
        (-(r as isize)..=r as isize).map(|t| (-(t * t) as f64 / (2.0 * sigma_vox * sigma_vox)).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|x| (x / s) as f32).collect()
}

/// Pointer wrapper so disjoint rows of one buffer can be written from several threads.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// Smooths `data` (`[nz, ny, nx, ncomp]`, row-major) in place with a Gaussian of
/// `sigma_vox = [σz, σy, σx]` voxels. `scratch` is resized to `data.len()` if needed.
pub fn gaussian_smooth(data: &mut [f32], shape: [usize; 3], ncomp: usize, sigma_vox: [f64; 3], scratch: &mut Vec<f32>) {
    let [nz, ny, nx] = shape;
    let row = nx * ncomp;
    let slab = ny * row;
    assert_eq!(data.len(), nz * slab, "gaussian_smooth: buffer length does not match its shape");
    if data.is_empty() {
        return;
    }
    scratch.resize(data.len(), 0.0);
    let kz = gaussian_kernel(sigma_vox[0], nz.saturating_sub(1).max(1) * 4);
    let ky = gaussian_kernel(sigma_vox[1], ny.saturating_sub(1).max(1) * 4);
    let kx = gaussian_kernel(sigma_vox[2], nx.saturating_sub(1).max(1) * 4);

    // x: data → scratch, one padded row copy per row.
    if kx.len() > 1 {
        let r = kx.len() / 2;
        scratch.par_chunks_mut(slab).zip(data.par_chunks(slab)).for_each_init(
            || vec![0f32; (nx + 2 * r) * ncomp],
            |pad, (out_slab, in_slab)| {
                for (out, inp) in out_slab.chunks_exact_mut(row).zip(in_slab.chunks_exact(row)) {
                    for t in 0..r {
                        pad[t * ncomp..(t + 1) * ncomp].copy_from_slice(&inp[..ncomp]);
                        let e = (r + nx + t) * ncomp;
                        pad[e..e + ncomp].copy_from_slice(&inp[row - ncomp..]);
                    }
                    pad[r * ncomp..(r + nx) * ncomp].copy_from_slice(inp);
                    axpy_taps(out, pad, &kx, ncomp);
                }
            },
        );
    } else {
        scratch.copy_from_slice(data);
    }

    // y: scratch → data, within each slab.
    if ky.len() > 1 {
        let r = ky.len() as isize / 2;
        data.par_chunks_mut(slab).zip(scratch.par_chunks(slab)).for_each(|(out_slab, in_slab)| {
            for (j, out) in out_slab.chunks_exact_mut(row).enumerate() {
                out.fill(0.0);
                for (t, &w) in ky.iter().enumerate() {
                    let jj = (j as isize + t as isize - r).clamp(0, ny as isize - 1) as usize;
                    axpy(out, &in_slab[jj * row..(jj + 1) * row], w);
                }
            }
        });
    } else {
        data.copy_from_slice(scratch);
    }

    // z: data → scratch, one row index at a time across all slices, then copy back.
    if kz.len() > 1 {
        let r = kz.len() as isize / 2;
        let out_ptr = SyncPtr(scratch.as_mut_ptr());
        let input: &[f32] = data;
        (0..ny).into_par_iter().for_each(|j| {
            // Moves the Send wrapper into the closure whole; without it edition 2021 captures
            // only its raw-pointer field, which is not Send.
            #[allow(clippy::redundant_locals)]
            let out_ptr = out_ptr;
            for k in 0..nz {
                // SAFETY: each (k, j) row is written by exactly one task (the one owning j),
                // and `scratch` is not read during this pass.
                let out = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(k * slab + j * row), row) };
                out.fill(0.0);
                for (t, &w) in kz.iter().enumerate() {
                    let kk = (k as isize + t as isize - r).clamp(0, nz as isize - 1) as usize;
                    axpy(out, &input[kk * slab + j * row..kk * slab + (j + 1) * row], w);
                }
            }
        });
        data.copy_from_slice(scratch);
    }
}

#[inline]
fn axpy(out: &mut [f32], x: &[f32], w: f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// `out[i] = Σ_t w[t] · pad[i + t·ncomp]` for a padded row.
#[inline]
fn axpy_taps(out: &mut [f32], pad: &[f32], w: &[f32], ncomp: usize) {
    let n = out.len();
    out.fill(0.0);
    for (t, &wt) in w.iter().enumerate() {
        axpy(out, &pad[t * ncomp..t * ncomp + n], wt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sums_to_one_and_is_symmetric() {
        let k = gaussian_kernel(2.3, 100);
        assert_eq!(k.len(), 2 * 7 + 1);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        for t in 0..k.len() / 2 {
            assert_eq!(k[t], k[k.len() - 1 - t]);
        }
        assert_eq!(gaussian_kernel(0.0, 10), vec![1.0]);
    }

    #[test]
    fn smoothing_keeps_constants_and_linear_ramps_inside() {
        let shape = [9, 10, 11];
        let n = 9 * 10 * 11;
        let mut c = vec![3.5f32; n * 3];
        let mut scratch = Vec::new();
        gaussian_smooth(&mut c, shape, 3, [1.0, 1.5, 2.0], &mut scratch);
        assert!(c.iter().all(|v| (v - 3.5).abs() < 1e-5));

        // A ramp in x stays a ramp away from the edges (the kernel is symmetric).
        let mut ramp: Vec<f32> = (0..n).map(|idx| (idx % 11) as f32).collect();
        gaussian_smooth(&mut ramp, shape, 1, [1.0, 1.0, 1.0], &mut scratch);
        for k in 0..9 {
            for j in 0..10 {
                for i in 3..8 {
                    assert!((ramp[(k * 10 + j) * 11 + i] - i as f32).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn impulse_spreads_as_a_separable_gaussian() {
        let shape = [15, 15, 15];
        let mut d = vec![0f32; 15 * 15 * 15];
        d[(7 * 15 + 7) * 15 + 7] = 1.0;
        let mut scratch = Vec::new();
        gaussian_smooth(&mut d, shape, 1, [1.0, 2.0, 1.5], &mut scratch);
        let (kz, ky, kx) = (gaussian_kernel(1.0, 99), gaussian_kernel(2.0, 99), gaussian_kernel(1.5, 99));
        let at = |k: usize, j: usize, i: usize| d[(k * 15 + j) * 15 + i];
        let expect =
            |dz: usize, dy: usize, dx: usize| kz[kz.len() / 2 + dz] * ky[ky.len() / 2 + dy] * kx[kx.len() / 2 + dx];
        assert!((at(7, 7, 7) - expect(0, 0, 0)).abs() < 1e-6);
        assert!((at(8, 10, 9) - expect(1, 3, 2)).abs() < 1e-6);
        assert!((d.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
