//! Surface of a label (or a set of labels) of a mask: marching cubes on the binary
//! indicator at level 0.5 with a topologically consistent case table (see `tables.rs`),
//! so the result is a closed, consistently oriented 2-manifold for any mask.
//!
//! How it is fast and deterministic:
//! - Work is restricted to the labels' bounding box, padded by one empty voxel on every
//!   side, so objects touching the edge of the volume are closed (the pad is implicit: a
//!   bit grid of the box is built with zero rows and columns around it).
//! - The indicator is packed one bit per voxel (SSE2 compare on x86-64); a cell row is
//!   scanned 64 cells at a time and only cells whose eight corners disagree are visited.
//! - Vertices sit on grid edges that the surface crosses (at their midpoints, the level-0.5
//!   crossing of a binary indicator). They are numbered slice by slice, in a fixed order
//!   (x-edges, y-edges, then z-edges to the next slice; rows in order; bits ascending), from
//!   per-slice counts and prefix sums. A cell finds the number of a vertex by counting the
//!   crossings before it in that edge row (a popcount), so neighbouring cells — also those
//!   in other threads' slabs — name a shared vertex the same way without any hash map.
//! - Slices run in parallel with rayon; each writes its own vertex range and its own
//!   triangle list, concatenated in slice order. The output is the same on any number of
//!   threads.

use std::borrow::Cow;

use rayon::prelude::*;

use super::tables::{case_table, CaseTable};
use super::{MeshError, TriMesh};
use crate::volume::{det3, Mask};

/// Extracts the closed surface of the voxels whose value is in `labels`, in LPS mm through
/// the mask's geometry (spacing, origin and direction; a left-handed grid is handled by
/// flipping the winding, so normals always point out of the object).
///
/// Returns an **empty mesh** (no vertices, no triangles) when no voxel has one of the
/// labels; callers that need an object treat that as "absent" (see
/// [`build_objects`](super::build_objects)). Errors: no labels, label 0, a grid that is not
/// usable, or an array whose shape disagrees with its geometry.
pub fn surface(mask: &Mask, labels: &[u8]) -> Result<TriMesh, MeshError> {
    let (data, dims) = checked_input(mask, labels)?;
    let matcher = Matcher::new(labels);
    let Some(bbox) = bounding_box(&data, dims, &matcher) else {
        return Ok(TriMesh::default());
    };
    let grid = BitGrid::build(&data, dims, bbox, &matcher);
    let numbering = Numbering::count(&grid);
    let frame = IndexFrame::new(mask, bbox);
    let table = case_table();
    let (positions, triangles) = extract(&grid, &numbering, &frame, table);
    let mut mesh = TriMesh { positions_mm: positions, triangles, normals: Vec::new() };
    mesh.compute_normals();
    Ok(mesh)
}

/// The mask's voxels as one C-ordered slice, plus `[nz, ny, nx]`.
fn checked_input<'a>(mask: &'a Mask, labels: &[u8]) -> Result<(Cow<'a, [u8]>, [usize; 3]), MeshError> {
    if labels.is_empty() {
        return Err(MeshError::NoLabels);
    }
    if labels.contains(&0) {
        return Err(MeshError::BackgroundLabel);
    }
    let g = &mask.geometry;
    let (nz, ny, nx) = mask.data.dim();
    if [nz, ny, nx] != g.shape {
        return Err(MeshError::ShapeMismatch { voxels: mask.data.len(), shape: g.shape });
    }
    g.validate().map_err(MeshError::BadGeometry)?;
    let data = match mask.data.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(mask.data.iter().copied().collect()),
    };
    Ok((data, [nz, ny, nx]))
}

// ---------------------------------------------------------------------------------------
// Label test, 64 voxels at a time
// ---------------------------------------------------------------------------------------

/// Which voxel values belong to the object.
struct Matcher {
    labels: Vec<u8>,
    member: [bool; 256],
}

