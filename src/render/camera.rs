//! The 3D view's camera as plain maths: an orbit camera around a target point in LPS mm,
//! its view and projection matrices, the six standard views, mouse orbit/pan/zoom, and
//! the maps between world points and viewport pixels (projection, pick rays). No wgpu and
//! no egui here, so the radiological conventions are unit-tested.
//!
//! Matrices are row-major `[[f64; 4]; 4]` acting on column vectors (`clip = P·V·world`);
//! [`to_gpu`] transposes them for WGSL, whose `mat4x4` is column-major. Clip space is
//! wgpu's: x, y in [−1, 1] (y up), z in [0, 1].

use crate::volume::{add, cross, dot, norm, sub, Lps};

pub type Mat4 = [[f64; 4]; 4];

/// The six views a radiologist names, each looking at the patient from that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StandardView {
    /// From the front, looking at the patient's face: patient's right on screen left.
    Anterior,
    /// From behind: patient's right on screen right.
    Posterior,
    /// From the patient's left: anterior on screen left (as the sagittal slices).
    Left,
    /// From the patient's right: anterior on screen right.
    Right,
    /// From above the head, anterior up: patient's right on screen right.
    Superior,
    /// From the feet, anterior up: patient's right on screen left (as the axial slices).
    Inferior,
}

impl StandardView {
    pub const ALL: [StandardView; 6] = [
        StandardView::Anterior,
        StandardView::Posterior,
        StandardView::Left,
        StandardView::Right,
        StandardView::Superior,
        StandardView::Inferior,
    ];

    /// Screen right and screen up as LPS unit vectors. The camera sits on the side of
    /// `right × up` (the view's "back" axis), looking the other way.
    pub fn axes(self) -> (Lps, Lps) {
        match self {
            StandardView::Anterior => ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
            StandardView::Posterior => ([-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
            StandardView::Left => ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
            StandardView::Right => ([0.0, -1.0, 0.0], [0.0, 0.0, 1.0]),
            StandardView::Superior => ([-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]),
            StandardView::Inferior => ([1.0, 0.0, 0.0], [0.0, -1.0, 0.0]),
        }
    }

    /// One-letter button label (A, P, L, R, S, I).
    pub fn letter(self) -> &'static str {
        match self {
            StandardView::Anterior => "A",
            StandardView::Posterior => "P",
            StandardView::Left => "L",
            StandardView::Right => "R",
            StandardView::Superior => "S",
            StandardView::Inferior => "I",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StandardView::Anterior => "anterior",
            StandardView::Posterior => "posterior",
            StandardView::Left => "left",
            StandardView::Right => "right",
            StandardView::Superior => "superior",
            StandardView::Inferior => "inferior",
        }
    }
}

/// A ray in LPS mm; `dir` is a unit vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    pub origin: Lps,
    pub dir: Lps,
}

impl Ray {
    pub fn at(&self, t: f64) -> Lps {
        [self.origin[0] + t * self.dir[0], self.origin[1] + t * self.dir[1], self.origin[2] + t * self.dir[2]]
    }
}

/// Perspective orbit camera. The eye sits at `target + distance·back`, looking along
/// `−back`, with `right`, `up`, `back` a right-handed orthonormal basis in LPS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Point the camera orbits around and looks at (LPS mm).
    pub target_mm: Lps,
    pub distance_mm: f64,
    pub right: Lps,
    pub up: Lps,
    /// Vertical field of view in degrees.
    pub fov_y_deg: f64,
    /// Radius (mm) around the target that must stay between the near and far planes.
    pub scene_radius_mm: f64,
}

impl Default for Camera {
    fn default() -> Self {
        let (right, up) = StandardView::Anterior.axes();
        Camera { target_mm: [0.0; 3], distance_mm: 500.0, right, up, fov_y_deg: 30.0, scene_radius_mm: 200.0 }
    }
}

fn scale(a: Lps, s: f64) -> Lps {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn unit(a: Lps) -> Lps {
    let n = norm(a);
    if n > 0.0 {
        scale(a, 1.0 / n)
    } else {
        a
    }
}

/// `v` rotated by `angle` (radians, right-handed) about the unit `axis` (Rodrigues).
pub fn rotate(v: Lps, axis: Lps, angle: f64) -> Lps {
    let (s, c) = angle.sin_cos();
    let k = unit(axis);
    add(add(scale(v, c), scale(cross(k, v), s)), scale(k, dot(k, v) * (1.0 - c)))
}

pub fn mat_mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut m = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            m[r][c] = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    m
}

