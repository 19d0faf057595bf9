//! The orientation cube of the 3D view as plain maths: a unit cube whose faces name the
//! patient's sides (LPS: +x Left, +y Posterior, +z Superior), turned with the camera and
//! projected orthographically into a small square of the viewport. Faces turned away are
//! culled; the rest come back far to near (painter's order). A click on a face asks for the
//! standard view from that side. `app::view3d` paints it with egui's painter.

use super::camera::{Camera, StandardView};
use crate::volume::{dot, Lps};

/// One face seen by the camera.
#[derive(Clone, Debug, PartialEq)]
pub struct CubeFace {
    /// The view from this side (its letter is the face's letter).
    pub view: StandardView,
    /// Corners on screen, offsets from the cube's centre in the same unit as `half_size`
    /// (x right, y down), in order around the face.
    pub corners: [[f64; 2]; 4],
    /// The face's centre on screen (same frame).
    pub centre: [f64; 2],
    /// How squarely the face looks at the viewer: 1 face-on, towards 0 edge-on.
    pub facing: f64,
}

/// The outward normal of the face on `view`'s side: the camera of that view sits there.
pub fn face_normal(view: StandardView) -> Lps {
    match view {
        StandardView::Anterior => [0.0, -1.0, 0.0],
        StandardView::Posterior => [0.0, 1.0, 0.0],
        StandardView::Left => [1.0, 0.0, 0.0],
        StandardView::Right => [-1.0, 0.0, 0.0],
        StandardView::Superior => [0.0, 0.0, 1.0],
        StandardView::Inferior => [0.0, 0.0, -1.0],
    }
}

/// Faces of a cube of half side `half_size` (screen units) facing `camera`, far to near.
pub fn cube_faces(camera: &Camera, half_size: f64) -> Vec<CubeFace> {
    let back = camera.back();
    // a corner `p` of the unit cube on screen: orthographic along the view axis
    let screen = |p: Lps| [dot(p, camera.right) * half_size, -dot(p, camera.up) * half_size];
    let mut faces: Vec<(f64, CubeFace)> = StandardView::ALL
        .iter()
        .filter_map(|&view| {
            let n = face_normal(view);
            let facing = dot(n, back);
            // culled: turned away, or too close to edge-on to click
            if facing <= 1e-3 {
                return None;
            }
            // two unit axes across the face
            let axis = n.iter().position(|c| c.abs() > 0.5).unwrap_or(0);
            let (a, b) = ((axis + 1) % 3, (axis + 2) % 3);
            let corner = |s: f64, t: f64| {
                let mut p = n;
                p[a] = s;
                p[b] = t;
                screen(p)
            };
            let corners = [corner(-1.0, -1.0), corner(1.0, -1.0), corner(1.0, 1.0), corner(-1.0, 1.0)];
            Some((facing, CubeFace { view, corners, centre: screen(n), facing }))
        })
        .collect();
    // painter's order: the face centre's depth towards the viewer is `facing` itself
    faces.sort_by(|x, y| x.0.total_cmp(&y.0));
    faces.into_iter().map(|(_, f)| f).collect()
}

/// The standard view whose face is under `p` (offset from the cube's centre, as the
/// corners), the nearest face first.
pub fn face_at(faces: &[CubeFace], p: [f64; 2]) -> Option<StandardView> {
    faces.iter().rev().find(|f| inside(&f.corners, p)).map(|f| f.view)
}

/// Whether `p` lies inside the convex quadrilateral `q` (either winding).
fn inside(q: &[[f64; 2]; 4], p: [f64; 2]) -> bool {
    let mut sign = 0.0;
    for i in 0..4 {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let c = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
        if c.abs() < 1e-12 {
            continue;
        }
        if sign == 0.0 {
            sign = c.signum();
        } else if c.signum() != sign {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(v: StandardView) -> Camera {
        let mut c = Camera::default();
        c.set_view(v);
        c
    }

    fn letters(faces: &[CubeFace]) -> Vec<&'static str> {
        faces.iter().map(|f| f.view.letter()).collect()
    }

    #[test]
    fn each_standard_view_sees_its_own_face_head_on() {
        for v in StandardView::ALL {
            let faces = cube_faces(&cam(v), 20.0);
            assert_eq!(letters(&faces), vec![v.letter()], "{v:?}");
            let f = &faces[0];
            assert!((f.facing - 1.0).abs() < 1e-12);
            assert!(f.centre[0].abs() < 1e-9 && f.centre[1].abs() < 1e-9);
            // the face fills the square
            assert!(f.corners.iter().all(|c| (c[0].abs() - 20.0).abs() < 1e-9 && (c[1].abs() - 20.0).abs() < 1e-9));
            assert_eq!(face_at(&faces, [3.0, -5.0]), Some(v));
            assert_eq!(face_at(&faces, [25.0, 0.0]), None);
        }
    }

    #[test]
    fn from_the_front_the_patients_left_is_on_screen_right() {
        // anterior view turned a little: A in front, and the L face beside it on screen
        // right (the patient faces the viewer, so the patient's left is the viewer's right)
        let mut c = cam(StandardView::Anterior);
        c.orbit(-20.0, 15.0);
        let faces = cube_faces(&c, 20.0);
        let near = faces.last().unwrap();
        assert_eq!(near.view, StandardView::Anterior, "{:?}", letters(&faces));
        let l = faces.iter().find(|f| f.view == StandardView::Left).expect("L face seen");
        assert!(l.centre[0] > 10.0, "L at x = {}", l.centre[0]);
        assert!(!faces.iter().any(|f| f.view == StandardView::Right || f.view == StandardView::Posterior));
        // S is up (negative y), tilted into view by the vertical orbit
        let s = faces.iter().find(|f| f.view == StandardView::Superior).expect("S face seen");
        assert!(s.centre[1] < -10.0, "S at y = {}", s.centre[1]);
        // from behind, the L face is on screen left
        let mut p = cam(StandardView::Posterior);
        p.orbit(20.0, 0.0);
        let faces = cube_faces(&p, 20.0);
        let l = faces.iter().find(|f| f.view == StandardView::Left).expect("L face seen from behind");
        assert!(l.centre[0] < -10.0, "L at x = {}", l.centre[0]);
    }

    #[test]
    fn at_most_three_faces_far_to_near_and_clicks_pick_the_face_shown() {
        let mut c = cam(StandardView::Anterior);
        c.orbit(40.0, -30.0);
        let faces = cube_faces(&c, 30.0);
        assert_eq!(faces.len(), 3, "{:?}", letters(&faces));
        assert!(faces.windows(2).all(|w| w[0].facing <= w[1].facing), "painter's order");
        // each face's centre picks that face (convex cube: visible faces do not overlap)
        for f in &faces {
            assert_eq!(face_at(&faces, f.centre), Some(f.view));
        }
    }
}
