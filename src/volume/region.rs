//! Region helpers every module shares, on the ground floor beside [`Volume`]: one voxel box
//! type ([`VoxelBox`]), connected components of a label ([`connected_components`]), the exact
//! Euclidean distance transform in mm ([`squared_distance_mm2`]), dilation by a margin in mm
//! ([`dilate_mm`]) and the volume of one voxel ([`voxel_volume_ml`]). Lesion measurement,
//! clustering, outlining, segmentation post-processing, mesh objects and the edit tools use
//! these; none of them needs the others for it.

use std::borrow::Cow;

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use super::{Geometry, Mask, Volume};

// ---------------------------------------------------------------------------------------
// Voxel box
// ---------------------------------------------------------------------------------------

/// A box of voxels `[lo, hi)` in `[z, y, x]` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VoxelBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl VoxelBox {
    pub fn len(&self) -> usize {
        (0..3).map(|a| self.hi[a].saturating_sub(self.lo[a])).product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &VoxelBox) -> VoxelBox {
        VoxelBox {
            lo: [self.lo[0].min(other.lo[0]), self.lo[1].min(other.lo[1]), self.lo[2].min(other.lo[2])],
            hi: [self.hi[0].max(other.hi[0]), self.hi[1].max(other.hi[1]), self.hi[2].max(other.hi[2])],
        }
    }

    pub fn shape(&self) -> [usize; 3] {
        [self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2]]
    }

    /// The smallest box holding every voxel of `data` that `keep` accepts, or `None`.
    /// Scans slabs in parallel and each row from both ends, so a mostly empty mask costs
    /// little more than reading it.
    pub fn enclosing<T: Copy + Sync>(
        data: ndarray::ArrayView3<'_, T>,
        keep: impl Fn(T) -> bool + Sync,
    ) -> Option<VoxelBox> {
        use ndarray::Axis;
        use rayon::prelude::*;
        let per_slab: Vec<Option<VoxelBox>> = data
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(k, slab)| {
                let mut b: Option<VoxelBox> = None;
                for (j, row) in slab.outer_iter().enumerate() {
                    let Some(i0) = row.iter().position(|&v| keep(v)) else { continue };
                    let i1 = row.len() - row.iter().rev().position(|&v| keep(v)).unwrap_or(0);
                    let one = VoxelBox { lo: [k, j, i0], hi: [k + 1, j + 1, i1] };
                    b = Some(b.map_or(one, |x| x.union(&one)));
                }
                b
            })
            .collect();
        per_slab.into_iter().flatten().reduce(|a, b| a.union(&b))
    }

    /// Whether the box is the whole of a grid of `shape`.
    pub fn is_whole(&self, shape: [usize; 3]) -> bool {
        self.lo == [0; 3] && self.hi == shape
    }

    /// The part of `v` inside the box, placed where it was in the patient frame.
    pub fn crop<T: Clone>(&self, v: &Volume<T>) -> Volume<T> {
        let (lo, hi) = (self.lo, self.hi);
        let data = v.data.slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).to_owned();
        let origin = v.geometry.index_to_world([lo[2] as f64, lo[1] as f64, lo[0] as f64]);
        Volume::new(data, Geometry { origin_mm: origin, ..v.geometry.clone() })
    }

    /// This box moved by `by` voxels (`[z, y, x]`).
    pub fn offset(&self, by: [usize; 3]) -> VoxelBox {
        VoxelBox { lo: [0, 1, 2].map(|a| self.lo[a] + by[a]), hi: [0, 1, 2].map(|a| self.hi[a] + by[a]) }
    }
}

/// Standard-layout slice of an array (copying only when it is not contiguous).
pub(crate) fn std_slice<T: Clone>(a: &Array3<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Volume of one voxel in mL (|det| of the index→world matrix, so oblique grids too).
pub fn voxel_volume_ml(g: &Geometry) -> f64 {
    super::det3(&g.index_to_world_matrix()).abs() / 1000.0
}

// ---------------------------------------------------------------------------------------
// Connected components
// ---------------------------------------------------------------------------------------

/// A connected set of voxels of one label (26-connectivity).
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// Linear indices (`[z, y, x]` C order), ascending.
    pub voxels: Vec<usize>,
}

