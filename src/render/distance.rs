//! Shortest distances from points to a triangle surface, exact (closest point on each
//! triangle, not on its vertices), through a uniform grid of the surface's triangles.
//!
//! Used once per mesh build for "distance from each tumour to the liver surface" (and to
//! the vessels): the minimum over the tumour's surface vertices of the distance to the
//! other surface. Deep tumours make every vertex search a large radius, so
//! [`SurfaceGrid::min_distance`] first measures a strided subset of the vertices exactly and
//! skips every vertex that the 1-Lipschitz bound `d(v) ≥ d(s) − |v − s|` already rules out.

use crate::mesh::TriMesh;
use crate::volume::{dot, sub, Lps};

/// Triangles of a surface binned into cubic cells (compressed rows: `start[c]..start[c+1]`
/// of `tris` are the triangles whose bounding box overlaps cell `c`).
pub struct SurfaceGrid {
    tris: Vec<[Lps; 3]>,
    origin: Lps,
    cell_mm: f64,
    dims: [usize; 3],
    start: Vec<u32>,
    members: Vec<u32>,
}

type V = Lps;

fn add_scaled(a: V, b: V, s: f64) -> V {
    [a[0] + b[0] * s, a[1] + b[1] * s, a[2] + b[2] * s]
}
fn dist2(a: V, b: V) -> f64 {
    let d = sub(a, b);
    dot(d, d)
}

/// Closest point to `p` on triangle `(a, b, c)` (Ericson, Real-Time Collision Detection 5.1.5).
pub fn closest_point_on_triangle(p: V, a: V, b: V, c: V) -> V {
    let ab = sub(b, a);
    let ac = sub(c, a);
    let ap = sub(p, a);
    let d1 = dot(ab, ap);
    let d2 = dot(ac, ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = sub(p, b);
    let d3 = dot(ab, bp);
    let d4 = dot(ac, bp);
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return add_scaled(a, ab, d1 / (d1 - d3));
    }
    let cp = sub(p, c);
    let d5 = dot(ab, cp);
    let d6 = dot(ac, cp);
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return add_scaled(a, ac, d2 / (d2 - d6));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        return add_scaled(b, sub(c, b), (d4 - d3) / ((d4 - d3) + (d5 - d6)));
    }
    let denom = 1.0 / (va + vb + vc);
    add_scaled(add_scaled(a, ab, vb * denom), ac, vc * denom)
}

impl SurfaceGrid {
    /// Bins `mesh`; `None` for a mesh without triangles.
    pub fn new(mesh: &TriMesh) -> Option<SurfaceGrid> {
        let bounds = mesh.bounds_mm()?;
        if mesh.triangles.is_empty() {
            return None;
        }
        let f = |i: u32| {
            let v = mesh.positions_mm[i as usize];
            [v[0] as f64, v[1] as f64, v[2] as f64]
        };
        let tris: Vec<[V; 3]> = mesh.triangles.iter().map(|t| [f(t[0]), f(t[1]), f(t[2])]).collect();
        let lo = bounds[0].map(|v| v as f64);
        let hi = bounds[1].map(|v| v as f64);
        let extent = (0..3).map(|a| hi[a] - lo[a]).fold(0.0, f64::max);
        // about 64 cells along the longest side: a handful of triangles per surface cell
        // for a 300k-triangle liver, few empty cells to walk for a point deep inside
        let cell_mm = (extent / 64.0).max(0.5);
        let dims = [0, 1, 2].map(|a| (((hi[a] - lo[a]) / cell_mm).floor() as usize + 1).max(1));
        let cell_of = |p: V| [0, 1, 2].map(|a| (((p[a] - lo[a]) / cell_mm).floor().max(0.0) as usize).min(dims[a] - 1));
        let index = |c: [usize; 3]| (c[2] * dims[1] + c[1]) * dims[0] + c[0];
        let n_cells = dims[0] * dims[1] * dims[2];
        let mut count = vec![0u32; n_cells + 1];
        let each_cell = |t: &[V; 3], f: &mut dyn FnMut(usize)| {
            let tlo = [0, 1, 2].map(|a| t[0][a].min(t[1][a]).min(t[2][a]));
            let thi = [0, 1, 2].map(|a| t[0][a].max(t[1][a]).max(t[2][a]));
            let (c0, c1) = (cell_of(tlo), cell_of(thi));
            for z in c0[2]..=c1[2] {
                for y in c0[1]..=c1[1] {
                    for x in c0[0]..=c1[0] {
                        f(index([x, y, z]));
                    }
                }
            }
        };
        for t in &tris {
            each_cell(t, &mut |c| count[c + 1] += 1);
        }
        for c in 0..n_cells {
            count[c + 1] += count[c];
        }
        let start = count;
        let mut fill = start.clone();
        let mut members = vec![0u32; start[n_cells] as usize];
        for (i, t) in tris.iter().enumerate() {
            each_cell(t, &mut |c| {
                members[fill[c] as usize] = i as u32;
                fill[c] += 1;
            });
        }
        Some(SurfaceGrid { tris, origin: lo, cell_mm, dims, start, members })
    }

