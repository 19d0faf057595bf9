//! Mask editing: the label table and paint rules (`labels`), the tools that change a mask
//! (`tools`), undo/redo of every change (`history`) and never losing an edit (`session`:
//! autosave snapshots plus an fsync'd journal of completed edits).
//!
//! Every tool is a plain function over `&mut Mask` (and `&CtVolume` where HU matter) that
//! returns an [`EditDiff`]: the 16³ bricks it touched with their bytes before and after.
//! The diff is what the history compresses, what the journal records (as the bricks'
//! contents afterwards) and what the viewer re-uploads (only those bricks). Nothing here
//! knows about the GUI; the viewer maps the pointer to LPS mm and calls a tool.
//!
//! Conventions as everywhere: arrays `[z, y, x]`, voxel `(k, j, i)`, sizes in mm through
//! the grid's spacing (anisotropic voxels give elliptic brushes in voxel terms, round ones
//! in mm). "Axial", "coronal" and "sagittal" mean the planes of the array (k, j or i held
//! fixed), which are the anatomical planes for an axial CT acquisition.

pub mod history;
pub mod labels;
pub mod session;
pub mod tools;

use std::collections::BTreeMap;

use crate::volume::region::VoxelBox;
use crate::volume::{Lps, Mask};

pub use history::{History, Touched};
pub use labels::{Label, LabelTable, Paint, PaintOver};
pub use session::{RestoreInfo, Restored, Session, SessionError};

/// Edge length of the cubes ("bricks") in which changes are tracked, stored and uploaded.
pub const BRICK: usize = 16;

/// Why an edit could not be made. Nothing is changed when an error is returned.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the CT used for HU-based editing is on a different grid from the mask ({detail}); resample or register that phase onto the mask's grid first")]
    GridMismatch { detail: String },
    #[error("the point {point_mm:?} mm lies outside the mask's grid (continuous voxel index {index:?}, grid {shape:?} [z, y, x]); click inside the image")]
    OutsideGrid { point_mm: Lps, index: [f64; 3], shape: [usize; 3] },
    #[error("{what} = {value} is not usable: {hint}")]
    BadParameter { what: &'static str, value: String, hint: String },
    #[error("the mask's grid is not usable: {0}")]
    BadGeometry(String),
}

pub(crate) fn bad(what: &'static str, value: impl ToString, hint: impl Into<String>) -> EditError {
    EditError::BadParameter { what, value: value.to_string(), hint: hint.into() }
}

/// A plane of the array: the axis held fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Orientation {
    /// `k` (z) fixed: the slices of an axial acquisition.
    Axial,
    /// `j` (y) fixed.
    Coronal,
    /// `i` (x) fixed.
    Sagittal,
}

impl Orientation {
    /// The array axis (0 = z, 1 = y, 2 = x) held fixed in this plane.
    pub fn axis(self) -> usize {
        match self {
            Orientation::Axial => 0,
            Orientation::Coronal => 1,
            Orientation::Sagittal => 2,
        }
    }

    /// The in-plane array axes `(v, u)`: rows then columns of the slice as the viewer
    /// shows it. Axial `(y, x)`, coronal `(z, x)`, sagittal `(z, y)`.
    pub fn plane_axes(self) -> (usize, usize) {
        match self {
            Orientation::Axial => (1, 2),
            Orientation::Coronal => (0, 2),
            Orientation::Sagittal => (0, 1),
        }
    }

    /// The voxel `[k, j, i]` at slice `s`, row `v`, column `u` of this plane.
    pub fn voxel(self, s: usize, v: usize, u: usize) -> [usize; 3] {
        match self {
            Orientation::Axial => [s, v, u],
            Orientation::Coronal => [v, s, u],
            Orientation::Sagittal => [v, u, s],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Orientation::Axial => "axial",
            Orientation::Coronal => "coronal",
            Orientation::Sagittal => "sagittal",
        }
    }
}

/// The bricks of a grid: brick `(bz, by, bx)` holds voxels `[16·b, 16·b + 16)` clipped to
/// the grid; its id is `(bz · nby + by) · nbx + bx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrickGrid {
    pub shape: [usize; 3],
    /// Bricks along `[z, y, x]`.
    pub counts: [usize; 3],
}

impl BrickGrid {
    pub fn new(shape: [usize; 3]) -> Self {
        BrickGrid { shape, counts: [shape[0].div_ceil(BRICK), shape[1].div_ceil(BRICK), shape[2].div_ceil(BRICK)] }
    }

