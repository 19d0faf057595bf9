//! Undo and redo of every edit, within a memory budget.
//!
//! A step stores, for each 16³ brick the edit changed, the brick's bytes before and after,
//! deflated together (the "after" half costs almost nothing: deflate finds it in the
//! "before" half except where the edit differs). Whole volumes are never stored, so the
//! cost of a step follows the size of the change, not of the mask. When the steps exceed
//! the budget the oldest are dropped; the newest step is always kept.
//!
//! A brush stroke (every dab of one mouse drag) is one step: `begin_stroke`, then
//! `record` each dab's diff (merged uncompressed while the stroke is open), then
//! `end_stroke`. Every call that changes the mask reports the bricks it touched
//! ([`Touched`]) so the viewer re-uploads only those.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};

use rayon::prelude::*;

use super::{BrickDelta, BrickGrid, EditDiff, VoxelBox};
use crate::volume::Mask;

/// The bricks an operation changed, for incremental GPU upload and for the journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Grid shape `[nz, ny, nx]` the bricks belong to.
    pub shape: [usize; 3],
    /// Brick ids, ascending (see [`super::BrickGrid`]).
    pub brick_ids: Vec<u32>,
}

impl Touched {
    pub fn of(diff: &EditDiff) -> Self {
        Touched { shape: diff.shape(), brick_ids: diff.brick_ids() }
    }

    pub fn is_empty(&self) -> bool {
        self.brick_ids.is_empty()
    }

    /// The voxel boxes of the touched bricks.
    pub fn boxes(&self) -> Vec<VoxelBox> {
        let g = BrickGrid::new(self.shape);
        self.brick_ids.iter().map(|&id| g.voxel_box(id)).collect()
    }

    /// One box around all touched bricks (`None` when none).
    pub fn dirty_box(&self) -> Option<VoxelBox> {
        self.boxes().into_iter().reduce(|a, b| a.union(&b))
    }

    fn extend(&mut self, other: &Touched) {
        self.shape = other.shape;
        self.brick_ids.extend_from_slice(&other.brick_ids);
        self.brick_ids.sort_unstable();
        self.brick_ids.dedup();
    }
}

/// One brick of a stored step: `deflate(before ++ after)`.
struct StoredBrick {
    id: u32,
    len: u32,
    deflated: Vec<u8>,
}

struct Step {
    shape: [usize; 3],
    bricks: Vec<StoredBrick>,
    bytes: usize,
    changed: usize,
}

impl Step {
    fn compress(diff: EditDiff) -> Step {
        let shape = diff.shape();
        let changed = diff.changed_voxels();
        let bricks: Vec<(u32, BrickDelta)> = diff.into_bricks().into_iter().collect();
        let bricks: Vec<StoredBrick> = bricks
            .into_par_iter()
            .map(|(id, d)| {
                let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                // writing to a Vec cannot fail
                let _ = enc.write_all(&d.before);
                let _ = enc.write_all(&d.after);
                let deflated = enc.finish().unwrap_or_default();
                StoredBrick { id, len: d.before.len() as u32, deflated }
            })
            .collect();
        let bytes = bricks.iter().map(|b| b.deflated.len() + std::mem::size_of::<StoredBrick>()).sum::<usize>()
            + std::mem::size_of::<Step>();
        Step { shape, bricks, bytes, changed }
    }

    /// Writes the before (`undo`) or after contents of every brick into the mask.
    fn write(&self, mask: &mut Mask, before: bool) -> Touched {
        let g = BrickGrid::new(self.shape);
        let contents: Vec<(u32, Vec<u8>)> = self
            .bricks
            .par_iter()
            .map(|b| {
                let mut all = Vec::with_capacity(2 * b.len as usize);
                let _ = flate2::read::DeflateDecoder::new(&b.deflated[..]).read_to_end(&mut all);
                let n = b.len as usize;
                let half = if before { all.get(..n) } else { all.get(n..2 * n) };
                (b.id, half.map(<[u8]>::to_vec).unwrap_or_default())
            })
            .collect();
        let data = super::mask_slice_mut(mask);
        for (id, bytes) in &contents {
            let bx = g.voxel_box(*id);
            // a brick that failed to inflate (never seen; memory corruption) is skipped
            // rather than written short
            if bytes.len() == bx.len() {
                super::write_box(data, self.shape, &bx, bytes);
            }
        }
        Touched { shape: self.shape, brick_ids: self.bricks.iter().map(|b| b.id).collect() }
    }
}