impl Matcher {
    fn new(labels: &[u8]) -> Self {
        let mut member = [false; 256];
        for &l in labels {
            member[l as usize] = true;
        }
        let labels: Vec<u8> = (0..=255u8).filter(|&l| member[l as usize]).collect();
        Matcher { labels, member }
    }

    /// Bit `b` set when `chunk[b]` is one of the labels (`chunk.len() ≤ 64`).
    #[inline]
    fn mask64(&self, chunk: &[u8]) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if chunk.len() == 64 && self.labels.len() <= 4 {
            return sse2_mask64(chunk, &self.labels);
        }
        chunk.iter().enumerate().fold(0u64, |m, (b, &v)| m | (self.member[v as usize] as u64) << b)
    }

    /// First and last position in `row` holding one of the labels.
    fn extent(&self, row: &[u8]) -> Option<(usize, usize)> {
        let mut first = None;
        let mut last = 0;
        for (c, chunk) in row.chunks(64).enumerate() {
            let m = self.mask64(chunk);
            if m != 0 {
                first.get_or_insert(c * 64 + m.trailing_zeros() as usize);
                last = c * 64 + 63 - m.leading_zeros() as usize;
            }
        }
        first.map(|f| (f, last))
    }
}

/// SSE2 (baseline on x86-64): 16 byte compares per instruction, `movemask` to bits.
#[cfg(target_arch = "x86_64")]
#[inline]
fn sse2_mask64(chunk: &[u8], labels: &[u8]) -> u64 {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 64);
    let mut m = 0u64;
    for q in 0..4 {
        // SAFETY: every x86-64 CPU has SSE2; 16 * q + 16 ≤ 64 ≤ chunk.len(), and `loadu`
        // has no alignment requirement.
        let bits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().add(16 * q) as *const __m128i);
            let mut hit = _mm_setzero_si128();
            for &l in labels {
                hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8(l as i8)));
            }
            _mm_movemask_epi8(hit)
        };
        m |= (bits as u32 as u64) << (16 * q);
    }
    m
}

// ---------------------------------------------------------------------------------------
// Bounding box and the bit grid
// ---------------------------------------------------------------------------------------

/// Inclusive voxel box `[k0, k1] × [j0, j1] × [i0, i1]` of the labels.
#[derive(Clone, Copy, Debug)]
struct BBox {
    lo: [usize; 3],
    hi: [usize; 3],
}

fn bounding_box(data: &[u8], [_, ny, nx]: [usize; 3], matcher: &Matcher) -> Option<BBox> {
    let per_slice: Vec<Option<BBox>> = data
        .par_chunks(ny * nx)
        .enumerate()
        .map(|(k, slice)| {
            let mut b: Option<BBox> = None;
            for (j, row) in slice.chunks(nx).enumerate() {
                if let Some((i0, i1)) = matcher.extent(row) {
                    let e = b.get_or_insert(BBox { lo: [k, j, i0], hi: [k, j, i1] });
                    e.hi[1] = j;
                    e.lo[2] = e.lo[2].min(i0);
                    e.hi[2] = e.hi[2].max(i1);
                }
            }
            b
        })
        .collect();
    per_slice.into_iter().flatten().reduce(|a, b| BBox {
        lo: [a.lo[0].min(b.lo[0]), a.lo[1].min(b.lo[1]), a.lo[2].min(b.lo[2])],
        hi: [a.hi[0].max(b.hi[0]), a.hi[1].max(b.hi[1]), a.hi[2].max(b.hi[2])],
    })
}

/// The indicator of the box plus one empty voxel on every side, one bit per voxel.
/// Padded coordinates `(bi, bj, bk)` are voxel `box.lo + (bi, bj, bk) − 1`.
struct BitGrid {
    /// Padded sizes `[nz, ny, nx]`.
    n: [usize; 3],
    words_per_row: usize,
    bits: Vec<u64>,
}

