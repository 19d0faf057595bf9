//! The working box around the clicks and the voxel-set operations the outline needs inside
//! it: flood fill from seeds under a predicate, hole filling (3-D and per axial slice),
//! closing and erosion in mm. Distances and dilation come from `volume::region`
//! ([`squared_distance_mm2`], [`dilate_mm`]); this file only adds what they do not do.

use ndarray::Array3;

use crate::volume::region::{dilate_mm, squared_distance_mm2, VoxelBox};

/// A box of the study's grid (`[z, y, x]`, `hi` exclusive) and which of its faces are the
/// grid's own edges (a region touching those has reached the end of the scan, not leaked).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkBox {
    pub vox: VoxelBox,
    /// `[axis][0 = low face, 1 = high face]`: true where the face lies inside the grid.
    pub inner_face: [[bool; 2]; 3],
}

impl WorkBox {
    /// The voxels within `half_mm` (per axis, through the spacing) of any of `centres`
    /// (voxel indices `[k, j, i]`), clipped to a grid of `shape`.
    pub fn around(centres: &[[usize; 3]], half_mm: f64, spacing_mm: [f64; 3], shape: [usize; 3]) -> WorkBox {
        let r: [usize; 3] = std::array::from_fn(|a| (half_mm / spacing_mm[a]).ceil().max(1.0) as usize);
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        for c in centres {
            for a in 0..3 {
                lo[a] = lo[a].min(c[a].saturating_sub(r[a]));
                hi[a] = hi[a].max((c[a] + r[a] + 1).min(shape[a]));
            }
        }
        let inner_face = std::array::from_fn(|a| [lo[a] > 0, hi[a] < shape[a]]);
        WorkBox { vox: VoxelBox { lo, hi }, inner_face }
    }

    pub fn shape(&self) -> [usize; 3] {
        self.vox.shape()
    }

    /// Local index of a global voxel, if inside.
    pub fn local(&self, g: [usize; 3]) -> Option<[usize; 3]> {
        (0..3)
            .all(|a| g[a] >= self.vox.lo[a] && g[a] < self.vox.hi[a])
            .then(|| std::array::from_fn(|a| g[a] - self.vox.lo[a]))
    }

    /// True when `region` has a voxel on a face of the box that lies inside the grid.
    pub fn touches_inner_face(&self, region: &Array3<bool>) -> bool {
        let n = self.shape();
        region.indexed_iter().any(|((k, j, i), &r)| {
            r && [k, j, i]
                .iter()
                .enumerate()
                .any(|(a, &x)| (x == 0 && self.inner_face[a][0]) || (x + 1 == n[a] && self.inner_face[a][1]))
        })
    }
}

const N6: [[isize; 3]; 6] = [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]];

/// The voxels 6-connected to `seeds` through voxels where `pass` is true (seeds where
/// `pass` is false are skipped).
pub fn flood(shape: [usize; 3], seeds: &[[usize; 3]], pass: impl Fn([usize; 3]) -> bool) -> Array3<bool> {
    let mut out = Array3::from_elem(shape, false);
    let mut stack: Vec<[usize; 3]> = Vec::new();
    for &s in seeds {
        if (0..3).all(|a| s[a] < shape[a]) && !out[s] && pass(s) {
            out[s] = true;
            stack.push(s);
        }
    }
    while let Some(v) = stack.pop() {
        for d in N6 {
            let w: [isize; 3] = std::array::from_fn(|a| v[a] as isize + d[a]);
            if (0..3).any(|a| w[a] < 0 || w[a] >= shape[a] as isize) {
                continue;
            }
            let w = w.map(|x| x as usize);
            if !out[w] && pass(w) {
                out[w] = true;
                stack.push(w);
            }
        }
    }
    out
}

