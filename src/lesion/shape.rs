//! The geometry of one component: RECIST long and short axes on its largest axial slice
//! and its longest 3-D diameter, between voxel centres plus one voxel's extent along the
//! measured direction (see the module's conventions).

use super::{Component, LesionError, Recist};
use crate::volume::{invert3, mat_vec, norm, sub, Geometry, Lps};

/// Maps voxel indices to LPS mm and gives a voxel's extent along a direction.
pub(super) struct Frame {
    pub(super) origin: Lps,
    pub(super) m: [[f64; 3]; 3],
    inv: [[f64; 3]; 3],
}

impl Frame {
    pub(super) fn new(g: &Geometry) -> Result<Frame, LesionError> {
        g.validate().map_err(LesionError::BadGeometry)?;
        let m = g.index_to_world_matrix();
        let inv = invert3(&m).ok_or_else(|| LesionError::BadGeometry("singular orientation".into()))?;
        Ok(Frame { origin: g.origin_mm, m, inv })
    }

    /// World position of voxel `(k, j, i)`.
    fn world(&self, k: usize, j: usize, i: usize) -> Lps {
        let ijk = [i as f64, j as f64, k as f64];
        let mut w = self.origin;
        for r in 0..3 {
            w[r] += self.m[r][0] * ijk[0] + self.m[r][1] * ijk[1] + self.m[r][2] * ijk[2];
        }
        w
    }

    /// One voxel's extent along the unit direction `u` (mm): the spacing of the lattice
    /// of voxel centres along `u`, 1 / |M⁻¹ u| (the spacing itself along an axis).
    fn voxel_extent(&self, u: Lps) -> f64 {
        let idx = mat_vec(&self.inv, u);
        let n = norm(idx);
        if n > 0.0 {
            1.0 / n
        } else {
            0.0
        }
    }
}

/// 2-D convex hull (Andrew's monotone chain) of integer points; collinear points dropped.
fn hull_2d(mut pts: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut h: Vec<(i64, i64)> = Vec::with_capacity(2 * pts.len());
    for &p in pts.iter().chain(pts.iter().rev().skip(1)) {
        // lower hull on the way out, upper hull on the way back
        while h.len() >= 2 && cross(h[h.len() - 2], h[h.len() - 1], p) <= 0 {
            h.pop();
        }
        h.push(p);
    }
    h.pop();
    h
}

/// The farthest pair among `pts` (world mm): (distance, a, b).
fn farthest_pair(pts: &[Lps]) -> (f64, Lps, Lps) {
    let mut best = (0.0, pts.first().copied().unwrap_or([0.0; 3]), pts.first().copied().unwrap_or([0.0; 3]));
    for (n, a) in pts.iter().enumerate() {
        for b in &pts[n + 1..] {
            let d = norm(sub(*a, *b));
            if d > best.0 {
                best = (d, *a, *b);
            }
        }
    }
    best
}

fn unit(v: Lps) -> Lps {
    let n = norm(v);
    if n > 0.0 {
        [v[0] / n, v[1] / n, v[2] / n]
    } else {
        [1.0, 0.0, 0.0]
    }
}

pub(super) struct Shape {
    pub(super) recist: Recist,
    pub(super) longest_3d: (f64, Lps, Lps),
}

