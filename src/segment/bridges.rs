//! Organs joined to the liver by a thin bridge. The network labels, slice by slice, what
//! looks like liver at 4 mm pixels; the heart above the dome and the stomach's wall and
//! food below the left lobe can look so, and the largest connected component keeps them
//! when a few voxels join them to the liver (on `hcc048-pv`: the stomach below the liver
//! through a neck of a few slices, the back of the heart through one slice at the dome).
//! A liver's lobes are joined broadly, by parenchyma centimetres thick. So the mask is
//! split where it narrows below `neck_mm`: its parts at least that thick (the *cores*, an
//! erosion) are found, every voxel of the mask goes to the core nearest along the mask
//! (geodesic distance in mm), and what belongs to a small core other than the largest
//! comes out, unless it is mostly tumour (a lesion may bulge from the liver on a stalk).
//! A larger core, up to half the largest, comes out too when most of it lies outside the
//! largest core's parenchyma band (another organ's density): on an arterial series of
//! HCC-TACE-Seg HCC_006 (`tests/data/hcc006-arterial`) the network took in 341 mL of the
//! heart, joined at the dome, whose core was 11–14 % of the liver's and 15–37 % within its band
//! (the liver's own core: 96 %).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ndarray::s;

use super::postprocess::take_out_of_liver;
use super::refine::{depth_mm2, liver_box, local_grid, smooth3, Parenchyma};
use crate::volume::region::{connected_components, Component};
use crate::volume::{CtVolume, Mask};

/// A part cut off has a core at most this fraction of the largest core's volume (the
/// stomach's and the heart's on `hcc048-pv`: 2 % and 1 %).
const MAX_CORE_FRACTION: f64 = 0.1;
/// ... or at most this fraction when it is of another density ([`MAX_SHARE_IN_BAND`]): the
/// largest core is then still the liver.
const MAX_OTHER_DENSITY_CORE_FRACTION: f64 = 0.5;
/// Another density: less than this share of the core's voxels lie within the largest
/// core's parenchyma band ([`BAND_SIGMAS`]).
const MAX_SHARE_IN_BAND: f64 = 0.5;
/// The band: median ± this many robust SDs of the largest core's in-plane 3 × 3 mean HU,
/// as the edge refinement measures the liver's.
const BAND_SIGMAS: f32 = 2.5;

/// Splits off and removes the parts of `mask` joined to the main body only through necks
/// thinner than `neck_mm` whose own thick part (core) holds at least `min_core_ml` and at
/// most a tenth of the largest core's volume, or at most half of it and mostly outside its
/// parenchyma band in `reference` (on the mask's grid; without it, or on another grid,
/// only the first rule holds); a part at least half tumour stays (a lesion
/// on a stalk), and tumour labels are never removed
/// (those left apart from the liver go with the tidying). Then the mask is tidied
/// again (largest component, holes filled). Returns how many voxels left the liver.
pub fn cut_thin_bridges(mask: &mut Mask, reference: Option<&CtVolume>, neck_mm: f64, min_core_ml: f64) -> usize {
    let Some((lo, hi)) = liver_box(mask, 1) else { return 0 };
    let region = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let grid = local_grid(&mask.geometry, lo, hi);
    let sp = grid.spacing_mm;
    let lab = mask.data.slice(region).to_owned();
    let (nz, ny, nx) = lab.dim();
    let r = 0.5 * neck_mm;
    let core = depth_mm2(&lab, sp).mapv(|d| d as f64 > r * r);
    let voxel_ml = sp.iter().product::<f64>() / 1000.0;
    let (cores, _) = connected_components(
        &Mask::new(core.mapv(|c| c as u8), grid.clone()),
        1,
        (min_core_ml / voxel_ml).ceil().max(1.0) as usize,
    );
    if cores.len() < 2 {
        return 0;
    }
    // each voxel of the mask to its nearest core along the mask (cores[0] is the largest)
    let mut owner = vec![u32::MAX; lab.len()];
    let mut dist = vec![f32::INFINITY; lab.len()];
    let mut heap = BinaryHeap::new();
    for (n, c) in cores.iter().enumerate() {
        for &v in &c.voxels {
            owner[v] = n as u32;
            dist[v] = 0.0;
            heap.push(Reverse((0u32, v)));
        }
    }
    let labels = lab.as_slice().expect("an owned array is in standard layout");
    let dims = [nz, ny, nx];
    let steps = [(ny * nx, sp[0] as f32, 0usize), (nx, sp[1] as f32, 1), (1, sp[2] as f32, 2)];
    while let Some(Reverse((d_bits, v))) = heap.pop() {
        let d = f32::from_bits(d_bits);
        if d > dist[v] {
            continue;
        }
        let at = [v / (ny * nx), (v / nx) % ny, v % nx];
        for &(stride, cost, axis) in &steps {
            for forward in [true, false] {
                let q = match forward {
                    true if at[axis] + 1 < dims[axis] => v + stride,
                    false if at[axis] > 0 => v - stride,
                    _ => continue,
                };
                let nd = d + cost;
                if labels[q] > 0 && nd < dist[q] {
                    dist[q] = nd;
                    owner[q] = owner[v];
                    // non-negative floats order as their bits do
                    heap.push(Reverse((nd.to_bits(), q)));
                }
            }
        }
    }
    // a part mostly tumour is a lesion on a stalk; a few tumour voxels in a part are more
    // likely the network's stray calls in the organ it mistook for liver
    let mut voxels = vec![0usize; cores.len()];
    let mut tumour = vec![0usize; cores.len()];
    for (v, &o) in owner.iter().enumerate() {
        if o != u32::MAX {
            voxels[o as usize] += 1;
            tumour[o as usize] += (labels[v] == 2) as usize;
        }
    }
    // and a part whose core is a sizeable fraction of the main one's is more likely liver
    // the network split with a gap than another organ: it stays
    let main_core = cores[0].voxels.len() as f64;
    let hu = reference.filter(|r| r.data.dim() == mask.data.dim()).map(|r| r.data.slice(region).to_owned());
    let in_band = hu.map(|hu| share_in_main_band(&cores, &hu)).unwrap_or_else(|| vec![1.0; cores.len()]);
    let removable: Vec<bool> = (0..cores.len())
        .map(|n| {
            let fraction = cores[n].voxels.len() as f64 / main_core;
            let other_density = in_band[n] < MAX_SHARE_IN_BAND && fraction <= MAX_OTHER_DENSITY_CORE_FRACTION;
            n > 0 && 2 * tumour[n] < voxels[n] && (fraction <= MAX_CORE_FRACTION || other_density)
        })
        .collect();
    for n in 1..cores.len() {
        log::debug!(
            "thin bridges: core {n} of {:.1} mL ({:.3} of the largest), {:.2} within its band, {}",
            cores[n].voxels.len() as f64 * voxel_ml,
            cores[n].voxels.len() as f64 / main_core,
            in_band[n],
            if removable[n] { "cut off" } else { "kept" }
        );
    }
    let cut_off = |i: usize| owner[i] != u32::MAX && removable[owner[i] as usize];
    take_out_of_liver(mask, region, lab, cut_off)
}

