// Over 700 lines only with its tests (the generator is ~560): one job, so one file.
//! Realistic synthetic liver lesions for training cases (`SynthRecipe::realistic_tumours`,
//! issue 23), after Hu et al., "Label-free liver tumor segmentation" (CVPR 2023): lesions
//! whose shape, texture, edge and per-phase enhancement look like the real types, so a
//! network trained on them meets real HCC, metastases, cysts, haemangiomas and treated
//! (lipiodol) lesions, not only the first recipe's flat ellipsoids.
//!
//! Each lesion: an ellipsoid whose radius varies smoothly with direction (lobulated), a
//! smoothed-noise interior, an edge blurred over 1–2 mm (partial volume; the label is the
//! 50 % level), a per-type enhancement pattern relative to the surrounding liver per phase
//! (arterial, portal venous, delayed), and mass effect: the tissue around a lesion is pushed
//! outward before it is painted, so vessels curve around big tumours.
//!
//! Everything draws from the caller's generator only. Label 2 is only ever given where the
//! organ is (labels > 0): the mass effect may bulge the liver's contour a little, but no
//! tumour label appears outside the (pushed) organ, and the HU outside it is left alone
//! except for that push.

use ndarray::Array3;

use super::preprocess::CHANNELS;
use super::Rng;
use crate::volume::{Geometry, Lps};

/// Arterial, portal venous, delayed: the channel order of `hu`.
const A: usize = 0;

/// The lesion types drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Arterial hyper, portal venous iso-to-hypo, delayed washout; capsule in about half,
    /// necrotic centre and mosaic interior when large, satellite nodules sometimes.
    Hcc,
    /// Hypo in every phase, with an enhancing rim ("target") in about half.
    Metastasis,
    /// Water in every phase, sharp edge, no texture.
    Cyst,
    /// Peripheral nodular blood-pool enhancement in the arterial phase, filling in towards
    /// the centre in the portal venous and delayed phases.
    Haemangioma,
    /// Treated (TACE) lesion: patchy very dense lipiodol in every phase, the rest
    /// non-enhancing, sometimes a viable arterial-enhancing rim.
    Lipiodol,
    /// Hypovascular or infiltrative HCC: slightly hypo, ill-defined (wide blur).
    Infiltrative,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Hcc, Kind::Metastasis, Kind::Cyst, Kind::Haemangioma, Kind::Lipiodol, Kind::Infiltrative];

    fn draw(rng: &mut Rng) -> Kind {
        match rng.f32() {
            u if u < 0.30 => Kind::Hcc,
            u if u < 0.50 => Kind::Metastasis,
            u if u < 0.65 => Kind::Cyst,
            u if u < 0.80 => Kind::Haemangioma,
            u if u < 0.90 => Kind::Lipiodol,
            _ => Kind::Infiltrative,
        }
    }
}

/// Smoothed noise: a sum of random plane waves with wavelengths in a range (the scale of
/// the texture), about unit RMS. Grid-independent, so it looks the same on any case grid.
struct Noise {
    waves: Vec<([f64; 3], f64)>,
    amp: f32,
}

impl Noise {
    fn new(rng: &mut Rng, n: usize, wavelength_mm: (f32, f32)) -> Self {
        let waves = (0..n)
            .map(|_| {
                let d = unit(rng);
                let k = std::f64::consts::TAU / rng.range(wavelength_mm.0, wavelength_mm.1) as f64;
                ([d[0] * k, d[1] * k, d[2] * k], rng.range(0.0, std::f32::consts::TAU) as f64)
            })
            .collect();
        // n cosines of amplitude a with random phases have RMS a·√(n/2)
        Noise { waves, amp: (2.0 / n.max(1) as f32).sqrt() }
    }

    fn at(&self, p: Lps) -> f32 {
        self.waves.iter().map(|(k, ph)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).cos() as f32).sum::<f32>()
            * self.amp
    }
}

fn unit(rng: &mut Rng) -> [f64; 3] {
    let v = [rng.normal() as f64, rng.normal() as f64, rng.normal() as f64];
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-9);
    [v[0] / n, v[1] / n, v[2] / n]
}

/// Radius over direction: `1 + Σ aₖ cos(fₖ (wₖ·u) + φₖ)` with low frequencies, so the
/// outline is lobulated rather than a ball. `Σ|aₖ| = depth` (kept below 0.5).
struct Lobes {
    terms: Vec<([f64; 3], f64, f64, f64)>,
}

impl Lobes {
    fn new(rng: &mut Rng, depth: f64) -> Self {
        let n = 4;
        let terms = (0..n).map(|_| {
            (unit(rng), rng.range(1.5, 4.5) as f64, rng.range(0.0, std::f32::consts::TAU) as f64, depth / n as f64)
        });
        Lobes { terms: terms.collect() }
    }

