//! Liver mimics for training cases: structures that are not liver but look like it next to
//! it, labelled background. Real CT puts the heart on the liver's dome and a fluid- or
//! food-filled stomach against its left lobe; the phantom has neither and the one real
//! label map shows no heart, so the first model called both "liver" on `hcc048-pv`. The
//! network has to learn that liver-like intensity beside the liver is not enough.
//!
//! Everything is drawn from the caller's generator and placed in world coordinates, so it
//! lands in the same anatomy whatever the case's grid orientation.

use ndarray::Array3;

use super::preprocess::CHANNELS;
use super::Rng;
use crate::volume::{norm, Geometry, Lps};

/// A few random plane waves: cheap, smooth, grid-independent texture (food, mottled
/// tumour interiors) in HU.
pub struct Texture {
    waves: Vec<([f64; 3], f64, f32)>,
}

impl Texture {
    /// `n` waves of 8–30 mm wavelength with amplitudes up to `max_hu` in all.
    pub fn new(rng: &mut Rng, n: usize, max_hu: f32) -> Self {
        let amp = rng.range(0.0, max_hu) / n.max(1) as f32;
        let waves = (0..n)
            .map(|_| {
                let dir = unit(rng);
                let k = std::f64::consts::TAU / rng.range(8.0, 30.0) as f64;
                ([dir[0] * k, dir[1] * k, dir[2] * k], rng.range(0.0, std::f32::consts::TAU) as f64, amp)
            })
            .collect();
        Texture { waves }
    }

    pub fn at(&self, p: Lps) -> f32 {
        self.waves.iter().map(|(k, phase, a)| a * (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + phase).cos() as f32).sum()
    }
}

fn unit(rng: &mut Rng) -> [f64; 3] {
    let v = [rng.normal() as f64, rng.normal() as f64, rng.normal() as f64];
    let n = norm(v).max(1e-9);
    [v[0] / n, v[1] / n, v[2] / n]
}

/// One mimic: an ellipsoid with a shell, a content value per phase, texture, and an
/// optional gas cap on its anterior side (supine patients' gas rises to −y in LPS).
struct Blob {
    centre: Lps,
    radii: [f64; 3],
    /// Shell thickness as a fraction of the radius.
    shell: f64,
    shell_hu: [f32; CHANNELS],
    content_hu: [f32; CHANNELS],
    texture: Texture,
    /// Fraction of the height (from the anterior side) that is gas; 0 for none.
    gas: f64,
}

