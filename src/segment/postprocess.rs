//! The mask tidied after the network and after each step that removes part of it: one
//! connected liver, holes filled as liver, tumour only inside it. Kept apart from `infer`
//! (which chains the steps) so that the steps themselves (`bridges`, `lumen`, the tumour
//! stage's cases) can use these without importing the pipeline that calls them.

use std::collections::VecDeque;

use ndarray::{Array3, Axis};

use crate::volume::Mask;

/// What a liver mask must look like: the largest 6-connected liver+tumour component only;
/// holes filled (in each axial slice, then in 3-D) as liver; tumour only inside that liver.
pub fn postprocess(mask: &mut Mask) {
    let fg = mask.data.mapv(|v| v > 0);
    let keep = largest_component(&fg);
    for (v, &k) in mask.data.iter_mut().zip(keep.iter()) {
        if !k {
            *v = 0;
        }
    }
    let inside = fill_holes_slices(&keep);
    let inside = fill_holes_3d(&inside);
    for (v, &k) in mask.data.iter_mut().zip(inside.iter()) {
        if k && *v == 0 {
            *v = 1;
        }
    }
}

/// Makes background the liver-labelled (1) voxels of the box `region` where `remove(i)`
/// holds for its linear index `i` (`lab`: the box's labels, as `mask` holds them), then
/// tidies the mask again ([`postprocess`]) so what the liver encloses goes back. Tumour
/// labels are never removed. Returns how many voxels left the liver.
pub(crate) fn take_out_of_liver(
    mask: &mut Mask,
    region: ndarray::SliceInfo<[ndarray::SliceInfoElem; 3], ndarray::Ix3, ndarray::Ix3>,
    mut lab: Array3<u8>,
    remove: impl Fn(usize) -> bool,
) -> usize {
    let mut removed = 0;
    for (i, v) in lab.iter_mut().enumerate() {
        if *v == 1 && remove(i) {
            *v = 0;
            removed += 1;
        }
    }
    if removed > 0 {
        mask.data.slice_mut(region).assign(&lab);
        postprocess(mask);
    }
    removed
}

const N6: [[isize; 3]; 6] = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];

fn largest_component(fg: &Array3<bool>) -> Array3<bool> {
    let (nz, ny, nx) = fg.dim();
    let mut comp = Array3::<u32>::zeros((nz, ny, nx));
    let mut sizes = vec![0usize];
    let mut queue = VecDeque::new();
    for ((k, j, i), &f) in fg.indexed_iter() {
        if !f || comp[[k, j, i]] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        let mut n = 0;
        comp[[k, j, i]] = id;
        queue.push_back([k, j, i]);
        while let Some(p) = queue.pop_front() {
            n += 1;
            for d in N6 {
                let q = [p[0] as isize + d[0], p[1] as isize + d[1], p[2] as isize + d[2]];
                if q[0] < 0 || q[1] < 0 || q[2] < 0 || q[0] >= nz as isize || q[1] >= ny as isize || q[2] >= nx as isize
                {
                    continue;
                }
                let q = [q[0] as usize, q[1] as usize, q[2] as usize];
                if fg[q] && comp[q] == 0 {
                    comp[q] = id;
                    queue.push_back(q);
                }
            }
        }
        sizes.push(n);
    }
    let best = (1..sizes.len()).max_by_key(|&i| sizes[i]).unwrap_or(0) as u32;
    comp.mapv(|c| best != 0 && c == best)
}

/// Background not reachable from the border within its own axial slice becomes inside.
pub(crate) fn fill_holes_slices(fg: &Array3<bool>) -> Array3<bool> {
    let mut out = fg.clone();
    for (k, mut slab) in out.axis_iter_mut(Axis(0)).enumerate() {
        let src = fg.index_axis(Axis(0), k);
        let (ny, nx) = src.dim();
        let mut outside = ndarray::Array2::<bool>::from_elem((ny, nx), false);
        let mut queue = VecDeque::new();
        for j in 0..ny {
            for i in 0..nx {
                if (j == 0 || i == 0 || j == ny - 1 || i == nx - 1) && !src[[j, i]] {
                    outside[[j, i]] = true;
                    queue.push_back((j, i));
                }
            }
        }
        while let Some((j, i)) = queue.pop_front() {
            for (dj, di) in [(1isize, 0isize), (-1, 0), (0, 1), (0, -1)] {
                let (q, r) = (j as isize + dj, i as isize + di);
                if q < 0 || r < 0 || q >= ny as isize || r >= nx as isize {
                    continue;
                }
                let (q, r) = (q as usize, r as usize);
                if !src[[q, r]] && !outside[[q, r]] {
                    outside[[q, r]] = true;
                    queue.push_back((q, r));
                }
            }
        }
        slab.zip_mut_with(&outside, |v, &o| *v = !o);
    }
    out
}

/// Background not 6-connected to the volume's border becomes inside.
fn fill_holes_3d(fg: &Array3<bool>) -> Array3<bool> {
    let (nz, ny, nx) = fg.dim();
    let on_border =
        |(k, j, i): (usize, usize, usize)| k == 0 || j == 0 || i == 0 || k == nz - 1 || j == ny - 1 || i == nx - 1;
    flood6(&fg.mapv(|f| !f), on_border).mapv(|o| !o)
}

/// The voxels of `passable` 6-connected (within it) to one where `seed` holds.
pub(crate) fn flood6(passable: &Array3<bool>, seed: impl Fn((usize, usize, usize)) -> bool) -> Array3<bool> {
    let (nz, ny, nx) = passable.dim();
    let mut reached = Array3::<bool>::from_elem((nz, ny, nx), false);
    let mut queue = VecDeque::new();
    for (p, &ok) in passable.indexed_iter() {
        if ok && seed(p) {
            reached[p] = true;
            queue.push_back([p.0, p.1, p.2]);
        }
    }
    while let Some(p) = queue.pop_front() {
        for d in N6 {
            let q = [p[0] as isize + d[0], p[1] as isize + d[1], p[2] as isize + d[2]];
            if q[0] < 0 || q[1] < 0 || q[2] < 0 || q[0] >= nz as isize || q[1] >= ny as isize || q[2] >= nx as isize {
                continue;
            }
            let q = [q[0] as usize, q[1] as usize, q[2] as usize];
            if passable[q] && !reached[q] {
                reached[q] = true;
                queue.push_back(q);
            }
        }
    }
    reached
}
