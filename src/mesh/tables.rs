//! Marching-cubes case table for a binary indicator at level 0.5, built once at first use
//! from a rule rather than typed in.
//!
//! Why not Lorensen's published table: it resolves a face with two diagonal inside corners
//! one way in some cubes and the other way in their neighbours (it was made with the
//! complement symmetry), which leaves holes. Here every face is resolved by a rule that
//! depends on that face's four corners only — diagonal inside corners are **joined** (the
//! outside corners are cut off) — so the contour on a shared face is the same seen from
//! both cubes. Each cube's contour segments then chain into closed loops on the cube's
//! boundary, and each loop is spanned by one disc. Discs glued along identical face
//! contours form a closed 2-manifold: every mesh edge on a face has one triangle on each
//! side, every edge inside a cube belongs to one disc, and the triangles around a vertex
//! (which sits on a grid edge, in four cubes) form a single fan.
//!
//! The rule makes face-diagonal neighbours of the object one shell (18-connected object,
//! 6-connected background). Voxels that meet only at a corner become separate shells.
//!
//! Corner `c` of a cell sits at offset `(c & 1, c >> 1 & 1, c >> 2 & 1)` in `(i, j, k)`, so
//! the case index has bit `c` set when corner `c` is inside.

use std::sync::OnceLock;

use crate::volume::{cross, dot, sub};

/// The two corners of each cell edge: 0–3 run along i, 4–7 along j, 8–11 along k.
pub(crate) const EDGES: [[usize; 2]; 12] =
    [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7], [0, 4], [1, 5], [2, 6], [3, 7]];

/// Cell faces as corner cycles (neighbouring corners next to each other) with the outward
/// normal of the face.
const FACES: [([usize; 4], [f64; 3]); 6] = [
    ([0, 2, 6, 4], [-1.0, 0.0, 0.0]),
    ([1, 3, 7, 5], [1.0, 0.0, 0.0]),
    ([0, 1, 5, 4], [0.0, -1.0, 0.0]),
    ([2, 3, 7, 6], [0.0, 1.0, 0.0]),
    ([0, 1, 3, 2], [0.0, 0.0, -1.0]),
    ([4, 5, 7, 6], [0.0, 0.0, 1.0]),
];

/// Triangles of every case, as cell-edge indices, wound so that the normal
/// `(b − a) × (c − a)` points from inside to outside in index space.
pub(crate) struct CaseTable {
    /// `tris[start[case]..start[case + 1]]` are the case's triangles.
    start: [u16; 257],
    tris: Vec<[u8; 3]>,
    /// Bit `e` set when cell edge `e` is crossed in this case.
    pub(crate) edge_mask: [u16; 256],
}

impl CaseTable {
    #[inline]
    pub(crate) fn triangles(&self, case: usize) -> &[[u8; 3]] {
        &self.tris[self.start[case] as usize..self.start[case + 1] as usize]
    }
}

/// The table, built on first use (a few microseconds).
pub(crate) fn case_table() -> &'static CaseTable {
    static TABLE: OnceLock<CaseTable> = OnceLock::new();
    TABLE.get_or_init(build_table)
}

fn corner_pos(c: usize) -> [f64; 3] {
    [(c & 1) as f64, (c >> 1 & 1) as f64, (c >> 2 & 1) as f64]
}

/// Index-space position of the crossing on cell edge `e` (its midpoint at level 0.5).
pub(crate) fn edge_midpoint(e: usize) -> [f64; 3] {
    let (a, b) = (corner_pos(EDGES[e][0]), corner_pos(EDGES[e][1]));
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, (a[2] + b[2]) / 2.0]
}

fn edge_between(a: usize, b: usize) -> usize {
    EDGES.iter().position(|e| (e[0] == a && e[1] == b) || (e[0] == b && e[1] == a)).unwrap_or(usize::MAX)
}

