//! Rendering the phantom on its grids: each phase's HU (supersampled, through its breathing
//! field, with noise that depends only on the seed and the voxel), the labels, anatomy and
//! treated-lesion parts on the portal venous grid, and the true fields; [`make_phantom`]
//! puts them together.

use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use super::anatomy::{anatomy_label, classify, liver_sdf, Tissue};
use super::breathing::{breathing_v, true_u};
use super::contrast::{acquisition_time, hu, noise_index, upper_words};
use super::lesions::{follow_up_pose, TREATED_LIPIODOL_R, TREATED_NECROTIC_R};
use super::{LesionKind, LesionTruth, Phantom, PhantomOptions, PhantomPhase, Visit};
use crate::io::phase::Phase;
use crate::volume::random::splitmix64;
use crate::volume::{CtVolume, Field, Geometry, Lps, Mask, Volume};

/// A standard normal deviate that depends only on its arguments (splitmix64 hash of the
/// seed, phase and voxel index, then Box–Muller), so noise does not depend on the order
/// or the thread voxels are computed in.
pub(super) fn gaussian(seed: u64, phase: u64, k: usize, j: usize, i: usize) -> f32 {
    let mut h = splitmix64(seed);
    for v in [phase, k as u64, j as u64, i as u64] {
        h = splitmix64(h ^ v);
    }
    let h2 = splitmix64(h);
    // 53-bit uniforms in (0, 1]
    let u1 = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (h2 >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

pub(super) fn render_phase(opts: &PhantomOptions, phase: Phase) -> CtVolume {
    let grid = opts.grid(phase).clone();
    let [nz, ny, nx] = grid.shape;
    let offsets = |n: usize| -> Vec<f64> {
        let n = n.max(1);
        (0..n).map(|s| (s as f64 + 0.5) / n as f64 - 0.5).collect()
    };
    let (oz, oy, ox) = (offsets(opts.supersample[0]), offsets(opts.supersample[1]), offsets(opts.supersample[2]));
    let inv_n = 1.0 / (oz.len() * oy.len() * ox.len()) as f32;
    let mut data = Array3::<i16>::zeros([nz, ny, nx]);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let mut acc = 0.0f32;
                for &dk in &oz {
                    for &dj in &oy {
                        for &di in &ox {
                            let y = grid.index_to_world([i as f64 + di, j as f64 + dj, k as f64 + dk]);
                            let v = breathing_v(phase, opts.breathing_scale, y);
                            let q = opts.to_anatomy([y[0] + v[0], y[1] + v[1], y[2] + v[2]]);
                            acc += hu(classify(q, opts.lesions()), phase, opts.lesions());
                        }
                    }
                }
                let mut val = acc * inv_n;
                // air outside the patient stays exactly −1000, as scanners clip it
                if val > -999.0 {
                    val += opts.noise_sigma_hu * gaussian(opts.seed, noise_index(phase), k, j, i);
                }
                slab[[j, i]] = val.round().clamp(-1024.0, 3071.0) as i16;
            }
        }
    });
    Volume::new(data, grid)
}

