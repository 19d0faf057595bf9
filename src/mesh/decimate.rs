//! Quadric-error edge collapse (Garland & Heckbert 1997) down to a triangle budget.
//!
//! Each vertex carries the sum of the squared-distance quadrics of the planes of its
//! triangles (area-weighted); collapsing edge (u, v) to the point p that minimises the
//! summed quadric costs that quadric at p. The cheapest edge goes first. A collapse is
//! refused when it would
//! - break the manifold: the edge must have exactly two triangles and u, v exactly two
//!   common neighbours (the link condition), and no vertex may end with fewer than three
//!   triangles — so a closed manifold stays a closed manifold;
//! - fold the surface: no surviving triangle around u or v may turn by more than
//!   [`MAX_NORMAL_TURN_DEG`] or become degenerate.
//!
//! The queue is a bucket queue on the cost's leading bits (16 buckets per octave), not a
//! binary heap: every collapse re-queues the edges around the new vertex and leaves their
//! old entries stale, and popping millions of stale entries from a heap was most of the
//! run time. Within a bucket (costs within ~4 %) the last queued goes first.
//!
//! It runs on one thread (each collapse changes what the next one may do) in a fixed order,
//! so the output is the same everywhere; objects of a study are decimated in parallel
//! instead. Maths in f64 about the mesh's centre, since quadric
//! sums lose f32 precision at tens of centimetres from the origin.

use rayon::prelude::*;

use super::TriMesh;
use crate::volume::{cross, dot, sub};

/// A collapse may turn a surviving triangle's normal by at most this much. Beyond ~60°
/// the collapse folds a crease into the surface rather than simplifying it.
pub const MAX_NORMAL_TURN_DEG: f64 = 60.0;

/// Decimates `mesh` to at most `max_triangles` triangles and returns the result with vertex
/// normals. The input should be a closed manifold (as [`surface`](super::surface) makes);
/// edges with other than two triangles are never collapsed. If every remaining collapse
/// would break the rules above, the result keeps more triangles than asked (a closed mesh
/// cannot go below the 4 triangles of a tetrahedron).
pub fn decimate(mesh: &TriMesh, max_triangles: usize) -> TriMesh {
    if mesh.triangles.len() <= max_triangles {
        let mut out = mesh.clone();
        if out.normals.len() != out.positions_mm.len() {
            out.compute_normals();
        }
        return out;
    }
    let mut c = Collapser::new(mesh);
    // Edges refused early can become collapsible once their neighbourhood has changed:
    // after the queue runs dry, requeue every edge, while that still makes progress.
    loop {
        let before = c.live_triangles;
        c.run(max_triangles);
        if c.live_triangles <= max_triangles || c.live_triangles == before {
            break;
        }
        c.queue_all_edges();
    }
    c.into_mesh()
}

// ---------------------------------------------------------------------------------------
// Quadrics
// ---------------------------------------------------------------------------------------

/// Symmetric 4×4 `[a², ab, ac, ad, b², bc, bd, c², cd, d²]` of the plane ax + by + cz + d.
type Quadric = [f64; 10];

fn plane_quadric(n: [f64; 3], d: f64, weight: f64) -> Quadric {
    let [a, b, c] = n;
    [a * a, a * b, a * c, a * d, b * b, b * c, b * d, c * c, c * d, d * d].map(|x| x * weight)
}

fn add(q: &Quadric, r: &Quadric) -> Quadric {
    std::array::from_fn(|i| q[i] + r[i])
}

fn cost_at(q: &Quadric, p: [f64; 3]) -> f64 {
    let [x, y, z] = p;
    q[0] * x * x
        + 2.0 * q[1] * x * y
        + 2.0 * q[2] * x * z
        + 2.0 * q[3] * x
        + q[4] * y * y
        + 2.0 * q[5] * y * z
        + 2.0 * q[6] * y
        + q[7] * z * z
        + 2.0 * q[8] * z
        + q[9]
}

