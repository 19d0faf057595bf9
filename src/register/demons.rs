//! One pyramid level of Demons: Thirion's forces, symmetric (ESM) forces and the
//! diffeomorphic update, in one loop with the variant as a parameter.
//!
//! Per iteration: warp the moving image through the current field, compute the force
//! `u = (F − M)·g / (|g|² + (F − M)²/K)` per voxel (g = ∇F for Thirion, ½(∇F + ∇M∘φ) for the
//! symmetric and diffeomorphic variants; K bounds the step to `max_step_vox` voxels),
//! optionally smooth the update (fluid), add it (Thirion, symmetric) or compose its
//! exponential (diffeomorphic), then smooth the field (diffusion). Gradients and forces are
//! in millimetres so anisotropic voxels weigh right; the field is stored in voxels.

use super::kernels::{self, Shape};
use super::smooth::gaussian_smooth;
use super::Variant;
use rayon::prelude::*;

/// What a level needs beyond the images.
pub struct LevelSettings {
    pub variant: Variant,
    pub iterations: usize,
    /// Voxel size `[sx, sy, sz]` in mm, in field-component order.
    pub spacing_xyz: [f32; 3],
    pub sigma_diffusion_vox: [f64; 3],
    pub sigma_fluid_vox: [f64; 3],
    pub max_step_vox: f32,
    /// Stop when the mean squared difference fell by less than this fraction over the
    /// last 5 iterations.
    pub stop_relative: f32,
}

/// How a level went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LevelStats {
    pub shape_zyx: [usize; 3],
    pub iterations: usize,
    /// Mean squared intensity difference (masked) before the first and after the last update.
    pub mse_start: f64,
    pub mse_end: f64,
    pub seconds: f64,
}

/// Buffers reused across iterations (and levels, when they shrink).
#[derive(Default)]
pub struct Workspace {
    warped: Vec<f32>,
    update: Vec<f32>,
    scratch: Vec<f32>,
    composed: Vec<f32>,
}

