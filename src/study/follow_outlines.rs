//! The lesions outlined on follow-up visits: one layer per visit (on the baseline mask's
//! grid, tumour label), never written into the baseline's mask, and their undo. Part of the
//! edit document ([`super::edits::Edits::follow_ups`]) so Ctrl+Z undoes the latest edit,
//! baseline or follow-up, and the outline panel only hands finished outlines over.

use std::sync::Arc;

use crate::volume::region::VoxelBox;
use crate::volume::{next_key, Mask};

/// Tumour label of the follow-up layers (the LiTS convention of the baseline's mask).
const TUMOUR: u8 = 2;

/// The lesions outlined on one follow-up visit, drawn in that visit's viewports.
pub struct FollowLayer {
    pub label: String,
    pub mask: Arc<Mask>,
    pub key: u64,
}

/// One follow-up edit, for undo: the visit, its layer before (`None`: there was none), and
/// the baseline's undo depth when it was made (so Ctrl+Z undoes the latest edit first).
struct FollowUndo {
    label: String,
    before: Option<Arc<Mask>>,
    baseline_steps: usize,
}

/// Every visit's layer and the follow-up edits' undo stack.
#[derive(Default)]
pub struct FollowOutlines {
    pub layers: Vec<FollowLayer>,
    undo: Vec<FollowUndo>,
}

impl FollowOutlines {
    /// The layer of the visit `label`, with its GPU key.
    pub fn layer(&self, label: &str) -> Option<(&Arc<Mask>, u64)> {
        self.layers.iter().find(|l| l.label == label).map(|l| (&l.mask, l.key))
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether the latest edit is a follow-up one, made when the baseline's history had
    /// `baseline_steps` steps (Ctrl+Z then undoes it first).
    pub fn undo_first(&self, baseline_steps: usize) -> bool {
        self.undo.last().is_some_and(|u| u.baseline_steps == baseline_steps)
    }

    /// Undoes the latest follow-up edit; returns its visit's label.
    pub fn undo(&mut self) -> Option<String> {
        let u = self.undo.pop()?;
        self.layers.retain(|l| l.label != u.label);
        if let Some(before) = u.before {
            self.layers.push(FollowLayer { label: u.label.clone(), mask: before, key: next_key() });
        }
        Some(u.label)
    }

    /// Paints `outline` (nonzero voxels, within `dirty`) as tumour into the layer of visit
    /// `label`, as one undo step. With `replace_last` (another prompt on the lesion the
    /// latest edit outlined), that edit is undone first, so one lesion stays one step.
    /// Returns whether it was.
    pub fn paint(
        &mut self,
        label: &str,
        outline: &Mask,
        dirty: VoxelBox,
        baseline_steps: usize,
        replace_last: bool,
    ) -> bool {
        let replaced = replace_last && self.undo.last().is_some_and(|u| u.label == label);
        if replaced {
            self.undo();
        }
        let before = self.layer(label).map(|(m, _)| Arc::clone(m));
        let mut layer = before.as_deref().cloned().unwrap_or_else(|| Mask::filled(outline.geometry.clone(), 0));
        if layer.geometry.shape != outline.geometry.shape {
            layer = Mask::filled(outline.geometry.clone(), 0);
        }
        let (lo, hi) = (dirty.lo, dirty.hi);
        for k in lo[0]..hi[0] {
            for j in lo[1]..hi[1] {
                for i in lo[2]..hi[2] {
                    if outline.data[[k, j, i]] != 0 {
                        layer.data[[k, j, i]] = TUMOUR;
                    }
                }
            }
        }
        self.undo.push(FollowUndo { label: label.to_string(), before, baseline_steps });
        self.layers.retain(|l| l.label != label);
        self.layers.push(FollowLayer { label: label.to_string(), mask: Arc::new(layer), key: next_key() });
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn a_lesions_second_prompt_replaces_its_first_and_undo_goes_back_step_by_step() {
        let g = Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]);
        let mut a = Mask::filled(g.clone(), 0);
        a.data[[1, 1, 1]] = 1;
        let mut b = Mask::filled(g.clone(), 0);
        b.data[[2, 2, 2]] = 1;
        let all = VoxelBox { lo: [0; 3], hi: [4; 3] };
        let mut f = FollowOutlines::default();
        assert!(!f.paint("v1", &a, all, 0, true), "nothing to replace yet");
        assert!(f.paint("v1", &b, all, 0, true), "the same lesion's next prompt replaces its outline");
        let (m, _) = f.layer("v1").unwrap();
        assert_eq!((m.data[[1, 1, 1]], m.data[[2, 2, 2]]), (0, TUMOUR));
        assert!(!f.paint("v1", &a, all, 3, false), "a new lesion adds");
        assert!(f.undo_first(3) && !f.undo_first(2));
        assert_eq!(f.undo().as_deref(), Some("v1"));
        let (m, _) = f.layer("v1").unwrap();
        assert_eq!((m.data[[1, 1, 1]], m.data[[2, 2, 2]]), (0, TUMOUR));
        assert_eq!(f.undo().as_deref(), Some("v1"));
        assert!(f.layer("v1").is_none() && !f.can_undo());
    }
}