/// The point minimising the quadric, when its 3×3 part is well conditioned.
fn optimum(q: &Quadric) -> Option<[f64; 3]> {
    let m = [[q[0], q[1], q[2]], [q[1], q[4], q[5]], [q[2], q[5], q[7]]];
    let det = crate::volume::det3(&m);
    let scale = (q[0] + q[4] + q[7]).powi(3);
    if !(det.abs() > 1e-9 * scale && scale > 0.0) {
        return None;
    }
    let inv = crate::volume::invert3(&m)?;
    let rhs = [-q[3], -q[6], -q[8]];
    Some(crate::volume::mat_vec(&inv, rhs))
}

// ---------------------------------------------------------------------------------------
// Small vector maths in f64
// ---------------------------------------------------------------------------------------

fn normal(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [f64; 3] {
    cross(sub(b, a), sub(c, a))
}

// ---------------------------------------------------------------------------------------
// The collapse queue
// ---------------------------------------------------------------------------------------

/// A queued collapse of edge (a, b), valid while both vertices still have the stamps they
/// had when it was queued.
#[derive(Clone, Copy)]
struct Candidate {
    a: u32,
    b: u32,
    stamp_a: u32,
    stamp_b: u32,
}

/// Candidates by cost bucket: the top 16 bits of a non-negative f64 (sign, exponent and 4
/// mantissa bits) order like the cost, so they index 16 buckets per octave.
struct BucketQueue {
    buckets: Vec<Vec<Candidate>>,
    /// No non-empty bucket below this one.
    lowest: usize,
}

impl BucketQueue {
    const BUCKETS: usize = 1 << 15;

    fn new() -> Self {
        BucketQueue { buckets: (0..Self::BUCKETS).map(|_| Vec::new()).collect(), lowest: Self::BUCKETS }
    }

    fn bucket(cost: f64) -> usize {
        ((cost.to_bits() >> 48) as usize).min(Self::BUCKETS - 1)
    }

    fn clear(&mut self) {
        self.buckets.iter_mut().for_each(Vec::clear);
        self.lowest = Self::BUCKETS;
    }

    fn push(&mut self, cost: f64, c: Candidate) {
        let b = Self::bucket(cost);
        self.buckets[b].push(c);
        self.lowest = self.lowest.min(b);
    }

    fn pop(&mut self) -> Option<Candidate> {
        while self.lowest < Self::BUCKETS {
            if let Some(c) = self.buckets[self.lowest].pop() {
                return Some(c);
            }
            self.lowest += 1;
        }
        None
    }
}

struct Collapser {
    /// Positions relative to `centre`.
    pos: Vec<[f64; 3]>,
    centre: [f64; 3],
    quadric: Vec<Quadric>,
    tris: Vec<[u32; 3]>,
    tri_alive: Vec<bool>,
    /// Live triangles around each vertex.
    vtris: Vec<Vec<u32>>,
    /// Bumped whenever a vertex moves; `u32::MAX` once it is gone.
    stamp: Vec<u32>,
    live_triangles: usize,
    queue: BucketQueue,
    cos_limit: f64,
    // Scratch, reused so that the collapse loop does not allocate.
    ring_u: Vec<u32>,
    ring_v: Vec<u32>,
}

const GONE: u32 = u32::MAX;

impl Collapser {
    fn new(mesh: &TriMesh) -> Collapser {
        let centre = match mesh.bounds_mm() {
            Some([lo, hi]) => std::array::from_fn(|a| (lo[a] as f64 + hi[a] as f64) / 2.0),
            None => [0.0; 3],
        };
        let pos: Vec<[f64; 3]> =
            mesh.positions_mm.iter().map(|p| std::array::from_fn(|a| p[a] as f64 - centre[a])).collect();
        let nv = pos.len();
        let mut degree = vec![0u32; nv];
        for &v in mesh.triangles.iter().flatten() {
            degree[v as usize] += 1;
        }
        let mut vtris: Vec<Vec<u32>> = degree.iter().map(|&d| Vec::with_capacity(d as usize + 4)).collect();
        for (t, tri) in mesh.triangles.iter().enumerate() {
            for &v in tri {
                vtris[v as usize].push(t as u32);
            }
        }
        let tris = mesh.triangles.clone();
        let quadric: Vec<Quadric> = (0..nv)
            .into_par_iter()
            .with_min_len(1024)
            .map(|v| {
                vtris[v].iter().fold([0.0; 10], |q, &t| {
                    let [a, b, c] = tris[t as usize].map(|i| pos[i as usize]);
                    let n = normal(a, b, c);
                    let len = dot(n, n).sqrt();
                    if len == 0.0 {
                        return q;
                    }
                    let unit = n.map(|x| x / len);
                    add(&q, &plane_quadric(unit, -dot(unit, a), len / 2.0))
                })
            })
            .collect();
        let live_triangles = tris.len();
        let mut c = Collapser {
            pos,
            centre,
            quadric,
            tri_alive: vec![true; tris.len()],
            tris,
            vtris,
            stamp: vec![0; nv],
            live_triangles,
            queue: BucketQueue::new(),
            cos_limit: MAX_NORMAL_TURN_DEG.to_radians().cos(),
            ring_u: Vec::new(),
            ring_v: Vec::new(),
        };
        c.queue_all_edges();
        c
    }

    /// Queues every live edge once (from the triangle where it runs low → high number).
    fn queue_all_edges(&mut self) {
        let edges: Vec<(u32, u32)> = self
            .tris
            .iter()
            .zip(&self.tri_alive)
            .filter(|(_, &alive)| alive)
            .flat_map(|(t, _)| [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])])
            .filter(|(a, b)| a < b)
            .collect();
        let this = &*self;
        let cands: Vec<(f64, Candidate)> =
            edges.par_iter().with_min_len(4096).map(|&(a, b)| this.candidate(a, b)).collect();
        self.queue.clear();
        for (cost, c) in cands {
            self.queue.push(cost, c);
        }
    }

    /// Where edge (a, b) would collapse to, and at what cost: the quadric's optimum if it
    /// is well defined and near the edge, else the best of the ends and the midpoint.
    fn target(&self, a: u32, b: u32) -> ([f64; 3], f64) {
        let q = add(&self.quadric[a as usize], &self.quadric[b as usize]);
        let (pa, pb) = (self.pos[a as usize], self.pos[b as usize]);
        let mid = [(pa[0] + pb[0]) / 2.0, (pa[1] + pb[1]) / 2.0, (pa[2] + pb[2]) / 2.0];
        let len2 = dot(sub(pa, pb), sub(pa, pb));
        if let Some(p) = optimum(&q) {
            // A far optimum comes from a nearly flat or cylindrical patch; it would drag
            // the vertex away from the surface it represents.
            let d = sub(p, mid);
            if dot(d, d) <= len2 {
                return (p, cost_at(&q, p).max(0.0));
            }
        }
        [pa, pb, mid].into_iter().map(|p| (p, cost_at(&q, p).max(0.0))).fold((mid, f64::INFINITY), |best, c| {
            if c.1 < best.1 {
                c
            } else {
                best
            }
        })
    }

    fn candidate(&self, a: u32, b: u32) -> (f64, Candidate) {
        let (a, b) = (a.min(b), a.max(b));
        let cost = self.target(a, b).1;
        let cost = if cost.is_finite() { cost } else { f64::MAX };
        (cost, Candidate { a, b, stamp_a: self.stamp[a as usize], stamp_b: self.stamp[b as usize] })
    }

    fn run(&mut self, max_triangles: usize) {
        while self.live_triangles > max_triangles {
            let Some(c) = self.queue.pop() else { return };
            if self.stamp[c.a as usize] != c.stamp_a || self.stamp[c.b as usize] != c.stamp_b {
                continue;
            }
            let (p, _) = self.target(c.a, c.b);
            self.try_collapse(c.a, c.b, p);
        }
    }

    /// The distinct neighbours of `v` (excluding `v`), into `out`.
    fn ring(vtris: &[Vec<u32>], tris: &[[u32; 3]], v: u32, out: &mut Vec<u32>) {
        out.clear();
        for &t in &vtris[v as usize] {
            for &w in &tris[t as usize] {
                if w != v && !out.contains(&w) {
                    out.push(w);
                }
            }
        }
    }

    fn try_collapse(&mut self, u: u32, v: u32, p: [f64; 3]) -> bool {
        let mut ring_u = std::mem::take(&mut self.ring_u);
        let mut ring_v = std::mem::take(&mut self.ring_v);
        Self::ring(&self.vtris, &self.tris, u, &mut ring_u);
        Self::ring(&self.vtris, &self.tris, v, &mut ring_v);
        let ok = self.allowed(u, v, p, &ring_u, &ring_v);
        if ok {
            self.collapse(u, v, p, &mut ring_u);
        }
        self.ring_u = ring_u;
        self.ring_v = ring_v;
        ok
    }

    /// The manifold and fold rules of the module docs.
    fn allowed(&self, u: u32, v: u32, p: [f64; 3], ring_u: &[u32], ring_v: &[u32]) -> bool {
        let mut shared = [0u32; 2];
        let mut n_shared = 0;
        for &t in &self.vtris[u as usize] {
            if self.tris[t as usize].contains(&v) {
                if n_shared == 2 {
                    return false;
                }
                shared[n_shared] = t;
                n_shared += 1;
            }
        }
        if n_shared != 2 {
            return false;
        }
        let common = ring_u.iter().filter(|w| ring_v.contains(w)).count();
        if common != 2 {
            return false;
        }
        // Each vertex opposite the edge loses one triangle; u keeps deg u + deg v − 4.
        for &t in &shared {
            let o = self.tris[t as usize].into_iter().find(|&w| w != u && w != v).unwrap_or(u);
            if self.vtris[o as usize].len() <= 3 {
                return false;
            }
        }
        if self.vtris[u as usize].len() + self.vtris[v as usize].len() < 7 {
            return false;
        }
        for &w in &[u, v] {
            for &t in &self.vtris[w as usize] {
                let tri = self.tris[t as usize];
                if tri.contains(&u) && tri.contains(&v) {
                    continue;
                }
                let before = tri.map(|i| self.pos[i as usize]);
                let after = tri.map(|i| if i == w { p } else { self.pos[i as usize] });
                let n0 = normal(before[0], before[1], before[2]);
                let n1 = normal(after[0], after[1], after[2]);
                let (l0, l1) = (dot(n0, n0).sqrt(), dot(n1, n1).sqrt());
                // Degenerate after: area tiny against the triangle's edge lengths.
                let e2 = dot(sub(after[1], after[0]), sub(after[1], after[0]))
                    .max(dot(sub(after[2], after[0]), sub(after[2], after[0])));
                if l1 <= 1e-6 * e2 || dot(n0, n1) < self.cos_limit * l0 * l1 {
                    return false;
                }
            }
        }
        true
    }

    /// Collapses v into u at p.
    fn collapse(&mut self, u: u32, v: u32, p: [f64; 3], ring: &mut Vec<u32>) {
        let (ui, vi) = (u as usize, v as usize);
        let v_tris = std::mem::take(&mut self.vtris[vi]);
        for &t in &v_tris {
            let tri = self.tris[t as usize];
            if tri.contains(&u) {
                // One of the edge's two triangles: it disappears from its three vertices.
                self.tri_alive[t as usize] = false;
                self.live_triangles -= 1;
                for w in tri {
                    if w != v {
                        self.vtris[w as usize].retain(|&x| x != t);
                    }
                }
            } else {
                self.tris[t as usize] = tri.map(|w| if w == v { u } else { w });
                self.vtris[ui].push(t);
            }
        }
        self.pos[ui] = p;
        self.quadric[ui] = add(&self.quadric[ui], &self.quadric[vi]);
        self.stamp[vi] = GONE;
        self.stamp[ui] = self.stamp[ui].wrapping_add(1) % GONE;
        Self::ring(&self.vtris, &self.tris, u, ring);
        for &w in ring.iter() {
            let (cost, c) = self.candidate(u, w);
            self.queue.push(cost, c);
        }
    }

    /// The live part, renumbered in the old order, back in world mm.
    fn into_mesh(self) -> TriMesh {
        let triangles: Vec<[u32; 3]> =
            self.tris.iter().zip(&self.tri_alive).filter(|(_, &alive)| alive).map(|(t, _)| *t).collect();
        let mut new_id = vec![u32::MAX; self.pos.len()];
        for &v in triangles.iter().flatten() {
            new_id[v as usize] = 0;
        }
        let mut positions = Vec::new();
        for (v, id) in new_id.iter_mut().enumerate() {
            if *id != u32::MAX {
                *id = positions.len() as u32;
                let p = self.pos[v];
                positions.push(std::array::from_fn(|a| (p[a] + self.centre[a]) as f32));
            }
        }
        let triangles = triangles.into_iter().map(|t| t.map(|v| new_id[v as usize])).collect();
        let mut mesh = TriMesh { positions_mm: positions, triangles, normals: Vec::new() };
        mesh.compute_normals();
        mesh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed UV sphere of radius r.
    fn uv_sphere(r: f32, rings: usize, segments: usize) -> TriMesh {
        let mut p = vec![[0.0, 0.0, r]];
        for i in 1..rings {
            let th = std::f32::consts::PI * i as f32 / rings as f32;
            for j in 0..segments {
                let ph = 2.0 * std::f32::consts::PI * j as f32 / segments as f32;
                p.push([r * th.sin() * ph.cos(), r * th.sin() * ph.sin(), r * th.cos()]);
            }
        }
        p.push([0.0, 0.0, -r]);
        let south = (p.len() - 1) as u32;
        let id = |i: usize, j: usize| (1 + (i - 1) * segments + j % segments) as u32;
        let mut t = Vec::new();
        for j in 0..segments {
            t.push([0, id(1, j), id(1, j + 1)]);
            t.push([south, id(rings - 1, j + 1), id(rings - 1, j)]);
            for i in 1..rings - 1 {
                t.push([id(i, j), id(i + 1, j), id(i + 1, j + 1)]);
                t.push([id(i, j), id(i + 1, j + 1), id(i, j + 1)]);
            }
        }
        TriMesh { positions_mm: p, triangles: t, normals: vec![] }
    }

    #[test]
    fn sphere_decimates_to_budget_and_stays_closed() {
        let s = uv_sphere(10.0, 40, 80);
        assert!(s.is_closed_manifold());
        let d = decimate(&s, 500);
        assert!(d.triangle_count() <= 500, "{}", d.triangle_count());
        assert!(d.triangle_count() >= 490);
        assert!(d.is_closed_manifold());
        assert_eq!(d.euler_characteristic(), 2);
        let rel = (d.volume_ml() - s.volume_ml()).abs() / s.volume_ml();
        assert!(rel < 0.03, "volume changed by {rel}");
    }

    #[test]
    fn tiny_budgets_stop_at_a_closed_mesh() {
        let s = uv_sphere(10.0, 6, 8);
        let d = decimate(&s, 0);
        assert!(d.is_closed_manifold());
        assert!(d.triangle_count() >= 4);
        assert!(d.volume_ml() > 0.0);
    }
}
