//! What the viewports show, as state and plain functions: the crosshair and view centre in
//! world coordinates (LPS mm), zoom, window/level, layout, and the maps between a
//! viewport's pixels and the patient. No egui painting and no wgpu here, so every rule
//! (radiological convention, linked navigation, presets) is unit-tested.

use crate::app::gpu::ScreenPlane;
use crate::volume::{dot, Geometry, Lps};

/// Standard planes, in radiological convention (patient right on screen left).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Orientation {
    Axial,
    Coronal,
    Sagittal,
}

impl Orientation {
    pub const ALL: [Orientation; 3] = [Orientation::Axial, Orientation::Coronal, Orientation::Sagittal];

    /// (screen right, screen down, plane normal) in LPS.
    pub fn axes(self) -> (Lps, Lps, Lps) {
        match self {
            // looking from the feet: patient left (+x) on screen right, posterior (+y) down
            Orientation::Axial => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
            // looking from the front: patient left on screen right, superior up
            Orientation::Coronal => ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
            // looking from the patient's left: anterior on screen left, superior up
            Orientation::Sagittal => ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]),
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

/// The patient direction letter of an LPS direction (its dominant axis).
pub fn direction_letter(v: Lps) -> &'static str {
    let a = v.map(f64::abs);
    if a[0] >= a[1] && a[0] >= a[2] {
        if v[0] > 0.0 {
            "L"
        } else {
            "R"
        }
    } else if a[1] >= a[2] {
        if v[1] > 0.0 {
            "P"
        } else {
            "A"
        }
    } else if v[2] > 0.0 {
        "S"
    } else {
        "I"
    }
}