/// Connected components (26-connectivity) of the voxels equal to `label`, with at least
/// `min_voxels` voxels, largest first (ties: first in scan order). Also returns how many
/// smaller components were left out.
pub fn connected_components(mask: &Mask, label: u8, min_voxels: usize) -> (Vec<Component>, usize) {
    let (nz, ny, nx) = mask.data.dim();
    let data = std_slice(&mask.data);
    let mut seen = vec![false; data.len()];
    let mut stack = Vec::new();
    let mut comps = Vec::new();
    let mut dropped = 0;
    for start in 0..data.len() {
        if data[start] != label || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut voxels = Vec::new();
        while let Some(v) = stack.pop() {
            voxels.push(v);
            let (k, j, i) = (v / (ny * nx), (v / nx) % ny, v % nx);
            for kk in k.saturating_sub(1)..(k + 2).min(nz) {
                for jj in j.saturating_sub(1)..(j + 2).min(ny) {
                    for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                        let w = (kk * ny + jj) * nx + ii;
                        if !seen[w] && data[w] == label {
                            seen[w] = true;
                            stack.push(w);
                        }
                    }
                }
            }
        }
        if voxels.len() >= min_voxels.max(1) {
            voxels.sort_unstable();
            comps.push(Component { voxels });
        } else {
            dropped += 1;
        }
    }
    comps.sort_by(|a, b| b.voxels.len().cmp(&a.voxels.len()).then(a.voxels[0].cmp(&b.voxels[0])));
    (comps, dropped)
}

// ---------------------------------------------------------------------------------------
// Distance transform and dilation in mm
// ---------------------------------------------------------------------------------------

/// Exact squared Euclidean distance (mm²) from every voxel to the nearest voxel where
/// `inside` is true (0 there; `f32::INFINITY` when there is none), with voxel size
/// `spacing_mm` (`[sz, sy, sx]`). Separable lower-envelope algorithm (Felzenszwalb &
/// Huttenlocher), linear in the voxel count. Grid axes are taken as orthogonal, which they
/// are for CT apart from gantry tilt.
pub fn squared_distance_mm2(inside: &Array3<bool>, spacing_mm: [f64; 3]) -> Array3<f32> {
    let mut dist = inside.map(|&b| if b { 0f32 } else { f32::INFINITY });
    for axis in [2, 1, 0] {
        let len = dist.len_of(Axis(axis));
        let s = spacing_mm[axis];
        // parallel over slabs of another axis; scratch made once per slab
        let outer = if axis == 0 { 1 } else { 0 };
        let inner = if axis > outer { axis - 1 } else { axis };
        dist.axis_iter_mut(Axis(outer)).into_par_iter().for_each(|mut slab| {
            let (mut f, mut out, mut v, mut z) =
                (vec![0f64; len], vec![0f64; len], vec![0usize; len], vec![0f64; len + 1]);
            for mut lane in slab.lanes_mut(Axis(inner)) {
                for (fi, &x) in f.iter_mut().zip(lane.iter()) {
                    *fi = x as f64;
                }
                edt_1d(&f, s, &mut out, &mut v, &mut z);
                for (x, &o) in lane.iter_mut().zip(out.iter()) {
                    *x = o as f32;
                }
            }
        });
    }
    dist
}