/// RECIST axes and the longest 3-D diameter of a component.
pub(super) fn measure_shape(comp: &Component, shape: [usize; 3], frame: &Frame) -> Shape {
    let [_, ny, nx] = shape;
    let unravel = |v: usize| (v / (ny * nx), (v / nx) % ny, v % nx);
    // voxels are in C order, so each slice's voxels are contiguous
    let mut slices: Vec<(usize, Vec<(i64, i64)>)> = Vec::new();
    for &v in &comp.voxels {
        let (k, j, i) = unravel(v);
        match slices.last_mut() {
            Some((kk, pts)) if *kk == k => pts.push((i as i64, j as i64)),
            _ => slices.push((k, vec![(i as i64, j as i64)])),
        }
    }
    let mut hull_points_3d = Vec::new();
    let mut best: Option<Recist> = None;
    for (k, pts) in &slices {
        let hull = hull_2d(pts.clone());
        let world: Vec<Lps> = hull.iter().map(|&(i, j)| frame.world(*k, j as usize, i as usize)).collect();
        hull_points_3d.extend_from_slice(&world);
        let (d, a, b) = farthest_pair(&world);
        let u = unit(sub(b, a));
        let long = if world.len() > 1 { d + frame.voxel_extent(u) } else { frame.voxel_extent([1.0, 0.0, 0.0]) };
        if best.as_ref().is_some_and(|r| r.long_axis_mm >= long) {
            continue;
        }
        // short axis: the longest chord perpendicular to the long axis, among the slice's
        // boundary pixels (a pixel with an in-slice 4-neighbour outside the lesion)
        let set: std::collections::HashSet<(i64, i64)> = pts.iter().copied().collect();
        let boundary: Vec<(i64, i64)> = pts
            .iter()
            .copied()
            .filter(|&(i, j)| {
                [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|(di, dj)| !set.contains(&(i + di, j + dj)))
            })
            .collect();
        let bw: Vec<Lps> = boundary.iter().map(|&(i, j)| frame.world(*k, j as usize, i as usize)).collect();
        // in-plane perpendicular: slice normal × u
        let normal = unit(crate::volume::cross(
            sub(frame.world(0, 1, 0), frame.world(0, 0, 0)),
            sub(frame.world(0, 0, 1), frame.world(0, 0, 0)),
        ));
        let w = unit(crate::volume::cross(normal, u));
        let tol = 0.5 * frame.voxel_extent(u);
        let mut short = (0.0, a, a);
        for (n, p) in bw.iter().enumerate() {
            for q in &bw[n + 1..] {
                let d = sub(*q, *p);
                if crate::volume::dot(d, u).abs() <= tol {
                    let len = crate::volume::dot(d, w).abs();
                    if len > short.0 {
                        short = (len, *p, *q);
                    }
                }
            }
        }
        let short_mm = short.0 + frame.voxel_extent(w);
        best = Some(Recist {
            long_axis_mm: long,
            short_axis_mm: short_mm.min(long),
            slice: *k,
            long_axis_ends_mm: [a, b],
            short_axis_ends_mm: [short.1, short.2],
        });
    }
    let (d, a, b) = farthest_pair(&hull_points_3d);
    let longest = if hull_points_3d.len() > 1 {
        d + frame.voxel_extent(unit(sub(b, a)))
    } else {
        frame.voxel_extent([1.0, 0.0, 0.0])
    };
    let recist = best.unwrap_or(Recist {
        long_axis_mm: 0.0,
        short_axis_mm: 0.0,
        slice: 0,
        long_axis_ends_mm: [a, b],
        short_axis_ends_mm: [a, b],
    });
    Shape { recist, longest_3d: (longest, a, b) }
}

/// RECIST axes and longest 3-D diameter (mm) of any voxel set of a grid, e.g. the viable
/// part of a lesion for mRECIST. `voxels`: linear `[z, y, x]` indices, ascending.
pub fn measure_voxels(voxels: &[usize], geometry: &Geometry) -> Result<(Recist, f64), LesionError> {
    let frame = Frame::new(geometry)?;
    if voxels.is_empty() {
        let o = geometry.origin_mm;
        return Ok((
            Recist {
                long_axis_mm: 0.0,
                short_axis_mm: 0.0,
                slice: 0,
                long_axis_ends_mm: [o, o],
                short_axis_ends_mm: [o, o],
            },
            0.0,
        ));
    }
    let s = measure_shape(&Component { voxels: voxels.to_vec() }, geometry.shape, &frame);
    Ok((s.recist, s.longest_3d.0))
}