/// Undo/redo stacks with a memory budget.
pub struct History {
    budget_bytes: usize,
    undo: VecDeque<Step>,
    redo: Vec<Step>,
    stroke: Option<EditDiff>,
    stroke_touched: Touched,
    used_bytes: usize,
    dropped: usize,
    last: Touched,
}

impl Default for History {
    /// A 512 MB budget: thousands of typical strokes.
    fn default() -> Self {
        History::new(512 << 20)
    }
}

impl History {
    pub fn new(budget_bytes: usize) -> Self {
        History {
            budget_bytes,
            undo: VecDeque::new(),
            redo: Vec::new(),
            stroke: None,
            stroke_touched: Touched::default(),
            used_bytes: 0,
            dropped: 0,
            last: Touched::default(),
        }
    }

    /// Starts a stroke: every diff recorded until [`History::end_stroke`] becomes one step.
    /// A stroke already open is ended first.
    pub fn begin_stroke(&mut self) {
        self.end_stroke();
        self.stroke = None;
        self.stroke_touched = Touched::default();
        self.stroke = Some(EditDiff::empty([0, 0, 0]));
    }

    pub fn in_stroke(&self) -> bool {
        self.stroke.is_some()
    }

    /// Ends the open stroke (if any), storing it as one undo step. Returns every brick
    /// the stroke touched (what the journal should record).
    pub fn end_stroke(&mut self) -> Touched {
        let touched = std::mem::take(&mut self.stroke_touched);
        if let Some(diff) = self.stroke.take() {
            if !diff.is_empty() {
                self.push(diff);
            }
        }
        touched
    }

    /// Records an edit a tool has already made on the mask. Inside a stroke it joins the
    /// stroke; otherwise it is a step of its own. Clears the redo stack. Returns the
    /// bricks this edit touched.
    pub fn record(&mut self, diff: EditDiff) -> Touched {
        let touched = Touched::of(&diff);
        self.last = touched.clone();
        if diff.is_empty() {
            return touched;
        }
        self.clear_redo();
        match &mut self.stroke {
            Some(open) => {
                self.stroke_touched.extend(&touched);
                if open.shape() == [0, 0, 0] {
                    *open = diff;
                } else {
                    open.merge(diff);
                }
            }
            None => self.push(diff),
        }
        touched
    }

    /// Runs a tool on `mask` and records its diff: `history.apply(&mut mask, |m| tool(m, …))`.
    pub fn apply<E>(
        &mut self,
        mask: &mut Mask,
        tool: impl FnOnce(&mut Mask) -> Result<EditDiff, E>,
    ) -> Result<Touched, E> {
        let diff = tool(mask)?;
        Ok(self.record(diff))
    }

    /// Takes back the newest step (ending an open stroke first). `None` when there is
    /// nothing to undo.
    pub fn undo(&mut self, mask: &mut Mask) -> Option<Touched> {
        self.end_stroke();
        let step = self.undo.pop_back()?;
        let t = step.write(mask, true);
        self.redo.push(step);
        self.last = t.clone();
        Some(t)
    }

