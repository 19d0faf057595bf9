//! What decides a 3D frame's pixels besides the scene: the camera, size, what is shown,
//! the crosshair's planes and volume rendering ([`FrameDesc`]), and the view's fixed
//! colours. Plain data: `app::gpu::mesh` draws it.

use super::camera::Camera;
use super::dvr::DvrParams;
use crate::volume::Lps;

/// Background of the 3D view (display values).
pub const BACKGROUND: [f64; 3] = [0.07, 0.075, 0.09];

/// Slice-plane colours (axial, coronal, sagittal), as 3D Slicer's red, green and yellow.
pub const PLANE_RGB: [[f32; 3]; 3] = [[0.95, 0.3, 0.3], [0.35, 0.85, 0.35], [0.95, 0.85, 0.25]];

/// Everything that decides a frame's pixels besides the scene itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameDesc {
    pub camera: Camera,
    /// Target size in pixels.
    pub size_px: [u32; 2],
    /// Crosshair (LPS mm) whose axial, coronal and sagittal planes are drawn; `None`: none.
    pub planes_at_mm: Option<Lps>,
    /// 0…1.
    pub liver_opacity: f32,
    pub show_liver: bool,
    pub show_tumours: bool,
    pub show_vessels: bool,
    /// The camera is moving: draw the decimated copies of large objects (and march the
    /// volume at half resolution).
    pub interactive: bool,
    /// Direct volume rendering of the drawing's volume under the surfaces; `None`: off.
    pub dvr: Option<DvrParams>,
}

impl FrameDesc {
    pub fn new(camera: Camera, size_px: [u32; 2]) -> FrameDesc {
        FrameDesc {
            camera,
            size_px,
            planes_at_mm: None,
            liver_opacity: 0.25,
            show_liver: true,
            show_tumours: true,
            show_vessels: true,
            interactive: false,
            dvr: None,
        }
    }
}
