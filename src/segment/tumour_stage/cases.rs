//! Training cases for the tumour stage: a real CT and its liver label, cropped to the
//! liver on the stage's grid, with realistic synthetic lesions implanted (types, sizes
//! 2.5–60 mm, lobulated, textured, per-phase enhancement, mass effect:
//! `segment::tumours`). Each case shows one phase's appearance of its lesions (arterial,
//! portal venous or delayed, drawn), normalised to that case's own liver, so the network
//! learns "unlike this liver", not one scanner's HU.
//!
//! A real body whose label leaves real tumours inside "liver" teaches the network to
//! ignore tumours: give only bodies whose liver has no lesion, or whose lesions are
//! labelled 2 (they are kept as tumours).

use ndarray::Array3;

use super::{crop_grid, liver_median, normalise, CLAMP, CONTEXT, IN_CHANNELS, MARGIN_MM};
use crate::segment::postprocess::fill_holes_slices;
use crate::segment::preprocess::{self, CHANNELS};
use crate::segment::tumours::add_realistic_tumours_anywhere;
use crate::segment::Rng;
use crate::volume::{CtVolume, Interp, Mask};

/// One case on the stage's grid.
#[derive(Clone)]
pub struct StageCase {
    pub name: String,
    /// `[nz, h, w]`: the normalised input quantised to u8 over `[-CLAMP, CLAMP]`.
    pub image: Array3<u8>,
    /// `[nz, h, w]`: 0 outside the liver, 1 liver, 2 tumour.
    pub labels: Array3<u8>,
    /// Tumour voxels `[k, j, i]` (patches are centred on them half the time).
    pub tumour: Vec<[usize; 3]>,
    /// Liver voxels.
    pub liver: Vec<[usize; 3]>,
    /// Liver voxels at least 60 HU from its median (vessels, fissures): hard negatives.
    pub unlike: Vec<[usize; 3]>,
}

pub fn quantise(x: f32) -> u8 {
    ((x + CLAMP) / (2.0 * CLAMP) * 255.0).round().clamp(0.0, 255.0) as u8
}

pub fn dequantise(q: u8) -> f32 {
    q as f32 / 255.0 * 2.0 * CLAMP - CLAMP
}

/// A case from `ct` and `label_map` (liver: any class in `liver_classes`; tumour: class
/// `tumour_class`, when given, stays tumour), lesions implanted from `seed`, looking as
/// they do in the portal venous phase: the one CT is taken as portal venous, and a lesion
/// with its arterial look (an HCC brighter than the liver) among portal venous vessels
/// would teach the stage that a bright round vessel is a tumour. `None` when the label has
/// no liver. `anywhere_share`: the share of lesions of 20 mm radius or less centred
/// anywhere in the liver, its surface included (`tumours::add_realistic_tumours_anywhere`).
#[allow(clippy::too_many_arguments)]
pub fn make_case(
    name: &str,
    ct: &CtVolume,
    label_map: &Mask,
    liver_classes: &[u8],
    tumour_class: Option<u8>,
    seed: u64,
    multiple: usize,
    anywhere_share: f32,
) -> Option<StageCase> {
    let phases = [ct, ct, ct];
    make_case_from_phases(
        name,
        &phases,
        Some(preprocess::PV),
        label_map,
        liver_classes,
        tumour_class,
        seed,
        multiple,
        anywhere_share,
    )
}