    /// Exact distance (mm) from `p` to the surface, or `None` when it is farther than
    /// `cutoff` (pass `f64::INFINITY` for no cutoff).
    pub fn distance(&self, p: V, cutoff: f64) -> Option<f64> {
        let d = self.dims;
        let c = [0, 1, 2].map(|a| (((p[a] - self.origin[a]) / self.cell_mm).floor().max(0.0) as usize).min(d[a] - 1));
        let mut best2 = cutoff * cutoff;
        let mut found = false;
        let max_ring = d[0].max(d[1]).max(d[2]);
        for k in 0..=max_ring {
            // a cell k rings out differs from the query cell by k along some axis, so it is
            // at least (k − 1) cells from `p` (also when `p` lies outside the grid)
            if k >= 1 && ((k - 1) as f64 * self.cell_mm).powi(2) > best2 {
                break;
            }
            let lo = [0, 1, 2].map(|a| c[a].saturating_sub(k));
            let hi = [0, 1, 2].map(|a| (c[a] + k).min(d[a] - 1));
            let mut visit = |cell: usize| {
                for &t in &self.members[self.start[cell] as usize..self.start[cell + 1] as usize] {
                    let [a, b, cc] = self.tris[t as usize];
                    let e = dist2(p, closest_point_on_triangle(p, a, b, cc));
                    if e <= best2 {
                        best2 = e;
                        found = true;
                    }
                }
            };
            for z in lo[2]..=hi[2] {
                for y in lo[1]..=hi[1] {
                    let row = (z * d[1] + y) * d[0];
                    if z.abs_diff(c[2]) == k || y.abs_diff(c[1]) == k {
                        for x in lo[0]..=hi[0] {
                            visit(row + x);
                        }
                    } else {
                        // inside the shell only the two ends of the row are new this ring
                        if c[0] >= k {
                            visit(row + c[0] - k);
                        }
                        if c[0] + k < d[0] {
                            visit(row + c[0] + k);
                        }
                    }
                }
            }
        }
        found.then(|| best2.sqrt())
    }

    /// The smallest distance from any of `points` to the surface (mm): exact, with the
    /// subset bound of the module docs. `None` for no points.
    pub fn min_distance(&self, points: &[[f32; 3]]) -> Option<f64> {
        let pts: Vec<V> = points.iter().map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]).collect();
        if pts.is_empty() {
            return None;
        }
        let stride = (pts.len() / 256).max(1);
        let probes: Vec<(V, f64)> = pts
            .iter()
            .step_by(stride)
            .map(|&s| (s, self.distance(s, f64::INFINITY).unwrap_or(f64::INFINITY)))
            .collect();
        let mut best = probes.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        for &p in &pts {
            let lower = probes.iter().map(|&(s, ds)| ds - dist2(p, s).sqrt()).fold(f64::NEG_INFINITY, f64::max);
            if lower >= best {
                continue;
            }
            if let Some(d) = self.distance(p, best) {
                best = best.min(d);
            }
        }
        best.is_finite().then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axis-aligned closed box surface, 12 triangles.
    fn cube(lo: [f32; 3], hi: [f32; 3]) -> TriMesh {
        let mut positions_mm = Vec::new();
        for z in [lo[2], hi[2]] {
            for y in [lo[1], hi[1]] {
                for x in [lo[0], hi[0]] {
                    positions_mm.push([x, y, z]);
                }
            }
        }
        let q = |a: u32, b: u32, c: u32, d: u32| [[a, b, c], [a, c, d]];
        let triangles =
            [q(0, 2, 3, 1), q(4, 5, 7, 6), q(0, 1, 5, 4), q(2, 6, 7, 3), q(0, 4, 6, 2), q(1, 3, 7, 5)].concat();
        TriMesh { positions_mm, triangles, normals: Vec::new() }
    }

    #[test]
    fn closest_point_regions() {
        let (a, b, c) = ([0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]);
        assert_eq!(closest_point_on_triangle([0.5, 0.5, 3.0], a, b, c), [0.5, 0.5, 0.0]);
        assert_eq!(closest_point_on_triangle([-1.0, -1.0, 0.0], a, b, c), a);
        assert_eq!(closest_point_on_triangle([1.0, -3.0, 0.0], a, b, c), [1.0, 0.0, 0.0]);
        let q = closest_point_on_triangle([2.0, 2.0, 0.0], a, b, c);
        assert!((q[0] - 1.0).abs() < 1e-12 && (q[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn distances_inside_and_outside_a_box_match_brute_force() {
        let m = cube([-50.0, -30.0, -20.0], [50.0, 30.0, 20.0]);
        let g = SurfaceGrid::new(&m).unwrap();
        // inside: nearest face; outside: nearest face, edge or corner
        assert!((g.distance([0.0, 0.0, 0.0], f64::INFINITY).unwrap() - 20.0).abs() < 1e-9);
        assert!((g.distance([45.0, 0.0, 0.0], f64::INFINITY).unwrap() - 5.0).abs() < 1e-9);
        assert!((g.distance([53.0, 34.0, 0.0], f64::INFINITY).unwrap() - 5.0).abs() < 1e-9);
        assert!((g.distance([0.0, 0.0, 120.0], f64::INFINITY).unwrap() - 100.0).abs() < 1e-9);
        assert!(g.distance([0.0, 0.0, 0.0], 10.0).is_none(), "beyond the cutoff");
        let pts: Vec<[f32; 3]> = (0..500)
            .map(|i| [(i % 37) as f32 * 2.0 - 36.0, (i % 11) as f32 * 3.0 - 15.0, (i % 7) as f32 * 4.0 - 12.0])
            .collect();
        let brute = pts
            .iter()
            .map(|p| {
                let p = [p[0] as f64, p[1] as f64, p[2] as f64];
                g.tris
                    .iter()
                    .map(|t| dist2(p, closest_point_on_triangle(p, t[0], t[1], t[2])).sqrt())
                    .fold(f64::INFINITY, f64::min)
            })
            .fold(f64::INFINITY, f64::min);
        assert!((g.min_distance(&pts).unwrap() - brute).abs() < 1e-9);
    }
}
