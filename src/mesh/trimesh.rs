//! The indexed triangle mesh and its measurements.

use rayon::prelude::*;

/// An indexed triangle mesh in LPS millimetres. Triangles are wound counter-clockwise seen
/// from outside (the normal `(b − a) × (c − a)` points out), so a closed mesh has positive
/// [`volume_ml`](TriMesh::volume_ml). Each vertex is stored once and shared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriMesh {
    pub positions_mm: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
    /// Unit vertex normals (area-weighted mean of the triangle normals around each vertex);
    /// empty until [`compute_normals`](TriMesh::compute_normals) runs.
    pub normals: Vec<[f32; 3]>,
}

#[inline]
pub(crate) fn sub3(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline]
pub(crate) fn cross3(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[inline]
pub(crate) fn dot3(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Twice the area vector of a triangle (its unnormalised outward normal).
#[inline]
pub(crate) fn face_normal(p: &[[f32; 3]], t: [u32; 3]) -> [f32; 3] {
    let a = p[t[0] as usize];
    cross3(sub3(p[t[1] as usize], a), sub3(p[t[2] as usize], a))
}

impl TriMesh {
    pub fn vertex_count(&self) -> usize {
        self.positions_mm.len()
    }

    pub fn triangle_count(&self) -> usize {
        self.triangles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.triangles.is_empty()
    }

    /// Enclosed volume in mL (divergence theorem). Meaningful for a closed mesh; sums in
    /// f64 about the first vertex, since mm coordinates far from the origin would cancel.
    pub fn volume_ml(&self) -> f64 {
        let Some(&o) = self.positions_mm.first() else { return 0.0 };
        let rel = |v: u32| {
            let p = self.positions_mm[v as usize];
            [(p[0] - o[0]) as f64, (p[1] - o[1]) as f64, (p[2] - o[2]) as f64]
        };
        let six_v: f64 = self
            .triangles
            .iter()
            .map(|t| {
                let (a, b, c) = (rel(t[0]), rel(t[1]), rel(t[2]));
                a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                    + a[2] * (b[0] * c[1] - b[1] * c[0])
            })
            .sum();
        six_v / 6.0 / 1000.0
    }

    /// Surface area in mm².
    pub fn area_mm2(&self) -> f64 {
        self.triangles
            .iter()
            .map(|&t| {
                let n = face_normal(&self.positions_mm, t);
                (dot3(n, n) as f64).sqrt() / 2.0
            })
            .sum()
    }

    /// Axis-aligned bounds `[min, max]` in mm, or `None` for a mesh without vertices.
    pub fn bounds_mm(&self) -> Option<[[f32; 3]; 2]> {
        let first = *self.positions_mm.first()?;
        Some(self.positions_mm.iter().fold([first, first], |[lo, hi], p| {
            [[lo[0].min(p[0]), lo[1].min(p[1]), lo[2].min(p[2])], [hi[0].max(p[0]), hi[1].max(p[1]), hi[2].max(p[2])]]
        }))
    }

    /// True when every edge is shared by exactly two triangles that run along it in
    /// opposite directions: the mesh is watertight and consistently oriented. An empty
    /// mesh is closed.
    pub fn is_closed(&self) -> bool {
        self.check_closed().is_ok()
    }

    /// Like [`is_closed`](TriMesh::is_closed), but says which edge fails.
    pub fn check_closed(&self) -> Result<(), String> {
        let mut directed: Vec<u64> = self
            .triangles
            .iter()
            .flat_map(|t| [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])])
            .map(|(a, b)| (a as u64) << 32 | b as u64)
            .collect();
        directed.par_sort_unstable();
        if let Some(w) = directed.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("edge {}→{} is used twice in the same direction", w[0] >> 32, w[0] as u32));
        }
        for &e in &directed {
            let (a, b) = (e >> 32, e & 0xffff_ffff);
            if directed.binary_search(&(b << 32 | a)).is_err() {
                return Err(format!("edge {a}→{b} has no triangle on its other side"));
            }
        }
        Ok(())
    }

    /// True when the mesh is closed and every vertex is surrounded by one fan of triangles
    /// (no two cones meeting at a point). Every vertex must be used.
    pub fn is_closed_manifold(&self) -> bool {
        if !self.is_closed() {
            return false;
        }
        // Around each vertex, follow "next edge out": the triangle with a→b continues
        // with the triangle that has a→(third vertex of that triangle)'s reverse. One cycle
        // must visit every triangle of the vertex.
        let nv = self.positions_mm.len();
        let mut count = vec![0u32; nv + 1];
        for t in &self.triangles {
            for &v in t {
                count[v as usize + 1] += 1;
            }
        }
        if count[1..].contains(&0) {
            return false;
        }
        for v in 0..nv {
            count[v + 1] += count[v];
        }
        // For each vertex, outgoing edge v→b of each triangle paired with its next vertex c
        // (triangle v, b, c): the fan goes b → c.
        let mut fan = vec![(0u32, 0u32); count[nv] as usize];
        let mut fill = count.clone();
        for t in &self.triangles {
            for r in 0..3 {
                let (v, b, c) = (t[r], t[(r + 1) % 3], t[(r + 2) % 3]);
                fan[fill[v as usize] as usize] = (b, c);
                fill[v as usize] += 1;
            }
        }
        (0..nv).all(|v| {
            let f = &mut fan[count[v] as usize..count[v + 1] as usize];
            f.sort_unstable();
            // Walk from the first spoke; a single cycle returns after len steps.
            let (mut b, mut steps) = (f[0].0, 0);
            loop {
                let Ok(i) = f.binary_search_by(|x| x.0.cmp(&b)) else { return false };
                b = f[i].1;
                steps += 1;
                if b == f[0].0 {
                    return steps == f.len();
                }
                if steps > f.len() {
                    return false;
                }
            }
        })
    }

    /// Vertices − edges + faces (2 for a closed sphere-like shell, 2 per shell).
    pub fn euler_characteristic(&self) -> i64 {
        // For a closed mesh every edge has two triangles: E = 3F / 2.
        self.positions_mm.len() as i64 - (3 * self.triangles.len() as i64) / 2 + self.triangles.len() as i64
    }

    /// Number of connected pieces (shells), joined through shared vertices.
    pub fn shell_count(&self) -> usize {
        let mut parent: Vec<u32> = (0..self.positions_mm.len() as u32).collect();
        fn find(p: &mut [u32], mut x: u32) -> u32 {
            while p[x as usize] != x {
                p[x as usize] = p[p[x as usize] as usize];
                x = p[x as usize];
            }
            x
        }
        for t in &self.triangles {
            let r0 = find(&mut parent, t[0]);
            for &v in &t[1..] {
                let r = find(&mut parent, v);
                if r != r0 {
                    parent[r as usize] = r0;
                }
            }
        }
        // Unions only join vertices of triangles, so the root of a used vertex is used.
        let mut used = vec![false; parent.len()];
        for &v in self.triangles.iter().flatten() {
            used[v as usize] = true;
        }
        (0..parent.len() as u32).filter(|&v| used[v as usize] && find(&mut parent, v) == v).count()
    }

    /// Fills [`normals`](TriMesh::normals): the area-weighted mean of the normals of the
    /// triangles around each vertex. One pass over the triangles in order, so the result
    /// does not depend on threads.
    pub fn compute_normals(&mut self) {
        let mut acc = vec![[0.0f32; 3]; self.positions_mm.len()];
        for &t in &self.triangles {
            let n = face_normal(&self.positions_mm, t);
            for &v in &t {
                let a = &mut acc[v as usize];
                a[0] += n[0];
                a[1] += n[1];
                a[2] += n[2];
            }
        }
        acc.par_iter_mut().for_each(|n| {
            let len = dot3(*n, *n).sqrt();
            if len > 0.0 {
                *n = [n[0] / len, n[1] / len, n[2] / len];
            }
        });
        self.normals = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tetra() -> TriMesh {
        TriMesh {
            positions_mm: vec![[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]],
            triangles: vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
            normals: vec![],
        }
    }

    #[test]
    fn tetrahedron_measures() {
        let m = tetra();
        assert!((m.volume_ml() - 1000.0 / 6.0 / 1000.0).abs() < 1e-9);
        let want = 3.0 * 50.0 + (3f64).sqrt() / 4.0 * 200.0;
        assert!((m.area_mm2() - want).abs() < 1e-3);
        assert!(m.is_closed() && m.is_closed_manifold());
        assert_eq!(m.euler_characteristic(), 2);
        assert_eq!(m.shell_count(), 1);
        assert_eq!(m.bounds_mm(), Some([[0.0; 3], [10.0; 3]]));
    }

    #[test]
    fn open_or_flipped_meshes_are_not_closed() {
        let mut m = tetra();
        m.triangles.pop();
        assert!(!m.is_closed());
        let mut m = tetra();
        m.triangles[3] = [1, 3, 2];
        assert!(!m.is_closed());
    }

    #[test]
    fn two_cones_meeting_at_a_vertex_are_closed_but_not_manifold() {
        // Two tetrahedra sharing vertex 0 only.
        let mut m = tetra();
        m.positions_mm.extend([[-10.0, 0.0, 0.0], [0.0, -10.0, 0.0], [0.0, 0.0, -10.0]]);
        m.triangles.extend([[0, 4, 5], [0, 6, 4], [0, 5, 6], [4, 6, 5]]);
        assert!(m.is_closed());
        assert!(!m.is_closed_manifold());
    }
}