/// As [`make_case`] from a study's arterial, portal venous and delayed phases, each
/// already on any grid aligned with the label map (resampled in world coordinates): the
/// lesions are implanted in all three with their per-phase enhancement, and the case
/// shows phase `shown`, or one drawn at random.
#[allow(clippy::too_many_arguments)]
pub fn make_case_from_phases(
    name: &str,
    phases: &[&CtVolume; CHANNELS],
    shown: Option<usize>,
    label_map: &Mask,
    liver_classes: &[u8],
    tumour_class: Option<u8>,
    seed: u64,
    multiple: usize,
    anywhere_share: f32,
) -> Option<StageCase> {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(23));
    let labels_on_own =
        label_map.data.mapv(|c| if Some(c) == tumour_class { 2 } else { liver_classes.contains(&c) as u8 });
    let own = Mask::new(labels_on_own, label_map.geometry.clone());
    let grid = crop_grid(&own, super::SPACING_MM, MARGIN_MM, multiple)?;
    let mut labels = own.resample_to(&grid, Interp::Nearest, 0).data;
    // the liver as the first stage hands it over: holes filled in each slice, so the
    // portal vein and hepatic veins it encloses are inside the liver channel (an organ
    // label map leaves them out), liver here, not tumour
    let filled = fill_holes_slices(&labels.mapv(|l| l > 0));
    ndarray::Zip::from(&mut labels).and(&filled).for_each(|l, &f| {
        if f && *l == 0 {
            *l = 1;
        }
    });
    let mut hu: Vec<Array3<f32>> =
        phases.iter().map(|p| preprocess::onto_grid(p, &grid).data.mapv(|v| v as f32)).collect();
    add_realistic_tumours_anywhere(&mut rng, &grid, &mut hu, &mut labels, anywhere_share);
    let drawn = rng.below(CHANNELS);
    let phase = shown.unwrap_or(drawn).min(CHANNELS - 1);
    let median = liver_median(&hu[phase], &labels, f32::NAN, 50)?;
    let noise = rng.range(0.0, 12.0);
    let normalised = hu[phase].mapv(|h| normalise(h + noise * rng.normal(), median));
    let image = normalised.mapv(quantise);
    let (tumour, liver, unlike) = voxel_pools(&labels, |p| normalised[p]);
    if liver.is_empty() && tumour.is_empty() {
        return None;
    }
    Some(StageCase { name: format!("{name}-{seed}"), image, labels, tumour, liver, unlike })
}

/// `case` as slices `factor` times as thick would show it: each run of `factor` slices
/// averaged (partial volume: a lesion on one of two slices shows at half its contrast, as a
/// 10 mm lesion does on 5 mm slices), tumour where any slice of the run is (a reader outlines
/// what shows), liver where any is liver. The training bodies are 2.5–3 mm slices; studies
/// of 5 mm slices (crlm-1006) show small lesions on one slice, faded.
pub fn thicken(case: &StageCase, factor: usize) -> StageCase {
    let factor = factor.max(1);
    let (nz, ny, nx) = case.image.dim();
    let tz = nz.div_ceil(factor);
    let mut image = Array3::<u8>::zeros((tz, ny, nx));
    let mut labels = Array3::<u8>::zeros((tz, ny, nx));
    for t in 0..tz {
        let run = t * factor..((t + 1) * factor).min(nz);
        let n = run.len() as f32;
        for j in 0..ny {
            for i in 0..nx {
                let mean = run.clone().map(|k| dequantise(case.image[[k, j, i]])).sum::<f32>() / n;
                image[[t, j, i]] = quantise(mean);
                labels[[t, j, i]] = run.clone().map(|k| case.labels[[k, j, i]]).max().unwrap_or(0);
            }
        }
    }
    let (tumour, liver, unlike) = voxel_pools(&labels, |p| dequantise(image[p]));
    StageCase { name: format!("{}-thick{factor}", case.name), image, labels, tumour, liver, unlike }
}

/// The voxels patches are centred on: tumour, liver, and the liver voxels whose normalised
/// input (`value`) is a unit or more from the liver's median (vessels, fissures, the IVC:
/// what a lesion must be told from).
#[allow(clippy::type_complexity)]
fn voxel_pools(
    labels: &Array3<u8>,
    value: impl Fn([usize; 3]) -> f32,
) -> (Vec<[usize; 3]>, Vec<[usize; 3]>, Vec<[usize; 3]>) {
    let (mut tumour, mut liver, mut unlike) = (Vec::new(), Vec::new(), Vec::new());
    for ((k, j, i), &l) in labels.indexed_iter() {
        match l {
            2 => tumour.push([k, j, i]),
            1 => {
                liver.push([k, j, i]);
                if value([k, j, i]).abs() >= 1.0 {
                    unlike.push([k, j, i]);
                }
            }
            _ => {}
        }
    }
    (tumour, liver, unlike)
}

