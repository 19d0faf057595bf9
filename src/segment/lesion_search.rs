//! Focal lesions the network missed. A 2-D network trained on one real body and a phantom
//! misses lesions whose pattern it has not seen (the phantom's hemangioma, which follows
//! the blood pool as vessels do, is labelled liver). A radiologist looking for lesions
//! asks a simpler question first: is there a round patch of liver, at least 10 mm across,
//! that does not look like the rest of this liver in some phase? This answers that,
//! against the study's own parenchyma (no scanner's HU built in), and keeps only what a
//! vessel or the liver's edge cannot explain:
//! - after closing gaps of a few millimetres (where a lesion's rim and centre meet, its HU
//!   cross the parenchyma's: the phantom's hemangioma in the portal venous phase),
//!   the patch holds a ball of the smallest lesion's diameter (an opening by that ball:
//!   thinner vessels, speckle and partial volume fall away);
//! - liver surrounds it (a patch at the mask's edge is more often the IVC, the hilum, the
//!   heart or the stomach than a lesion; the network finds most lesions there anyway);
//! - it is round: its principal axes differ by less than `max_elongation` (a vessel's
//!   stretch that holds the ball is long);
//! - little unlike tissue leaves it: unlike voxels within one radius outside it, per voxel
//!   of it, are fewer than `max_branching` (a vessel junction holds the ball, and its
//!   branches leave in every direction).

use ndarray::{s, Array3};

use super::refine::{depth_mm2, liver_box, local_grid, smooth3, OtherPhase, Parenchyma};
use crate::volume::region::{connected_components, squared_distance_mm2};
use crate::volume::{CtVolume, Mask};

/// How strict the search is.
#[derive(Clone, Copy, Debug)]
pub struct LesionSearchOptions {
    /// Smallest lesion looked for, mm (a ball of this diameter must fit).
    pub min_diameter_mm: f64,
    /// Unlike the parenchyma: outside this many robust standard deviations of the liver's
    /// median, in some phase.
    pub band_sigmas: f32,
    /// Longest over shortest principal axis.
    pub max_elongation: f64,
    /// Unlike voxels within one radius around the patch, per voxel of the patch.
    pub max_branching: f64,
    /// Gaps in the unlike voxels up to about twice this wide are closed first, mm (0: none).
    pub close_mm: f64,
}

impl Default for LesionSearchOptions {
    fn default() -> Self {
        LesionSearchOptions {
            min_diameter_mm: 10.0,
            band_sigmas: 3.0,
            max_elongation: 2.0,
            max_branching: 1.0,
            close_mm: 2.0,
        }
    }
}

/// What the search saw and added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LesionSearchReport {
    /// Patches that hold the ball, not overlapping a lesion the network found.
    pub candidates: usize,
    /// Lesions added, each `(voxels, centre [x, y, z] LPS mm)`.
    pub added: Vec<(usize, [f64; 3])>,
}