/// 1-D squared distance transform of `f` (∞ = no site) with sample spacing `s` mm.
fn edt_1d(f: &[f64], s: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k: isize = -1;
    for q in 0..n {
        if !f[q].is_finite() {
            continue;
        }
        let pq = q as f64 * s;
        loop {
            if k < 0 {
                k = 0;
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            let vk = v[k as usize];
            let pv = vk as f64 * s;
            let sx = ((f[q] + pq * pq) - (f[vk] + pv * pv)) / (2.0 * (pq - pv));
            if sx <= z[k as usize] {
                k -= 1;
            } else {
                k += 1;
                v[k as usize] = q;
                z[k as usize] = sx;
                z[k as usize + 1] = f64::INFINITY;
                break;
            }
        }
    }
    if k < 0 {
        out.fill(f64::INFINITY);
        return;
    }
    let mut k = 0usize;
    for q in 0..n {
        let pq = q as f64 * s;
        while z[k + 1] < pq {
            k += 1;
        }
        let d = pq - v[k] as f64 * s;
        out[q] = d * d + f[v[k]];
    }
}

/// Grows `region` by `margin_mm` (Euclidean, in mm with voxel size `spacing_mm`). Works on
/// the region's bounding box plus the margin, so small regions in big volumes are cheap.
pub fn dilate_mm(region: &Array3<bool>, spacing_mm: [f64; 3], margin_mm: f64) -> Array3<bool> {
    let Some(bb) = VoxelBox::enclosing(region.view(), |b| b) else {
        return region.clone();
    };
    let shape = region.dim();
    let n = [shape.0, shape.1, shape.2];
    let r: [usize; 3] = std::array::from_fn(|a| (margin_mm / spacing_mm[a]).ceil() as usize);
    let lo: [usize; 3] = std::array::from_fn(|a| bb.lo[a].saturating_sub(r[a]));
    let hi: [usize; 3] = std::array::from_fn(|a| (bb.hi[a] + r[a]).min(n[a]));
    let sub = region.slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).to_owned();
    let d2 = squared_distance_mm2(&sub, spacing_mm);
    let m2 = (margin_mm * margin_mm) as f32 * (1.0 + 1e-6);
    let mut out = region.clone();
    out.slice_mut(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).zip_mut_with(&d2, |o, &d| *o = d <= m2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Volume;

    #[test]
    fn components_use_26_connectivity_and_size_filter() {
        let g = Geometry::axis_aligned([4, 5, 5], [1.0; 3], [0.0; 3]);
        let mut m = Volume::filled(g, 0u8);
        // two voxels touching only at a corner: one component
        m.data[[1, 1, 1]] = 2;
        m.data[[2, 2, 2]] = 2;
        // a separate single voxel
        m.data[[0, 4, 4]] = 2;
        // a three-voxel line
        for i in 0..3 {
            m.data[[3, 4, i]] = 2;
        }
        let (c, dropped) = connected_components(&m, 2, 1);
        assert_eq!(c.len(), 3);
        assert_eq!(dropped, 0);
        assert_eq!(c.iter().map(|c| c.voxels.len()).collect::<Vec<_>>(), vec![3, 2, 1]);
        let (c, dropped) = connected_components(&m, 2, 2);
        assert_eq!((c.len(), dropped), (2, 1));
    }

    #[test]
    fn distance_transform_is_exact_on_a_small_grid() {
        let mut a = Array3::from_elem((5, 6, 7), false);
        a[[1, 2, 3]] = true;
        a[[4, 5, 0]] = true;
        let sp = [2.0, 1.5, 0.7];
        let d = squared_distance_mm2(&a, sp);
        for ((k, j, i), &v) in d.indexed_iter() {
            let want = [[1usize, 2, 3], [4, 5, 0]]
                .iter()
                .map(|p| {
                    let dz = (k as f64 - p[0] as f64) * sp[0];
                    let dy = (j as f64 - p[1] as f64) * sp[1];
                    let dx = (i as f64 - p[2] as f64) * sp[2];
                    dz * dz + dy * dy + dx * dx
                })
                .fold(f64::INFINITY, f64::min);
            assert!((v as f64 - want).abs() < 1e-3, "{k},{j},{i}: {v} vs {want}");
        }
        let none = squared_distance_mm2(&Array3::from_elem((2, 2, 2), false), sp);
        assert!(none.iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn dilation_grows_by_the_margin() {
        let mut a = Array3::from_elem((21, 21, 21), false);
        a[[10, 10, 10]] = true;
        let d = dilate_mm(&a, [1.0, 1.0, 1.0], 3.0);
        let count = d.iter().filter(|&&b| b).count();
        // lattice points within a ball of radius 3: 123
        assert_eq!(count, 123);
        assert!(d[[10, 10, 13]] && !d[[10, 10, 14]] && !d[[12, 12, 12]]);
    }
}
