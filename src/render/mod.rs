//! The 3D view of a study's label mask: liver (see-through), tumours and vessels as lit
//! surfaces, the crosshair's slice planes, picking, snapshots and turntable strips.
//!
//! - [`camera`]: orbit camera, standard views in LPS, projection and pick rays (pure maths);
//! - [`scene`]: surfaces from [`crate::mesh`] packed for the GPU, with tumour measurements;
//! - [`pick`] and [`distance`]: exact ray–triangle picking and point–surface distances;
//! - [`gpu`]: wgpu pipelines (`shaders/mesh.wgsl`), off-screen rendering and read-back, and
//!   the egui paint callback;
//! - [`dvr`]: direct volume rendering of a CT phase (`shaders/dvr.wgsl`), composited with
//!   the surfaces;
//! - [`orientation`]: the orientation cube's projection and hit test (pure maths).
//!
//! `app::view3d` is the egui side (input, labels, buttons); nothing here knows about panels.

pub mod camera;
pub mod distance;
pub mod dvr;
pub mod gpu;
pub mod orientation;
pub mod pick;
pub mod scene;

pub use camera::{Camera, Ray, StandardView};
pub use dvr::{DvrParams, DvrVolume, TransferPreset};
pub use gpu::{
    install, render_image, render_turntable, CaptureKind, CaptureRequest, Drawing, FrameDesc, GpuScene, Renderer3d,
};
pub use scene::{Hit, Scene, SceneObject, TumourInfo};