/// Labels as tumour (2) the patches of liver (1) in `mask` that pass the tests of the
/// module doc, read in `reference` (on the mask's grid) and the `others` phases registered
/// to it. Lesions the network found are left as they are. `None` (nothing changed) when
/// the grids differ or the liver is too small to measure.
pub fn add_missed_lesions(
    mask: &mut Mask,
    reference: &CtVolume,
    others: &[OtherPhase],
    opts: &LesionSearchOptions,
) -> Option<LesionSearchReport> {
    if mask.data.dim() != reference.data.dim() {
        return None;
    }
    let (lo, hi) = liver_box(mask, 1)?;
    let region = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let grid = local_grid(&mask.geometry, lo, hi);
    let sp = grid.spacing_mm;
    let mut lab = mask.data.slice(region).to_owned();
    let reference = reference.data.slice(region).to_owned();
    let mut phases = vec![(Parenchyma::measure(&lab, &reference, opts.band_sigmas)?, reference)];
    for v in others.iter().map(|p| p.onto(&grid)) {
        if let Some(b) = Parenchyma::measure(&lab, &v, opts.band_sigmas) {
            phases.push((b, v));
        }
    }
    let unlike = Array3::from_shape_fn(lab.dim(), |p| {
        lab[p] > 0 && phases.iter().any(|(band, hu)| smooth3(hu, p).is_some_and(|v| !band.contains(v)))
    });
    let r = 0.5 * opts.min_diameter_mm;
    let r2 = (r * r) as f32;
    // closing: a lesion's layers (a rim that has filled in, a centre that has not) meet at
    // a thin shell that crosses the parenchyma's HU on the way
    let unlike = if opts.close_mm > 0.0 {
        let c2 = (opts.close_mm * opts.close_mm) as f32;
        let dilated = squared_distance_mm2(&unlike, sp).mapv(|d| d <= c2);
        let closed = squared_distance_mm2(&dilated.mapv(|d| !d), sp).mapv(|d| d > c2);
        ndarray::Zip::from(&closed).and(&lab).map_collect(|&c, &l| c && l > 0)
    } else {
        unlike
    };
    // opening by the ball: the patches that hold it, and only the parts of them it reaches
    let core = squared_distance_mm2(&unlike.mapv(|u| !u), sp).mapv(|d| d > r2);
    if !core.iter().any(|&c| c) {
        return Some(LesionSearchReport::default());
    }
    let opened = ndarray::Zip::from(&squared_distance_mm2(&core, sp)).and(&unlike).map_collect(|&d, &u| u && d <= r2);
    let (patches, _) = connected_components(&Mask::new(opened.mapv(|o| o as u8), grid.clone()), 1, 1);
    let depth = depth_mm2(&lab, sp);
    let (_, ny, nx) = lab.dim();
    let at = |v: usize| (v / (ny * nx), (v / nx) % ny, v % nx);
    // at least one voxel of liver between the patch and whatever is not liver, the scan's
    // first and last slices included
    let thickness = sp.iter().cloned().fold(0.0, f64::max);
    let enclosed = |voxels: &[usize]| voxels.iter().all(|&v| depth[at(v)] as f64 > thickness * thickness);
    let mut report = LesionSearchReport::default();
    for patch in &patches {
        if patch.voxels.iter().any(|&v| lab[at(v)] == 2) {
            continue;
        }
        report.candidates += 1;
        let points: Vec<[f64; 3]> = patch
            .voxels
            .iter()
            .map(|&v| {
                let (k, j, i) = at(v);
                [k as f64 * sp[0], j as f64 * sp[1], i as f64 * sp[2]]
            })
            .collect();
        let c = mean(&points);
        let centre = grid.index_to_world([c[2] / sp[2], c[1] / sp[1], c[0] / sp[0]]);
        // in this order, each test only when the cheaper ones passed (branching is a
        // distance transform)
        let refused = if !enclosed(&patch.voxels) {
            Some("it touches the liver's edge")
        } else if elongation(&points) > opts.max_elongation {
            Some("it is elongated")
        } else if branching(&patch.voxels, &unlike, sp, r) > opts.max_branching {
            Some("unlike tissue branches from it")
        } else {
            None
        };
        log::debug!(
            "lesion search: patch of {} voxels at [{:.0}, {:.0}, {:.0}] mm: {}",
            patch.voxels.len(),
            centre[0],
            centre[1],
            centre[2],
            refused.unwrap_or("added")
        );
        if refused.is_some() {
            continue;
        }
        for &v in &patch.voxels {
            lab[at(v)] = 2;
        }
        report.added.push((patch.voxels.len(), centre));
    }
    mask.data.slice_mut(region).assign(&lab);
    Some(report)
}

fn mean(points: &[[f64; 3]]) -> [f64; 3] {
    let n = points.len().max(1) as f64;
    let mut m = [0.0; 3];
    for p in points {
        for a in 0..3 {
            m[a] += p[a] / n;
        }
    }
    m
}