/// Adds 0–4 liver mimics to `hu` (one volume per phase on `grid`): a heart-like blood pool
/// with a myocardial shell above and beside the dome (60 %), a stomach-like sac with an
/// enhancing wall, liver-like contents, food texture and sometimes gas left of the liver
/// (60 %), and up to two bowel-like blobs touching the liver anywhere. They never replace
/// liver or tumour (`labels > 0`) and stay inside `body`; `labels` are not changed, so
/// they are background. No-op without liver.
pub fn add_mimics(rng: &mut Rng, grid: &Geometry, hu: &mut [Array3<f32>], labels: &Array3<u8>, body: &Array3<bool>) {
    let [nz, ny, nx] = grid.shape;
    let mut liver_pts: Vec<[usize; 3]> = Vec::new();
    let mut liver_hu = [0f64; CHANNELS];
    let (mut body_c, mut body_n) = ([0f64; 3], 0usize);
    let (mut liver_c, mut top_z) = ([0f64; 3], f64::MIN);
    for ((k, j, i), &l) in labels.indexed_iter() {
        if body[[k, j, i]] {
            let p = grid.index_to_world([i as f64, j as f64, k as f64]);
            (0..3).for_each(|a| body_c[a] += p[a]);
            body_n += 1;
        }
        if l == 1 {
            let p = grid.index_to_world([i as f64, j as f64, k as f64]);
            (0..3).for_each(|a| liver_c[a] += p[a]);
            top_z = top_z.max(p[2]);
            for (c, h) in hu.iter().enumerate() {
                liver_hu[c] += h[[k, j, i]] as f64;
            }
            liver_pts.push([k, j, i]);
        }
    }
    if liver_pts.is_empty() || body_n == 0 {
        return;
    }
    let n = liver_pts.len() as f64;
    let body_c = body_c.map(|v| v / body_n as f64);
    let liver_c = liver_c.map(|v| v / n);
    let liver_hu: [f32; CHANNELS] = liver_hu.map(|v| (v / n) as f32);
    let mut blobs = Vec::new();
    if rng.f32() < 0.6 {
        // Heart: left of the midline, anterior, resting on the diaphragm at the dome's level.
        let liver_like = rng.f32() < 0.3;
        let blood = [rng.range(120.0, 350.0), rng.range(100.0, 220.0), rng.range(60.0, 150.0)];
        let content_hu = if liver_like { std::array::from_fn(|c| liver_hu[c] + rng.range(-15.0, 40.0)) } else { blood };
        blobs.push(Blob {
            centre: [
                body_c[0] + rng.range(0.0, 50.0) as f64,
                body_c[1] - rng.range(10.0, 60.0) as f64,
                top_z + rng.range(0.0, 40.0) as f64,
            ],
            radii: [rng.range(45.0, 65.0) as f64, rng.range(35.0, 55.0) as f64, rng.range(35.0, 50.0) as f64],
            shell: rng.range(0.1, 0.2) as f64,
            shell_hu: std::array::from_fn(|_| rng.range(60.0, 140.0)),
            content_hu,
            texture: Texture::new(rng, 2, 10.0),
            gas: 0.0,
        });
    }
    if rng.f32() < 0.6 {
        // Stomach: left upper quadrant, anterior; contents do not enhance (one value for
        // all phases), the wall does.
        let content = liver_hu[1] + rng.range(-50.0, 30.0);
        blobs.push(Blob {
            centre: [
                body_c[0] + rng.range(20.0, 90.0) as f64,
                body_c[1] - rng.range(0.0, 70.0) as f64,
                liver_c[2] + rng.range(-60.0, 30.0) as f64,
            ],
            radii: [rng.range(25.0, 60.0) as f64, rng.range(20.0, 50.0) as f64, rng.range(25.0, 60.0) as f64],
            shell: rng.range(0.06, 0.15) as f64,
            shell_hu: [rng.range(70.0, 160.0), rng.range(60.0, 140.0), rng.range(50.0, 110.0)],
            content_hu: std::array::from_fn(|_| content + rng.range(-5.0, 5.0)),
            texture: Texture::new(rng, 3, 40.0),
            gas: if rng.f32() < 0.4 { rng.range(0.1, 0.4) as f64 } else { 0.0 },
        });
    }
    for _ in 0..rng.below(3) {
        // Bowel or anything else against the liver surface, liver-like in every phase.
        let at = liver_pts[rng.below(liver_pts.len())];
        let p = grid.index_to_world([at[2] as f64, at[1] as f64, at[0] as f64]);
        let r = rng.range(12.0, 35.0) as f64;
        let d = unit(rng);
        let off = r + rng.range(0.0, 8.0) as f64;
        blobs.push(Blob {
            centre: [p[0] + d[0] * off, p[1] + d[1] * off, p[2] + d[2] * off],
            radii: [r * rng.range(0.7, 1.3) as f64, r * rng.range(0.7, 1.3) as f64, r * rng.range(0.7, 1.3) as f64],
            shell: rng.range(0.05, 0.2) as f64,
            shell_hu: std::array::from_fn(|c| liver_hu[c] + rng.range(-20.0, 60.0)),
            content_hu: std::array::from_fn(|c| liver_hu[c] + rng.range(-40.0, 40.0)),
            texture: Texture::new(rng, 3, 25.0),
            gas: if rng.f32() < 0.3 { rng.range(0.1, 0.3) as f64 } else { 0.0 },
        });
    }
    let noise = rng.range(3.0, 12.0);
    for b in &blobs {
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    if labels[[k, j, i]] > 0 || !body[[k, j, i]] {
                        continue;
                    }
                    let p = grid.index_to_world([i as f64, j as f64, k as f64]);
                    let q = [
                        (p[0] - b.centre[0]) / b.radii[0],
                        (p[1] - b.centre[1]) / b.radii[1],
                        (p[2] - b.centre[2]) / b.radii[2],
                    ];
                    let r = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt();
                    if r > 1.0 {
                        continue;
                    }
                    let gas = b.gas > 0.0 && q[1] < -1.0 + 2.0 * b.gas && r < 1.0 - b.shell;
                    let n = noise * rng.normal();
                    let t = b.texture.at(p);
                    for (c, h) in hu.iter_mut().enumerate() {
                        h[[k, j, i]] = if gas {
                            -950.0
                        } else if r >= 1.0 - b.shell {
                            b.shell_hu[c] + n
                        } else {
                            b.content_hu[c] + t + n
                        };
                    }
                }
            }
        }
    }
}