/// `m · (p, 1)`: the homogeneous image of a point.
pub fn transform_point(m: &Mat4, p: Lps) -> [f64; 4] {
    let mut out = [0.0; 4];
    for r in 0..4 {
        out[r] = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
    }
    out
}

/// A translation matrix.
pub fn translation(t: Lps) -> Mat4 {
    [[1.0, 0.0, 0.0, t[0]], [0.0, 1.0, 0.0, t[1]], [0.0, 0.0, 1.0, t[2]], [0.0, 0.0, 0.0, 1.0]]
}

/// Column-major `f32` for a WGSL `mat4x4<f32>`.
pub fn to_gpu(m: &Mat4) -> [[f32; 4]; 4] {
    let mut out = [[0.0f32; 4]; 4];
    for c in 0..4 {
        for r in 0..4 {
            out[c][r] = m[r][c] as f32;
        }
    }
    out
}

impl Camera {
    /// Looks at `bounds` (`[min, max]` LPS mm) from `view`, far enough that the whole box
    /// fits a viewport at least as wide as it is tall.
    pub fn fit(bounds: [Lps; 2], view: StandardView) -> Camera {
        Camera::fit_aspect(bounds, view, 1.0)
    }

    /// [`Camera::fit`] for a viewport of `aspect` = width / height.
    pub fn fit_aspect(bounds: [Lps; 2], view: StandardView, aspect: f64) -> Camera {
        let mut c = Camera::default();
        c.set_view(view);
        c.frame_aspect(bounds, aspect);
        c
    }

    /// Centres on `bounds` and backs off until the box fits the field of view of a viewport
    /// at least as wide as tall; keeps the direction.
    pub fn frame(&mut self, bounds: [Lps; 2]) {
        self.frame_aspect(bounds, 1.0);
    }

    /// [`Camera::frame`] for a viewport of `aspect` = width / height (a tall viewport's
    /// narrower horizontal field may decide).
    pub fn frame_aspect(&mut self, bounds: [Lps; 2], aspect: f64) {
        let [lo, hi] = bounds;
        self.target_mm = scale(add(lo, hi), 0.5);
        let r = (norm(sub(hi, lo)) * 0.5).max(1.0);
        self.scene_radius_mm = r;
        // the nearest eye distance at which every corner of the box lies inside the field:
        // a corner at (x, y, z) in camera axes needs |x| ≤ tan(half_x)·(d − z), same for y
        let tan_y = (self.fov_y_deg.to_radians() * 0.5).tan();
        let tan_x = tan_y * aspect.clamp(0.05, 20.0);
        let back = self.back();
        let mut d: f64 = 0.0;
        for i in 0..8 {
            let corner = [[lo, hi][i & 1][0], [lo, hi][(i >> 1) & 1][1], [lo, hi][(i >> 2) & 1][2]];
            let p = sub(corner, self.target_mm);
            let (x, y, z) = (dot(p, self.right), dot(p, self.up), dot(p, back));
            d = d.max(z + x.abs() / tan_x).max(z + y.abs() / tan_y);
        }
        // a small margin, and never inside the box
        self.distance_mm = (d * 1.08).max(r * 1.1);
    }

    /// Turns to a standard view, keeping target and distance.
    pub fn set_view(&mut self, view: StandardView) {
        let (right, up) = view.axes();
        self.right = right;
        self.up = up;
    }

    /// The view axis pointing from the target towards the eye.
    pub fn back(&self) -> Lps {
        cross(self.right, self.up)
    }

    pub fn eye_mm(&self) -> Lps {
        add(self.target_mm, scale(self.back(), self.distance_mm))
    }

    /// Unit vector the camera looks along.
    pub fn forward(&self) -> Lps {
        scale(self.back(), -1.0)
    }