    pub fn len(&self) -> usize {
        self.counts.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The brick holding voxel `(k, j, i)`.
    #[inline]
    pub fn id_of(&self, k: usize, j: usize, i: usize) -> u32 {
        (((k / BRICK) * self.counts[1] + j / BRICK) * self.counts[2] + i / BRICK) as u32
    }

    /// The voxels of brick `id`.
    pub fn voxel_box(&self, id: u32) -> VoxelBox {
        let id = id as usize;
        let bx = id % self.counts[2];
        let by = (id / self.counts[2]) % self.counts[1];
        let bz = id / (self.counts[2] * self.counts[1]);
        let lo = [bz * BRICK, by * BRICK, bx * BRICK];
        VoxelBox {
            lo,
            hi: [
                (lo[0] + BRICK).min(self.shape[0]),
                (lo[1] + BRICK).min(self.shape[1]),
                (lo[2] + BRICK).min(self.shape[2]),
            ],
        }
    }
}

/// Copies the voxels of `b` out of a C-ordered `[z, y, x]` buffer, in the box's own C order.
pub(crate) fn read_box(data: &[u8], shape: [usize; 3], b: &VoxelBox) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for k in b.lo[0]..b.hi[0] {
        for j in b.lo[1]..b.hi[1] {
            let row = (k * shape[1] + j) * shape[2];
            out.extend_from_slice(&data[row + b.lo[2]..row + b.hi[2]]);
        }
    }
    out
}

/// The inverse of [`read_box`].
pub(crate) fn write_box(data: &mut [u8], shape: [usize; 3], b: &VoxelBox, bytes: &[u8]) {
    let w = b.hi[2] - b.lo[2];
    let mut src = 0;
    for k in b.lo[0]..b.hi[0] {
        for j in b.lo[1]..b.hi[1] {
            let row = (k * shape[1] + j) * shape[2];
            data[row + b.lo[2]..row + b.hi[2]].copy_from_slice(&bytes[src..src + w]);
            src += w;
        }
    }
}

/// A mask's voxels as one C-ordered slice. Tools need it; a mask built from a transposed
/// or sliced array is copied into standard layout once (same values, new memory order).
pub(crate) fn mask_slice_mut(mask: &mut Mask) -> &mut [u8] {
    if !mask.data.is_standard_layout() {
        mask.data = mask.data.as_standard_layout().into_owned();
    }
    mask.data.as_slice_mut().expect("standard layout was just ensured")
}

/// Contents of one brick before and after an edit (the brick's own C order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BrickDelta {
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

/// What an edit changed: every brick it touched, with the brick's bytes before and after.
/// Bricks whose bytes ended up unchanged are left out, so an empty diff means nothing
/// changed. Apply it again with [`EditDiff::redo`], take it back with [`EditDiff::undo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditDiff {
    shape: [usize; 3],
    bricks: BTreeMap<u32, BrickDelta>,
    changed: usize,
}

impl EditDiff {
    /// No change, on a grid of `shape`.
    pub fn empty(shape: [usize; 3]) -> Self {
        EditDiff { shape, bricks: BTreeMap::new(), changed: 0 }
    }

    pub(crate) fn from_bricks(shape: [usize; 3], bricks: BTreeMap<u32, BrickDelta>) -> Self {
        let mut d = EditDiff { shape, bricks, changed: 0 };
        d.bricks.retain(|_, b| b.before != b.after);
        d.changed = d.bricks.values().map(count_changed).sum();
        d
    }

    /// The grid shape `[nz, ny, nx]` the diff applies to.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    pub fn is_empty(&self) -> bool {
        self.changed == 0
    }

    /// How many voxels have a different value afterwards.
    pub fn changed_voxels(&self) -> usize {
        self.changed
    }

    /// Ids of the changed bricks (see [`BrickGrid`]), ascending.
    pub fn brick_ids(&self) -> Vec<u32> {
        self.bricks.keys().copied().collect()
    }

    /// The voxel boxes of the changed bricks, in brick id order.
    pub fn boxes(&self) -> Vec<VoxelBox> {
        let g = BrickGrid::new(self.shape);
        self.bricks.keys().map(|&id| g.voxel_box(id)).collect()
    }

    /// The box around every changed brick (`None` when nothing changed).
    pub fn dirty_box(&self) -> Option<VoxelBox> {
        self.boxes().into_iter().reduce(|a, b| a.union(&b))
    }

    /// Every changed voxel `[k, j, i]` with its value before and after, in C order of
    /// the grid. Meant for tests and small edits: it lists voxels one by one.
    pub fn changes(&self) -> Vec<([usize; 3], u8, u8)> {
        let g = BrickGrid::new(self.shape);
        let mut out = Vec::with_capacity(self.changed);
        for (&id, d) in &self.bricks {
            let b = g.voxel_box(id);
            let [_, bh, bw] = b.shape();
            for (n, (&x, &y)) in d.before.iter().zip(&d.after).enumerate() {
                if x != y {
                    out.push(([b.lo[0] + n / (bh * bw), b.lo[1] + (n / bw) % bh, b.lo[2] + n % bw], x, y));
                }
            }
        }
        out.sort_by_key(|(v, _, _)| *v);
        out
    }

    /// This edit followed by `later`, as one edit (a brush stroke made of many dabs).
    pub fn merge(&mut self, later: EditDiff) {
        debug_assert_eq!(self.shape, later.shape);
        // only the bricks `later` touched are recounted: a long stroke stays cheap per dab
        for (id, d) in later.bricks {
            match self.bricks.get_mut(&id) {
                Some(mine) => {
                    self.changed -= count_changed(mine);
                    mine.after = d.after;
                    if mine.before == mine.after {
                        self.bricks.remove(&id);
                    } else {
                        self.changed += count_changed(mine);
                    }
                }
                None => {
                    self.changed += count_changed(&d);
                    self.bricks.insert(id, d);
                }
            }
        }
    }

    /// Puts the bricks back as they were before the edit.
    pub fn undo(&self, mask: &mut Mask) {
        self.write(mask, true)
    }

    /// Puts the bricks as they were after the edit.
    pub fn redo(&self, mask: &mut Mask) {
        self.write(mask, false)
    }

    fn write(&self, mask: &mut Mask, before: bool) {
        let shape = mask.shape();
        debug_assert_eq!(shape, self.shape, "diff made on another grid");
        let g = BrickGrid::new(shape);
        let data = mask_slice_mut(mask);
        for (&id, d) in &self.bricks {
            write_box(data, shape, &g.voxel_box(id), if before { &d.before } else { &d.after });
        }
    }

    pub(crate) fn into_bricks(self) -> BTreeMap<u32, BrickDelta> {
        self.bricks
    }
}