    fn at(&self, u: [f64; 3]) -> f64 {
        1.0 + self
            .terms
            .iter()
            .map(|(w, f, ph, a)| a * (f * (w[0] * u[0] + w[1] * u[1] + w[2] * u[2]) + ph).cos())
            .sum::<f64>()
    }

    fn depth(&self) -> f64 {
        self.terms.iter().map(|t| t.3).sum()
    }
}

/// One lesion. HU values are offsets from the liver's median in that phase unless said.
pub struct Lesion {
    pub kind: Kind,
    pub centre: Lps,
    /// Ellipsoid semi-axes along L, P, S (mm); their geometric mean is the equivalent radius.
    radii: [f64; 3],
    lobes: Lobes,
    /// Edge blur σ (mm).
    blur_mm: f64,
    /// The interior's offset per phase.
    body: [f32; CHANNELS],
    /// Fine texture (a few mm) and its RMS in HU.
    texture: Noise,
    texture_hu: f32,
    /// Coarse patchiness (mosaic HCC, haemangioma nodules, lipiodol deposits) and its HU.
    patches: Noise,
    mosaic_hu: f32,
    /// Capsule or enhancing rim: width (mm) and offset per phase.
    rim: Option<(f64, [f32; CHANNELS])>,
    /// Necrotic / non-enhancing centre: normalised radius it reaches and its offset.
    core: Option<(f64, [f32; CHANNELS])>,
    /// Haemangioma: normalised radius down to which the periphery has filled, per phase;
    /// lipiodol: the patch level above which the oil lies.
    fill: [f64; CHANNELS],
    /// Lipiodol's absolute HU.
    oil_hu: f32,
    /// Mass effect: the push at the lesion's edge as a fraction of its radius.
    pub push: f64,
}

/// 0–6 lesions per liver: about a fifth of livers have none.
pub fn draw_count(rng: &mut Rng) -> usize {
    if rng.f32() < 0.2 {
        0
    } else {
        1 + rng.below(6)
    }
}

/// Equivalent radius, log-uniform from 2.5 to 60 mm: many small, some large (a 120 mm HCC).
pub fn draw_radius(rng: &mut Rng) -> f64 {
    (2.5f64.ln() + rng.f32() as f64 * (60f64.ln() - 2.5f64.ln())).exp()
}

impl Lesion {
    /// A lesion of `kind` at `centre` with equivalent radius `r` (mm), its enhancement
    /// amplitudes drawn (scanner and timing vary).
    pub fn draw(rng: &mut Rng, kind: Kind, centre: Lps, r: f64) -> Lesion {
        // axes within 0.75–1.3 of each other, product kept so the equivalent radius is r
        let s: [f64; 3] = std::array::from_fn(|_| rng.range(0.75, 1.3) as f64);
        let g = (s[0] * s[1] * s[2]).cbrt();
        let radii = s.map(|v| r * v / g);
        let lobe_depth = match kind {
            Kind::Cyst => rng.range(0.0, 0.06),
            Kind::Infiltrative => rng.range(0.2, 0.4),
            _ => rng.range(0.05, 0.25),
        } as f64;
        let mut l = Lesion {
            kind,
            centre,
            radii,
            lobes: Lobes::new(rng, lobe_depth),
            blur_mm: rng.range(1.0, 2.0) as f64,
            body: [0.0; CHANNELS],
            // finer than 8 mm would alias into a regular pattern on the 4 mm grid
            texture: Noise::new(rng, 16, (8.0, 16.0)),
            texture_hu: rng.range(4.0, 12.0),
            patches: Noise::new(rng, 8, (10.0, 25.0)),
            mosaic_hu: 0.0,
            rim: None,
            core: None,
            fill: [1.0; CHANNELS],
            oil_hu: 0.0,
            push: rng.range(0.08, 0.2) as f64,
        };
        match kind {
            Kind::Hcc => {
                l.body = [rng.range(20.0, 90.0), rng.range(-40.0, 5.0), rng.range(-50.0, -10.0)];
                if r > 20.0 {
                    l.mosaic_hu = rng.range(10.0, 35.0);
                }
                if rng.f32() < 0.5 {
                    // capsule: not enhancing early, brighter than liver late
                    l.rim = Some((
                        rng.range(1.5, 3.0) as f64,
                        [rng.range(-10.0, 10.0), rng.range(10.0, 40.0), rng.range(10.0, 40.0)],
                    ));
                }
                if r > 20.0 && rng.f32() < 0.7 {
                    let d = rng.range(-70.0, -35.0);
                    l.core = Some((rng.range(0.3, 0.6) as f64, [d, d, d]));
                }
            }
            Kind::Metastasis => {
                let d = rng.range(-80.0, -35.0);
                l.body = [d * rng.range(0.7, 1.1), d, d * rng.range(0.8, 1.1)];
                if rng.f32() < 0.5 {
                    l.rim = Some((
                        rng.range(1.5, 3.0) as f64,
                        [rng.range(15.0, 50.0), rng.range(15.0, 50.0), rng.range(-5.0, 15.0)],
                    ));
                }
            }
            Kind::Cyst => {
                l.blur_mm = rng.range(0.2, 0.6) as f64;
                l.texture_hu = 0.0;
                // water: an absolute value, filled in by `paint` against the liver
                l.oil_hu = rng.range(0.0, 20.0);
            }
            Kind::Haemangioma => {
                // blood pool where filled, hypo centre until it fills
                l.body = [rng.range(60.0, 160.0), rng.range(20.0, 70.0), rng.range(5.0, 40.0)];
                let c = [rng.range(-60.0, -20.0), rng.range(-45.0, -10.0), rng.range(-30.0, -5.0)];
                l.core = Some((0.0, c));
                l.fill = [rng.range(0.5, 0.8) as f64, rng.range(0.3, 0.6) as f64, rng.range(0.0, 0.3) as f64];
                l.texture_hu = rng.range(2.0, 6.0);
            }
            Kind::Lipiodol => {
                let d = rng.range(-50.0, -15.0);
                l.body = [d; CHANNELS];
                l.oil_hu = rng.range(200.0, 800.0);
                // patch level above which the oil lies: from most of the lesion to a few spots
                l.fill = [rng.range(-0.6, 1.0) as f64; CHANNELS];
                if rng.f32() < 0.4 {
                    l.rim = Some((
                        rng.range(2.0, 4.0) as f64,
                        [rng.range(30.0, 80.0), rng.range(-10.0, 5.0), rng.range(-20.0, 0.0)],
                    ));
                }
            }
            Kind::Infiltrative => {
                l.body = std::array::from_fn(|_| rng.range(-35.0, -8.0));
                l.blur_mm = rng.range(4.0, 8.0) as f64;
                l.texture_hu = rng.range(5.0, 12.0);
            }
        }
        l
    }