/// Longest over shortest principal axis of a point cloud (mm): the square root of the
/// ratio of the covariance's largest and smallest eigenvalues; infinite when flat.
fn elongation(points: &[[f64; 3]]) -> f64 {
    let m = mean(points);
    let mut c = [[0.0; 3]; 3];
    for p in points {
        for a in 0..3 {
            for b in 0..3 {
                c[a][b] += (p[a] - m[a]) * (p[b] - m[b]);
            }
        }
    }
    let e = symmetric_eigenvalues(c);
    if e[0] <= 1e-9 * e[2].max(1e-12) {
        return f64::INFINITY;
    }
    (e[2] / e[0]).sqrt()
}

/// Eigenvalues of a symmetric 3 × 3 matrix, ascending (the closed form of Smith 1961).
fn symmetric_eigenvalues(a: [[f64; 3]; 3]) -> [f64; 3] {
    let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    if off == 0.0 {
        let mut d = [a[0][0], a[1][1], a[2][2]];
        d.sort_by(f64::total_cmp);
        return d;
    }
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    let p = (((a[0][0] - q).powi(2) + (a[1][1] - q).powi(2) + (a[2][2] - q).powi(2) + 2.0 * off) / 6.0).sqrt();
    let b = |i: usize, j: usize| (a[i][j] - if i == j { q } else { 0.0 }) / p;
    let det = b(0, 0) * (b(1, 1) * b(2, 2) - b(1, 2) * b(2, 1)) - b(0, 1) * (b(1, 0) * b(2, 2) - b(1, 2) * b(2, 0))
        + b(0, 2) * (b(1, 0) * b(2, 1) - b(1, 1) * b(2, 0));
    let phi = (0.5 * det).clamp(-1.0, 1.0).acos() / 3.0;
    let largest = q + 2.0 * p * phi.cos();
    let smallest = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    [smallest, 3.0 * q - largest - smallest, largest]
}