/// Letters at the (left, right, top, bottom) edges of a viewport.
pub fn edge_letters(o: Orientation) -> [&'static str; 4] {
    let (r, d, _) = o.axes();
    let neg = |v: Lps| [-v[0], -v[1], -v[2]];
    [direction_letter(neg(r)), direction_letter(r), direction_letter(neg(d)), direction_letter(d)]
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowLevel {
    pub level_hu: f32,
    pub width_hu: f32,
}

impl WindowLevel {
    /// Number-key presets 1–4: liver, abdomen, bone, lung.
    pub const PRESETS: [(&'static str, WindowLevel); 4] = [
        ("liver", WindowLevel { level_hu: 60.0, width_hu: 150.0 }),
        ("abdomen", WindowLevel { level_hu: 40.0, width_hu: 400.0 }),
        ("bone", WindowLevel { level_hu: 400.0, width_hu: 1800.0 }),
        ("lung", WindowLevel { level_hu: -600.0, width_hu: 1500.0 }),
    ];

    /// Right-drag by (dx, dy) points: horizontal widens, vertical raises the level
    /// (dragging down brightens, as in most PACS). Width never goes below 1 HU.
    pub fn dragged(self, dx: f32, dy: f32) -> WindowLevel {
        let scale = (self.width_hu / 200.0).clamp(0.5, 10.0);
        WindowLevel { level_hu: self.level_hu - dy * scale, width_hu: (self.width_hu + dx * 2.0 * scale).max(1.0) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One axial viewport per phase, side by side.
    Row,
    /// Phases across, axial/coronal/sagittal down.
    Grid,
    /// One large viewport.
    Single,
}

impl Layout {
    pub fn next(self) -> Layout {
        match self {
            Layout::Row => Layout::Grid,
            Layout::Grid => Layout::Single,
            Layout::Single => Layout::Row,
        }
    }
}

/// Everything the viewports share. The crosshair is one world point for all phases and
/// planes; each viewport's plane passes through it, so the same anatomy shows everywhere
/// even when the phases have different grids.
#[derive(Clone, Debug)]
pub struct ViewState {
    pub crosshair_mm: Lps,
    /// Point shown at the middle of every viewport (in-plane pan), LPS.
    pub centre_mm: Lps,
    /// Millimetres per logical point (zoom).
    pub mm_per_point: f64,
    /// Per phase (same order as the study's phases).
    pub window: Vec<WindowLevel>,
    /// A window/level change applies to every phase.
    pub link_window: bool,
    pub layout: Layout,
    /// Phase and plane of the single large viewport.
    pub single: (usize, Orientation),
    pub linear: bool,
    pub annotations: bool,
    pub show_labels: bool,
    pub label_opacity: f32,
    pub label_outline: bool,
    /// Phases hidden from the row/grid layouts.
    pub hidden: Vec<bool>,
    /// Slice step (mm) along each orientation's normal, from the fixed phase's grid.
    pub step_mm: [f64; 3],
}

impl ViewState {
    /// Centred on the fixed phase's grid, zoomed to fit a viewport of `fit_points`.
    pub fn new(fixed: &Geometry, n_phases: usize, fit_points: f64) -> ViewState {
        let centre = fixed.centre_mm();
        let extent = [fixed.shape[2] as f64 * fixed.spacing_mm[2], fixed.shape[1] as f64 * fixed.spacing_mm[1]];
        let mm_per_point = extent[0].max(extent[1]) / fit_points.max(1.0);
        ViewState {
            crosshair_mm: centre,
            centre_mm: centre,
            mm_per_point,
            window: vec![WindowLevel::PRESETS[1].1; n_phases],
            link_window: true,
            layout: Layout::Row,
            single: (0, Orientation::Axial),
            linear: true,
            annotations: true,
            show_labels: true,
            label_opacity: 0.4,
            label_outline: false,
            hidden: vec![false; n_phases],
            step_mm: slice_steps(fixed),
        }
    }

    /// The plane a viewport of `size_px` physical pixels shows for `o`, at
    /// `pixels_per_point`: through the crosshair, centred on the view centre.
    pub fn plane(&self, o: Orientation, pixels_per_point: f64) -> ScreenPlane {
        let (right, down, n) = o.axes();
        let off = dot(
            [
                self.crosshair_mm[0] - self.centre_mm[0],
                self.crosshair_mm[1] - self.centre_mm[1],
                self.crosshair_mm[2] - self.centre_mm[2],
            ],
            n,
        );
        let c = [self.centre_mm[0] + off * n[0], self.centre_mm[1] + off * n[1], self.centre_mm[2] + off * n[2]];
        ScreenPlane { centre_mm: c, right, down, mm_per_px: self.mm_per_point / pixels_per_point }
    }

    /// Scroll `n` slices along the plane's normal (positive: towards S, P or L).
    pub fn scroll(&mut self, o: Orientation, n: f64) {
        let (_, _, normal) = o.axes();
        let step = self.step_mm[o as usize] * n;
        for a in 0..3 {
            self.crosshair_mm[a] += normal[a] * step;
        }
    }

    /// Pan by a drag of (dx, dy) points in a viewport of orientation `o`.
    pub fn pan(&mut self, o: Orientation, dx: f64, dy: f64) {
        let (right, down, _) = o.axes();
        for a in 0..3 {
            self.centre_mm[a] -= (right[a] * dx + down[a] * dy) * self.mm_per_point;
        }
    }

    /// Zoom by `factor` (> 1 magnifies).
    pub fn zoom(&mut self, factor: f64) {
        self.mm_per_point = (self.mm_per_point / factor).clamp(0.01, 20.0);
    }

    pub fn set_window(&mut self, phase: usize, wl: WindowLevel) {
        if self.link_window {
            self.window.iter_mut().for_each(|w| *w = wl);
        } else if let Some(w) = self.window.get_mut(phase) {
            *w = wl;
        }
    }
}

/// Slice step along the axial, coronal and sagittal normals: the fixed grid's spacing
/// along the array axis closest to each normal.
fn slice_steps(g: &Geometry) -> [f64; 3] {
    let spacing_ijk = [g.spacing_mm[2], g.spacing_mm[1], g.spacing_mm[0]];
    let mut out = [1.0; 3];
    for o in Orientation::ALL {
        let (_, _, n) = o.axes();
        let axis =
            (0..3).max_by(|&a, &b| dot(g.direction[a], n).abs().total_cmp(&dot(g.direction[b], n).abs())).unwrap_or(2);
        out[o as usize] = spacing_ijk[axis];
    }
    out
}

/// World point under pixel `(u, v)` (physical pixels from the viewport's top-left).
pub fn pixel_to_world(p: &ScreenPlane, size_px: [f64; 2], u: f64, v: f64) -> Lps {
    let du = (u - size_px[0] / 2.0) * p.mm_per_px;
    let dv = (v - size_px[1] / 2.0) * p.mm_per_px;
    [
        p.centre_mm[0] + p.right[0] * du + p.down[0] * dv,
        p.centre_mm[1] + p.right[1] * du + p.down[1] * dv,
        p.centre_mm[2] + p.right[2] * du + p.down[2] * dv,
    ]
}

/// Pixel `(u, v)` where world point `w` projects onto the plane.
pub fn world_to_pixel(p: &ScreenPlane, size_px: [f64; 2], w: Lps) -> [f64; 2] {
    let d = [w[0] - p.centre_mm[0], w[1] - p.centre_mm[1], w[2] - p.centre_mm[2]];
    [size_px[0] / 2.0 + dot(d, p.right) / p.mm_per_px, size_px[1] / 2.0 + dot(d, p.down) / p.mm_per_px]
}

/// A scale bar length (mm) of 1, 2 or 5 × 10ⁿ that spans at most `max_points`.
pub fn scale_bar_mm(mm_per_point: f64, max_points: f64) -> f64 {
    let max_mm = mm_per_point * max_points;
    let mut best = 1.0;
    for exp in -1..4 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(exp);
            if v <= max_mm {
                best = v;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radiological_convention_letters() {
        assert_eq!(edge_letters(Orientation::Axial), ["R", "L", "A", "P"]);
        assert_eq!(edge_letters(Orientation::Coronal), ["R", "L", "S", "I"]);
        assert_eq!(edge_letters(Orientation::Sagittal), ["A", "P", "S", "I"]);
    }

    #[test]
    fn pixel_world_round_trip_and_linking() {
        let g = Geometry::axis_aligned([80, 256, 256], [2.5, 1.5, 1.5], [-191.25, -191.25, -300.0]);
        let mut v = ViewState::new(&g, 3, 500.0);
        let size = [600.0, 400.0];
        for o in Orientation::ALL {
            let p = v.plane(o, 2.0);
            let w = pixel_to_world(&p, size, 123.0, 77.0);
            let back = world_to_pixel(&p, size, w);
            assert!((back[0] - 123.0).abs() < 1e-9 && (back[1] - 77.0).abs() < 1e-9);
        }
        // clicking in the axial view moves the crosshair; the coronal plane then passes
        // through the clicked point
        let p = v.plane(Orientation::Axial, 1.0);
        let clicked = pixel_to_world(&p, size, 400.0, 100.0);
        v.crosshair_mm = clicked;
        let c = v.plane(Orientation::Coronal, 1.0);
        let (_, _, n) = Orientation::Coronal.axes();
        let d = [clicked[0] - c.centre_mm[0], clicked[1] - c.centre_mm[1], clicked[2] - c.centre_mm[2]];
        assert!(dot(d, n).abs() < 1e-9);
        // and the crosshair lands on the clicked pixel of the axial view
        let px = world_to_pixel(&v.plane(Orientation::Axial, 1.0), size, v.crosshair_mm);
        assert!((px[0] - 400.0).abs() < 1e-9 && (px[1] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn scrolling_steps_one_slice() {
        let g = Geometry::axis_aligned([80, 256, 256], [2.5, 1.5, 1.5], [0.0; 3]);
        let mut v = ViewState::new(&g, 1, 500.0);
        let z0 = v.crosshair_mm[2];
        v.scroll(Orientation::Axial, 1.0);
        assert!((v.crosshair_mm[2] - z0 - 2.5).abs() < 1e-12);
        let x0 = v.crosshair_mm[0];
        v.scroll(Orientation::Sagittal, -2.0);
        assert!((v.crosshair_mm[0] - x0 + 3.0).abs() < 1e-12);
    }

    #[test]
    fn window_drag_and_link() {
        let g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        let mut v = ViewState::new(&g, 3, 100.0);
        let wl = WindowLevel { level_hu: 40.0, width_hu: 400.0 }.dragged(10.0, -5.0);
        assert!(wl.width_hu > 400.0 && wl.level_hu > 40.0);
        assert_eq!(WindowLevel { level_hu: 0.0, width_hu: 2.0 }.dragged(-1000.0, 0.0).width_hu, 1.0);
        v.set_window(1, WindowLevel::PRESETS[0].1);
        assert!(v.window.iter().all(|w| *w == WindowLevel::PRESETS[0].1));
        v.link_window = false;
        v.set_window(2, WindowLevel::PRESETS[2].1);
        assert_eq!(v.window[2], WindowLevel::PRESETS[2].1);
        assert_eq!(v.window[0], WindowLevel::PRESETS[0].1);
    }

    #[test]
    fn scale_bar_is_round() {
        assert_eq!(scale_bar_mm(1.0, 120.0), 100.0);
        assert_eq!(scale_bar_mm(0.3, 120.0), 20.0);
    }
}