    /// Equivalent radius (mm).
    pub fn radius(&self) -> f64 {
        (self.radii[0] * self.radii[1] * self.radii[2]).cbrt()
    }

    /// Largest distance from the centre the lesion's edge can reach (mm).
    fn reach(&self) -> f64 {
        self.radii.iter().cloned().fold(0.0, f64::max) * (1.0 + self.lobes.depth())
    }

    /// Signed distance to the lobulated edge along the ray from the centre (mm, negative
    /// inside) and the normalised radius (0 centre, 1 edge).
    fn distance(&self, p: Lps) -> (f64, f64) {
        let q = [p[0] - self.centre[0], p[1] - self.centre[1], p[2] - self.centre[2]];
        let v = [q[0] / self.radii[0], q[1] / self.radii[1], q[2] / self.radii[2]];
        let rho = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if rho < 1e-9 {
            return (-self.radii.iter().cloned().fold(f64::MAX, f64::min), 0.0);
        }
        let u = [v[0] / rho, v[1] / rho, v[2] / rho];
        let b = self.lobes.at(u);
        // mm per unit of normalised radius along this ray
        let mm =
            ((u[0] * self.radii[0]).powi(2) + (u[1] * self.radii[1]).powi(2) + (u[2] * self.radii[2]).powi(2)).sqrt();
        ((rho - b) * mm, rho / b)
    }

    /// The lesion's HU at `p` in phase `ch`, without noise: `t` the normalised radius,
    /// `depth` the distance inside the edge (mm), `liver` the liver's median in that phase.
    fn value(&self, p: Lps, t: f64, depth: f64, liver: f32, ch: usize) -> f32 {
        let tex = self.texture_hu * self.texture.at(p);
        let patch = self.patches.at(p);
        let offset = match self.kind {
            Kind::Cyst => self.oil_hu - liver,
            Kind::Haemangioma => {
                // the filled front moves inward phase by phase; its edge is nodular, and
                // in the arterial phase only the nodules themselves are bright
                let front = self.fill[ch] + 0.12 * patch as f64;
                let lit = t > front && (ch != A || patch > -0.5);
                if lit {
                    self.body[ch]
                } else {
                    self.core.map_or(0.0, |c| c.1[ch])
                }
            }
            Kind::Lipiodol => {
                if (patch as f64) > self.fill[ch] {
                    // oil is dense and uneven, the same in every phase
                    return self.oil_hu * (1.0 + 0.25 * self.texture.at(p));
                }
                match self.rim {
                    Some((w, rim)) if depth < w => rim[ch],
                    _ => self.body[ch],
                }
            }
            _ => {
                let necrotic = self.core.is_some_and(|(c, _)| t < c * (1.0 + 0.2 * patch as f64));
                match (self.rim, self.core) {
                    (Some((w, rim)), _) if depth < w => rim[ch],
                    (_, Some((_, core))) if necrotic => core[ch],
                    // mosaic: compartments of different enhancement (sharpened patches)
                    _ => self.body[ch] + self.mosaic_hu * (3.0 * patch).tanh(),
                }
            }
        };
        liver + offset + tex
    }
}

