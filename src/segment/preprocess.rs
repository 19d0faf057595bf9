//! What happens to CT before the network sees it and to its answer after: the model grid
//! (same slices as the study's portal venous grid, square in-plane pixels of the model's
//! size), the HU window, and the channel layout. Training and inference both go through
//! here, so the network sees the same numbers in both.

use ndarray::{Array3, Array4, Axis, Zip};
use rayon::prelude::*;

use crate::volume::{CtVolume, Geometry, Interp, Volume};

/// HU window mapped to [0, 1]: fat and below are 0, enhancing vessels and above 1. Liver
/// (≈ 40…160 HU across phases) and hypo-/hyper-dense lesions fall inside.
pub const WINDOW_LO_HU: f32 = -200.0;
pub const WINDOW_HI_HU: f32 = 300.0;
/// Value of a whole channel whose phase the study lacks: outside the window's range so the
/// network can tell "no arterial phase" from "dark arterial phase" (it is trained with
/// phases dropped this way).
pub const MISSING: f32 = -1.0;
/// Channel order: arterial, portal venous, delayed.
pub const CHANNELS: usize = 3;
pub const PV: usize = 1;

/// HU → network input.
#[inline]
pub fn window(hu: f32) -> f32 {
    ((hu - WINDOW_LO_HU) / (WINDOW_HI_HU - WINDOW_LO_HU)).clamp(0.0, 1.0)
}

/// The grid the network runs on for a study whose masks live on `grid`: the same slices,
/// in-plane pixels of `spacing_mm`, the in-plane field of view covered and rounded up to a
/// multiple of `multiple` pixels, centred on the study's, and the in-plane axes turned to
/// the radiological view (columns towards the patient's left, rows towards posterior)
/// whatever order the file stores its pixels in: a NIfTI written RAS would otherwise reach
/// a 2-D network upside down and mirrored compared with DICOM.
pub fn model_grid(grid: &Geometry, spacing_mm: f64, multiple: usize) -> Geometry {
    let [nz, ny, nx] = grid.shape;
    let round_up = |extent_mm: f64| {
        let n = (extent_mm / spacing_mm).ceil().max(1.0) as usize;
        n.div_ceil(multiple) * multiple
    };
    let centre = grid.index_to_world([(nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0, 0.0]);
    let [gx, gy, gz] = grid.direction;
    let (ex, ey) = (nx as f64 * grid.spacing_mm[2], ny as f64 * grid.spacing_mm[1]);
    // the in-plane axis nearest the patient's left-right becomes the columns
    let (mut dx, mut dy, wx, wy) = if gx[0].abs() >= gy[0].abs() { (gx, gy, ex, ey) } else { (gy, gx, ey, ex) };
    if dx[0] < 0.0 {
        dx = dx.map(|v| -v);
    }
    if dy[1] < 0.0 {
        dy = dy.map(|v| -v);
    }
    let (tx, ty) = (round_up(wx), round_up(wy));
    let (hx, hy) = ((tx as f64 - 1.0) / 2.0 * spacing_mm, (ty as f64 - 1.0) / 2.0 * spacing_mm);
    let origin = [0, 1, 2].map(|c| centre[c] - dx[c] * hx - dy[c] * hy);
    Geometry {
        shape: [nz, ty, tx],
        spacing_mm: [grid.spacing_mm[0], spacing_mm, spacing_mm],
        origin_mm: origin,
        direction: [dx, dy, gz],
    }
}

/// Windowed input `[nz, 3, h, w]` from the phases already on the model grid (`None`: the
/// study lacks that phase → [`MISSING`]).
pub fn input_channels(phases: &[Option<&CtVolume>; CHANNELS], grid: &Geometry) -> Array4<f32> {
    let [nz, ny, nx] = grid.shape;
    let mut out = Array4::<f32>::from_elem((nz, CHANNELS, ny, nx), MISSING);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for (c, p) in phases.iter().enumerate() {
            if let Some(v) = p {
                Zip::from(slab.index_axis_mut(Axis(0), c))
                    .and(v.data.index_axis(Axis(0), k))
                    .for_each(|o, &hu| *o = window(hu as f32));
            }
        }
    });
    out
}

/// Puts each phase onto `grid` (world-coordinate resampling; −1024 outside a phase).
pub fn onto_grid(v: &CtVolume, grid: &Geometry) -> CtVolume {
    if v.geometry.same_grid(grid) {
        v.clone()
    } else {
        v.resample_to(grid, Interp::Linear, -1024)
    }
}

/// Class probabilities on the model grid (`[nz, classes, h, w]`) → labels on `target`:
/// each class's probability is resampled trilinearly and the largest wins, which keeps
/// edges smoother than resampling labels.
pub fn probabilities_to_labels(probs: &Array4<f32>, model: &Geometry, target: &Geometry) -> Volume<u8> {
    let classes = probs.shape()[1];
    let per_class: Vec<Volume<f32>> = (0..classes)
        .map(|c| {
            let v = Volume::new(probs.index_axis(Axis(1), c).to_owned(), model.clone());
            // background where the model grid does not reach
            v.resample_to(target, Interp::Linear, if c == 0 { 1.0 } else { 0.0 })
        })
        .collect();
    let [nz, ny, nx] = target.shape;
    let mut labels = Array3::<u8>::zeros((nz, ny, nx));
    labels.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..ny {
            for i in 0..nx {
                let mut best = (0u8, f32::MIN);
                for (c, v) in per_class.iter().enumerate() {
                    let p = v.data[[k, j, i]];
                    if p > best.1 {
                        best = (c as u8, p);
                    }
                }
                slab[[j, i]] = best.0;
            }
        }
    });
    Volume::new(labels, target.clone())
}
