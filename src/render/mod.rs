//! The 3D view's maths and data, free of wgpu and egui: what the view shows and how a
//! camera sees it. `app::gpu` draws it (`mesh`, `dvr`, `view3d`); `app::view3d` is the
//! egui side (input, labels, buttons); nothing here knows about panels or the GPU.
//!
//! - [`camera`]: orbit camera, standard views in LPS, projection and pick rays;
//! - [`scene`]: surfaces from [`crate::mesh`] packed for the GPU, with tumour measurements;
//! - [`frame`]: what decides a frame's pixels besides the scene ([`FrameDesc`]), and the
//!   view's fixed colours;
//! - [`pick`] and [`distance`]: exact ray–triangle picking and point–surface distances;
//! - [`dvr`]: a CT phase prepared for direct volume rendering (downsampled half floats,
//!   empty-space bricks) and the transfer functions;
//! - [`orientation`]: the orientation cube's projection and hit test.

pub mod camera;
pub mod distance;
pub mod dvr;
pub mod frame;
pub mod orientation;
pub mod pick;
pub mod scene;

pub use camera::{Camera, Ray, StandardView};
pub use dvr::{DvrParams, DvrVolume, TransferPreset};
pub use frame::FrameDesc;
pub use scene::{Hit, Scene, SceneObject, TumourInfo};