fn count_changed(d: &BrickDelta) -> usize {
    d.before.iter().zip(&d.after).filter(|(a, b)| a != b).count()
}

/// Writes voxels of a mask while remembering, per brick, what it held before the first
/// write, so that the edit's [`EditDiff`] costs only the bricks it touched.
pub(crate) struct Recorder<'a> {
    data: &'a mut [u8],
    shape: [usize; 3],
    grid: BrickGrid,
    /// Brick id → index into `saved`, `u32::MAX` when not yet touched.
    slot: Vec<u32>,
    saved: Vec<(u32, Vec<u8>)>,
}

impl<'a> Recorder<'a> {
    pub fn new(mask: &'a mut Mask) -> Self {
        let shape = mask.shape();
        let grid = BrickGrid::new(shape);
        let data = mask_slice_mut(mask);
        Recorder { data, shape, grid, slot: vec![u32::MAX; grid.len()], saved: Vec::new() }
    }

    #[inline]
    pub fn get(&self, k: usize, j: usize, i: usize) -> u8 {
        self.data[(k * self.shape[1] + j) * self.shape[2] + i]
    }

    /// Sets voxel `(k, j, i)` to `v`; returns whether it changed.
    #[inline]
    pub fn set(&mut self, k: usize, j: usize, i: usize, v: u8) -> bool {
        let lin = (k * self.shape[1] + j) * self.shape[2] + i;
        if self.data[lin] == v {
            return false;
        }
        let id = self.grid.id_of(k, j, i);
        if self.slot[id as usize] == u32::MAX {
            self.slot[id as usize] = self.saved.len() as u32;
            let b = self.grid.voxel_box(id);
            self.saved.push((id, read_box(self.data, self.shape, &b)));
        }
        self.data[lin] = v;
        true
    }

    pub fn finish(self) -> EditDiff {
        let mut bricks = BTreeMap::new();
        for (id, before) in self.saved {
            let after = read_box(self.data, self.shape, &self.grid.voxel_box(id));
            bricks.insert(id, BrickDelta { before, after });
        }
        EditDiff::from_bricks(self.shape, bricks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};

    #[test]
    fn recorder_diff_undo_redo() {
        let g = Geometry::axis_aligned([20, 18, 35], [1.0; 3], [0.0; 3]);
        let mut m: Mask = Volume::filled(g, 0);
        m.data[[19, 17, 34]] = 4;
        let orig = m.data.clone();
        let mut r = Recorder::new(&mut m);
        assert!(r.set(0, 0, 0, 1));
        assert!(!r.set(0, 0, 0, 1));
        r.set(19, 17, 34, 2);
        r.set(5, 5, 5, 3);
        r.set(5, 5, 5, 0); // back to what it was: that brick drops out
        let d = r.finish();
        assert_eq!(d.changed_voxels(), 2);
        assert_eq!(d.changes(), vec![([0, 0, 0], 0, 1), ([19, 17, 34], 4, 2)]);
        assert_eq!(d.brick_ids().len(), 2);
        let after = m.data.clone();
        d.undo(&mut m);
        assert_eq!(m.data, orig);
        d.redo(&mut m);
        assert_eq!(m.data, after);
        let bx = d.dirty_box().unwrap();
        assert_eq!(bx.lo, [0, 0, 0]);
        assert_eq!(bx.hi, [20, 18, 35]);
    }

    #[test]
    fn merge_composes() {
        let g = Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]);
        let mut m: Mask = Volume::filled(g, 0);
        let orig = m.data.clone();
        let mut r = Recorder::new(&mut m);
        r.set(1, 1, 1, 1);
        let mut a = r.finish();
        let mut r = Recorder::new(&mut m);
        r.set(1, 1, 1, 0);
        r.set(2, 2, 2, 2);
        a.merge(r.finish());
        assert_eq!(a.changes(), vec![([2, 2, 2], 0, 2)]);
        a.undo(&mut m);
        assert_eq!(m.data, orig);
    }
}