/// Fills the holes of `region`: background not 6-connected to the box's faces, in 3-D and
/// then in every axial slice (a rim or capsule open above or below still encloses its
/// centre slice by slice).
pub fn fill_holes(region: &Array3<bool>) -> Array3<bool> {
    let (nz, ny, nx) = region.dim();
    let shape = [nz, ny, nx];
    let mut border = Vec::new();
    for ((k, j, i), &r) in region.indexed_iter() {
        if !r && (k == 0 || j == 0 || i == 0 || k + 1 == nz || j + 1 == ny || i + 1 == nx) {
            border.push([k, j, i]);
        }
    }
    let outside = flood(shape, &border, |v| !region[v]);
    let mut out = outside.mapv(|o| !o);
    // per slice: a 1-slice flood is the 2-D 4-connected flood
    for k in 0..nz {
        let mut seeds = Vec::new();
        for j in 0..ny {
            for i in 0..nx {
                if !out[[k, j, i]] && (j == 0 || i == 0 || j + 1 == ny || i + 1 == nx) {
                    seeds.push([0, j, i]);
                }
            }
        }
        let slice = out.index_axis(ndarray::Axis(0), k).to_owned().insert_axis(ndarray::Axis(0));
        let outside = flood([1, ny, nx], &seeds, |v| !slice[v]);
        for j in 0..ny {
            for i in 0..nx {
                out[[k, j, i]] = !outside[[0, j, i]];
            }
        }
    }
    out
}

/// Shrinks `region` by `r_mm` (the complement grown by `r_mm`; the box's faces count as
/// inside, so a region cut by the box is not eaten from there).
pub fn erode_mm(region: &Array3<bool>, spacing_mm: [f64; 3], r_mm: f64) -> Array3<bool> {
    if r_mm <= 0.0 {
        return region.clone();
    }
    let d2 = squared_distance_mm2(&region.mapv(|r| !r), spacing_mm);
    let r2 = (r_mm * r_mm) as f32 * (1.0 + 1e-6);
    ndarray::Zip::from(region).and(&d2).map_collect(|&r, &d| r && d > r2)
}

/// Morphological closing by `r_mm`: bridges gaps and notches narrower than about 2 `r_mm`.
pub fn close_mm(region: &Array3<bool>, spacing_mm: [f64; 3], r_mm: f64) -> Array3<bool> {
    if r_mm <= 0.0 {
        return region.clone();
    }
    erode_mm(&dilate_mm(region, spacing_mm, r_mm), spacing_mm, r_mm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_stays_in_its_part() {
        let mut m = Array3::from_elem([1, 5, 5], false);
        for i in 0..5 {
            m[[0, 1, i]] = true;
            m[[0, 3, i]] = true;
        }
        let f = flood([1, 5, 5], &[[0, 1, 0]], |v| m[v]);
        assert_eq!(f.iter().filter(|&&b| b).count(), 5);
        assert!(!f[[0, 3, 2]]);
    }

    #[test]
    fn holes_in_a_shell_are_filled_and_the_outside_is_not() {
        let n = 11;
        let mut m = Array3::from_elem([n, n, n], false);
        for ((k, j, i), v) in m.indexed_iter_mut() {
            let r2 = [k, j, i].iter().map(|&x| (x as f64 - 5.0).powi(2)).sum::<f64>();
            *v = (9.0..=16.0).contains(&r2);
        }
        let f = fill_holes(&m);
        assert!(f[[5, 5, 5]], "the centre is a hole");
        assert!(!f[[0, 0, 0]]);
        let count = |a: &Array3<bool>| a.iter().filter(|&&b| b).count();
        let ball = m
            .indexed_iter()
            .filter(|((k, j, i), _)| [*k, *j, *i].iter().map(|&x| (x as f64 - 5.0).powi(2)).sum::<f64>() <= 16.0);
        assert_eq!(count(&f), ball.count());
    }

    #[test]
    fn box_faces_inside_the_grid_are_known() {
        let b = WorkBox::around(&[[2, 50, 50]], 10.0, [2.0, 1.0, 1.0], [10, 100, 100]);
        assert_eq!(b.vox.lo, [0, 40, 40]);
        assert_eq!(b.vox.hi, [8, 61, 61]);
        assert_eq!(b.inner_face[0], [false, true]);
        let mut r = Array3::from_elem(b.shape(), false);
        r[[0, 10, 10]] = true;
        assert!(!b.touches_inner_face(&r), "the scan's first slice is not a leak");
        r[[3, 0, 10]] = true;
        assert!(b.touches_inner_face(&r));
    }
}