/// A case from a phantom of `seed` (its three phases brought onto the portal venous grid
/// through their true motion, its own lesions kept, more implanted). Training seeds must
/// stay clear of the evaluation ones (below 1000) and the demo's.
pub fn phantom_case(seed: u64, case_seed: u64, multiple: usize) -> Option<StageCase> {
    use crate::phantom::{make_phantom, PhantomOptions};
    let p = make_phantom(&PhantomOptions { seed, ..PhantomOptions::default() });
    let grid = &p.labels.geometry;
    let on_grid: Vec<CtVolume> = p
        .phases
        .iter()
        .map(|ph| match p.true_fields.iter().find(|(name, _)| *name == ph.name) {
            Some((_, field)) => crate::register::warp_volume(&ph.volume, field, Interp::Linear, -1024),
            None => preprocess::onto_grid(&ph.volume, grid),
        })
        .collect();
    if on_grid.len() != CHANNELS {
        return None;
    }
    let phases = [&on_grid[0], &on_grid[1], &on_grid[2]];
    make_case_from_phases(&format!("phantom{seed}"), &phases, None, &p.labels, &[1], Some(2), case_seed, multiple, 0.0)
}

/// One training sample: `[IN_CHANNELS, p, p]` input and `[p, p]` target (1 tumour), a
/// patch centred near a tumour voxel 40 % of the time, a vessel-like liver voxel 30 %
/// (what the stage must learn is not a lesion), else any liver voxel, with the stage-1
/// mask's errors imitated (the liver channel dilated or eroded by a pixel or two), flips,
/// quarter turns, intensity gain and offset, and noise; for `texture_share` of the patches
/// also another scanner's texture ([`retexture`]). `augment` false: the patch centred on
/// the chosen voxel as it is (validation).
pub fn sample(case: &StageCase, p: usize, rng: &mut Rng, augment: bool, texture_share: f32) -> (Vec<f32>, Vec<u32>) {
    let (nz, ny, nx) = case.labels.dim();
    let u = rng.f32();
    let pool = if !case.tumour.is_empty() && (case.liver.is_empty() || u < 0.4) {
        &case.tumour
    } else if !case.unlike.is_empty() && u < 0.7 {
        &case.unlike
    } else if !case.liver.is_empty() {
        &case.liver
    } else {
        &case.tumour
    };
    let [k, j, i] = pool[rng.below(pool.len())];
    let jitter = |rng: &mut Rng| if augment { rng.below(p / 2) as i64 - (p / 4) as i64 } else { 0 };
    let (cj, ci) = (j as i64 + jitter(rng), i as i64 + jitter(rng));
    let (j0, i0) = (cj - (p / 2) as i64, ci - (p / 2) as i64);
    let liver_grow: i64 = if !augment {
        0
    } else {
        match rng.below(4) {
            0 => -1,
            1 => 1 + rng.below(2) as i64,
            _ => 0,
        }
    };
    let (gain, offset, sigma) =
        if augment { (rng.range(0.85, 1.15), rng.range(-0.15, 0.15), rng.range(0.0, 0.08)) } else { (1.0, 0.0, 0.0) };
    let (flip_x, flip_y, turn) =
        if augment { (rng.f32() < 0.5, rng.f32() < 0.5, rng.f32() < 0.5) } else { (false, false, false) };
    // drawn only when asked for, so runs without it are the same as before it existed
    let texture = (augment && texture_share > 0.0 && rng.f32() < texture_share)
        .then(|| (rng.range(TEXTURE_BLUR_PX.0, TEXTURE_BLUR_PX.1), rng.range(0.0, TEXTURE_NOISE_MAX)));
    let mut x = vec![0f32; IN_CHANNELS * p * p];
    let mut y = vec![0u32; p * p];
    let in_liver = |kk: usize, jj: i64, ii: i64| -> bool {
        if jj < 0 || ii < 0 || jj >= ny as i64 || ii >= nx as i64 {
            return false;
        }
        case.labels[[kk, jj as usize, ii as usize]] > 0
    };
    for v in 0..p {
        for u in 0..p {
            // where this output pixel reads from (flips and a transpose)
            let (mut a, mut b) = (v, u);
            if turn {
                std::mem::swap(&mut a, &mut b);
            }
            if flip_y {
                a = p - 1 - a;
            }
            if flip_x {
                b = p - 1 - b;
            }
            let (jj, ii) = (j0 + a as i64, i0 + b as i64);
            let inside = jj >= 0 && ii >= 0 && jj < ny as i64 && ii < nx as i64;
            let o = v * p + u;
            for c in 0..2 * CONTEXT + 1 {
                let kk = (k + c).saturating_sub(CONTEXT).min(nz - 1);
                x[c * p * p + o] = if inside { dequantise(case.image[[kk, jj as usize, ii as usize]]) } else { -CLAMP };
            }
            let liver_here = match liver_grow {
                0 => in_liver(k, jj, ii),
                g if g > 0 => (-g..=g).any(|dj| (-g..=g).any(|di| in_liver(k, jj + dj, ii + di))),
                _ => (-1..=1).all(|dj| (-1..=1).all(|di| in_liver(k, jj + dj, ii + di))),
            };
            x[(IN_CHANNELS - 1) * p * p + o] = liver_here as u8 as f32;
            if inside {
                y[o] = (case.labels[[k, jj as usize, ii as usize]] == 2) as u32;
            }
        }
    }
    if let Some((blur_px, noise)) = texture {
        for c in 0..2 * CONTEXT + 1 {
            retexture(&mut x[c * p * p..(c + 1) * p * p], p, blur_px, noise, rng);
        }
    }
    // in the order the values were drawn before the texture existed (pixel, then channel)
    for o in 0..p * p {
        for c in 0..2 * CONTEXT + 1 {
            let v = &mut x[c * p * p + o];
            *v = (*v * gain + offset + sigma * rng.normal()).clamp(-CLAMP, CLAMP);
        }
    }
    (x, y)
}

