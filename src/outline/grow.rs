//! Region competition from one click: a voxel joins the lesion when its feature vector
//! (smoothed HU in every phase) is an outlier from the parenchyma and lies nearer to one of
//! the lesion's signatures than to the parenchyma (or to an exclude point's signature),
//! and it is 6-connected to the click. The first signature is the click's own. Then, step
//! by step, the two voxel layers just outside the region are looked at voxel by voxel:
//! where most of a layer is an outlier that no partial-volume blend of the liver with the
//! lesion explains, it is a rim, capsule or periphery, and the median of its purer half
//! becomes another signature; where most of it is lesion-like or such an outlier, the
//! region takes every such voxel within `rim_step_mm` more; otherwise it has met the liver.

use ndarray::Array3;

use super::region::flood;
use super::stats::{off_mixture2, signature_of, Features, Signature};
use super::OutlineOptions;
use crate::volume::region::squared_distance_mm2;

/// What one click grew.
pub struct Grown {
    pub region: Array3<bool>,
    /// Growth steps taken beyond the core into rims, capsules or the lesion's continuation.
    pub rims: usize,
}

/// Everything the competition compares against.
pub struct Classes<'a> {
    pub parenchyma: &'a Signature,
    /// Other non-lesion centres (exclude points' signatures), same spread as the parenchyma.
    pub background: Vec<Vec<f32>>,
    /// Squared outlier distance from the parenchyma (in its SD units).
    pub outlier2: f32,
}

impl Classes<'_> {
    fn d2(&self, f: &Features, v: [usize; 3], c: &[f32]) -> f32 {
        let sd = &self.parenchyma.sd_hu;
        f.phases.iter().enumerate().map(|(p, a)| ((a[v] - c[p]) / sd[p]).powi(2)).sum()
    }

    /// Outlier from the parenchyma and nearer a lesion signature than any background one.
    fn lesion_like(&self, f: &Features, v: [usize; 3], lesion: &[Vec<f32>]) -> bool {
        let dp = self.d2(f, v, &self.parenchyma.median_hu);
        if dp <= self.outlier2 {
            return false;
        }
        let dl = lesion.iter().map(|c| self.d2(f, v, c)).fold(f32::INFINITY, f32::min);
        dl < dp && self.background.iter().all(|c| dl < self.d2(f, v, c))
    }
}

fn voxels_of(a: &Array3<bool>) -> Vec<[usize; 3]> {
    a.indexed_iter().filter(|(_, &b)| b).map(|((k, j, i), _)| [k, j, i]).collect()
}