    /// Makes the newest undone step again. `None` when there is nothing to redo.
    pub fn redo(&mut self, mask: &mut Mask) -> Option<Touched> {
        self.end_stroke();
        let step = self.redo.pop()?;
        let t = step.write(mask, false);
        self.undo.push_back(step);
        self.last = t.clone();
        Some(t)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty() || self.stroke.as_ref().is_some_and(|s| !s.is_empty())
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo_steps(&self) -> usize {
        self.undo.len()
    }

    pub fn redo_steps(&self) -> usize {
        self.redo.len()
    }

    /// Voxels changed by each undoable step, oldest first (for a history list).
    pub fn step_sizes(&self) -> Vec<usize> {
        self.undo.iter().map(|s| s.changed).collect()
    }

    /// Bytes held by stored steps (compressed), not counting an open stroke.
    pub fn memory_used(&self) -> usize {
        self.used_bytes
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    pub fn set_budget_bytes(&mut self, budget: usize) {
        self.budget_bytes = budget;
        self.enforce_budget();
    }

    /// Steps dropped so far to stay within the budget.
    pub fn dropped_steps(&self) -> usize {
        self.dropped
    }

    /// The bricks changed by the last `record`, `undo` or `redo`.
    pub fn last_touched(&self) -> &Touched {
        &self.last
    }

    /// Forgets everything (after loading another mask).
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
        self.stroke = None;
        self.stroke_touched = Touched::default();
        self.used_bytes = 0;
        self.last = Touched::default();
    }

    fn clear_redo(&mut self) {
        for s in self.redo.drain(..) {
            self.used_bytes -= s.bytes;
        }
    }

    fn push(&mut self, diff: EditDiff) {
        let step = Step::compress(diff);
        self.used_bytes += step.bytes;
        self.undo.push_back(step);
        self.enforce_budget();
    }

    fn enforce_budget(&mut self) {
        // redo steps farthest from the present go first, then the oldest undo steps; the
        // newest undo step stays so the last action can always be taken back
        while self.used_bytes > self.budget_bytes && !self.redo.is_empty() {
            let s = self.redo.remove(0);
            self.used_bytes -= s.bytes;
            self.dropped += 1;
        }
        while self.used_bytes > self.budget_bytes && self.undo.len() > 1 {
            if let Some(s) = self.undo.pop_front() {
                self.used_bytes -= s.bytes;
                self.dropped += 1;
            }
        }
    }
}

/// Current contents of the given bricks, for the journal: `(id, bytes)` in id order.
pub(crate) fn brick_contents(mask: &Mask, ids: &[u32]) -> BTreeMap<u32, Vec<u8>> {
    let g = BrickGrid::new(mask.shape());
    let data = mask.data.as_slice();
    ids.iter()
        .map(|&id| {
            let bx = g.voxel_box(id);
            let bytes = match data {
                Some(d) => super::read_box(d, mask.shape(), &bx),
                None => {
                    let s = mask.data.slice(ndarray::s![bx.lo[0]..bx.hi[0], bx.lo[1]..bx.hi[1], bx.lo[2]..bx.hi[2]]);
                    s.iter().copied().collect()
                }
            };
            (id, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::Recorder;
    use crate::volume::{Geometry, Volume};

    fn set(mask: &mut Mask, v: &[([usize; 3], u8)]) -> EditDiff {
        let mut r = Recorder::new(mask);
        for &([k, j, i], x) in v {
            r.set(k, j, i, x);
        }
        r.finish()
    }

    #[test]
    fn stroke_is_one_step_and_budget_drops_oldest() {
        let g = Geometry::axis_aligned([40, 40, 40], [1.0; 3], [0.0; 3]);
        let mut m: Mask = Volume::filled(g, 0);
        let orig = m.data.clone();
        let mut h = History::new(1 << 30);
        h.begin_stroke();
        for n in 0..10 {
            let d = set(&mut m, &[([n, n, n], 1), ([39 - n, 0, 0], 2)]);
            let t = h.record(d);
            assert_eq!(t.brick_ids.len(), 2);
        }
        let t = h.end_stroke();
        assert!(!t.is_empty());
        assert_eq!(h.undo_steps(), 1);
        let after = m.data.clone();
        h.undo(&mut m).unwrap();
        assert_eq!(m.data, orig);
        h.redo(&mut m).unwrap();
        assert_eq!(m.data, after);
        assert!(h.memory_used() > 0);

        let mut small = History::new(1);
        for n in 0..5 {
            small.record(set(&mut m, &[([n, 5, 5], 7)]));
        }
        assert_eq!(small.undo_steps(), 1);
        assert_eq!(small.dropped_steps(), 4);
        assert!(small.can_undo());
    }
}