/// Unlike voxels within `r_mm` outside the patch, per voxel of the patch: near 0 for a
/// lesion (its blurred rim), above 1 where vessels leave a junction.
fn branching(voxels: &[usize], unlike: &Array3<bool>, sp: [f64; 3], r_mm: f64) -> f64 {
    let (nz, ny, nx) = unlike.dim();
    let at = |v: usize| [v / (ny * nx), (v / nx) % ny, v % nx];
    let dims = [nz, ny, nx];
    let mut lo = dims;
    let mut hi = [0; 3];
    for &v in voxels {
        let p = at(v);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a] + 1);
        }
    }
    for a in 0..3 {
        let m = (r_mm / sp[a]).ceil() as usize + 1;
        lo[a] = lo[a].saturating_sub(m);
        hi[a] = (hi[a] + m).min(dims[a]);
    }
    let mut inside = Array3::from_elem((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), false);
    for &v in voxels {
        let p = at(v);
        inside[(p[0] - lo[0], p[1] - lo[1], p[2] - lo[2])] = true;
    }
    let d = squared_distance_mm2(&inside, sp);
    let r2 = (r_mm * r_mm) as f32;
    let near = unlike.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
    let leaving =
        ndarray::Zip::from(&d).and(&inside).and(&near).fold(0usize, |n, &d, &i, &u| n + (u && !i && d <= r2) as usize);
    leaving as f64 / voxels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    const SHAPE: (usize, usize, usize) = (36, 90, 90);

    /// Liver everywhere but a 3-voxel border (100 HU, noise σ 8), 2 mm slices, 1 mm pixels,
    /// with, in `[z, y, x]` voxels: a dark round lesion (40 HU, radius 8 mm) deep inside;
    /// a bright vessel (170 HU, radius 6 mm, 60 mm long) along x, inside the liver; a dark lesion cut by the liver's
    /// edge (radius 12 mm); and a bright lesion (radius 7 mm) the network already found (label 2).
    fn scene() -> (CtVolume, Mask, Array3<bool>) {
        let g = Geometry {
            shape: [SHAPE.0, SHAPE.1, SHAPE.2],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut rng = super::super::Rng::new(5);
        let ball = |(k, j, i): (usize, usize, usize), c: [f64; 3], r: f64| {
            (2.0 * k as f64 - c[0]).powi(2) + (j as f64 - c[1]).powi(2) + (i as f64 - c[2]).powi(2) <= r * r
        };
        let inside = |(k, j, i): (usize, usize, usize)| {
            (3..SHAPE.0 - 3).contains(&k) && (3..SHAPE.1 - 3).contains(&j) && (3..SHAPE.2 - 3).contains(&i)
        };
        let missed = Array3::from_shape_fn(SHAPE, |p| ball(p, [36.0, 30.0, 30.0], 8.0));
        let found = |p| ball(p, [36.0, 30.0, 65.0], 7.0);
        let hu = Array3::from_shape_fn(SHAPE, |p| {
            let (k, j, i) = p;
            let base = if !inside(p) {
                -100.0
            } else if missed[p] || ball(p, [36.0, 45.0, 86.0], 12.0) {
                40.0
            } else if ((15..75).contains(&i) && (2.0 * k as f64 - 36.0).powi(2) + (j as f64 - 75.0).powi(2) <= 36.0)
                || found(p)
            {
                170.0
            } else {
                100.0
            };
            (base + 8.0 * rng.normal()).round() as i16
        });
        let lab = Array3::from_shape_fn(SHAPE, |p| {
            if !inside(p) {
                0
            } else if found(p) {
                2
            } else {
                1
            }
        });
        (CtVolume::new(hu, g.clone()), Mask::new(lab, g), missed)
    }

    #[test]
    fn a_round_patch_deep_in_the_liver_becomes_a_lesion_and_nothing_else_does() {
        let (ct, mut mask, missed) = scene();
        let before = mask.data.clone();
        let report = add_missed_lesions(&mut mask, &ct, &[], &LesionSearchOptions::default()).unwrap();
        assert_eq!(report.added.len(), 1, "{report:?}");
        let centre = report.added[0].1;
        assert!(
            (centre[0] - 30.0).abs() < 1.5 && (centre[1] - 30.0).abs() < 1.5 && (centre[2] - 36.0).abs() < 2.0,
            "centre {centre:?}"
        );
        let hit = mask.data.iter().zip(missed.iter()).filter(|&(&m, &t)| m == 2 && t).count() as f64;
        let called = mask.data.iter().zip(before.iter()).filter(|&(&m, &b)| m == 2 && b != 2).count() as f64;
        let truth = missed.iter().filter(|&&t| t).count() as f64;
        let dice = 2.0 * hit / (called + truth);
        assert!(dice > 0.85, "Dice {dice:.3}");
        // the vessel, the lesion at the edge and the found lesion are as they were: nothing
        // changed farther than a voxel or two (the smoothed rim) from the missed lesion
        let near_missed = squared_distance_mm2(&missed, ct.geometry.spacing_mm);
        for ((p, &b), &a) in before.indexed_iter().zip(mask.data.iter()) {
            if near_missed[p] > 4.0 {
                assert_eq!(a, b, "changed at {p:?}");
            }
        }
    }

    #[test]
    fn a_lesion_whose_rim_and_centre_meet_at_liver_hu_is_found_after_closing() {
        // bright rim (170 HU, 6–9 mm), dark centre (40 HU, < 4 mm), and between them a
        // shell at the liver's 100 HU: neither part alone holds a 10 mm ball
        let g = Geometry {
            shape: [SHAPE.0, SHAPE.1, SHAPE.2],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut rng = super::super::Rng::new(8);
        let radius = |(k, j, i): (usize, usize, usize)| {
            ((2.0 * k as f64 - 36.0).powi(2) + (j as f64 - 45.0).powi(2) + (i as f64 - 45.0).powi(2)).sqrt()
        };
        let inside = |(k, j, i): (usize, usize, usize)| {
            (3..SHAPE.0 - 3).contains(&k) && (3..SHAPE.1 - 3).contains(&j) && (3..SHAPE.2 - 3).contains(&i)
        };
        let hu = Array3::from_shape_fn(SHAPE, |p| {
            let r = radius(p);
            let base = if !inside(p) {
                -100.0
            } else if r < 4.0 {
                40.0
            } else if (6.0..9.0).contains(&r) {
                170.0
            } else {
                100.0
            };
            (base + 8.0 * rng.normal()).round() as i16
        });
        let ct = CtVolume::new(hu, g.clone());
        let lab = Array3::from_shape_fn(SHAPE, |p| inside(p) as u8);
        let run = |close_mm: f64| {
            let mut mask = Mask::new(lab.clone(), g.clone());
            add_missed_lesions(&mut mask, &ct, &[], &LesionSearchOptions { close_mm, ..LesionSearchOptions::default() })
                .unwrap()
                .added
        };
        assert!(run(0.0).is_empty(), "without closing neither layer holds the ball");
        let added = run(2.0);
        assert_eq!(added.len(), 1);
        let volume_mm3 = added[0].0 as f64 * 2.0;
        let sphere_mm3 = 4.0 / 3.0 * std::f64::consts::PI * 9f64.powi(3);
        assert!((0.7..1.3).contains(&(volume_mm3 / sphere_mm3)), "{volume_mm3:.0} mm³ against {sphere_mm3:.0}");
    }

    #[test]
    fn a_vessel_junction_is_not_a_lesion() {
        // a 6 mm-radius ball where three 4 mm-radius vessels meet: the ball fits, but the
        // branches leave it in every direction
        let (nz, n) = (30, 70);
        let mut unlike = Array3::from_elem((nz, n, n), false);
        let mut patch = Vec::new();
        for ((k, j, i), u) in unlike.indexed_iter_mut() {
            let (z, y, x) = (2.0 * k as f64 - 30.0, j as f64 - 35.0, i as f64 - 35.0);
            let in_ball = z * z + y * y + x * x <= 36.0;
            *u = in_ball || y * y + z * z <= 16.0 || x * x + z * z <= 16.0 || (y * y + x * x <= 16.0);
            if in_ball {
                patch.push((k * n + j) * n + i);
            }
        }
        assert!(branching(&patch, &unlike, [2.0, 1.0, 1.0], 5.0) > 1.0);
        let alone = Array3::from_shape_fn((nz, n, n), |(k, j, i)| {
            (2.0 * k as f64 - 30.0).powi(2) + (j as f64 - 35.0).powi(2) + (i as f64 - 35.0).powi(2) <= 36.0
        });
        assert_eq!(branching(&patch, &alone, [2.0, 1.0, 1.0], 5.0), 0.0);
    }

    #[test]
    fn eigenvalues_of_a_turned_ellipsoid_and_its_elongation() {
        // diag(1, 4, 9) turned 30° about z
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let r = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let d = [1.0, 4.0, 9.0];
        let a: [[f64; 3]; 3] =
            std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| r[i][k] * d[k] * r[j][k]).sum()));
        let e = symmetric_eigenvalues(a);
        for (x, y) in e.iter().zip(d) {
            assert!((x - y).abs() < 1e-9, "{e:?}");
        }
        let rod: Vec<[f64; 3]> = (0..40)
            .flat_map(|x| [[0.0, 0.0, x as f64], [0.0, 1.0, x as f64], [1.0, 0.0, x as f64], [1.0, 1.0, x as f64]])
            .collect();
        assert!(elongation(&rod) > 10.0);
    }
}