impl BitGrid {
    fn build(data: &[u8], [_, ny, nx]: [usize; 3], b: BBox, matcher: &Matcher) -> BitGrid {
        let n = [b.hi[0] - b.lo[0] + 3, b.hi[1] - b.lo[1] + 3, b.hi[2] - b.lo[2] + 3];
        let wpr = n[2].div_ceil(64);
        let mut bits = vec![0u64; n[0] * n[1] * wpr];
        let len_x = n[2] - 2;
        bits.par_chunks_mut(n[1] * wpr).enumerate().for_each(|(bk, slice)| {
            if bk == 0 || bk == n[0] - 1 {
                return;
            }
            let k = b.lo[0] + bk - 1;
            for bj in 1..n[1] - 1 {
                let j = b.lo[1] + bj - 1;
                let start = (k * ny + j) * nx + b.lo[2];
                let row = &data[start..start + len_x];
                let out = &mut slice[bj * wpr..(bj + 1) * wpr];
                for (c, chunk) in row.chunks(64).enumerate() {
                    // Voxel x of the box goes to bit x + 1 (the pad is bit 0).
                    let m = matcher.mask64(chunk);
                    out[c] |= m << 1;
                    if c + 1 < wpr {
                        out[c + 1] |= m >> 63;
                    }
                }
            }
        });
        BitGrid { n, words_per_row: wpr, bits }
    }

    #[inline]
    fn row(&self, bk: usize, bj: usize) -> &[u64] {
        let w = self.words_per_row;
        let start = (bk * self.n[1] + bj) * w;
        &self.bits[start..start + w]
    }
}

/// Bit `b` set when padded voxels `b` and `b + 1` of the row differ (an x-edge crossing).
#[inline]
fn x_crossings(row: &[u64], w: usize) -> u64 {
    let next = row.get(w + 1).copied().unwrap_or(0);
    row[w] ^ (row[w] >> 1 | next << 63)
}

// ---------------------------------------------------------------------------------------
// Vertex numbering
// ---------------------------------------------------------------------------------------

/// Edge-row kinds within one padded slice, in numbering order.
const X_EDGES: usize = 0;
const Y_EDGES: usize = 1;
const Z_EDGES: usize = 2;

/// Where each vertex's number comes from: for every edge row (slice, kind, row) and word,
/// the number of crossings before that word within the slice; plus each slice's first
/// vertex number.
struct Numbering {
    /// `local[((bk * 3 + kind) * ny + bj) * wpr + w]`.
    local: Vec<u32>,
    /// First vertex number of each slice; `slice_start[nz]` is the vertex count.
    slice_start: Vec<u32>,
    ny: usize,
    wpr: usize,
}

impl Numbering {
    fn count(grid: &BitGrid) -> Numbering {
        let [nz, ny, _] = grid.n;
        let wpr = grid.words_per_row;
        let mut local = vec![0u32; nz * 3 * ny * wpr];
        let totals: Vec<u32> = local
            .par_chunks_mut(3 * ny * wpr)
            .enumerate()
            .map(|(bk, out)| {
                let mut running = 0u32;
                for kind in [X_EDGES, Y_EDGES, Z_EDGES] {
                    for bj in 0..ny {
                        let dst = &mut out[(kind * ny + bj) * wpr..(kind * ny + bj + 1) * wpr];
                        for (w, d) in dst.iter_mut().enumerate() {
                            *d = running;
                            running += edge_word(grid, kind, bk, bj, w).count_ones();
                        }
                    }
                }
                running
            })
            .collect();
        let mut slice_start = Vec::with_capacity(nz + 1);
        let mut acc = 0u32;
        slice_start.push(0);
        for t in totals {
            acc += t;
            slice_start.push(acc);
        }
        Numbering { local, slice_start, ny, wpr }
    }

    #[inline]
    fn first_in_word(&self, bk: usize, kind: usize, bj: usize, w: usize) -> u32 {
        self.slice_start[bk] + self.local[((bk * 3 + kind) * self.ny + bj) * self.wpr + w]
    }

    fn vertex_count(&self) -> usize {
        *self.slice_start.last().unwrap_or(&0) as usize
    }
}

