//! Off-screen rendering of the viewer to an image: the same `HepaviewApp::ui` and the same
//! wgpu slice pipeline as the window, drawn into a texture (Mesa lavapipe without a GPU).
//! Used by `hepaview screenshot` and for the README picture.

use super::view::{Layout, Orientation, WindowLevel};
use super::HepaviewApp;
use crate::study::Study;

#[derive(Clone, Debug)]
pub struct ScreenshotOptions {
    /// Logical size in points (pixels at scale 1).
    pub size: [f32; 2],
    pub layout: Layout,
    /// Crosshair position along the slice normal of the axial plane (LPS z, mm); `None`
    /// keeps the study's centre.
    pub z_mm: Option<f64>,
    pub window: Option<WindowLevel>,
    pub pixels_per_point: f32,
}

impl Default for ScreenshotOptions {
    fn default() -> Self {
        ScreenshotOptions {
            size: [1600.0, 900.0],
            layout: Layout::Row,
            z_mm: None,
            window: None,
            pixels_per_point: 1.0,
        }
    }
}

/// Renders `study` as the viewer shows it. Errs when no GPU adapter (nor lavapipe) exists.
pub fn render(study: Study, opts: &ScreenshotOptions) -> Result<image::RgbaImage, String> {
    let rs = super::gpu::headless_render_state()?;
    let mut app = HepaviewApp::new(study);
    app.view.layout = opts.layout;
    if let Some(z) = opts.z_mm {
        app.view.crosshair_mm[2] = z;
    }
    if let Some(wl) = opts.window {
        for p in 0..app.view.window.len() {
            app.view.set_window(p, wl);
        }
    }
    if opts.layout == Layout::Single {
        app.view.single = (app.study.fixed_index(), Orientation::Axial);
    }
    let mut harness = egui_kittest::Harness::builder()
        .with_size(opts.size)
        .with_pixels_per_point(opts.pixels_per_point)
        .with_accessibility_check(false)
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
        .build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), app);
    // a user's screenshot must never fail over a character the font lacks
    harness.ctx.set_missing_glyph_policy(egui::MissingGlyphPolicy::Tofu);
    harness.run();
    harness.render()
}
