//! Tools that reshape one label as a whole: smoothing (median or Gaussian), opening and
//! closing with a ball in mm, keep the largest component, remove small islands, fill
//! holes.
//!
//! Each works on the label `paint.value` inside the label's bounding box plus a margin
//! (so a small tumour on a big grid costs little), then commits: voxels that join the
//! label obey the paint rule; voxels that leave it become background unless the label is
//! locked. Components are 26-connected (`volume::region::connected_components`); background for
//! hole filling is 6-connected, the complementary choice, so a hole sealed by diagonal
//! neighbours counts as closed.

use ndarray::{Array3, ArrayViewMut1, Axis};
use rayon::prelude::*;

use super::super::{bad, EditDiff, EditError, Paint, Recorder, VoxelBox};
use super::check_geometry;
use super::distance::distance_sq_3d;
use super::grow::Reach;
use crate::volume::Mask;

/// How [`smooth_label`] smooths.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Smoothing {
    /// Majority vote in a box reaching `radius_mm` along each axis (the binary median).
    Median { radius_mm: f64 },
    /// Gaussian blur of the label's indicator with `sigma_mm`, kept where ≥ 0.5.
    Gaussian { sigma_mm: f64 },
}

/// Smooths the outline of label `paint.value`.
pub fn smooth_label(mask: &mut Mask, smoothing: Smoothing, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    let sp = mask.geometry.spacing_mm;
    let shape = mask.shape();
    let target = match smoothing {
        Smoothing::Median { radius_mm } => {
            if !(radius_mm.is_finite() && radius_mm >= 0.0) {
                return Err(bad("median radius (mm)", radius_mm, "give 0 mm or more"));
            }
            let r = [0, 1, 2].map(|a| (radius_mm / sp[a] + 1e-9).floor() as usize);
            let Some(crop) = label_box(mask, label, [r[0] + 1, r[1] + 1, r[2] + 1]) else {
                return Ok(EditDiff::empty(shape));
            };
            let b = extract(mask, &crop, label);
            (crop, box_majority(&b, &crop, shape, r))
        }
        Smoothing::Gaussian { sigma_mm } => {
            if !(sigma_mm.is_finite() && sigma_mm >= 0.0) {
                return Err(bad("Gaussian sigma (mm)", sigma_mm, "give 0 mm or more"));
            }
            let sig = [0, 1, 2].map(|a| sigma_mm / sp[a]);
            let rad = sig.map(|s| (3.0 * s).ceil() as usize);
            let Some(crop) = label_box(mask, label, [rad[0] + 1, rad[1] + 1, rad[2] + 1]) else {
                return Ok(EditDiff::empty(shape));
            };
            let b = extract(mask, &crop, label);
            let mut f = b.mapv(|x| if x { 1.0f32 } else { 0.0 });
            for a in 0..3 {
                blur_axis(&mut f, a, sig[a]);
            }
            (crop, f.mapv(|v| v >= 0.5))
        }
    };
    Ok(commit(mask, &target.0, &target.1, paint))
}

/// Morphological opening (erode then dilate) with a ball of `radius_mm`: removes parts of
/// the label thinner than the ball.
pub fn open_label(mask: &mut Mask, radius_mm: f64, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    let r2 = check_radius(radius_mm)?;
    let shape = mask.shape();
    let Some(crop) = label_box(mask, label, [1, 1, 1]) else { return Ok(EditDiff::empty(shape)) };
    let b = extract(mask, &crop, label);
    let sp = mask.geometry.spacing_mm;
    let eroded = erode(&b, sp, r2);
    let d = distance_sq_3d(&eroded, sp);
    let opened = ndarray::Zip::from(&d).and(&b).map_collect(|&x, &inb| x <= r2 && inb);
    Ok(commit(mask, &crop, &opened, paint))
}

/// Morphological closing (dilate then erode) with a ball of `radius_mm`: fills gaps and
/// dents narrower than the ball.
pub fn close_label(mask: &mut Mask, radius_mm: f64, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    let r2 = check_radius(radius_mm)?;
    let shape = mask.shape();
    let sp = mask.geometry.spacing_mm;
    let margin = [0, 1, 2].map(|a| (radius_mm / sp[a]).ceil() as usize + 2);
    let Some(crop) = label_box(mask, label, margin) else { return Ok(EditDiff::empty(shape)) };
    let b = extract(mask, &crop, label);
    let d = distance_sq_3d(&b, sp);
    let dilated = d.mapv(|x| x <= r2);
    let closed = ndarray::Zip::from(&erode(&dilated, sp, r2)).and(&b).map_collect(|&e, &inb| e || inb);
    Ok(commit(mask, &crop, &closed, paint))
}

