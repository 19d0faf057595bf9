//! Exact picking on the CPU: a ray against every triangle of a mesh (Möller–Trumbore in
//! f64). A liver of 300k triangles takes a few milliseconds, once per click, so no
//! acceleration structure is kept in sync with the GPU buffers.

use rayon::prelude::*;

use super::camera::Ray;
use crate::mesh::TriMesh;
use crate::volume::Lps;

/// Distance along `ray` to triangle `(a, b, c)`, either side facing; `None` if missed or
/// behind the origin.
pub fn ray_triangle(ray: &Ray, a: Lps, b: Lps, c: Lps) -> Option<f64> {
    let sub = |p: Lps, q: Lps| [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
    let cross = |p: Lps, q: Lps| [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]];
    let dot = |p: Lps, q: Lps| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
    let e1 = sub(b, a);
    let e2 = sub(c, a);
    let p = cross(ray.dir, e2);
    let det = dot(e1, p);
    // parallel to the triangle's plane (relative to its size)
    if det.abs() < 1e-12 * dot(e1, e1).max(dot(e2, e2)) {
        return None;
    }
    let inv = 1.0 / det;
    let s = sub(ray.origin, a);
    let u = dot(s, p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = cross(s, e1);
    let v = dot(ray.dir, q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = dot(e2, q) * inv;
    (t > 0.0).then_some(t)
}

/// The nearest hit of `ray` on `mesh`: distance along the ray and the point (LPS mm).
pub fn pick_mesh(ray: &Ray, mesh: &TriMesh) -> Option<(f64, Lps)> {
    let p = &mesh.positions_mm;
    let f = |i: u32| {
        let v = p[i as usize];
        [v[0] as f64, v[1] as f64, v[2] as f64]
    };
    mesh.triangles
        .par_chunks(4096)
        .filter_map(|chunk| {
            chunk.iter().filter_map(|t| ray_triangle(ray, f(t[0]), f(t[1]), f(t[2]))).min_by(f64::total_cmp)
        })
        .min_by(f64::total_cmp)
        .map(|t| (t, ray.at(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_inside_and_misses_outside() {
        let ray = Ray { origin: [0.2, 0.2, 5.0], dir: [0.0, 0.0, -1.0] };
        let (a, b, c) = ([0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]);
        assert!((ray_triangle(&ray, a, b, c).unwrap() - 4.0).abs() < 1e-12);
        // back side too: a transparent surface is picked from either side
        assert!(ray_triangle(&ray, a, c, b).is_some());
        let miss = Ray { origin: [0.8, 0.8, 5.0], ..ray };
        assert!(ray_triangle(&miss, a, b, c).is_none());
        let behind = Ray { origin: [0.2, 0.2, 0.0], ..ray };
        assert!(ray_triangle(&behind, a, b, c).is_none());
    }
}
