//! Every wgpu object of the viewer lives here (as rerun's re_renderer does), one file per
//! drawable: [`slice`] (the slice pipeline), [`mesh`] (the 3D view's surfaces, off-screen
//! pictures), [`dvr`] (volume rendering), [`volumes`] (3D textures of the phases and
//! masks), [`targets`] (off-screen targets, read-back, the shared sampler), and the egui
//! paint callbacks that draw with them ([`slice_callback`], [`view3d`]). Panels never name
//! a `wgpu::` type: they describe what to draw in a [`SliceViewDesc`] or a
//! [`view3d::View3dCallback`] and add the callback's shape. The maths and data behind the
//! 3D view (camera, scene, transfer functions) are [`crate::render`]'s.
//!
//! Volumes are uploaded once, keyed by [`VolumeKey`]; a new key (new data) means a new
//! upload, the same key reuses the texture. No per-frame CPU copy of slices: the shader
//! samples the plane straight from the 3D texture.

pub mod dvr;
pub mod mesh;
pub mod slice;
pub mod targets;
pub mod view3d;
pub mod volumes;

pub use mesh::{render_image, render_turntable, Drawing, GpuScene, Renderer3d};
pub use slice::{install, install_with};
pub use view3d::{CaptureKind, CaptureRequest};

use std::sync::Arc;

use crate::volume::{CtVolume, Interp, Lps, Mask};

/// Identifies uploaded data: change it whenever the voxels change (e.g. a mask edit).
pub type VolumeKey = u64;

/// A plane on screen: pixel `(u, v)` of the viewport (u right, v down, in *physical*
/// pixels from the rect's top-left corner, pixel centres at +0.5) shows the world point
/// `centre_mm + (u − w/2)·mm_per_px·right + (v − h/2)·mm_per_px·down`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScreenPlane {
    pub centre_mm: Lps,
    /// Unit vector (LPS) of screen right.
    pub right: Lps,
    /// Unit vector (LPS) of screen down.
    pub down: Lps,
    /// Millimetres per physical pixel.
    pub mm_per_px: f64,
}

/// A label mask drawn over the CT in the same pass.
#[derive(Clone)]
pub struct OverlayDesc {
    pub mask: Arc<Mask>,
    pub key: VolumeKey,
    /// 0…1, applied to every visible label.
    pub opacity: f32,
    /// Draw only label boundaries (in screen space) instead of filled regions.
    pub outline: bool,
    /// RGBA (0…1) per label value 0…15; label 0 is never drawn. Values above 15 use 15.
    pub palette: [[f32; 4]; 16],
    /// The key of this mask before its latest edits and the voxel box `[z0, z1, y0, y1,
    /// x0, x1]` they touched: the GPU then rewrites only that box of the old texture.
    pub previous: Option<(VolumeKey, [usize; 6])>,
}

/// How a [`LayerDesc`] combines with the CT under it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerKind {
    /// Both images through the view's window/level, the CT in `ct_rgb` and the layer in
    /// `layer_rgb` (complementary colours: where they agree the sum is grey or white).
    Fusion { ct_rgb: [f32; 3], layer_rgb: [f32; 3] },
    /// Layer values from `min` (transparent) to `max` on a black-red-yellow-white ramp,
    /// blended over the CT by `opacity`.
    Heat { min: f32, max: f32, opacity: f32 },
    /// The layer holds the bits of `register::compare::deformation_grid`; the planes of the
    /// view's two in-plane axes are drawn as lines in `rgb`.
    Grid { rgb: [f32; 3] },
}

/// A second image drawn with the CT in the same pass (registration overlays). Its own
/// geometry, so it need not share the CT's grid.
#[derive(Clone)]
pub struct LayerDesc {
    pub volume: Arc<CtVolume>,
    pub key: VolumeKey,
    pub kind: LayerKind,
}

/// Everything needed to draw one viewport.
#[derive(Clone)]
pub struct SliceViewDesc {
    pub volume: Arc<CtVolume>,
    pub volume_key: VolumeKey,
    pub plane: ScreenPlane,
    pub level_hu: f32,
    pub width_hu: f32,
    pub interp: Interp,
    pub overlay: Option<OverlayDesc>,
    pub layer: Option<LayerDesc>,
}

/// The egui shape that draws `desc` into `rect` (points). Add it with `ui.painter().add(..)`.
/// Draws nothing until [`install`] has run once for the app's render state.
pub fn slice_callback(rect: egui::Rect, desc: SliceViewDesc) -> egui::Shape {
    egui::Shape::Callback(egui_wgpu::Callback::new_paint_callback(rect, slice::SliceCallback::new(rect, desc)))
}

/// How the window's egui renderer is set up (`app::run` passes the same to eframe), so
/// off-screen renders cost what the window costs. Not egui's `PREDICTABLE`: its manual
/// bilinear font sampling (integer modulo per pixel, all wrap modes evaluated) costs
/// lavapipe ~50 ns a pixel, which made every panel fill dominate the frame time.
pub const WINDOW_RENDERER: egui_wgpu::RendererOptions = egui_wgpu::RendererOptions {
    msaa_samples: 1,
    depth_stencil_format: None,
    dithering: false,
    predictable_texture_filtering: false,
};

/// A render state on the default adapter with the slice pipeline installed, for headless
/// rendering (screenshots, benchmarks), set up as the window is. Errs with the reason when
/// there is no adapter (no GPU and no Mesa lavapipe: `apt-get install mesa-vulkan-drivers`).
pub fn headless_render_state() -> Result<egui_wgpu::RenderState, String> {
    headless_render_state_with(WINDOW_RENDERER)
}

/// [`headless_render_state`] with other renderer options (tests that compare pixels use
/// egui's `RendererOptions::PREDICTABLE`).
pub fn headless_render_state_with(options: egui_wgpu::RendererOptions) -> Result<egui_wgpu::RenderState, String> {
    let setup = egui_wgpu::WgpuSetup::CreateNew(egui_wgpu::WgpuSetupCreateNew::without_display_handle());
    let instance = pollster::block_on(setup.new_instance());
    let config = egui_wgpu::WgpuConfiguration { wgpu_setup: setup, ..Default::default() };
    let rs = pollster::block_on(egui_wgpu::RenderState::create(&config, &instance, None, options))
        .map_err(|e| e.to_string())?;
    install_with(&rs, &options);
    Ok(rs)
}