/// Keeps only the largest 26-connected component of label `paint.value`; the others
/// become background.
pub fn keep_largest_component(mask: &mut Mask, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    let (comps, _) = crate::volume::region::connected_components(mask, label, 1);
    if comps.len() <= 1 || !paint.may_shrink() {
        return Ok(EditDiff::empty(mask.shape()));
    }
    Ok(clear_voxels(mask, comps[1..].iter().flat_map(|c| c.voxels.iter().copied())))
}

/// Removes 26-connected components of label `paint.value` smaller than `min_volume_ml`.
pub fn remove_islands(mask: &mut Mask, min_volume_ml: f64, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    if !(min_volume_ml.is_finite() && min_volume_ml >= 0.0) {
        return Err(bad("island size (mL)", min_volume_ml, "give 0 mL or more"));
    }
    if !paint.may_shrink() {
        return Ok(EditDiff::empty(mask.shape()));
    }
    let voxel_ml = crate::volume::region::voxel_volume_ml(&mask.geometry);
    let (comps, _) = crate::volume::region::connected_components(mask, label, 1);
    let small = comps.iter().filter(|c| (c.voxels.len() as f64) * voxel_ml < min_volume_ml);
    Ok(clear_voxels(mask, small.flat_map(|c| c.voxels.iter().copied())))
}

/// Fills the holes of label `paint.value`: voxels of other values that cannot reach the
/// edge of the grid (`Reach::Volume`) or of their slice (`Reach::Slice`) without
/// crossing the label. Only voxels the paint rule allows are filled (with "paint over
/// background", a tumour inside the liver stays tumour).
pub fn fill_holes(mask: &mut Mask, reach: Reach, paint: &Paint) -> Result<EditDiff, EditError> {
    let label = check(mask, paint)?;
    let shape = mask.shape();
    let holes: Vec<usize> = match reach {
        Reach::Volume => {
            let Some(crop) = label_box(mask, label, [1, 1, 1]) else { return Ok(EditDiff::empty(shape)) };
            let data = mask.data.as_slice().unwrap_or(&[]);
            unreachable_in_box(data, shape, &crop, label, &[0, 1, 2])
        }
        Reach::Slice(o) => {
            let a = o.axis();
            let (va, ua) = o.plane_axes();
            let data = mask.data.as_slice().unwrap_or(&[]);
            (0..shape[a])
                .into_par_iter()
                .flat_map_iter(|s| {
                    let mut lo = [0, 0, 0];
                    let mut hi = shape;
                    lo[a] = s;
                    hi[a] = s + 1;
                    unreachable_in_box(data, shape, &VoxelBox { lo, hi }, label, &[va, ua])
                })
                .collect()
        }
    };
    let allowed = paint.table();
    let mut rec = Recorder::new(mask);
    for l in holes {
        let (k, j, i) = (l / (shape[1] * shape[2]), (l / shape[2]) % shape[1], l % shape[2]);
        if allowed[rec.get(k, j, i) as usize] {
            rec.set(k, j, i, label);
        }
    }
    Ok(rec.finish())
}

// ---------------------------------------------------------------------------------------

fn check(mask: &mut Mask, paint: &Paint) -> Result<u8, EditError> {
    check_geometry(mask)?;
    if paint.value == 0 {
        return Err(bad("label", 0, "choose the label to reshape (not background)"));
    }
    // the helpers below read the voxels as one slice
    super::super::mask_slice_mut(mask);
    Ok(paint.value)
}

fn check_radius(radius_mm: f64) -> Result<f32, EditError> {
    if !(radius_mm.is_finite() && radius_mm >= 0.0) {
        return Err(bad("ball radius (mm)", radius_mm, "give 0 mm or more"));
    }
    Ok((radius_mm * radius_mm * (1.0 + 1e-6) + 1e-9) as f32)
}