/// For each core, the share of its voxels whose in-plane 3 × 3 mean HU lies within the
/// largest core's band ([`Parenchyma::of_values`], ± [`BAND_SIGMAS`] robust SDs).
fn share_in_main_band(cores: &[Component], hu: &ndarray::Array3<i16>) -> Vec<f64> {
    let (_, ny, nx) = hu.dim();
    let values = |c: &Component| -> Vec<f32> {
        c.voxels.iter().filter_map(|&v| smooth3(hu, (v / (ny * nx), (v / nx) % ny, v % nx))).collect()
    };
    let Some(band) = Parenchyma::of_values(&mut values(&cores[0]), BAND_SIGMAS) else {
        return vec![1.0; cores.len()];
    };
    cores
        .iter()
        .map(|c| {
            let v = values(c);
            if v.is_empty() {
                return 1.0;
            }
            v.iter().filter(|&&x| band.contains(x)).count() as f64 / v.len() as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{CtVolume, Geometry};
    use ndarray::Array3;

    /// An axis-aligned grid of 1 mm pixels and 2 mm slices at the origin.
    fn grid(shape: [usize; 3]) -> Geometry {
        Geometry {
            shape,
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// A liver (an ellipsoid, 1 mm pixels, 2 mm slices) with a second ball joined to it by
    /// a bar `bar_mm` wide; the ball labelled tumour where `tumour`.
    fn scene(bar_mm: f64, tumour: bool) -> (Mask, Array3<bool>) {
        let (nz, ny, nx) = (30, 80, 130);
        let g = grid([nz, ny, nx]);
        let mut other = Array3::from_elem((nz, ny, nx), false);
        let data = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            let (z, y, x) = (2.0 * k as f64 - 30.0, j as f64 - 40.0, i as f64);
            let liver = (z / 24.0).powi(2) + (y / 34.0).powi(2) + ((x - 45.0) / 42.0).powi(2) <= 1.0;
            let ball = z * z + y * y + (x - 108.0).powi(2) <= 15.0f64.powi(2);
            let bar = z.abs() <= 0.5 * bar_mm && y.abs() <= 0.5 * bar_mm && (80.0..100.0).contains(&x);
            if ball {
                other[[k, j, i]] = true;
            }
            if liver || bar {
                1
            } else if ball {
                if tumour {
                    2
                } else {
                    1
                }
            } else {
                0
            }
        });
        (Mask::new(data, g), other)
    }

    #[test]
    fn an_organ_on_a_thin_bridge_comes_out_and_a_broad_lobe_stays() {
        let (mut mask, other) = scene(6.0, false);
        let liver: usize = mask.data.iter().zip(other.iter()).filter(|&(&m, &o)| m > 0 && !o).count();
        let removed = cut_thin_bridges(&mut mask, None, 12.0, 1.0);
        assert!(removed > 0);
        let left = mask.data.iter().zip(other.iter()).filter(|&(&m, &o)| m > 0 && o).count();
        assert_eq!(left, 0, "the organ on the bridge is gone");
        let kept = mask.data.iter().zip(other.iter()).filter(|&(&m, &o)| m > 0 && !o).count();
        assert!(kept as f64 > 0.99 * liver as f64, "the liver stays: {kept} of {liver}");

        // joined broadly (a bar 24 mm thick), it is one organ
        let (mut broad, _) = scene(24.0, false);
        assert_eq!(cut_thin_bridges(&mut broad, None, 12.0, 1.0), 0);
    }

    #[test]
    fn two_halves_of_a_liver_split_by_a_gap_both_stay() {
        // two balls of 15 mm radius joined by a 6 mm bar: neither is a small organ
        let g = grid([20, 40, 100]);
        let data = Array3::from_shape_fn((20, 40, 100), |(k, j, i)| {
            let (z, y, x) = (2.0 * k as f64 - 19.0, j as f64 - 20.0, i as f64);
            let ball = |cx: f64| z * z + y * y + (x - cx).powi(2) <= 225.0;
            (ball(25.0) || ball(75.0) || (z.abs() <= 3.0 && y.abs() <= 3.0 && (25.0..75.0).contains(&x))) as u8
        });
        let mut mask = Mask::new(data.clone(), g);
        assert_eq!(cut_thin_bridges(&mut mask, None, 12.0, 1.0), 0);
        assert_eq!(mask.data, data);
    }

    /// A liver and a ball of 22 mm radius (its core about a fifth of the liver's) joined by a
    /// 6 mm bar, the ball at `ball_hu` and the rest at 100 HU; and which voxels are the ball.
    fn large_neighbour(ball_hu: i16) -> (Mask, CtVolume, Array3<bool>) {
        let (nz, ny, nx) = (30, 80, 160);
        let g = grid([nz, ny, nx]);
        let at = |k: usize, j: usize, i: usize| (2.0 * k as f64 - 30.0, j as f64 - 40.0, i as f64);
        let ball = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            let (z, y, x) = at(k, j, i);
            z * z + y * y + (x - 130.0).powi(2) <= 22.0f64.powi(2)
        });
        let data = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            let (z, y, x) = at(k, j, i);
            let liver = (z / 24.0).powi(2) + (y / 34.0).powi(2) + ((x - 45.0) / 42.0).powi(2) <= 1.0;
            let bar = z.abs() <= 3.0 && y.abs() <= 3.0 && (80.0..110.0).contains(&x);
            (liver || bar || ball[[k, j, i]]) as u8
        });
        let hu = Array3::from_shape_fn((nz, ny, nx), |p| if ball[p] { ball_hu } else { 100 });
        (Mask::new(data, g.clone()), CtVolume::new(hu, g), ball)
    }

    #[test]
    fn a_large_part_of_another_density_on_a_thin_bridge_comes_out() {
        let (mut mask, ct, ball) = large_neighbour(150);
        let before = mask.clone();
        // by size alone it is more likely liver split by a gap
        assert_eq!(cut_thin_bridges(&mut mask, None, 12.0, 1.0), 0);
        assert!(cut_thin_bridges(&mut mask, Some(&ct), 12.0, 1.0) > 0);
        let left = mask.data.iter().zip(ball.iter()).filter(|&(&m, &b)| m > 0 && b).count();
        assert_eq!(left, 0, "the part of another density is gone");
        let liver = before.data.iter().zip(ball.iter()).filter(|&(&m, &b)| m > 0 && !b).count();
        let kept = mask.data.iter().zip(ball.iter()).filter(|&(&m, &b)| m > 0 && !b).count();
        assert!(kept as f64 > 0.99 * liver as f64, "the liver stays: {kept} of {liver}");

        // of the liver's density it stays
        let (mut same, ct, _) = large_neighbour(100);
        let before = same.data.clone();
        assert_eq!(cut_thin_bridges(&mut same, Some(&ct), 12.0, 1.0), 0);
        assert_eq!(same.data, before);
    }

    #[test]
    fn a_tumour_on_a_stalk_stays() {
        let (mut mask, _) = scene(6.0, true);
        let before = mask.data.clone();
        cut_thin_bridges(&mut mask, None, 12.0, 1.0);
        assert_eq!(mask.data, before);
    }
}