/// Adds 0–6 realistic lesions (types, sizes, enhancement as above) to `hu` (one volume per
/// phase, arterial / portal venous / delayed, on `grid`) inside the organ of `labels`
/// (0 background, 1 liver, 2 tumour). No-op without liver.
pub fn add_realistic_tumours(rng: &mut Rng, grid: &Geometry, hu: &mut [Array3<f32>], labels: &mut Array3<u8>) {
    add_realistic_tumours_anywhere(rng, grid, hu, labels, 0.0);
}

/// Lesions this large or smaller may be centred anywhere in the liver (its surface
/// included) by [`add_realistic_tumours_anywhere`]; larger ones keep liver around them.
pub const ANYWHERE_MAX_RADIUS_MM: f64 = 20.0;

/// As [`add_realistic_tumours`], with this share of the lesions of
/// [`ANYWHERE_MAX_RADIUS_MM`] or less centred at any liver voxel, however near the surface:
/// a subcapsular lesion, cut by the liver's edge. [`add_realistic_tumours`] centres a
/// lesion of 8 mm radius or more where liver surrounds it, so a stage trained on it alone
/// never saw a lesion of 16–40 mm under the capsule (on the small implanted cases the
/// pipeline with S6 finds 2 of the 24 lesions centred within 5 mm of the surface). Two
/// fine-tunes with it found fewer lesions everywhere and were not shipped (model card). With
/// a share of 0 the draws, and so the cases, are those of [`add_realistic_tumours`].
pub fn add_realistic_tumours_anywhere(
    rng: &mut Rng,
    grid: &Geometry,
    hu: &mut [Array3<f32>],
    labels: &mut Array3<u8>,
    anywhere_share: f32,
) {
    let liver: Vec<[usize; 3]> =
        labels.indexed_iter().filter(|(_, &l)| l == 1).map(|((k, j, i), _)| [k, j, i]).collect();
    if liver.is_empty() {
        return;
    }
    let mut lesions = Vec::new();
    for _ in 0..draw_count(rng) {
        let kind = Kind::draw(rng);
        let r = draw_radius(rng);
        let centre = centre_for(rng, grid, labels, &liver, r, anywhere_share);
        let lesion = Lesion::draw(rng, kind, centre, r);
        // satellites: small daughter nodules just outside a large HCC
        if kind == Kind::Hcc && r > 20.0 && rng.f32() < 0.4 {
            for _ in 0..1 + rng.below(4) {
                let d = unit(rng);
                let at = r * rng.range(1.1, 1.6) as f64;
                let c = [centre[0] + d[0] * at, centre[1] + d[1] * at, centre[2] + d[2] * at];
                let rs = rng.range(3.0, 8.0) as f64;
                let mut s = Lesion::draw(rng, Kind::Hcc, c, rs);
                (s.body, s.rim, s.core, s.mosaic_hu, s.push) = (lesion.body, None, None, 0.0, 0.0);
                lesions.push(s);
            }
        }
        lesions.push(lesion);
    }
    implant(rng, grid, hu, labels, &lesions);
}

/// Implants `lesions` one after another: each pushes its surroundings aside (when 6 mm or
/// more in radius; smaller pushes are below a pixel) and is then painted, against the
/// liver's median and noise measured before any of them.
pub fn implant(rng: &mut Rng, grid: &Geometry, hu: &mut [Array3<f32>], labels: &mut Array3<u8>, lesions: &[Lesion]) {
    let (median, sigma) = liver_statistics(hu, labels);
    for l in lesions {
        if l.push > 0.0 && l.radius() >= 6.0 {
            push_aside(grid, hu, labels, l.centre, l.radius(), l.push);
        }
        paint(rng, grid, hu, labels, l, &median, &sigma);
    }
}

/// A centre for a lesion of radius `r`: any liver voxel for `anywhere_share` of the lesions
/// of [`ANYWHERE_MAX_RADIUS_MM`] or less (no draw when the share is 0), else [`place`].
fn centre_for(
    rng: &mut Rng,
    grid: &Geometry,
    labels: &Array3<u8>,
    liver: &[[usize; 3]],
    r: f64,
    anywhere_share: f32,
) -> Lps {
    if anywhere_share > 0.0 && r <= ANYWHERE_MAX_RADIUS_MM && rng.f32() < anywhere_share {
        let v = liver[rng.below(liver.len())];
        grid.index_to_world([v[2] as f64, v[1] as f64, v[0] as f64])
    } else {
        place(rng, grid, labels, liver, r)
    }
}