/// Voxels `(k, j, i)` that are exactly `label`, bounding box, grown by `margin` voxels
/// per axis and clipped to the grid. `None` when the label is absent.
fn label_box(mask: &Mask, label: u8, margin: [usize; 3]) -> Option<VoxelBox> {
    let shape = mask.shape();
    let b = VoxelBox::enclosing(mask.data.view(), |v| v == label)?;
    Some(VoxelBox {
        lo: [0, 1, 2].map(|a| b.lo[a].saturating_sub(margin[a])),
        hi: [0, 1, 2].map(|a| (b.hi[a] + margin[a]).min(shape[a])),
    })
}

fn extract(mask: &Mask, crop: &VoxelBox, label: u8) -> Array3<bool> {
    let s = crop.shape();
    Array3::from_shape_fn((s[0], s[1], s[2]), |(k, j, i)| {
        mask.data[[crop.lo[0] + k, crop.lo[1] + j, crop.lo[2] + i]] == label
    })
}

/// Erosion by a ball: voxels whose nearest non-member lies farther than the radius.
/// Beyond the grid counts as member, so the edge of the image does not eat the label; the
/// crop margins keep a band of non-members wherever the crop ends inside the grid.
fn erode(b: &Array3<bool>, sp: [f64; 3], r2: f32) -> Array3<bool> {
    let d = distance_sq_3d(&b.mapv(|x| !x), sp);
    ndarray::Zip::from(&d).and(b).map_collect(|&x, &inb| inb && x > r2)
}

/// Sets `target` inside `crop`: joining voxels follow the paint rule, leaving ones become
/// background unless the label is locked.
fn commit(mask: &mut Mask, crop: &VoxelBox, target: &Array3<bool>, paint: &Paint) -> EditDiff {
    let label = paint.value;
    let allowed = paint.table();
    let shrink = paint.may_shrink();
    let mut rec = Recorder::new(mask);
    for ((k, j, i), &want) in target.indexed_iter() {
        let (k, j, i) = (crop.lo[0] + k, crop.lo[1] + j, crop.lo[2] + i);
        let cur = rec.get(k, j, i);
        if want && cur != label && allowed[cur as usize] {
            rec.set(k, j, i, label);
        } else if !want && cur == label && shrink {
            rec.set(k, j, i, 0);
        }
    }
    rec.finish()
}

fn clear_voxels(mask: &mut Mask, voxels: impl Iterator<Item = usize>) -> EditDiff {
    let [_, ny, nx] = mask.shape();
    let mut rec = Recorder::new(mask);
    for l in voxels {
        rec.set(l / (ny * nx), (l / nx) % ny, l % nx, 0);
    }
    rec.finish()
}

/// Binary median: true where more than half of the box `±r` voxels (clipped to the grid)
/// around the voxel are members. Counts come from a summed-volume table of the crop;
/// beyond the crop there are no members (the crop margin exceeds `r`).
fn box_majority(b: &Array3<bool>, crop: &VoxelBox, grid: [usize; 3], r: [usize; 3]) -> Array3<bool> {
    let (nz, ny, nx) = b.dim();
    // s[k][j][i] = members in [0, k) × [0, j) × [0, i)
    let mut s = Array3::<u32>::zeros((nz + 1, ny + 1, nx + 1));
    for k in 0..nz {
        for j in 0..ny {
            let mut row = 0u32;
            for i in 0..nx {
                row += b[[k, j, i]] as u32;
                s[[k + 1, j + 1, i + 1]] = row + s[[k + 1, j, i + 1]] + s[[k, j + 1, i + 1]] - s[[k, j, i + 1]];
            }
        }
    }
    let mut out = Array3::from_elem((nz, ny, nx), false);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let c = [k, j, i];
                let n = [nz, ny, nx];
                let mut lo = [0; 3];
                let mut hi = [0; 3];
                let mut size = 1usize;
                for a in 0..3 {
                    // the box in grid coordinates, clipped to the grid, for the count of voxels
                    let g = crop.lo[a] + c[a];
                    let glo = g.saturating_sub(r[a]);
                    let ghi = (g + r[a] + 1).min(grid[a]);
                    size *= ghi - glo;
                    // and clipped to the crop, for the members
                    lo[a] = c[a].saturating_sub(r[a]);
                    hi[a] = (c[a] + r[a] + 1).min(n[a]);
                }
                let sum = |k: usize, j: usize, i: usize| s[[k, j, i]] as i64;
                let members = sum(hi[0], hi[1], hi[2])
                    - sum(lo[0], hi[1], hi[2])
                    - sum(hi[0], lo[1], hi[2])
                    - sum(hi[0], hi[1], lo[2])
                    + sum(lo[0], lo[1], hi[2])
                    + sum(lo[0], hi[1], lo[2])
                    + sum(hi[0], lo[1], lo[2])
                    - sum(lo[0], lo[1], lo[2]);
                slab[[j, i]] = 2 * members as usize > size;
            }
        }
    });
    out
}