/// Runs Demons on one level. `disp` (voxel units, `[z,y,x,3]`) is the starting field and
/// receives the result. `on_iteration(done)` returns `false` to cancel; then `None`.
#[allow(clippy::too_many_arguments)]
pub fn run_level(
    fixed: &[f32],
    moving: &[f32],
    mask: Option<&[u8]>,
    shape: Shape,
    disp: &mut Vec<f32>,
    s: &LevelSettings,
    ws: &mut Workspace,
    on_iteration: &mut dyn FnMut(usize) -> bool,
) -> Option<LevelStats> {
    let t0 = std::time::Instant::now();
    let n = fixed.len();
    ws.warped.resize(n, 0.0);
    ws.update.resize(n * 3, 0.0);
    let sp = s.spacing_xyz;
    // max over g of |diff·g| / (|g|² + diff²/K) is √K / 2: bound the step by the smallest
    // voxel side, so an update never moves more than `max_step_vox` voxels along any axis
    // and (at ≤ 0.5) its exponential needs no squaring.
    let min_spacing = sp[0].min(sp[1]).min(sp[2]);
    let k_norm = (2.0 * s.max_step_vox * min_spacing).powi(2);
    let mut history: Vec<f64> = Vec::with_capacity(s.iterations + 1);
    let mut done = 0;
    // Where each iteration's time goes, at debug level (for tuning only): the binary's logger
    // shows it with HEPAVIEW_PROFILE=1 or HEPAVIEW_LOG=debug.
    let profile = log::log_enabled!(log::Level::Debug);
    let mut tick = std::time::Instant::now();
    let mut lap = |what: &str| {
        if profile {
            log::debug!("  {what}: {:.3} s", tick.elapsed().as_secs_f64());
        }
        tick = std::time::Instant::now();
    };
    for it in 0..s.iterations {
        lap("(start)");
        kernels::warp_image_or_nan(moving, disp, shape, &mut ws.warped);
        lap("warp");
        let mse = forces(fixed, &ws.warped, mask, shape, s.variant, sp, k_norm, &mut ws.update);
        lap("forces");
        history.push(mse);
        if it >= 5 && s.stop_relative > 0.0 {
            let old = history[it - 5];
            if old > 0.0 && (old - mse) / old < s.stop_relative as f64 {
                break;
            }
        }
        if s.sigma_fluid_vox.iter().any(|&x| x > 0.1) {
            gaussian_smooth(&mut ws.update, shape, 3, s.sigma_fluid_vox, &mut ws.scratch);
        }
        match s.variant {
            Variant::Thirion | Variant::Symmetric => {
                disp.par_iter_mut().zip(ws.update.par_iter()).for_each(|(d, u)| *d += u);
            }
            Variant::Diffeomorphic => {
                kernels::exp_field(&mut ws.update, shape, &mut ws.scratch);
                lap("exp");
                ws.composed.resize(n * 3, 0.0);
                kernels::compose(disp, &ws.update, shape, &mut ws.composed);
                std::mem::swap(disp, &mut ws.composed);
                lap("compose");
            }
        }
        if s.sigma_diffusion_vox.iter().any(|&x| x > 0.1) {
            gaussian_smooth(disp, shape, 3, s.sigma_diffusion_vox, &mut ws.scratch);
        }
        lap("smooth");
        done = it + 1;
        if !on_iteration(done) {
            return None;
        }
    }
    kernels::warp_image_or_nan(moving, disp, shape, &mut ws.warped);
    let mse_end = masked_mse(fixed, &ws.warped, mask);
    Some(LevelStats {
        shape_zyx: shape,
        iterations: done,
        mse_start: history.first().copied().unwrap_or(mse_end),
        mse_end,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Writes the update (voxel units) for every voxel and returns the masked mean squared
/// difference. Deterministic: per-slab sums are added in slab order.
#[allow(clippy::too_many_arguments)]
fn forces(
    fixed: &[f32],
    warped: &[f32],
    mask: Option<&[u8]>,
    shape: Shape,
    variant: Variant,
    sp: [f32; 3],
    k_norm: f32,
    update: &mut [f32],
) -> f64 {
    let [nz, ny, nx] = shape;
    let plane = ny * nx;
    let inv_k = 1.0 / k_norm;
    let symmetric = !matches!(variant, Variant::Thirion);
    // central differences in mm (one-sided at the border)
    let step = |c: usize, n: usize, s: f32| -> (usize, usize, f32) {
        let lo = c.saturating_sub(1);
        let hi = (c + 1).min(n - 1);
        let h = (hi - lo).max(1) as f32 * s;
        (lo, hi, if hi > lo { 1.0 / h } else { 0.0 })
    };
    let sums: Vec<(f64, usize)> = update
        .par_chunks_mut(plane * 3)
        .enumerate()
        .map(|(k, out)| {
            let (k0, k1, hz) = step(k, nz, sp[2]);
            let mut sum = 0f64;
            let mut count = 0usize;
            for j in 0..ny {
                let (j0, j1, hy) = step(j, ny, sp[1]);
                let row = k * plane + j * nx;
                let rowm = mask.map(|m| &m[row..row + nx]);
                let o = &mut out[j * nx * 3..(j + 1) * nx * 3];
                let mut row_sum = 0f32;
                for i in 0..nx {
                    if rowm.is_some_and(|m| m[i] == 0) {
                        o[i * 3..i * 3 + 3].fill(0.0);
                        continue;
                    }
                    let (i0, i1, hx) = step(i, nx, sp[0]);
                    let p = row + i;
                    let diff = fixed[p] - warped[p];
                    if diff.is_nan() {
                        // mapped outside the moving image: no force
                        o[i * 3..i * 3 + 3].fill(0.0);
                        continue;
                    }
                    row_sum += diff * diff;
                    count += 1;
                    let grad = |img: &[f32]| {
                        [
                            (img[row + i1] - img[row + i0]) * hx,
                            (img[k * plane + j1 * nx + i] - img[k * plane + j0 * nx + i]) * hy,
                            (img[k1 * plane + j * nx + i] - img[k0 * plane + j * nx + i]) * hz,
                        ]
                    };
                    let mut g = grad(fixed);
                    if symmetric {
                        let gm = grad(warped);
                        // next to the moving image's edge a neighbour is NaN: fixed gradient alone
                        if gm.iter().all(|v| v.is_finite()) {
                            g = [0.5 * (g[0] + gm[0]), 0.5 * (g[1] + gm[1]), 0.5 * (g[2] + gm[2])];
                        }
                    }
                    let denom = g[0] * g[0] + g[1] * g[1] + g[2] * g[2] + diff * diff * inv_k;
                    if denom < 1e-9 || diff.abs() < 1e-3 {
                        o[i * 3..i * 3 + 3].fill(0.0);
                        continue;
                    }
                    let f = diff / denom;
                    // mm → voxels of each axis
                    o[i * 3] = f * g[0] / sp[0];
                    o[i * 3 + 1] = f * g[1] / sp[1];
                    o[i * 3 + 2] = f * g[2] / sp[2];
                }
                sum += row_sum as f64;
            }
            (sum, count)
        })
        .collect();
    let (sum, count) = sums.iter().fold((0f64, 0usize), |a, b| (a.0 + b.0, a.1 + b.1));
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

pub fn masked_mse(a: &[f32], b: &[f32], mask: Option<&[u8]>) -> f64 {
    let (s, c) = a
        .par_chunks(65536)
        .zip(b.par_chunks(65536))
        .enumerate()
        .map(|(ci, (a, b))| {
            let mut s = 0f64;
            let mut c = 0usize;
            for (t, (x, y)) in a.iter().zip(b).enumerate() {
                if y.is_finite() && mask.is_none_or(|m| m[ci * 65536 + t] != 0) {
                    s += ((x - y) * (x - y)) as f64;
                    c += 1;
                }
            }
            (s, c)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if c == 0 {
        0.0
    } else {
        s / c as f64
    }
}