/// A centre for a lesion of radius `r`: a random liver voxel; for larger lesions, one
/// with liver half a radius away on most sides (tries a few, keeps the last).
fn place(rng: &mut Rng, grid: &Geometry, labels: &Array3<u8>, liver: &[[usize; 3]], r: f64) -> Lps {
    let mut centre = [0.0; 3];
    for _ in 0..10 {
        let v = liver[rng.below(liver.len())];
        centre = grid.index_to_world([v[2] as f64, v[1] as f64, v[0] as f64]);
        let inside =
            [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]
                .iter()
                .filter(|d| {
                    let p = [centre[0] + d[0] * r * 0.6, centre[1] + d[1] * r * 0.6, centre[2] + d[2] * r * 0.6];
                    label_at(grid, labels, p) > 0
                })
                .count();
        if r < 8.0 || inside >= 5 {
            break;
        }
    }
    centre
}

fn label_at(grid: &Geometry, labels: &Array3<u8>, p: Lps) -> u8 {
    let x = grid.world_to_index(p);
    let [nz, ny, nx] = grid.shape;
    let (i, j, k) = (x[0].round(), x[1].round(), x[2].round());
    if i < 0.0 || j < 0.0 || k < 0.0 || i >= nx as f64 || j >= ny as f64 || k >= nz as f64 {
        return 0;
    }
    labels[[k as usize, j as usize, i as usize]]
}

/// Per phase: the liver's median HU and its noise σ (from differences of neighbouring
/// liver voxels, so vessels and slow variation do not count).
fn liver_statistics(hu: &[Array3<f32>], labels: &Array3<u8>) -> ([f32; CHANNELS], [f32; CHANNELS]) {
    let (nz, ny, nx) = labels.dim();
    let mut median = [0f32; CHANNELS];
    let mut sigma = [5f32; CHANNELS];
    for (c, h) in hu.iter().enumerate().take(CHANNELS) {
        let mut v = Vec::new();
        let mut d = Vec::new();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    if labels[[k, j, i]] != 1 {
                        continue;
                    }
                    v.push(h[[k, j, i]]);
                    if i + 1 < nx && labels[[k, j, i + 1]] == 1 {
                        d.push((h[[k, j, i + 1]] - h[[k, j, i]]).abs());
                    }
                }
            }
        }
        median[c] = middle(&mut v);
        // MAD of a difference of two: × 1.4826 for σ, / √2 for one voxel
        sigma[c] = (middle(&mut d) * 1.4826 / std::f32::consts::SQRT_2).clamp(2.0, 25.0);
    }
    (median, sigma)
}

fn middle(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    *v.select_nth_unstable_by(m, |a, b| a.total_cmp(b)).1
}

/// Mass effect: tissue within two radii of `centre` pushed outward, the push rising to
/// `amount`·r at the lesion's edge and falling to 0 at 2r (never folding: the map
/// d ↦ d + push(d) stays increasing). Backward mapping: each voxel takes the HU (trilinear)
/// and label (nearest) of the point it came from, so the organ's contour may bulge.
pub fn push_aside(grid: &Geometry, hu: &mut [Array3<f32>], labels: &mut Array3<u8>, centre: Lps, r: f64, amount: f64) {
    let [nz, ny, nx] = grid.shape;
    let c = grid.world_to_index(centre);
    let reach = 2.0 * r;
    let sp = [grid.spacing_mm[2], grid.spacing_mm[1], grid.spacing_mm[0]];
    let lo = |a: usize| (c[a] - reach / sp[a] - 1.0).floor().max(0.0) as usize;
    let hi = |a: usize, n: usize| ((c[a] + reach / sp[a] + 1.0).ceil().max(0.0) as usize).min(n);
    let (i0, i1, j0, j1, k0, k1) = (lo(0), hi(0, nx), lo(1), hi(1, ny), lo(2), hi(2, nz));
    if i0 >= i1 || j0 >= j1 || k0 >= k1 {
        return;
    }
    let hu0: Vec<Array3<f32>> = hu.to_vec();
    let lab0 = labels.clone();
    for k in k0..k1 {
        for j in j0..j1 {
            for i in i0..i1 {
                let p = grid.index_to_world([i as f64, j as f64, k as f64]);
                let d = ((p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2) + (p[2] - centre[2]).powi(2)).sqrt();
                let x = d / r;
                // output distance d came from d - push(d)
                let push = amount * r * if x < 1.0 { x } else { (2.0 - x).max(0.0) };
                if push <= 0.0 || d < 1e-9 {
                    continue;
                }
                // a radial map about the centre is the same ratio in index space
                let s = (d - push) / d;
                let src = [c[0] + (i as f64 - c[0]) * s, c[1] + (j as f64 - c[1]) * s, c[2] + (k as f64 - c[2]) * s];
                for (h, h0) in hu.iter_mut().zip(&hu0) {
                    h[[k, j, i]] = trilinear(h0, src);
                }
                let n = |v: f64, n: usize| (v.round().max(0.0) as usize).min(n - 1);
                labels[[k, j, i]] = lab0[[n(src[2], nz), n(src[1], ny), n(src[0], nx)]];
            }
        }
    }
}