/// Crossing bits of word `w` of an edge row; rows past the grid's end have none.
#[inline]
fn edge_word(grid: &BitGrid, kind: usize, bk: usize, bj: usize, w: usize) -> u64 {
    let [nz, ny, _] = grid.n;
    match kind {
        X_EDGES => x_crossings(grid.row(bk, bj), w),
        Y_EDGES if bj + 1 < ny => grid.row(bk, bj)[w] ^ grid.row(bk, bj + 1)[w],
        Z_EDGES if bk + 1 < nz => grid.row(bk, bj)[w] ^ grid.row(bk + 1, bj)[w],
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------
// Padded index → LPS mm
// ---------------------------------------------------------------------------------------

/// `world = origin + M · (bi, bj, bk)` for padded grid coordinates, and whether the grid is
/// left-handed (then index-space outward winding is inward in the world).
struct IndexFrame {
    origin: [f64; 3],
    m: [[f64; 3]; 3],
    flip_winding: bool,
}

impl IndexFrame {
    fn new(mask: &Mask, b: BBox) -> Self {
        let g = &mask.geometry;
        let m = g.index_to_world_matrix();
        let corner = [b.lo[2] as f64 - 1.0, b.lo[1] as f64 - 1.0, b.lo[0] as f64 - 1.0];
        IndexFrame { origin: g.index_to_world(corner), m, flip_winding: det3(&m) < 0.0 }
    }

    #[inline]
    fn world(&self, p: [f64; 3]) -> [f32; 3] {
        let m = &self.m;
        [
            (self.origin[0] + m[0][0] * p[0] + m[0][1] * p[1] + m[0][2] * p[2]) as f32,
            (self.origin[1] + m[1][0] * p[0] + m[1][1] * p[1] + m[1][2] * p[2]) as f32,
            (self.origin[2] + m[2][0] * p[0] + m[2][1] * p[1] + m[2][2] * p[2]) as f32,
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------

fn extract(grid: &BitGrid, num: &Numbering, frame: &IndexFrame, table: &CaseTable) -> (Vec<[f32; 3]>, Vec<[u32; 3]>) {
    let nz = grid.n[0];
    let mut positions = vec![[0f32; 3]; num.vertex_count()];
    // Each slice owns the vertex numbers slice_start[bk]..slice_start[bk + 1].
    let mut chunks = Vec::with_capacity(nz);
    let mut rest = positions.as_mut_slice();
    for bk in 0..nz {
        let len = (num.slice_start[bk + 1] - num.slice_start[bk]) as usize;
        let (head, tail) = rest.split_at_mut(len);
        chunks.push(head);
        rest = tail;
    }
    let per_slice: Vec<Vec<[u32; 3]>> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(bk, out)| {
            slice_positions(grid, frame, bk, out);
            if bk + 1 < nz {
                cell_layer(grid, num, table, frame.flip_winding, bk)
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut triangles = Vec::with_capacity(per_slice.iter().map(Vec::len).sum());
    for t in per_slice {
        triangles.extend_from_slice(&t);
    }
    (positions, triangles)
}

/// Positions of slice `bk`'s vertices, in numbering order.
fn slice_positions(grid: &BitGrid, frame: &IndexFrame, bk: usize, out: &mut [[f32; 3]]) {
    let ny = grid.n[1];
    let mut v = 0;
    for kind in [X_EDGES, Y_EDGES, Z_EDGES] {
        // The crossing is halfway along the edge, in the edge's direction.
        let half = match kind {
            X_EDGES => [0.5, 0.0, 0.0],
            Y_EDGES => [0.0, 0.5, 0.0],
            _ => [0.0, 0.0, 0.5],
        };
        for bj in 0..ny {
            for w in 0..grid.words_per_row {
                let mut bits = edge_word(grid, kind, bk, bj, w);
                while bits != 0 {
                    let bi = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    out[v] = frame.world([bi as f64 + half[0], bj as f64 + half[1], bk as f64 + half[2]]);
                    v += 1;
                }
            }
        }
    }
    debug_assert_eq!(v, out.len());
}

/// The 8 edge rows a cell row touches, as (slice offset, kind, row offset). The cell edges
/// map onto them through [`EDGE_ROW`].
const EDGE_ROWS: [(usize, usize, usize); 8] = [
    (0, X_EDGES, 0),
    (0, X_EDGES, 1),
    (1, X_EDGES, 0),
    (1, X_EDGES, 1),
    (0, Y_EDGES, 0),
    (1, Y_EDGES, 0),
    (0, Z_EDGES, 0),
    (0, Z_EDGES, 1),
];

/// Cell edge → (edge row, offset along x of its crossing bit from the cell's bit).
const EDGE_ROW: [(usize, usize); 12] =
    [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (5, 0), (5, 1), (6, 0), (6, 1), (7, 0), (7, 1)];

/// Triangles of the cells between padded slices `bk` and `bk + 1`.
fn cell_layer(grid: &BitGrid, num: &Numbering, table: &CaseTable, flip: bool, bk: usize) -> Vec<[u32; 3]> {
    let ny = grid.n[1];
    let wpr = grid.words_per_row;
    let mut tris = Vec::new();
    for bj in 0..ny - 1 {
        let rows = [grid.row(bk, bj), grid.row(bk, bj + 1), grid.row(bk + 1, bj), grid.row(bk + 1, bj + 1)];
        for w in 0..wpr {
            let cur = rows.map(|r| r[w]);
            let next = rows.map(|r| r.get(w + 1).copied().unwrap_or(0));
            let active = active_cells(cur, next);
            if active == 0 {
                continue;
            }
            let edges = [
                x_crossings(rows[0], w),
                x_crossings(rows[1], w),
                x_crossings(rows[2], w),
                x_crossings(rows[3], w),
                cur[0] ^ cur[1],
                cur[2] ^ cur[3],
                cur[0] ^ cur[2],
                cur[1] ^ cur[3],
            ];
            let first = EDGE_ROWS.map(|(dk, kind, dj)| num.first_in_word(bk + dk, kind, bj + dj, w));
            let first_next = |r: usize| {
                let (dk, kind, dj) = EDGE_ROWS[r];
                num.first_in_word(bk + dk, kind, bj + dj, w + 1)
            };
            let mut bits = active;
            while bits != 0 {
                let t = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let case = cell_case(cur, next, t);
                let mut ids = [0u32; 12];
                let mut crossed = table.edge_mask[case];
                while crossed != 0 {
                    let e = crossed.trailing_zeros() as usize;
                    crossed &= crossed - 1;
                    let (r, d) = EDGE_ROW[e];
                    let pos = t + d;
                    // The crossing's number: the row's first number in this word plus the
                    // crossings below it. Bit 64 is bit 0 of the next word.
                    ids[e] =
                        if pos < 64 { first[r] + (edges[r] & ((1u64 << pos) - 1)).count_ones() } else { first_next(r) };
                }
                for &[a, b, c] in table.triangles(case) {
                    let (a, b, c) = (ids[a as usize], ids[b as usize], ids[c as usize]);
                    tris.push(if flip { [a, c, b] } else { [a, b, c] });
                }
            }
        }
    }
    tris
}

/// Bit `t` set when cell `t` of this word (corners at bits `t`, `t + 1` of four rows) has
/// corners on both sides of the surface.
#[inline]
fn active_cells(cur: [u64; 4], next: [u64; 4]) -> u64 {
    let any = cur[0] | cur[1] | cur[2] | cur[3];
    let all = cur[0] & cur[1] & cur[2] & cur[3];
    let any_n = next[0] | next[1] | next[2] | next[3];
    let all_n = next[0] & next[1] & next[2] & next[3];
    let mixed = any ^ all;
    let mixed_n = any_n ^ all_n;
    // Rows disagree at t or t + 1, or all agree at both but differ between t and t + 1.
    mixed | (mixed >> 1 | mixed_n << 63) | (any ^ (any >> 1 | any_n << 63))
}

/// Case index of cell `t`: corner `dx + 2 dy + 4 dz` from rows `(dy, dz)` = (0,0), (1,0),
/// (0,1), (1,1) at bits `t + dx`.
#[inline]
fn cell_case(cur: [u64; 4], next: [u64; 4], t: usize) -> usize {
    let pair = |r: usize| (((next[r] as u128) << 64 | cur[r] as u128) >> t) as usize & 3;
    pair(0) | pair(1) << 2 | pair(2) << 4 | pair(3) << 6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};
    use ndarray::Array3;

    fn cube_mask(shape: [usize; 3], mut f: impl FnMut(usize, usize, usize) -> bool) -> Mask {
        let data = Array3::from_shape_fn(shape, |(k, j, i)| f(k, j, i) as u8);
        Volume::new(data, Geometry::axis_aligned(shape, [1.0; 3], [0.0; 3]))
    }

    #[test]
    fn one_voxel_is_an_octahedron() {
        let m = cube_mask([3, 3, 3], |k, j, i| (k, j, i) == (1, 1, 1));
        let s = surface(&m, &[1]).unwrap();
        assert_eq!(s.vertex_count(), 6);
        assert_eq!(s.triangle_count(), 8);
        assert!(s.is_closed_manifold());
        // Octahedron with half-diagonals 0.5 mm: volume 4/3 · 0.5³ mm³.
        assert!((s.volume_ml() * 1000.0 - 4.0 / 3.0 * 0.125).abs() < 1e-6, "{}", s.volume_ml());
    }

    #[test]
    fn random_masks_give_closed_manifolds_of_the_right_size() {
        // Every case and every ambiguous face occurs in random noise; the mesh must stay
        // closed, manifold and orientable (even Euler characteristic), and enclose at least
        // the octahedron of every voxel (1/6 voxel, an isolated voxel's surface) and at most
        // the voxels' box grown by half a voxel.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for density in [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9].repeat(4) {
            let m = cube_mask([9, 10, 70], |_, _, _| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 1000) as f64 / 1000.0 < density
            });
            let s = surface(&m, &[1]).unwrap();
            s.check_closed().unwrap();
            assert!(s.is_closed_manifold(), "density {density}");
            let voxels = m.data.iter().filter(|&&v| v == 1).count() as f64;
            assert_eq!(s.euler_characteristic() % 2, 0);
            let v = s.volume_ml() * 1000.0;
            assert!(v >= voxels / 6.0 - 1e-3 && v <= 10.0 * 11.0 * 71.0, "{v} mm³ for {voxels} voxels");
        }
    }

    #[test]
    fn word_boundaries_and_the_volume_edge() {
        // A slab that spans more than one 64-bit word and touches every side of the volume.
        let m = cube_mask([3, 4, 130], |_, _, _| true);
        let s = surface(&m, &[1]).unwrap();
        assert!(s.is_closed_manifold());
        assert_eq!(s.shell_count(), 1);
        assert_eq!(s.euler_characteristic(), 2);
        let full = 3.0 * 4.0 * 130.0;
        assert!(s.volume_ml() * 1000.0 < full && s.volume_ml() * 1000.0 > 0.95 * full);
    }

    #[test]
    fn labels_select_the_voxels() {
        let data = Array3::from_shape_fn([4, 4, 4], |(k, _, _)| if k < 2 { 1u8 } else { 2 });
        let m = Volume::new(data, Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]));
        let a = surface(&m, &[1]).unwrap();
        let b = surface(&m, &[1, 2]).unwrap();
        assert!(b.volume_ml() > 1.9 * a.volume_ml());
        assert!(surface(&m, &[3]).unwrap().is_empty());
        assert!(matches!(surface(&m, &[0]), Err(MeshError::BackgroundLabel)));
        assert!(matches!(surface(&m, &[]), Err(MeshError::NoLabels)));
    }
}