/// Gaussian blur along array axis `axis` with `sigma` voxels; zero beyond the array.
fn blur_axis(f: &mut Array3<f32>, axis: usize, sigma: f64) {
    if sigma < 0.05 {
        return;
    }
    let rad = (3.0 * sigma).ceil() as usize;
    let mut w: Vec<f32> =
        (0..=2 * rad).map(|t| (-((t as f64 - rad as f64).powi(2)) / (2.0 * sigma * sigma)).exp() as f32).collect();
    let total: f32 = w.iter().sum();
    w.iter_mut().for_each(|x| *x /= total);
    let blur_line = |mut line: ArrayViewMut1<f32>, buf: &mut Vec<f32>| {
        buf.clear();
        buf.extend(line.iter().copied());
        let n = buf.len();
        for (p, out) in line.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (t, &wt) in w.iter().enumerate() {
                let q = p as isize + t as isize - rad as isize;
                if q >= 0 && (q as usize) < n {
                    acc += wt * buf[q as usize];
                }
            }
            *out = acc;
        }
    };
    // lanes along `axis`, split over the other two axes; z slabs when the axis is y or x
    if axis == 0 {
        f.axis_iter_mut(Axis(1)).into_par_iter().for_each_init(Vec::new, |buf, mut plane| {
            for line in plane.axis_iter_mut(Axis(1)) {
                blur_line(line, buf);
            }
        });
    } else {
        f.axis_iter_mut(Axis(0)).into_par_iter().for_each_init(Vec::new, |buf, mut slab| {
            for line in slab.lanes_mut(Axis(axis - 1)) {
                blur_line(line, buf);
            }
        });
    }
}

/// Linear indices of the voxels in `bx` that are not `label` and cannot reach the box's
/// faces across `seed_axes` through non-label voxels (face-connected).
fn unreachable_in_box(data: &[u8], shape: [usize; 3], bx: &VoxelBox, label: u8, seed_axes: &[usize]) -> Vec<usize> {
    let s = bx.shape();
    let n = bx.len();
    let local = |k: usize, j: usize, i: usize| (k * s[1] + j) * s[2] + i;
    let global = |k: usize, j: usize, i: usize| ((bx.lo[0] + k) * shape[1] + bx.lo[1] + j) * shape[2] + bx.lo[2] + i;
    let mut seen = vec![false; n];
    let mut stack: Vec<[u32; 3]> = Vec::new();
    for k in 0..s[0] {
        for j in 0..s[1] {
            for i in 0..s[2] {
                let c = [k, j, i];
                let on_face = seed_axes.iter().any(|&a| c[a] == 0 || c[a] + 1 == s[a]);
                if on_face && data[global(k, j, i)] != label {
                    seen[local(k, j, i)] = true;
                    stack.push([k as u32, j as u32, i as u32]);
                }
            }
        }
    }
    while let Some(v) = stack.pop() {
        let [k, j, i] = v.map(|x| x as usize);
        let nb = [
            (k > 0).then(|| [k - 1, j, i]),
            (k + 1 < s[0]).then(|| [k + 1, j, i]),
            (j > 0).then(|| [k, j - 1, i]),
            (j + 1 < s[1]).then(|| [k, j + 1, i]),
            (i > 0).then(|| [k, j, i - 1]),
            (i + 1 < s[2]).then(|| [k, j, i + 1]),
        ];
        for [a, b, c] in nb.into_iter().flatten() {
            let l = local(a, b, c);
            if !seen[l] && data[global(a, b, c)] != label {
                seen[l] = true;
                stack.push([a as u32, b as u32, c as u32]);
            }
        }
    }
    let mut out = Vec::new();
    for k in 0..s[0] {
        for j in 0..s[1] {
            for i in 0..s[2] {
                if !seen[local(k, j, i)] && data[global(k, j, i)] != label {
                    out.push(global(k, j, i));
                }
            }
        }
    }
    out
}