/// `v` at continuous index `x` = (i, j, k), clamped to the grid.
fn trilinear(v: &Array3<f32>, x: [f64; 3]) -> f32 {
    let (nz, ny, nx) = v.dim();
    let n = [nx, ny, nz];
    let mut f = [0usize; 3];
    let mut w = [0f32; 3];
    for a in 0..3 {
        let xa = x[a].clamp(0.0, (n[a] - 1) as f64);
        f[a] = (xa.floor() as usize).min(n[a].saturating_sub(2));
        w[a] = (xa - f[a] as f64) as f32;
    }
    let at = |di: usize, dj: usize, dk: usize| {
        let (i, j, k) = ((f[0] + di).min(nx - 1), (f[1] + dj).min(ny - 1), (f[2] + dk).min(nz - 1));
        v[[k, j, i]]
    };
    let mut out = 0.0;
    for dk in 0..2 {
        for dj in 0..2 {
            for di in 0..2 {
                let wt = [w[0], w[1], w[2]];
                let a = if di == 1 { wt[0] } else { 1.0 - wt[0] };
                let b = if dj == 1 { wt[1] } else { 1.0 - wt[1] };
                let g = if dk == 1 { wt[2] } else { 1.0 - wt[2] };
                out += a * b * g * at(di, dj, dk);
            }
        }
    }
    out
}