/// In-plane Gaussian blur of a texture patch, pixels (a softer reconstruction kernel, or
/// thicker in-plane resampling, than the training bodies': the smooth kernels of many
/// scanners; a stage that had never seen one called 96 mL of smooth parenchyma tumour on
/// crlm-1006 blurred by 0.4 of its pixels).
pub const TEXTURE_BLUR_PX: (f32, f32) = (0.3, 1.2);
/// Most noise added after the blur, in input units (15 HU: a sharper kernel, a lower dose).
pub const TEXTURE_NOISE_MAX: f32 = 0.25;

/// Another scanner's texture on one channel of a `p` × `p` patch: a Gaussian blur of
/// `blur_px` SD (the registration's smoothing, edges repeated), then white noise of `noise`
/// SD.
pub fn retexture(x: &mut [f32], p: usize, blur_px: f32, noise: f32, rng: &mut Rng) {
    let sigma = [0.0, blur_px as f64, blur_px as f64];
    crate::register::smooth::gaussian_smooth(x, [1, p, p], 1, sigma, &mut Vec::new());
    x.iter_mut().for_each(|v| *v += noise * rng.normal());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};
    use ndarray::s;

    /// The texture keeps a patch's mean, spreads a lone pixel by the asked blur and adds
    /// noise of the asked SD.
    #[test]
    fn another_scanners_texture_blurs_and_adds_noise_as_asked() {
        let p = 33;
        let mut rng = Rng::new(9);
        let mut spot = vec![0f32; p * p];
        spot[16 * p + 16] = 1.0;
        retexture(&mut spot, p, 1.0, 0.0, &mut rng);
        let sum: f32 = spot.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "mean not kept: {sum}");
        // a Gaussian of SD 1 pixel: the centre keeps 1 / (2 pi) of it, a pixel away e^-0.5 of that
        let c = spot[16 * p + 16];
        assert!((c - 1.0 / (2.0 * std::f32::consts::PI)).abs() < 0.01, "centre {c}");
        assert!((spot[16 * p + 17] / c - (-0.5f32).exp()).abs() < 0.02);
        let mut flat = vec![0.5f32; p * p];
        retexture(&mut flat, p, 0.5, 0.2, &mut rng);
        let n = flat.len() as f32;
        let mean = flat.iter().sum::<f32>() / n;
        let sd = (flat.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!((mean - 0.5).abs() < 0.03 && (sd - 0.2).abs() < 0.02, "mean {mean} sd {sd}");
    }

    /// Four slices of liver at its median (input 0) with a lesion (input −2) on the second
    /// only: twice as thick, the lesion's slice pair shows it at half its contrast, labelled
    /// tumour; the other pair is plain liver.
    #[test]
    fn thicker_slices_average_a_lesion_to_half_its_contrast() {
        let mut image = Array3::from_elem((4, 6, 6), quantise(0.0));
        let mut labels = Array3::from_elem((4, 6, 6), 1u8);
        image.slice_mut(s![1, 2..4, 2..4]).fill(quantise(-2.0));
        labels.slice_mut(s![1, 2..4, 2..4]).fill(2);
        let case = StageCase { name: "box".into(), image, labels, tumour: vec![], liver: vec![], unlike: vec![] };
        let thick = thicken(&case, 2);
        assert_eq!(thick.image.dim(), (2, 6, 6));
        assert!((dequantise(thick.image[[0, 2, 2]]) + 1.0).abs() < 0.05, "{}", dequantise(thick.image[[0, 2, 2]]));
        assert!(dequantise(thick.image[[1, 2, 2]]).abs() < 0.05);
        assert_eq!(thick.tumour.len(), 4);
        assert!(thick.tumour.iter().all(|p| p[0] == 0));
        assert_eq!(thick.liver.len(), 2 * 36 - 4);
        // the half-contrast lesion is "unlike" the liver (|input| ≥ 1) only where labelled
        // tumour, so no liver voxel is
        assert!(thick.unlike.is_empty());
    }

    /// A body of soft tissue with a liver of 100 HU in it; the case must keep the liver,
    /// implant lesions from some seed, and its samples must be in range.
    #[test]
    fn a_case_from_a_liver_label_has_lesions_and_sane_samples() {
        let g = Geometry {
            shape: [12, 80, 80],
            spacing_mm: [3.0, 1.5, 1.5],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut lab = Array3::<u8>::zeros((12, 80, 80));
        lab.slice_mut(s![1..11, 10..70, 10..70]).fill(5);
        let ct = Volume::new(lab.mapv(|l| if l == 5 { 100i16 } else { 30 }), g.clone());
        let labels = Volume::new(lab, g);
        let with = (0..20u64)
            .filter_map(|seed| make_case("box", &ct, &labels, &[5], None, seed, 8, 0.0))
            .find(|c| !c.tumour.is_empty())
            .expect("some seed implants a lesion");
        assert!(!with.liver.is_empty());
        // the liver itself is at its own median: input 0, quantised mid-range
        let [k, j, i] = with.liver[with.liver.len() / 2];
        assert!(dequantise(with.image[[k, j, i]]).abs() < 1.0);
        let mut rng = Rng::new(3);
        for (augment, texture) in [(false, 0.0), (true, 0.0), (true, 1.0)] {
            let (x, y) = sample(&with, 32, &mut rng, augment, texture);
            assert_eq!(x.len(), IN_CHANNELS * 32 * 32);
            assert!(x.iter().all(|v| v.is_finite() && v.abs() <= CLAMP));
            assert!(y.iter().all(|&t| t <= 1));
        }
    }
}