fn tri_area(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> f64 {
    let n = cross(sub(b, a), sub(c, a));
    dot(n, n).sqrt() / 2.0
}

/// The contour segments of one face as pairs of cell edges, each directed so that, seen
/// from outside the cell, the inside corners are on its left.
fn face_segments(case: usize, corners: [usize; 4], normal: [f64; 3], out: &mut Vec<[usize; 2]>) {
    let inside = |c: usize| case >> c & 1 == 1;
    // Face edge m joins corners m and m + 1 of the cycle.
    let edge = |m: usize| edge_between(corners[m], corners[(m + 1) % 4]);
    let crossed: Vec<usize> = (0..4).filter(|&m| inside(corners[m]) != inside(corners[(m + 1) % 4])).collect();
    let pairs: Vec<[usize; 2]> = match crossed.len() {
        2 => vec![[crossed[0], crossed[1]]],
        4 => {
            // Diagonal corners agree. Cut off the two outside corners: face edges m−1 and m
            // meet at corner m.
            if inside(corners[1]) {
                vec![[3, 0], [1, 2]]
            } else {
                vec![[0, 1], [2, 3]]
            }
        }
        _ => vec![],
    };
    for [ma, mb] in pairs {
        let (ea, eb) = (edge(ma), edge(mb));
        let (p, q) = (edge_midpoint(ea), edge_midpoint(eb));
        // The inside end of edge `ea` lies strictly on the inside side of the line p→q,
        // since that line meets edge `ea` only at p.
        let c_in = if inside(EDGES[ea][0]) { EDGES[ea][0] } else { EDGES[ea][1] };
        let left = dot(cross(normal, sub(q, p)), sub(corner_pos(c_in), p)) > 0.0;
        out.push(if left { [ea, eb] } else { [eb, ea] });
    }
}

/// Chains directed segments into loops of cell edges. Each crossed edge lies on two faces,
/// so it ends exactly one segment and starts exactly one.
fn chain_loops(segments: &[[usize; 2]]) -> Vec<Vec<usize>> {
    let mut next = [usize::MAX; 12];
    for s in segments {
        debug_assert_eq!(next[s[0]], usize::MAX, "edge {} starts two segments", s[0]);
        next[s[0]] = s[1];
    }
    let mut used = [false; 12];
    let mut loops = Vec::new();
    for start in 0..12 {
        if next[start] == usize::MAX || used[start] {
            continue;
        }
        let mut lp = Vec::new();
        let mut e = start;
        while !used[e] {
            used[e] = true;
            lp.push(e);
            e = next[e];
        }
        loops.push(lp);
    }
    loops
}

/// Bit `f` set when cell edge `e` lies on face `f` (every edge lies on two faces).
fn edge_faces(e: usize) -> u8 {
    FACES
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| c.contains(&EDGES[e][0]) && c.contains(&EDGES[e][1]))
        .fold(0, |m, (f, _)| m | 1 << f)
}