    /// World → camera (right, up, back) coordinates.
    pub fn view_matrix(&self) -> Mat4 {
        let (r, u, b) = (self.right, self.up, self.back());
        let e = self.eye_mm();
        [
            [r[0], r[1], r[2], -dot(r, e)],
            [u[0], u[1], u[2], -dot(u, e)],
            [b[0], b[1], b[2], -dot(b, e)],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// Near and far plane distances: the scene sphere around the target, never closer than
    /// a millimetre (a camera inside the scene still sees what is in front of it).
    pub fn depth_range(&self) -> (f64, f64) {
        let r = self.scene_radius_mm.max(1.0);
        let near = (self.distance_mm - 1.5 * r).max(self.distance_mm * 0.01).max(1.0);
        let far = (self.distance_mm + 1.5 * r).max(near + 1.0);
        (near, far)
    }

    /// Perspective projection for a viewport of `aspect` = width / height (wgpu depth 0…1).
    pub fn projection_matrix(&self, aspect: f64) -> Mat4 {
        let f = 1.0 / (self.fov_y_deg.to_radians() * 0.5).tan();
        let aspect = if aspect > 0.0 { aspect } else { 1.0 };
        let (n, fa) = self.depth_range();
        [
            [f / aspect, 0.0, 0.0, 0.0],
            [0.0, f, 0.0, 0.0],
            [0.0, 0.0, fa / (n - fa), n * fa / (n - fa)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    }

    pub fn view_projection(&self, aspect: f64) -> Mat4 {
        mat_mul(&self.projection_matrix(aspect), &self.view_matrix())
    }

    /// Pixel `(x, y)` (from the viewport's top-left; any unit, as `size`) where world point
    /// `p` appears, and its depth along the view axis (mm from the eye); `None` behind the
    /// camera.
    pub fn project(&self, p: Lps, size: [f64; 2]) -> Option<([f64; 2], f64)> {
        let m = self.view_projection(size[0] / size[1].max(1e-9));
        let c = transform_point(&m, p);
        if c[3] <= 1e-9 {
            return None;
        }
        let (x, y) = (c[0] / c[3], c[1] / c[3]);
        Some(([(x + 1.0) * 0.5 * size[0], (1.0 - y) * 0.5 * size[1]], c[3]))
    }

    /// The ray from the eye through pixel `(x, y)` of a viewport of `size` (same unit).
    pub fn ray(&self, x: f64, y: f64, size: [f64; 2]) -> Ray {
        let t = (self.fov_y_deg.to_radians() * 0.5).tan();
        let aspect = size[0] / size[1].max(1e-9);
        let nx = 2.0 * x / size[0].max(1e-9) - 1.0;
        let ny = 1.0 - 2.0 * y / size[1].max(1e-9);
        let d = add(add(scale(self.right, nx * t * aspect), scale(self.up, ny * t)), self.forward());
        Ray { origin: self.eye_mm(), dir: unit(d) }
    }

    /// Mouse orbit by a drag of `(dx, dy)` points: horizontal turns the scene about the
    /// patient's superior axis (a turntable, so the patient stays upright), vertical tilts
    /// it about the screen's horizontal axis. Dragging right turns the near side right.
    pub fn orbit(&mut self, dx: f64, dy: f64) {
        const RAD_PER_POINT: f64 = 0.01;
        // about S, signed so that dragging right always turns the near side right, even
        // upside down
        let s = if dot(self.up, [0.0, 0.0, 1.0]) < 0.0 { [0.0, 0.0, -1.0] } else { [0.0, 0.0, 1.0] };
        let a = -dx * RAD_PER_POINT;
        if a != 0.0 {
            self.right = rotate(self.right, s, a);
            self.up = rotate(self.up, s, a);
        }
        let b = -dy * RAD_PER_POINT;
        if b != 0.0 {
            self.up = rotate(self.up, self.right, b);
        }
        self.orthonormalise();
    }

    /// Turns about the patient's superior axis by `angle` radians (a turntable step;
    /// positive: the near side moves to screen right when upright).
    pub fn turn(&mut self, angle: f64) {
        self.right = rotate(self.right, [0.0, 0.0, 1.0], -angle);
        self.up = rotate(self.up, [0.0, 0.0, 1.0], -angle);
        self.orthonormalise();
    }

    /// Moves the target so the scene follows a drag of `(dx, dy)` points in a viewport
    /// `height` points tall (the point under the pointer at target depth stays under it).
    pub fn pan(&mut self, dx: f64, dy: f64, height: f64) {
        let mm_per_point = 2.0 * self.distance_mm * (self.fov_y_deg.to_radians() * 0.5).tan() / height.max(1.0);
        self.target_mm =
            add(self.target_mm, add(scale(self.right, -dx * mm_per_point), scale(self.up, dy * mm_per_point)));
    }

    /// Zooms by `factor` (> 1 comes closer).
    pub fn zoom(&mut self, factor: f64) {
        if factor > 0.0 && factor.is_finite() {
            let r = self.scene_radius_mm.max(1.0);
            self.distance_mm = (self.distance_mm / factor).clamp(r * 0.05, r * 20.0);
        }
    }

    fn orthonormalise(&mut self) {
        self.right = unit(self.right);
        let u = sub(self.up, scale(self.right, dot(self.up, self.right)));
        self.up = unit(u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Lps, b: Lps, tol: f64) -> bool {
        (0..3).all(|i| (a[i] - b[i]).abs() <= tol)
    }

    #[test]
    fn standard_views_are_right_handed_and_orthonormal() {
        for v in StandardView::ALL {
            let mut c = Camera::default();
            c.set_view(v);
            let b = c.back();
            assert!((norm(b) - 1.0).abs() < 1e-12 && dot(c.right, c.up).abs() < 1e-12, "{v:?}");
            // the camera sits on the side the view is named after
            let side = match v {
                StandardView::Anterior => [0.0, -1.0, 0.0],
                StandardView::Posterior => [0.0, 1.0, 0.0],
                StandardView::Left => [1.0, 0.0, 0.0],
                StandardView::Right => [-1.0, 0.0, 0.0],
                StandardView::Superior => [0.0, 0.0, 1.0],
                StandardView::Inferior => [0.0, 0.0, -1.0],
            };
            assert!(close(b, side, 1e-12), "{v:?}: back {b:?}");
        }
    }

    #[test]
    fn projection_round_trips_through_the_pick_ray() {
        let mut c = Camera::fit([[-100.0, -80.0, -300.0], [120.0, 90.0, -100.0]], StandardView::Left);
        c.orbit(37.0, -21.0);
        let size = [640.0, 480.0];
        let p = [10.0, -20.0, -180.0];
        let (px, depth) = c.project(p, size).expect("in front");
        let r = c.ray(px[0], px[1], size);
        // the point lies on the ray through its own pixel, at its depth along the view axis
        let t = dot(sub(p, r.origin), r.dir);
        assert!(close(r.at(t), p, 1e-6), "{:?} vs {p:?}", r.at(t));
        assert!((dot(sub(p, c.eye_mm()), c.forward()) - depth).abs() < 1e-6);
    }

    #[test]
    fn orbit_keeps_the_patient_upright_and_pan_follows_the_pointer() {
        let mut c = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Anterior);
        c.orbit(157.0, 0.0);
        assert!((c.up[2] - 1.0).abs() < 1e-12, "horizontal orbit keeps S up");
        // near side moves right: a point in front of the target drifts to screen right
        let mut d = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Anterior);
        let size = [400.0, 400.0];
        let near = [0.0, -50.0, 0.0];
        let x0 = d.project(near, size).unwrap().0[0];
        d.orbit(10.0, 0.0);
        assert!(d.project(near, size).unwrap().0[0] > x0);
        // pan: the target-depth point under the pointer moves with it
        let mut e = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Right);
        let before = e.project(e.target_mm, size).unwrap().0;
        let t = e.target_mm;
        e.pan(30.0, -12.0, size[1]);
        let after = e.project(t, size).unwrap().0;
        assert!(
            (after[0] - before[0] - 30.0).abs() < 1e-6 && (after[1] - before[1] + 12.0).abs() < 1e-6,
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn framing_fits_the_box_in_tall_and_wide_viewports() {
        let bounds = [[-120.0, -80.0, -60.0], [120.0, 80.0, 60.0]];
        for (aspect, size) in [(0.4, [200.0, 500.0]), (1.0, [400.0, 400.0]), (2.5, [1000.0, 400.0])] {
            for v in StandardView::ALL {
                let c = Camera::fit_aspect(bounds, v, aspect);
                for i in 0..8 {
                    let p = [bounds[i & 1][0], bounds[(i >> 1) & 1][1], bounds[(i >> 2) & 1][2]];
                    let (px, _) = c.project(p, size).unwrap();
                    assert!(
                        (0.0..=size[0]).contains(&px[0]) && (0.0..=size[1]).contains(&px[1]),
                        "{v:?} aspect {aspect}: corner at {px:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn turning_a_full_circle_comes_back() {
        let mut c = Camera::fit([[-10.0; 3], [10.0; 3]], StandardView::Anterior);
        let start = c;
        for _ in 0..8 {
            c.turn(std::f64::consts::TAU / 8.0);
        }
        assert!(close(c.right, start.right, 1e-9) && close(c.up, start.up, 1e-9));
        c.turn(std::f64::consts::FRAC_PI_2);
        // a quarter turn from anterior moves the near side to screen right, which brings
        // the patient's right side (on screen left in the anterior view) to the camera
        assert!(close(c.back(), [-1.0, 0.0, 0.0], 1e-9), "{:?}", c.back());
    }
}
