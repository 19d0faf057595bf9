//! One optimiser step: the NCC metric's Gauss–Newton normal equations in the update
//! parameters (rotation vector or matrix increment, then translation), their damped
//! solution, and the transform moved by it.

use rayon::prelude::*;

use super::level::LevelImage;
use super::{AffineTransform, Model, IDENTITY};
use crate::volume::{mat_mul, mat_vec, Lps};

/// The moving values through `t` fitted to the fixed ones by an intensity line
/// (`m ≈ a·f + b`, least squares; the contrast differs between visits), and the
/// Gauss–Newton normal equations of that fit in the update parameters: rotation vector ω
/// (rigid) or matrix increment (affine, row-major), then translation. Returns NCC,
/// `H = JᵀJ` (row-major) and `g = Jᵀ(a·f + b − m)`. Points mapped outside the moving image
/// are left out.
pub(super) struct Normal {
    pub(super) ncc: f64,
    pub(super) h: Vec<f64>,
    pub(super) g: Vec<f64>,
    pub(super) points: usize,
}

fn n_params(model: Model) -> usize {
    if model == Model::Rigid {
        6
    } else {
        12
    }
}

/// ∂m/∂p at one point (`gm` = world gradient of the moving image, `r` = x − centre).
#[inline]
fn jacobian_row(model: Model, rt: &[[f64; 3]; 3], gm: [f64; 3], r: [f64; 3], row: &mut [f64; 12]) {
    let np = n_params(model);
    match model {
        Model::Rigid => {
            // y = R (I + [ω]×) r + …  ⇒  ∂m/∂ω = r × (Rᵀ ∇m)
            let q = mat_vec(rt, gm);
            row[0] = r[1] * q[2] - r[2] * q[1];
            row[1] = r[2] * q[0] - r[0] * q[2];
            row[2] = r[0] * q[1] - r[1] * q[0];
        }
        Model::Affine => {
            for a in 0..3 {
                for b in 0..3 {
                    row[3 * a + b] = gm[a] * r[b];
                }
            }
        }
    }
    row[np - 3..np].copy_from_slice(&gm);
}

pub(super) fn normal_equations(
    t: &AffineTransform,
    pts: &[Lps],
    fvals: &[f32],
    m: &LevelImage,
    model: Model,
) -> Option<Normal> {
    let samples: Vec<Option<(f32, [f64; 3])>> = pts.par_iter().map(|&x| m.sample_grad(t.apply(x))).collect();
    let (mut n, mut sf, mut sm) = (0usize, 0f64, 0f64);
    for (s, &f) in samples.iter().zip(fvals) {
        if let Some((v, _)) = s {
            n += 1;
            sf += f as f64;
            sm += *v as f64;
        }
    }
    if n < 100 {
        return None;
    }
    let (mf, mm) = (sf / n as f64, sm / n as f64);
    let (mut sff, mut smm, mut sfm) = (0f64, 0f64, 0f64);
    for (s, &f) in samples.iter().zip(fvals) {
        if let Some((v, _)) = s {
            let (a, b) = (f as f64 - mf, *v as f64 - mm);
            sff += a * a;
            smm += b * b;
            sfm += a * b;
        }
    }
    if sff <= 0.0 || smm <= 0.0 {
        return None;
    }
    let ncc = sfm / (sff * smm).sqrt();
    let slope = sfm / sff;
    let np = n_params(model);
    let rt = transpose(&t.matrix);
    // Sums over fixed chunks, added in order: rayon's fold splits where work stealing
    // happens to, so its float sums (and the affine, in the last digits) changed from run
    // to run; the same inputs must give the same bits.
    const CHUNK: usize = 4096;
    let partial: Vec<(Vec<f64>, Vec<f64>)> = samples
        .par_chunks(CHUNK)
        .zip(pts.par_chunks(CHUNK))
        .zip(fvals.par_chunks(CHUNK))
        .map(|((ss, xs), fs)| {
            let (mut h, mut g) = (vec![0f64; np * np], vec![0f64; np]);
            for ((s, &x), &f) in ss.iter().zip(xs).zip(fs) {
                if let Some((v, gm)) = s {
                    let target = mm + slope * (f as f64 - mf);
                    let res = target - *v as f64;
                    let r = [x[0] - t.centre_mm[0], x[1] - t.centre_mm[1], x[2] - t.centre_mm[2]];
                    let mut row = [0f64; 12];
                    jacobian_row(model, &rt, *gm, r, &mut row);
                    for a in 0..np {
                        g[a] += row[a] * res;
                        for b in a..np {
                            h[a * np + b] += row[a] * row[b];
                        }
                    }
                }
            }
            (h, g)
        })
        .collect();
    let (mut h, mut g) = (vec![0f64; np * np], vec![0f64; np]);
    for (h2, g2) in &partial {
        h.iter_mut().zip(h2).for_each(|(a, b)| *a += b);
        g.iter_mut().zip(g2).for_each(|(a, b)| *a += b);
    }
    for a in 0..np {
        for b in 0..a {
            h[a * np + b] = h[b * np + a];
        }
    }
    Some(Normal { ncc, h, g, points: n })
}

/// Solves `(H + λ·diag(H)) x = g` by Gaussian elimination with partial pivoting.
pub(super) fn solve_damped(h: &[f64], g: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let n = g.len();
    let mut a: Vec<f64> = h.to_vec();
    for i in 0..n {
        a[i * n + i] *= 1.0 + lambda;
    }
    let mut b = g.to_vec();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[p * n + c].abs() < 1e-12 {
            return None;
        }
        if p != c {
            for k in 0..n {
                a.swap(c * n + k, p * n + k);
            }
            b.swap(c, p);
        }
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c * n + k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c * n + c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

fn transpose(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    [[m[0][0], m[1][0], m[2][0]], [m[0][1], m[1][1], m[2][1]], [m[0][2], m[1][2], m[2][2]]]
}

/// Rotation matrix of the rotation vector `w` (Rodrigues).
fn rodrigues(w: [f64; 3]) -> [[f64; 3]; 3] {
    let th = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
    if th < 1e-12 {
        return IDENTITY;
    }
    let k = w.map(|x| x / th);
    let (s, c) = th.sin_cos();
    let kx = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
    let kx2 = mat_mul(&kx, &kx);
    let mut r = IDENTITY;
    for a in 0..3 {
        for b in 0..3 {
            r[a][b] += s * kx[a][b] + (1.0 - c) * kx2[a][b];
        }
    }
    r
}

/// `t` updated by `d` (rotation vector or matrix increment, then translation).
pub(super) fn updated(t: &AffineTransform, d: &[f64], model: Model) -> AffineTransform {
    let np = d.len();
    let mut out = *t;
    match model {
        Model::Rigid => out.matrix = mat_mul(&t.matrix, &rodrigues([d[0], d[1], d[2]])),
        Model::Affine => {
            for a in 0..3 {
                for b in 0..3 {
                    out.matrix[a][b] += d[3 * a + b];
                }
            }
        }
    }
    for a in 0..3 {
        out.translation_mm[a] += d[np - 3 + a];
    }
    out
}

/// How far an update moves points, in mm: translation plus the linear part at `radius`.
pub(super) fn update_size_mm(d: &[f64], radius: f64) -> f64 {
    let np = d.len();
    let lin: f64 = d[..np - 3].iter().map(|x| x * x).sum::<f64>().sqrt() * radius;
    let tr: f64 = d[np - 3..].iter().map(|x| x * x).sum::<f64>().sqrt();
    lin + tr
}
