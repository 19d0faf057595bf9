//! Flood fill and region growing from a seed point.
//!
//! The region is the face-connected (6-neighbour in 3-D, 4-neighbour in a slice) set of
//! voxels reachable from the seed through voxels that meet the criterion and that the
//! paint rule lets the tool change (or that already hold the paint value). Face
//! connectivity keeps a fill from leaking through a diagonal gap of one voxel. Growth is
//! breadth-first, so when the region would exceed `max_voxels` the painted part is the
//! `max_voxels` voxels nearest the seed in steps, and the result says it was capped.

use super::super::{bad, EditDiff, EditError, Orientation, Paint, Recorder};
use super::{check_geometry, check_same_grid, voxel_at};
use crate::volume::{CtVolume, Lps, Mask};

/// Which voxels belong to the region.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum GrowCriterion {
    /// Flood fill: voxels holding the seed's current label (needs no CT).
    SameLabel,
    /// HU within `tolerance_hu` of the seed voxel's HU.
    HuAroundSeed { tolerance_hu: f32 },
    /// HU in `[lo_hu, hi_hu]` (the seed must be in it too).
    HuRange { lo_hu: f32, hi_hu: f32 },
}

/// Where a tool may reach from its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reach {
    /// Only the slice of the array through the seed.
    Slice(Orientation),
    /// The whole volume.
    Volume,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grow {
    pub criterion: GrowCriterion,
    pub reach: Reach,
    /// Largest region painted; a guard against a fill leaking into the whole body.
    pub max_voxels: usize,
}

#[derive(Clone, Debug)]
pub struct GrowResult {
    pub diff: EditDiff,
    /// Voxels in the region found (painted or already holding the paint value).
    pub region_voxels: usize,
    /// True when the region reached `max_voxels` and more voxels qualified.
    pub capped: bool,
}

/// Grows a region from `seed_mm` (LPS) and paints it with `paint`.
pub fn region_grow(
    mask: &mut Mask,
    ct: Option<&CtVolume>,
    seed_mm: Lps,
    grow: &Grow,
    paint: &Paint,
) -> Result<GrowResult, EditError> {
    check_geometry(mask)?;
    let seed = voxel_at(&mask.geometry, seed_mm)?;
    let shape = mask.shape();
    let [nz, ny, nx] = shape;
    let needs_ct = !matches!(grow.criterion, GrowCriterion::SameLabel);
    let ct = match (needs_ct, ct) {
        (true, None) => return Err(bad("CT", "none", "growing by HU needs the CT of the phase under the cursor")),
        (true, Some(ct)) => {
            check_same_grid(mask, ct)?;
            Some(ct)
        }
        (false, _) => None,
    };
    let ct_owned;
    let hu: Option<&[i16]> = match ct {
        Some(c) => match c.data.as_slice() {
            Some(s) => Some(s),
            None => {
                ct_owned = c.data.as_standard_layout().into_owned();
                ct_owned.as_slice()
            }
        },
        None => None,
    };
    let lin = |v: [usize; 3]| (v[0] * ny + v[1]) * nx + v[2];
    let data = super::super::mask_slice_mut(mask);
    let seed_label = data[lin(seed)];
    let (lo, hi) = match grow.criterion {
        GrowCriterion::SameLabel => (0.0, 0.0),
        GrowCriterion::HuAroundSeed { tolerance_hu } => {
            if !(tolerance_hu.is_finite() && tolerance_hu >= 0.0) {
                return Err(bad("HU tolerance", tolerance_hu, "give 0 HU or more"));
            }
            let s = hu.map(|h| h[lin(seed)] as f32).unwrap_or(0.0);
            (s - tolerance_hu, s + tolerance_hu)
        }
        GrowCriterion::HuRange { lo_hu, hi_hu } => {
            if !(lo_hu.is_finite() && hi_hu.is_finite() && lo_hu <= hi_hu) {
                return Err(bad("HU range", format!("{lo_hu}…{hi_hu}"), "the lower bound must not exceed the upper"));
            }
            (lo_hu, hi_hu)
        }
    };
    if grow.max_voxels == 0 {
        return Err(bad("max voxels", 0, "allow at least one voxel"));
    }
    let allowed = paint.table();
    let qualifies = |data: &[u8], l: usize| -> bool {
        let cur = data[l];
        let label_ok = match grow.criterion {
            GrowCriterion::SameLabel => cur == seed_label && (allowed[cur as usize] || cur == paint.value),
            _ => allowed[cur as usize] || cur == paint.value,
        };
        label_ok
            && match hu {
                Some(h) => {
                    let v = h[l] as f32;
                    v >= lo && v <= hi
                }
                None => true,
            }
    };
    let empty =
        |data: &[u8]| -> bool { matches!(grow.criterion, GrowCriterion::SameLabel) && data[lin(seed)] == paint.value };
    if !qualifies(data, lin(seed)) || empty(data) {
        return Ok(GrowResult { diff: EditDiff::empty(shape), region_voxels: 0, capped: false });
    }

    // The box the region may use: one slice, or everything.
    let (blo, bhi) = match grow.reach {
        Reach::Volume => ([0, 0, 0], [nz, ny, nx]),
        Reach::Slice(o) => {
            let a = o.axis();
            let mut l = [0, 0, 0];
            let mut h = [nz, ny, nx];
            l[a] = seed[a];
            h[a] = seed[a] + 1;
            (l, h)
        }
    };
    let bshape = [bhi[0] - blo[0], bhi[1] - blo[1], bhi[2] - blo[2]];
    let blen = bshape[0] * bshape[1] * bshape[2];
    let local = |v: [usize; 3]| ((v[0] - blo[0]) * bshape[1] + (v[1] - blo[1])) * bshape[2] + (v[2] - blo[2]);
    let mut seen = vec![0u64; blen.div_ceil(64)];
    let mark = |seen: &mut [u64], l: usize| -> bool {
        let (w, b) = (l / 64, 1u64 << (l % 64));
        let was = seen[w] & b != 0;
        seen[w] |= b;
        !was
    };
    let mut region: Vec<[u32; 3]> = Vec::new();
    mark(&mut seen, local(seed));
    region.push([seed[0] as u32, seed[1] as u32, seed[2] as u32]);
    let mut head = 0;
    let mut capped = false;
    'grow: while head < region.len() {
        let [k, j, i] = region[head].map(|v| v as usize);
        head += 1;
        let neighbours = [
            (k > blo[0]).then(|| [k - 1, j, i]),
            (k + 1 < bhi[0]).then(|| [k + 1, j, i]),
            (j > blo[1]).then(|| [k, j - 1, i]),
            (j + 1 < bhi[1]).then(|| [k, j + 1, i]),
            (i > blo[2]).then(|| [k, j, i - 1]),
            (i + 1 < bhi[2]).then(|| [k, j, i + 1]),
        ];
        for v in neighbours.into_iter().flatten() {
            if seen[local(v) / 64] & (1u64 << (local(v) % 64)) != 0 {
                continue;
            }
            if !qualifies(data, lin(v)) {
                continue;
            }
            if region.len() >= grow.max_voxels {
                capped = true;
                break 'grow;
            }
            mark(&mut seen, local(v));
            region.push([v[0] as u32, v[1] as u32, v[2] as u32]);
        }
    }
    let region_voxels = region.len();
    let mut rec = Recorder::new(mask);
    for v in region {
        let [k, j, i] = v.map(|x| x as usize);
        rec.set(k, j, i, paint.value);
    }
    Ok(GrowResult { diff: rec.finish(), region_voxels, capped })
}
