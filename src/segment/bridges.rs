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

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ndarray::s;

use super::postprocess::take_out_of_liver;
use super::refine::{depth_mm2, liver_box, local_grid};
use crate::volume::region::connected_components;
use crate::volume::Mask;

/// A part cut off has a core at most this fraction of the largest core's volume (the
/// stomach's and the heart's on `hcc048-pv`: 2 % and 1 %).
const MAX_CORE_FRACTION: f64 = 0.1;

/// Splits off and removes the parts of `mask` joined to the main body only through necks
/// thinner than `neck_mm` whose own thick part (core) holds at least `min_core_ml` and at
/// most a tenth of the largest core's volume; a part at least half tumour stays (a lesion
/// on a stalk), and tumour labels are never removed
/// (those left apart from the liver go with the tidying). Then the mask is tidied
/// again (largest component, holes filled). Returns how many voxels left the liver.
pub fn cut_thin_bridges(mask: &mut Mask, neck_mm: f64, min_core_ml: f64) -> usize {
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
    let removable: Vec<bool> = (0..cores.len())
        .map(|n| n > 0 && 2 * tumour[n] < voxels[n] && (cores[n].voxels.len() as f64) <= MAX_CORE_FRACTION * main_core)
        .collect();
    let cut_off = |i: usize| owner[i] != u32::MAX && removable[owner[i] as usize];
    take_out_of_liver(mask, region, lab, cut_off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;
    use ndarray::Array3;

    /// A liver (an ellipsoid, 1 mm pixels, 2 mm slices) with a second ball joined to it by
    /// a bar `bar_mm` wide; the ball labelled tumour where `tumour`.
    fn scene(bar_mm: f64, tumour: bool) -> (Mask, Array3<bool>) {
        let (nz, ny, nx) = (30, 80, 130);
        let g = Geometry {
            shape: [nz, ny, nx],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
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
        let removed = cut_thin_bridges(&mut mask, 12.0, 1.0);
        assert!(removed > 0);
        let left = mask.data.iter().zip(other.iter()).filter(|&(&m, &o)| m > 0 && o).count();
        assert_eq!(left, 0, "the organ on the bridge is gone");
        let kept = mask.data.iter().zip(other.iter()).filter(|&(&m, &o)| m > 0 && !o).count();
        assert!(kept as f64 > 0.99 * liver as f64, "the liver stays: {kept} of {liver}");

        // joined broadly (a bar 24 mm thick), it is one organ
        let (mut broad, _) = scene(24.0, false);
        assert_eq!(cut_thin_bridges(&mut broad, 12.0, 1.0), 0);
    }

    #[test]
    fn two_halves_of_a_liver_split_by_a_gap_both_stay() {
        // two balls of 15 mm radius joined by a 6 mm bar: neither is a small organ
        let g = Geometry {
            shape: [20, 40, 100],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let data = Array3::from_shape_fn((20, 40, 100), |(k, j, i)| {
            let (z, y, x) = (2.0 * k as f64 - 19.0, j as f64 - 20.0, i as f64);
            let ball = |cx: f64| z * z + y * y + (x - cx).powi(2) <= 225.0;
            (ball(25.0) || ball(75.0) || (z.abs() <= 3.0 && y.abs() <= 3.0 && (25.0..75.0).contains(&x))) as u8
        });
        let mut mask = Mask::new(data.clone(), g);
        assert_eq!(cut_thin_bridges(&mut mask, 12.0, 1.0), 0);
        assert_eq!(mask.data, data);
    }

    #[test]
    fn a_tumour_on_a_stalk_stays() {
        let (mut mask, _) = scene(6.0, true);
        let before = mask.data.clone();
        cut_thin_bridges(&mut mask, 12.0, 1.0);
        assert_eq!(mask.data, before);
    }
}