/// Labels (LiTS), anatomy, and per-lesion voxel counts on the portal venous grid,
/// sampled at voxel centres.
/// Labels (LiTS), anatomy, treated-lesion parts, per-lesion voxel counts and per-lesion
/// part counts (viable, necrotic, lipiodol) on the portal venous grid, sampled at voxel
/// centres.
#[allow(clippy::type_complexity)]
pub(super) fn render_labels(opts: &PhantomOptions) -> (Mask, Mask, Mask, Vec<usize>, Vec<[usize; 3]>) {
    let grid = &opts.portal_venous_grid;
    let lesions = opts.lesions();
    let [nz, ny, nx] = grid.shape;
    let mut labels = Array3::<u8>::zeros([nz, ny, nx]);
    let mut anatomy = Array3::<u8>::zeros([nz, ny, nx]);
    let mut parts = Array3::<u8>::zeros([nz, ny, nx]);
    let counts: Vec<([usize; 4], [[usize; 3]; 4])> = labels
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(anatomy.axis_iter_mut(Axis(0)).into_par_iter())
        .zip(parts.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .map(|(k, ((mut lab, mut ana), mut par))| {
            let mut counts = [0usize; 4];
            let mut part_counts = [[0usize; 3]; 4];
            for j in 0..ny {
                for i in 0..nx {
                    let q = opts.to_anatomy(grid.index_to_world([i as f64, j as f64, k as f64]));
                    let t = classify(q, lesions);
                    ana[[j, i]] = anatomy_label(t);
                    lab[[j, i]] = match t {
                        Tissue::Lesion { index, rel, .. } => {
                            counts[index] += 1;
                            if lesions[index].kind == LesionKind::TreatedHcc {
                                let r = rel as f64 * lesions[index].radius;
                                let part = if r < TREATED_LIPIODOL_R {
                                    2
                                } else if r < TREATED_NECROTIC_R {
                                    1
                                } else {
                                    0
                                };
                                part_counts[index][part] += 1;
                                par[[j, i]] = [
                                    crate::follow_up::response::VIABLE,
                                    crate::follow_up::response::NECROTIC,
                                    crate::follow_up::response::LIPIODOL,
                                ][part];
                            }
                            2
                        }
                        Tissue::Liver => 1,
                        Tissue::Portal | Tissue::Hepatic if liver_sdf(q) < 0.0 => 1,
                        _ => 0,
                    };
                }
            }
            (counts, part_counts)
        })
        .collect();
    let mut total = vec![0usize; lesions.len()];
    let mut part_total = vec![[0usize; 3]; lesions.len()];
    for (c, pc) in &counts {
        for l in 0..lesions.len() {
            total[l] += c[l];
            for p in 0..3 {
                part_total[l][p] += pc[l][p];
            }
        }
    }
    (
        Volume::new(labels, grid.clone()),
        Volume::new(anatomy, grid.clone()),
        Volume::new(parts, grid.clone()),
        total,
        part_total,
    )
}

pub(super) fn render_field(grid: &Geometry, phase: Phase, scale: f64) -> Field {
    let [nz, ny, nx] = grid.shape;
    let mut data = Array4::<f32>::zeros([nz, ny, nx, 3]);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let u = true_u(phase, scale, grid.index_to_world([i as f64, j as f64, k as f64]));
                for c in 0..3 {
                    slab[[j, i, c]] = u[c] as f32;
                }
            }
        }
    });
    Field { data, geometry: grid.clone() }
}

/// Builds the whole phantom. Deterministic: the same options give byte-identical output.
pub fn make_phantom(opts: &PhantomOptions) -> Phantom {
    let phases = Phase::CONTRAST_ORDER
        .iter()
        .map(|&name| PhantomPhase {
            name,
            volume: render_phase(opts, name),
            description: format!("LIVER {} {}mm", upper_words(name), opts.grid(name).spacing_mm[0]),
            acquisition_time: acquisition_time(name).to_string(),
        })
        .collect();
    let grid = &opts.portal_venous_grid;
    let (labels, anatomy, parts, counts, part_counts) = render_labels(opts);
    let voxel_ml = grid.spacing_mm.iter().product::<f64>() / 1000.0;
    // centres in this visit's scanner frame
    let to_scanner = |c: Lps| match opts.visit {
        Visit::Baseline => c,
        Visit::FollowUp => follow_up_pose().inverse().map(|t| t.apply(c)).unwrap_or(c),
    };
    let lesions = opts
        .lesions()
        .iter()
        .zip(counts.iter().zip(&part_counts))
        .map(|(l, (&n, pc))| LesionTruth {
            kind: l.kind,
            centre_mm: to_scanner(l.centre),
            radius_mm: l.radius,
            volume_ml: n as f64 * voxel_ml,
            parts_ml: (l.kind == LesionKind::TreatedHcc).then(|| pc.map(|c| c as f64 * voxel_ml)),
        })
        .collect();
    let true_fields =
        [Phase::Arterial, Phase::Delayed].iter().map(|&p| (p, render_field(grid, p, opts.breathing_scale))).collect();
    let parts = (opts.visit == Visit::FollowUp).then_some(parts);
    Phantom { phases, labels, anatomy, lesions, true_fields, parts }
}