/// Grows the lesion of one click (`seeds`: the click's ball, local indices).
pub fn grow(
    f: &Features,
    domain: &Array3<bool>,
    classes: &Classes,
    seed: &Signature,
    seeds: &[[usize; 3]],
    spacing_mm: [f64; 3],
    opts: &OutlineOptions,
) -> Grown {
    let shape: [usize; 3] = domain.dim().into();
    let mut lesion = vec![seed.median_hu.clone()];
    let ok = |v: [usize; 3], lesion: &[Vec<f32>]| domain[v] && classes.lesion_like(f, v, lesion);
    let mut region = flood(shape, seeds, |v| ok(v, &lesion));
    let mut rims = 0;
    if !region.iter().any(|&b| b) {
        return Grown { region, rims };
    }
    let step2 = (opts.rim_step_mm * opts.rim_step_mm) as f32 * (1.0 + 1e-6);
    let sd = classes.parenchyma.sd_hu.clone();
    let par = classes.parenchyma.median_hu.clone();
    // Two layers outside the region, one voxel thick each, are looked at voxel by voxel: a
    // voxel is "new" when it is an outlier from the liver and no partial-volume blend of
    // the liver with a lesion signature (or with the region's median) explains it; it is
    // "lesion" when it would join by the current signatures. When most of a layer is new,
    // its new voxels' median joins the signatures; when most is new or lesion, the region
    // steps `rim_step_mm` further, taking every lesion-like voxel within the step (a blend
    // between a dark centre and a bright periphery may cut the layers apart: the final hole
    // filling joins them). Otherwise the region has met the liver.
    let layer = spacing_mm.iter().cloned().fold(0.0, f64::max) as f32;
    for _ in 0..opts.max_rims {
        let d2 = squared_distance_mm2(&region, spacing_mm);
        let Some(inside) = signature_of(f, &voxels_of(&region)) else { break };
        let mut explained = lesion.clone();
        explained.push(inside.median_hu.clone());
        let mut step = None;
        for (a, b) in [(0.0, layer), (layer, 2.0 * layer)] {
            let (a2, b2) = (a * a * (1.0 + 1e-6), b * b * (1.0 + 1e-6));
            let (mut total, mut lesion_like) = (0usize, 0usize);
            let mut new = Vec::new();
            for ((k, j, i), &d) in d2.indexed_iter() {
                let v = [k, j, i];
                if !(d > a2 && d <= b2 && domain[v]) {
                    continue;
                }
                total += 1;
                if ok(v, &lesion) {
                    lesion_like += 1;
                } else if classes.d2(f, v, &par) > classes.outlier2 {
                    let x = f.at(v);
                    if explained.iter().all(|l| off_mixture2(&x, &par, l, &sd) > classes.outlier2) {
                        new.push(v);
                    }
                }
            }
            if total == 0 {
                continue;
            }
            if 2 * new.len() > total {
                step = signature_of(f, &new).map(|s| Some(s.median_hu));
                break;
            }
            if 2 * (new.len() + lesion_like) > total {
                step = Some(None);
                break;
            }
        }
        let Some(added) = step else { break };
        if let Some(sig) = added {
            lesion.push(sig);
        }
        let before = region.iter().filter(|&&b| b).count();
        // within the step: lesion-like voxels, and outliers no blend of the liver with the
        // lesion explains (a haemangioma's nodules, a rim's brightest parts)
        let mut explained = lesion.clone();
        explained.push(inside.median_hu.clone());
        let unexplained = |v: [usize; 3]| {
            classes.d2(f, v, &par) > classes.outlier2 && {
                let x = f.at(v);
                explained.iter().all(|l| off_mixture2(&x, &par, l, &sd) > classes.outlier2)
            }
        };
        let next = ndarray::Zip::indexed(&region).and(&d2).map_collect(|(k, j, i), &r, &d| {
            r || (d <= step2 && domain[[k, j, i]] && (ok([k, j, i], &lesion) || unexplained([k, j, i])))
        });
        region = next;
        rims += 1;
        if region.iter().filter(|&&b| b).count() == before {
            break;
        }
    }
    Grown { region, rims }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outline::region::WorkBox;
    use crate::outline::stats::{ball, chi2_999};
    use crate::volume::{CtVolume, Geometry, Volume};

    /// A 10 mm ball, core `core` HU with a 2 mm rim of `rim` HU, in liver of 100 HU with a
    /// deterministic ±6 HU texture, on 1 mm voxels.
    fn scene(core: i16, rim: i16) -> CtVolume {
        let n = 48;
        let g = Geometry::axis_aligned([n, n, n], [1.0; 3], [0.0; 3]);
        let mut data = Array3::<i16>::zeros((n, n, n));
        for ((k, j, i), v) in data.indexed_iter_mut() {
            let r = [k, j, i].iter().map(|&x| (x as f64 - 24.0).powi(2)).sum::<f64>().sqrt();
            let tex = (((k * 7 + j * 13 + i * 29) % 13) as i16) - 6;
            *v = tex
                + if r < 8.0 {
                    core
                } else if r < 10.0 {
                    rim
                } else {
                    100
                };
        }
        Volume::new(data, g)
    }

    fn run(ct: &CtVolume) -> Grown {
        let b = WorkBox::around(&[[24, 24, 24]], 23.0, [1.0; 3], [48, 48, 48]);
        let f = Features::build(&[ct], 0, &b, 3.0);
        let domain = Array3::from_elem(b.shape(), true);
        let all: Vec<[usize; 3]> = domain.indexed_iter().map(|((k, j, i), _)| [k, j, i]).collect();
        let par = signature_of(&f, &all).unwrap();
        let c = b.local([24, 24, 24]).unwrap();
        let seeds = ball(&b, [1.0; 3], c, 3.0, |_| true);
        let seed = signature_of(&f, &seeds).unwrap();
        let classes = Classes { parenchyma: &par, background: vec![], outlier2: chi2_999(1) };
        grow(&f, &domain, &classes, &seed, &seeds, [1.0; 3], &OutlineOptions::default())
    }

    fn count(a: &Array3<bool>) -> usize {
        a.iter().filter(|&&b| b).count()
    }

    #[test]
    fn a_dark_ball_with_a_bright_rim_grows_to_the_rim() {
        let g = run(&scene(40, 160));
        assert!(g.rims >= 1, "the bright rim is a rim");
        let n = count(&g.region);
        let ball10 = 4.0 / 3.0 * std::f64::consts::PI * 1000.0;
        assert!((n as f64) > 0.8 * ball10 && (n as f64) < 1.2 * ball10, "{n} voxels vs {ball10:.0}");
    }

    #[test]
    fn a_ball_with_an_iso_rim_stops_at_the_core() {
        let g = run(&scene(40, 100));
        assert_eq!(g.rims, 0);
        let n = count(&g.region) as f64;
        let ball8 = 4.0 / 3.0 * std::f64::consts::PI * 512.0;
        assert!(n > 0.8 * ball8 && n < 1.2 * ball8, "{n} voxels vs {ball8:.0}");
    }
}
