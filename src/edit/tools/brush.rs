//! Brush and eraser (the eraser is a brush that paints 0), round or square, as a disc in
//! one plane of the array or as a ball/cube in 3-D; the threshold brush is the same brush
//! gated by an HU range of a CT on the mask's grid.
//!
//! A round brush covers the voxels whose centres lie within `diameter_mm / 2` of the
//! brush centre, measured in mm through the grid's index→world matrix (so anisotropic and
//! sheared grids get a true mm circle or ball). A square brush covers voxel centres within
//! half the diameter along each array axis. The voxel under the centre is always covered,
//! so a brush smaller than a voxel still paints the voxel clicked.

use super::super::{bad, EditDiff, EditError, Orientation, Paint, Recorder};
use super::{check_geometry, check_same_grid, continuous_index};
use crate::volume::{invert3, norm, CtVolume, Lps, Mask};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BrushShape {
    Round,
    Square,
}

/// Where the brush reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BrushExtent {
    /// A disc (or square) in the plane of the array through the centre's nearest slice.
    Plane(Orientation),
    /// A ball (or cube) in 3-D.
    Volume,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Brush {
    pub shape: BrushShape,
    pub extent: BrushExtent,
    /// Across the brush, in mm.
    pub diameter_mm: f64,
}

impl Brush {
    pub fn round_2d(orientation: Orientation, diameter_mm: f64) -> Self {
        Brush { shape: BrushShape::Round, extent: BrushExtent::Plane(orientation), diameter_mm }
    }

    pub fn ball(diameter_mm: f64) -> Self {
        Brush { shape: BrushShape::Round, extent: BrushExtent::Volume, diameter_mm }
    }
}

/// The threshold brush's gate: only voxels whose HU in `ct` lie in `[lo_hu, hi_hu]` are
/// painted. `ct` must be on the mask's grid (resample the phase under the cursor first).
#[derive(Clone, Copy, Debug)]
pub struct HuRange<'a> {
    pub ct: &'a CtVolume,
    pub lo_hu: i16,
    pub hi_hu: i16,
}

/// One dab of `brush` centred at `centre_mm` (LPS). Parts of the brush outside the grid
/// are clipped; a dab wholly outside changes nothing.
pub fn paint_dab(
    mask: &mut Mask,
    centre_mm: Lps,
    brush: &Brush,
    paint: &Paint,
    hu: Option<&HuRange>,
) -> Result<EditDiff, EditError> {
    paint_line(mask, centre_mm, centre_mm, brush, paint, hu)
}

/// Dabs of `brush` along the segment `from_mm → to_mm` (one mouse move of a drag), close
/// enough that the painted band has no gaps: one dab per quarter of the brush diameter or
/// per voxel, whichever is shorter. One diff for the whole segment.
pub fn paint_line(
    mask: &mut Mask,
    from_mm: Lps,
    to_mm: Lps,
    brush: &Brush,
    paint: &Paint,
    hu: Option<&HuRange>,
) -> Result<EditDiff, EditError> {
    check_geometry(mask)?;
    if !(brush.diameter_mm.is_finite() && brush.diameter_mm >= 0.0) {
        return Err(bad("brush diameter (mm)", brush.diameter_mm, "give a size of 0 mm or more"));
    }
    if let Some(h) = hu {
        check_same_grid(mask, h.ct)?;
        if h.lo_hu > h.hi_hu {
            return Err(bad(
                "HU range",
                format!("{}…{}", h.lo_hu, h.hi_hu),
                "the lower bound must not exceed the upper",
            ));
        }
    }
    let a = continuous_index(&mask.geometry, from_mm)?;
    let b = continuous_index(&mask.geometry, to_mm)?;
    let min_spacing = mask.geometry.spacing_mm.iter().fold(f64::INFINITY, |m, &s| m.min(s));
    let step = (brush.diameter_mm / 4.0).min(min_spacing).max(1e-6);
    let length = norm([to_mm[0] - from_mm[0], to_mm[1] - from_mm[1], to_mm[2] - from_mm[2]]);
    let n = ((length / step).ceil() as usize).clamp(0, 100_000);
    let dab = Dab::new(mask, brush);
    let mut rec = Recorder::new(mask);
    for s in 0..=n {
        let t = if n == 0 { 0.0 } else { s as f64 / n as f64 };
        let c = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
        dab.apply(&mut rec, c, paint, hu);
    }
    Ok(rec.finish())
}