/// Paints `l` into the organ: HU blended over the blurred edge (partial volume of the
/// voxel and the lesion's own blur), label 2 where the voxel centre is inside (the 50 %
/// level). Voxels outside the organ are not touched.
fn paint(
    rng: &mut Rng,
    grid: &Geometry,
    hu: &mut [Array3<f32>],
    labels: &mut Array3<u8>,
    l: &Lesion,
    liver: &[f32; CHANNELS],
    sigma: &[f32; CHANNELS],
) {
    let [nz, ny, nx] = grid.shape;
    let sp = [grid.spacing_mm[2], grid.spacing_mm[1], grid.spacing_mm[0]];
    // ramp width: the voxel's own extent (in-plane) and the lesion's blur (≈2.5 σ)
    let pixel = sp[0].max(sp[1]);
    let width = (pixel * pixel + (2.5 * l.blur_mm).powi(2)).sqrt();
    let reach = l.reach() + width;
    let c = grid.world_to_index(l.centre);
    let lo = |a: usize| (c[a] - reach / sp[a] - 1.0).floor().max(0.0) as usize;
    let hi = |a: usize, n: usize| ((c[a] + reach / sp[a] + 1.0).ceil().max(0.0) as usize).min(n);
    for k in lo(2)..hi(2, nz) {
        for j in lo(1)..hi(1, ny) {
            for i in lo(0)..hi(0, nx) {
                if labels[[k, j, i]] == 0 {
                    continue;
                }
                let p = grid.index_to_world([i as f64, j as f64, k as f64]);
                let (e, t) = l.distance(p);
                let w = (0.5 - e / width).clamp(0.0, 1.0) as f32;
                if w <= 0.0 {
                    continue;
                }
                if e <= 0.0 {
                    labels[[k, j, i]] = 2;
                }
                for (ch, h) in hu.iter_mut().enumerate().take(CHANNELS) {
                    let v = l.value(p, t, -e, liver[ch], ch) + sigma[ch] * rng.normal();
                    let o = &mut h[[k, j, i]];
                    *o = *o * (1.0 - w) + v * w;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PV: usize = 1;
    const D: usize = 2;
    const LIVER: [f32; CHANNELS] = [80.0, 110.0, 95.0];

    /// A 4 mm, 3 mm-slice grid with an ellipsoidal liver (label 1) in fat, plus noise.
    fn liver_case(seed: u64) -> (Geometry, Vec<Array3<f32>>, Array3<u8>) {
        let grid = Geometry::axis_aligned([48, 64, 64], [3.0, 4.0, 4.0], [0.0, 0.0, 0.0]);
        let centre = [128.0, 128.0, 72.0];
        let mut labels = Array3::<u8>::zeros((48, 64, 64));
        let mut rng = Rng::new(seed);
        let mut hu: Vec<Array3<f32>> = (0..CHANNELS).map(|_| Array3::from_elem((48, 64, 64), -100.0)).collect();
        for ((k, j, i), l) in labels.indexed_iter_mut() {
            let p = grid.index_to_world([i as f64, j as f64, k as f64]);
            let q = [(p[0] - centre[0]) / 100.0, (p[1] - centre[1]) / 80.0, (p[2] - centre[2]) / 60.0];
            if q[0] * q[0] + q[1] * q[1] + q[2] * q[2] < 1.0 {
                *l = 1;
                for (c, h) in hu.iter_mut().enumerate() {
                    h[[k, j, i]] = LIVER[c] + 5.0 * rng.normal();
                }
            }
        }
        (grid, hu, labels)
    }

    /// Tumour label only inside the (pushed) organ, the organ itself only slightly moved,
    /// and most livers given some tumour.
    #[test]
    fn realistic_tumour_labels_stay_inside_the_liver() {
        let mut with = 0;
        for seed in 0..6 {
            let (grid, mut hu, mut labels) = liver_case(seed);
            let before = labels.clone();
            add_realistic_tumours(&mut Rng::new(seed + 100), &grid, &mut hu, &mut labels);
            let (nz, ny, nx) = labels.dim();
            let organ = |l: &Array3<u8>| l.iter().filter(|&&v| v > 0).count() as f64;
            assert!(
                (organ(&labels) / organ(&before) - 1.0).abs() < 0.1,
                "the push must not grow or shrink the liver much"
            );
            for ((k, j, i), &l) in labels.indexed_iter() {
                if l == 0 {
                    continue;
                }
                // within 3 voxels (12 mm in-plane) of the original organ: a bulge, not a new organ
                let near = (k.saturating_sub(3)..(k + 4).min(nz)).any(|kk| {
                    (j.saturating_sub(3)..(j + 4).min(ny))
                        .any(|jj| (i.saturating_sub(3)..(i + 4).min(nx)).any(|ii| before[[kk, jj, ii]] > 0))
                });
                assert!(near, "label {l} at {k},{j},{i} far outside the liver");
            }
            with += labels.iter().any(|&v| v == 2) as usize;
        }
        assert!(with >= 3, "most livers should get a tumour ({with} of 6)");
    }

    /// With a share of 0 the cases are exactly those of `add_realistic_tumours`; with every
    /// lesion placed anywhere, a 12 mm lesion is centred within half its radius of the
    /// liver's surface (cut by the liver's edge: subcapsular) far more often than where
    /// `place` keeps liver around it.
    #[test]
    fn lesions_placed_anywhere_reach_the_livers_surface() {
        let (grid, hu0, labels0) = liver_case(3);
        let (mut hu, mut labels) = (hu0.clone(), labels0.clone());
        add_realistic_tumours(&mut Rng::new(103), &grid, &mut hu, &mut labels);
        let (mut hu2, mut labels2) = (hu0, labels0.clone());
        add_realistic_tumours_anywhere(&mut Rng::new(103), &grid, &mut hu2, &mut labels2, 0.0);
        assert!(labels == labels2 && hu == hu2, "a share of 0 must give the same case");
        let liver: Vec<[usize; 3]> =
            labels0.indexed_iter().filter(|(_, &l)| l == 1).map(|((k, j, i), _)| [k, j, i]).collect();
        let depth = crate::volume::region::squared_distance_mm2(&labels0.mapv(|l| l == 0), grid.spacing_mm);
        let r = 12.0;
        let subcapsular = |share: f32| {
            let mut rng = Rng::new(5);
            (0..400)
                .filter(|_| {
                    let c = grid.world_to_index(centre_for(&mut rng, &grid, &labels0, &liver, r, share));
                    let p = [c[2].round() as usize, c[1].round() as usize, c[0].round() as usize];
                    (depth[p] as f64).sqrt() < 0.5 * r
                })
                .count()
        };
        let (deep, anywhere) = (subcapsular(0.0), subcapsular(1.0));
        eprintln!("of 400 lesions of 12 mm radius, centred within 6 mm of the surface: {deep} placed as before, {anywhere} anywhere");
        assert!(anywhere >= 2 * deep.max(5), "{anywhere} vs {deep}");
    }

    #[test]
    fn realistic_tumour_sizes_span_the_range() {
        let mut rng = Rng::new(7);
        let mut r: Vec<f64> = (0..4000).map(|_| draw_radius(&mut rng)).collect();
        r.sort_by(f64::total_cmp);
        assert!(r[0] >= 2.5 && r[0] < 3.0, "smallest {}", r[0]);
        assert!(r[r.len() - 1] <= 60.0 && r[r.len() - 1] > 55.0, "largest {}", r[r.len() - 1]);
        let median = r[r.len() / 2];
        assert!((8.0..16.0).contains(&median), "log-uniform: many small (median {median})");
        let counts: Vec<usize> = (0..2000).map(|_| draw_count(&mut rng)).collect();
        let none = counts.iter().filter(|&&c| c == 0).count() as f64 / counts.len() as f64;
        assert!((0.15..0.25).contains(&none), "about a fifth tumour-free ({none})");
        assert_eq!(counts.iter().max(), Some(&6));
        // an equivalent radius is kept through the axes' draw
        let l = Lesion::draw(&mut rng, Kind::Hcc, [0.0; 3], 30.0);
        assert!((l.radius() - 30.0).abs() < 1e-6);
    }

    /// Mean lesion-minus-liver HU per phase, over the labelled voxels, for one lesion of
    /// `kind` (20 mm) painted at the liver's centre; also the mean over its outer shell.
    fn contrast(kind: Kind, seed: u64) -> ([f32; CHANNELS], [f32; CHANNELS], [f32; CHANNELS]) {
        let (grid, mut hu, mut labels) = liver_case(seed);
        let mut rng = Rng::new(seed);
        let l = Lesion::draw(&mut rng, kind, [128.0, 128.0, 72.0], 20.0);
        let (median, sigma) = liver_statistics(&hu, &labels);
        paint(&mut rng, &grid, &mut hu, &mut labels, &l, &median, &sigma);
        let mut sum = [[0f64; CHANNELS]; 3];
        let mut n = [0f64; 3];
        for ((k, j, i), &lab) in labels.indexed_iter() {
            if lab != 2 {
                continue;
            }
            let (_, t) = l.distance(grid.index_to_world([i as f64, j as f64, k as f64]));
            let parts = [Some(0), (t > 0.8).then_some(1), (t < 0.4).then_some(2)];
            for p in parts.into_iter().flatten() {
                n[p] += 1.0;
                for c in 0..CHANNELS {
                    sum[p][c] += (hu[c][[k, j, i]] - LIVER[c]) as f64;
                }
            }
        }
        let mean = |p: usize| std::array::from_fn(|c| (sum[p][c] / n[p].max(1.0)) as f32);
        (mean(0), mean(1), mean(2))
    }

    /// Each type's enhancement against the liver has the stated sign in each phase: the
    /// body (inner part, away from rims and partial volume) in every draw, the whole lesion
    /// averaged over draws.
    #[test]
    fn realistic_tumour_types_enhance_as_stated() {
        for seed in 0..6 {
            let (_, _, hcc) = contrast(Kind::Hcc, seed);
            assert!(hcc[A] > 0.0 && hcc[D] < 0.0, "HCC: arterial hyper, delayed washout {hcc:?}");
            let (_, _, met) = contrast(Kind::Metastasis, seed);
            assert!(met.iter().all(|&v| v < 0.0), "metastasis: hypo in every phase {met:?}");
            let (_, _, cyst) = contrast(Kind::Cyst, seed);
            for c in 0..CHANNELS {
                let abs = cyst[c] + LIVER[c];
                assert!((-5.0..25.0).contains(&abs), "cyst: water in phase {c} ({abs} HU)");
            }
            let (inf, _, _) = contrast(Kind::Infiltrative, seed);
            assert!(inf.iter().all(|&v| v < 0.0), "infiltrative: slightly hypo {inf:?}");
        }
        let avg = |kind: Kind, part: usize, c: usize| {
            (0..8)
                .map(|s| {
                    let m = contrast(kind, 50 + s);
                    [m.0, m.1, m.2][part][c]
                })
                .sum::<f32>()
                / 8.0
        };
        assert!(avg(Kind::Hcc, 0, A) > 0.0 && avg(Kind::Hcc, 0, PV) < 0.0 && avg(Kind::Hcc, 0, D) < 0.0);
        assert!((0..CHANNELS).all(|c| avg(Kind::Metastasis, 0, c) < 0.0));
        // haemangioma: bright periphery and dark centre early, filled in later
        assert!(avg(Kind::Haemangioma, 1, A) > 0.0 && avg(Kind::Haemangioma, 2, A) < 0.0);
        assert!(avg(Kind::Haemangioma, 0, PV) > 0.0 && avg(Kind::Haemangioma, 0, D) > 0.0);
        for c in 0..CHANNELS {
            assert!(avg(Kind::Lipiodol, 0, c) > 80.0, "lipiodol dense in phase {c}");
        }
    }

    /// The push moves tissue outward: a bright dot just outside the lesion ends up farther
    /// from the centre; nothing moves beyond two radii.
    #[test]
    fn mass_effect_pushes_outward() {
        let grid = Geometry::axis_aligned([20, 40, 40], [4.0, 4.0, 4.0], [0.0; 3]);
        let mut hu = vec![Array3::<f32>::zeros((20, 40, 40)); CHANNELS];
        let mut labels = Array3::<u8>::from_elem((20, 40, 40), 1);
        for h in hu.iter_mut() {
            h[[10, 20, 26]] = 1000.0; // 24 mm right of the centre at (80, 80, 40)
            h[[10, 20, 38]] = 1000.0; // 72 mm: beyond 2r
        }
        push_aside(&grid, &mut hu, &mut labels, [80.0, 80.0, 40.0], 20.0, 0.2);
        let row: Vec<f32> = (0..40).map(|i| hu[0][[10, 20, i]]).collect();
        let peak = (21..36).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert!(peak > 26, "pushed outward (peak at {peak})");
        assert_eq!(row[38], 1000.0, "nothing moves beyond two radii");
        assert!(labels.iter().all(|&v| v == 1));
    }
}