/// Minimum-area triangulation of a closed loop of cell edges (it is not planar in general,
/// and the smallest spanning surface is the least bumpy). A chord may not join two
/// crossings on the same cell face: the neighbour across that face could hold the same
/// chord, and a mesh edge would then have four triangles. Ties keep the first split, so the
/// table is the same on every run. Triangles keep the loop's direction.
fn triangulate(lp: &[usize]) -> Vec<[usize; 3]> {
    let n = lp.len();
    let points: Vec<[f64; 3]> = lp.iter().map(|&e| edge_midpoint(e)).collect();
    let chord_ok = |a: usize, b: usize| b == a + 1 || edge_faces(lp[a]) & edge_faces(lp[b]) == 0;
    let mut cost = vec![vec![0.0f64; n]; n];
    let mut split = vec![vec![usize::MAX; n]; n];
    for len in 2..n {
        for i in 0..n - len {
            let j = i + len;
            let mut best = f64::INFINITY;
            for k in i + 1..j {
                if !(chord_ok(i, k) && chord_ok(k, j)) {
                    continue;
                }
                let c = cost[i][k] + cost[k][j] + tri_area(points[i], points[k], points[j]);
                if c < best - 1e-12 {
                    best = c;
                    split[i][j] = k;
                }
            }
            cost[i][j] = best;
        }
    }
    assert!(cost[0][n - 1].is_finite(), "loop {lp:?} has no triangulation without face chords");
    let mut out = Vec::new();
    let mut stack = vec![(0, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j < i + 2 {
            continue;
        }
        let k = split[i][j];
        out.push([i, k, j]);
        stack.push((i, k));
        stack.push((k, j));
    }
    out
}

fn build_table() -> CaseTable {
    let mut per_case: Vec<Vec<[u8; 3]>> = Vec::with_capacity(256);
    let mut edge_mask = [0u16; 256];
    let mut segments = Vec::new();
    for case in 0..256usize {
        segments.clear();
        for (corners, normal) in FACES {
            face_segments(case, corners, normal, &mut segments);
        }
        let mut tris = Vec::new();
        for lp in chain_loops(&segments) {
            for [a, b, c] in triangulate(&lp) {
                tris.push([lp[a] as u8, lp[b] as u8, lp[c] as u8]);
            }
        }
        edge_mask[case] = segments.iter().fold(0u16, |m, s| m | 1 << s[0] | 1 << s[1]);
        per_case.push(tris);
    }
    // The segment rule fixes one orientation for all cases; which way it points is easiest
    // to read off case 1 (only corner 0 inside), whose normal must point away from it.
    let t = per_case[1][0];
    let (a, b, c) = (edge_midpoint(t[0] as usize), edge_midpoint(t[1] as usize), edge_midpoint(t[2] as usize));
    let outward = dot(cross(sub(b, a), sub(c, a)), [1.0, 1.0, 1.0]) > 0.0;
    let mut start = [0u16; 257];
    let mut tris = Vec::new();
    for (case, ts) in per_case.iter().enumerate() {
        for &[a, b, c] in ts {
            tris.push(if outward { [a, b, c] } else { [a, c, b] });
        }
        start[case + 1] = tris.len() as u16;
    }
    CaseTable { start, tris, edge_mask }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_cases_are_empty_and_single_corner_is_one_triangle() {
        let t = case_table();
        assert!(t.triangles(0).is_empty());
        assert!(t.triangles(255).is_empty());
        for c in 0..8 {
            assert_eq!(t.triangles(1 << c).len(), 1);
            assert_eq!(t.triangles(255 ^ (1 << c)).len(), 1);
        }
    }

    #[test]
    fn every_case_uses_exactly_its_crossed_edges_and_no_degenerate_triangle() {
        let t = case_table();
        for case in 0..256usize {
            let crossed = (0..12)
                .filter(|&e| (case >> EDGES[e][0] & 1) != (case >> EDGES[e][1] & 1))
                .fold(0u16, |m, e| m | 1 << e);
            assert_eq!(t.edge_mask[case], crossed, "case {case}");
            let used = t.triangles(case).iter().flatten().fold(0u16, |m, &e| m | 1 << e);
            assert_eq!(used, crossed, "case {case}");
            for tri in t.triangles(case) {
                let p = tri.map(|e| edge_midpoint(e as usize));
                assert!(tri_area(p[0], p[1], p[2]) > 1e-3, "case {case}: degenerate {tri:?}");
            }
        }
    }

    #[test]
    fn a_lone_corner_is_cut_off_facing_away_from_the_inside() {
        // One corner inside: the normal points away from it. One corner outside: towards it.
        let t = case_table();
        for c in 0..8 {
            for (case, sign) in [(1usize << c, 1.0), (255 ^ (1usize << c), -1.0)] {
                let tri = t.triangles(case)[0];
                let p = tri.map(|e| edge_midpoint(e as usize));
                let n = cross(sub(p[1], p[0]), sub(p[2], p[0]));
                assert!(sign * dot(n, sub(p[0], corner_pos(c))) > 0.0, "case {case}");
            }
        }
    }
}