/// A brush resolved against one grid.
struct Dab {
    shape: BrushShape,
    plane_axis: Option<usize>,
    r2_mm2: f64,
    r_mm: f64,
    /// index→world matrix (rows LPS, columns i, j, k).
    m: [[f64; 3]; 3],
    /// Half-extent of the brush in voxels along i, j, k.
    half: [f64; 3],
    spacing_ijk: [f64; 3],
    grid_shape: [usize; 3],
}

impl Dab {
    fn new(mask: &Mask, brush: &Brush) -> Self {
        let g = &mask.geometry;
        let m = g.index_to_world_matrix();
        let inv = invert3(&m).unwrap_or([[0.0; 3]; 3]);
        let r = brush.diameter_mm / 2.0;
        // The ball |M·d| ≤ r spans r·|row a of M⁻¹| along index axis a.
        let half = [r * norm(inv[0]), r * norm(inv[1]), r * norm(inv[2])];
        let plane_axis = match brush.extent {
            BrushExtent::Plane(o) => Some(2 - o.axis()), // array axis → (i, j, k) position
            BrushExtent::Volume => None,
        };
        Dab {
            shape: brush.shape,
            plane_axis,
            // a hair of slack so that centres exactly on the rim count on every platform
            r2_mm2: r * r * (1.0 + 1e-9) + 1e-12,
            r_mm: r * (1.0 + 1e-9) + 1e-9,
            m,
            half,
            spacing_ijk: [g.spacing_mm[2], g.spacing_mm[1], g.spacing_mm[0]],
            grid_shape: g.shape,
        }
    }

    /// Paints one dab centred at continuous index `c = (i, j, k)`.
    fn apply(&self, rec: &mut Recorder, c: [f64; 3], paint: &Paint, hu: Option<&HuRange>) {
        let n = [self.grid_shape[2], self.grid_shape[1], self.grid_shape[0]];
        let mut lo = [0usize; 3];
        let mut hi = [0usize; 3];
        let mut nearest = [0i64; 3];
        for a in 0..3 {
            nearest[a] = c[a].round() as i64;
            let (l, h) = if self.plane_axis == Some(a) {
                (c[a].round(), c[a].round())
            } else {
                ((c[a] - self.half[a]).ceil().min(c[a].round()), (c[a] + self.half[a]).floor().max(c[a].round()))
            };
            if h < 0.0 || l > (n[a] as f64 - 1.0) || !l.is_finite() || !h.is_finite() {
                return;
            }
            lo[a] = l.max(0.0) as usize;
            hi[a] = (h.min(n[a] as f64 - 1.0)) as usize;
        }
        let allowed = paint.table();
        let ct = hu.map(|h| (h.ct.data.as_slice(), h.ct, h.lo_hu, h.hi_hu));
        for k in lo[2]..=hi[2] {
            for j in lo[1]..=hi[1] {
                for i in lo[0]..=hi[0] {
                    let mut d = [i as f64 - c[0], j as f64 - c[1], k as f64 - c[2]];
                    if let Some(a) = self.plane_axis {
                        d[a] = 0.0;
                    }
                    let centre_voxel = i as i64 == nearest[0] && j as i64 == nearest[1] && k as i64 == nearest[2];
                    let inside = centre_voxel
                        || match self.shape {
                            BrushShape::Round => {
                                let mut s = 0.0;
                                for row in &self.m {
                                    let w = row[0] * d[0] + row[1] * d[1] + row[2] * d[2];
                                    s += w * w;
                                }
                                s <= self.r2_mm2
                            }
                            BrushShape::Square => (0..3).all(|a| (d[a] * self.spacing_ijk[a]).abs() <= self.r_mm),
                        };
                    if !inside {
                        continue;
                    }
                    let cur = rec.get(k, j, i);
                    if !allowed[cur as usize] {
                        continue;
                    }
                    if let Some((slice, vol, lo_hu, hi_hu)) = ct {
                        let v = match slice {
                            Some(s) => s[(k * self.grid_shape[1] + j) * self.grid_shape[2] + i],
                            None => vol.data[[k, j, i]],
                        };
                        if v < lo_hu || v > hi_hu {
                            continue;
                        }
                    }
                    rec.set(k, j, i, paint.value);
                }
            }
        }
    }
}
