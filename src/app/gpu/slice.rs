//! The slice pipeline: draws one [`SliceViewDesc`] into its viewport straight from the 3D
//! textures of [`super::volumes`]: the CT with window/level (and any registration layer) in
//! one draw, the label overlay in a second, alpha-blended draw limited to where labels lie.
//!
//! The pipeline ([`SliceRenderer`]) is made once by [`install`], because egui_wgpu tells
//! the callbacks neither the target format nor anything else about the render pass before
//! `paint`. Each callback (one per viewport) builds its own uniform buffer and bind group in
//! `prepare` and keeps them until `paint`, since several viewports share a frame and a
//! shared buffer would hold only the last one's plane.

use std::sync::Mutex;

use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt as _;

use super::targets::uniform_entry;
use super::volumes::{TexelMap, VolumeCache};
use super::{LayerKind, ScreenPlane, SliceViewDesc};
use crate::volume::region::VoxelBox;
use crate::volume::{dot, sub, Geometry, Interp};

const SHADER: &str = include_str!("../../../shaders/slice.wgsl");

/// Uniforms of one viewport. Keep in sync with `Uniforms` in shaders/slice.wgsl.
///
/// Planes are given in texel space: the CPU applies each texture's world→texel affine to
/// the screen plane in f64, so f32 only ever holds texel indices (see the shader's header).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SliceUniforms {
    /// Viewport origin `(x, y)` and size `(w, h)` in framebuffer pixels.
    pub viewport_px: [f32; 4],
    pub ct_centre: [f32; 4],
    pub ct_right: [f32; 4],
    pub ct_down: [f32; 4],
    /// Texture size `(x, y, z)`; `w` = 1 when a CT is bound.
    pub ct_dims: [f32; 4],
    pub mask_centre: [f32; 4],
    pub mask_right: [f32; 4],
    pub mask_down: [f32; 4],
    /// Texture size `(x, y, z)`; `w` = 1 when the overlay is drawn.
    pub mask_dims: [f32; 4],
    /// Level (HU), width (HU), overlay opacity, unused.
    pub window: [f32; 4],
    /// Interp (0 nearest, 1 linear), outline, sRGB target, unused.
    pub flags: [u32; 4],
    pub palette: [[f32; 4]; 16],
    pub layer_centre: [f32; 4],
    pub layer_right: [f32; 4],
    pub layer_down: [f32; 4],
    /// Texture size `(x, y, z)`; `w` = 1 when the layer is drawn.
    pub layer_dims: [f32; 4],
    /// Fusion: CT colour; heat: min, max, opacity; grid: line colour.
    pub layer_a: [f32; 4],
    /// Fusion: layer colour.
    pub layer_b: [f32; 4],
    /// Mode (1 fusion, 2 heat, 3 grid), grid bits of the in-plane axes, unused ×2.
    pub layer_mode: [u32; 4],
}

/// The pipeline and its fixed resources, kept in `CallbackResources`.
pub struct SliceRenderer {
    /// One per drawing mode: the CT draw indexed by [`variant`] (linear ×1, layer ×2), then
    /// the overlay draw at [`OVERLAY_PIPELINES`] + outline. Those with a layer are made on
    /// first use: most sessions never need them, and each costs lavapipe a shader compile
    /// at startup.
    pipelines: Vec<Option<wgpu::RenderPipeline>>,
    layout: wgpu::BindGroupLayout,
    shader: wgpu::ShaderModule,
    pipeline_layout: wgpu::PipelineLayout,
    target_format: wgpu::TextureFormat,
    msaa_samples: u32,
    depth_stencil_format: Option<wgpu::TextureFormat>,
    /// Bound when there is no overlay (or no CT): a bind group needs every slot filled.
    empty_ct: wgpu::TextureView,
    empty_mask: wgpu::TextureView,
    /// Filters the CT and layer textures (`R16Float`).
    linear: wgpu::Sampler,
    /// Fetches single texels (nearest CT, labels).
    nearest: wgpu::Sampler,
    srgb_target: bool,
}

/// Makes the slice pipeline for `render_state`'s target format and stores it (with an empty
/// [`VolumeCache`]) in the renderer's callback resources. Call once at startup, before the
/// first frame that shows a slice (eframe: in the app's `new`, from
/// `cc.wgpu_render_state`). Slice viewports paint nothing until this has run.
///
/// Assumes egui's default render pass: no MSAA, no depth buffer (eframe's `NativeOptions`
/// defaults). Otherwise use [`install_with`].
pub fn install(render_state: &egui_wgpu::RenderState) {
    install_with(render_state, &egui_wgpu::RendererOptions::default());
}

/// [`install`] for a render pass made with `options` (eframe: `multisampling` and
/// `depth_buffer` of `NativeOptions`): a pipeline must match the pass's sample count and
/// depth attachment, and egui_wgpu does not tell callbacks what they are.
pub fn install_with(render_state: &egui_wgpu::RenderState, options: &egui_wgpu::RendererOptions) {
    let renderer = SliceRenderer::new(
        &render_state.device,
        render_state.target_format,
        options.msaa_samples.max(1),
        options.depth_stencil_format,
    );
    let mut egui_renderer = render_state.renderer.write();
    let resources = &mut egui_renderer.callback_resources;
    resources.insert(renderer);
    if resources.get::<VolumeCache>().is_none() {
        resources.insert(VolumeCache::default());
    }
}

impl SliceRenderer {
    pub fn new(
        device: &wgpu::Device,
        target_format: wgpu::TextureFormat,
        msaa_samples: u32,
        depth_stencil_format: Option<wgpu::TextureFormat>,
    ) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("hepaview slice.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture_entry = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D3,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hepaview slice bind group layout"),
            entries: &[
                uniform_entry::<SliceUniforms>(0, wgpu::ShaderStages::FRAGMENT),
                texture_entry(1, wgpu::TextureSampleType::Float { filterable: true }),
                texture_entry(2, wgpu::TextureSampleType::Float { filterable: true }),
                texture_entry(3, wgpu::TextureSampleType::Float { filterable: true }),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 5,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("hepaview slice pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let empty = |format, label| {
            device
                .create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size: wgpu::Extent3d { width: 1, height: 1, depth_or_array_layers: 1 },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D3,
                    format,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING,
                    view_formats: &[],
                })
                .create_view(&wgpu::TextureViewDescriptor::default())
        };
        let mut renderer = SliceRenderer {
            pipelines: (0..OVERLAY_PIPELINES + 2).map(|_| None).collect(),
            layout,
            shader,
            pipeline_layout,
            target_format,
            msaa_samples,
            depth_stencil_format,
            empty_ct: empty(wgpu::TextureFormat::R16Float, "hepaview empty ct"),
            // trilinear within a level; the shader clamps positions to texel centres first,
            // so the edge mode never decides a value
            linear: super::targets::clamped_sampler(device, "hepaview slice trilinear", wgpu::FilterMode::Linear),
            // the shader rounds positions to texel centres itself (halves up, as the CPU
            // reslicer does), so this only fetches
            nearest: super::targets::clamped_sampler(device, "hepaview slice nearest", wgpu::FilterMode::Nearest),
            empty_mask: empty(wgpu::TextureFormat::R8Unorm, "hepaview empty mask"),
            srgb_target: target_format.is_srgb(),
        };
        for v in [0, 1, OVERLAY_PIPELINES, OVERLAY_PIPELINES + 1] {
            renderer.ensure_pipeline(device, v);
        }
        renderer
    }

    /// Makes pipeline `v` (see [`variant`] and [`overlay_variant`]) unless it exists.
    fn ensure_pipeline(&mut self, device: &wgpu::Device, v: usize) {
        if self.pipelines.get(v).is_none_or(|p| p.is_some()) {
            return;
        }
        let overlay = v >= OVERLAY_PIPELINES;
        let srgb = self.target_format.is_srgb() as u8 as f64;
        let constants: Vec<(&str, f64)> = if overlay {
            vec![("OUTLINE", (v - OVERLAY_PIPELINES) as f64), ("SRGB", srgb)]
        } else {
            vec![("LINEAR", (v & 1) as f64), ("LAYER", ((v >> 1) & 1) as f64), ("SRGB", srgb)]
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("hepaview slice pipeline"),
            layout: Some(&self.pipeline_layout),
            vertex: wgpu::VertexState {
                module: &self.shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &self.shader,
                entry_point: Some(if overlay { "fs_overlay" } else { "fs_main" }),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
                targets: &[Some(wgpu::ColorTargetState {
                    format: self.target_format,
                    blend: overlay.then_some(wgpu::BlendState::ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            primitive: wgpu::PrimitiveState::default(),
            // Slices are flat 2D views: present in a depth pass, they neither test nor write.
            depth_stencil: self.depth_stencil_format.map(|format| wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: wgpu::StencilState::default(),
                bias: wgpu::DepthBiasState::default(),
            }),
            multisample: wgpu::MultisampleState { count: self.msaa_samples, ..Default::default() },
            multiview_mask: None,
            cache: None,
        });
        self.pipelines[v] = Some(pipeline);
    }
}

/// Draws one viewport; made by [`super::slice_callback`].
pub struct SliceCallback {
    /// Where to draw, in points (the same rect egui hands to `paint`).
    pub rect: egui::Rect,
    pub desc: SliceViewDesc,
    /// Made in `prepare`, used in `paint`: the only hand-over egui_wgpu offers per callback.
    /// With it, the pipelines the uniforms were made for: the CT draw's, and the overlay
    /// draw's with the framebuffer pixels it may touch.
    bind_group: Mutex<Option<PreparedBindGroup>>,
}

/// The bind group, the CT pipeline's index, and the overlay pipeline's index with the
/// framebuffer pixels it may touch.
type PreparedBindGroup = (wgpu::BindGroup, usize, Option<(usize, PxRect)>);

impl SliceCallback {
    pub fn new(rect: egui::Rect, desc: SliceViewDesc) -> Self {
        SliceCallback { rect, desc, bind_group: Mutex::new(None) }
    }
}

/// The viewport in physical pixels, rounded as egui rounds it but not clamped to the
/// screen: a view scrolled partly off screen must keep its scale and centre.
pub fn viewport_px(rect: egui::Rect, pixels_per_point: f32) -> [f32; 4] {
    let l = (rect.min.x * pixels_per_point).round();
    let t = (rect.min.y * pixels_per_point).round();
    let r = (rect.max.x * pixels_per_point).round();
    let b = (rect.max.y * pixels_per_point).round();
    [l, t, r - l, b - t]
}

/// Texel-space plane `(centre, right, down)` of `tex` for the screen plane of `desc`.
fn plane_in_texels(tex: &TexelMap, desc: &SliceViewDesc) -> [[f32; 4]; 3] {
    let p = &desc.plane;
    let right = p.right.map(|v| v * p.mm_per_px);
    let down = p.down.map(|v| v * p.mm_per_px);
    let f = |v: [f64; 3]| [v[0] as f32, v[1] as f32, v[2] as f32, 0.0];
    [f(tex.texel_of(p.centre_mm)), f(tex.texel_step_of(right)), f(tex.texel_step_of(down))]
}

fn dims4(tex: &TexelMap) -> [f32; 4] {
    [tex.dims[0] as f32, tex.dims[1] as f32, tex.dims[2] as f32, 1.0]
}

/// Framebuffer pixels `[x0, y0, x1, y1]`, end exclusive.
pub type PxRect = [i64; 4];

/// The framebuffer pixels of a viewport (`viewport`, px) showing `plane` where labels of
/// `labelled` (a voxel box of a mask on `geometry`, drawn from every `step`-th voxel) can
/// appear: the projection of the box, grown by each texel's half extent and a pixel, onto
/// the screen. The plane's cut through the box lies inside that projection, so nothing
/// outside it can show a label.
pub fn overlay_rect_px(
    plane: &ScreenPlane,
    viewport: [f32; 4],
    geometry: &Geometry,
    labelled: &VoxelBox,
    step: [u32; 3],
) -> PxRect {
    // (x, y, z) index bounds of the box, out to the edges of its outer texels
    let half = step.map(|s| 0.5 * s as f64);
    let lo = [labelled.lo[2] as f64 - half[0], labelled.lo[1] as f64 - half[1], labelled.lo[0] as f64 - half[2]];
    let hi = [
        labelled.hi[2] as f64 - 1.0 + half[0],
        labelled.hi[1] as f64 - 1.0 + half[1],
        labelled.hi[0] as f64 - 1.0 + half[2],
    ];
    let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for c in 0..8 {
        let ijk = [0, 1, 2].map(|a| if c >> a & 1 == 0 { lo[a] } else { hi[a] });
        let rel = sub(geometry.index_to_world(ijk), plane.centre_mm);
        // continuous framebuffer position: pixel x is centred at x + 0.5 (see the shader)
        let x = viewport[0] as f64 + 0.5 * viewport[2] as f64 + dot(rel, plane.right) / plane.mm_per_px;
        let y = viewport[1] as f64 + 0.5 * viewport[3] as f64 + dot(rel, plane.down) / plane.mm_per_px;
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let to_px = |v: f64| v.clamp(-1e9, 1e9) as i64;
    [to_px(x0.floor()) - 1, to_px(y0.floor()) - 1, to_px(x1.ceil()) + 1, to_px(y1.ceil()) + 1]
}

/// `a ∩ b`, or `None` when empty.
fn intersect(a: PxRect, b: PxRect) -> Option<PxRect> {
    let r = [a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])];
    (r[0] < r[2] && r[1] < r[3]).then_some(r)
}

/// Where the overlay draw's pipelines start in [`SliceRenderer`]'s list.
const OVERLAY_PIPELINES: usize = 4;

/// Index of the CT draw's pipeline for these uniforms: bit 0 linear, bit 1 layer.
pub fn variant(u: &SliceUniforms) -> usize {
    let layer = u.layer_dims[3] > 0.5;
    (u.flags[0] != 0) as usize | (layer as usize) << 1
}

/// Index of the overlay draw's pipeline (filled or outline), or none without an overlay.
pub fn overlay_variant(u: &SliceUniforms) -> Option<usize> {
    (u.mask_dims[3] > 0.5).then_some(OVERLAY_PIPELINES + (u.flags[1] != 0) as usize)
}

/// Grid bits ([`crate::register::compare::GRID_X`] …) of the two LPS axes closest to the
/// screen's right and down: the planes that cut the view along lines.
pub fn in_plane_grid_bits(right: [f64; 3], down: [f64; 3]) -> u32 {
    let axis = |v: [f64; 3]| (0..3).max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs())).unwrap_or(0);
    (1u32 << axis(right)) | (1u32 << axis(down))
}

/// Uniforms for `desc` drawn at `viewport` (px), given the textures found for it.
pub fn uniforms(
    desc: &SliceViewDesc,
    viewport: [f32; 4],
    ct: Option<&TexelMap>,
    mask: Option<&TexelMap>,
    layer: Option<&TexelMap>,
    srgb_target: bool,
) -> SliceUniforms {
    let mut u = SliceUniforms { viewport_px: viewport, ..Default::default() };
    if let Some(ct) = ct {
        [u.ct_centre, u.ct_right, u.ct_down] = plane_in_texels(ct, desc);
        u.ct_dims = dims4(ct);
    }
    if let (Some(mask), Some(ov)) = (mask, &desc.overlay) {
        [u.mask_centre, u.mask_right, u.mask_down] = plane_in_texels(mask, desc);
        u.mask_dims = dims4(mask);
        u.window[2] = ov.opacity.clamp(0.0, 1.0);
        u.flags[1] = ov.outline as u32;
        u.palette = ov.palette;
    }
    if let (Some(tex), Some(l)) = (layer, &desc.layer) {
        [u.layer_centre, u.layer_right, u.layer_down] = plane_in_texels(tex, desc);
        u.layer_dims = dims4(tex);
        let rgb = |c: [f32; 3]| [c[0], c[1], c[2], 1.0];
        match l.kind {
            LayerKind::Fusion { ct_rgb, layer_rgb } => {
                u.layer_mode[0] = 1;
                u.layer_a = rgb(ct_rgb);
                u.layer_b = rgb(layer_rgb);
            }
            LayerKind::Heat { min, max, opacity } => {
                u.layer_mode[0] = 2;
                u.layer_a = [min, max, opacity.clamp(0.0, 1.0), 0.0];
            }
            LayerKind::Grid { rgb: c } => {
                u.layer_mode[0] = 3;
                u.layer_mode[1] = in_plane_grid_bits(desc.plane.right, desc.plane.down);
                u.layer_a = rgb(c);
            }
        }
    }
    u.window[0] = desc.level_hu;
    u.window[1] = desc.width_hu;
    u.flags[0] = match desc.interp {
        Interp::Nearest => 0,
        Interp::Linear => 1,
    };
    u.flags[2] = srgb_target as u32;
    u
}

impl egui_wgpu::CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let desc = &self.desc;
        let (ct, mask, layer, labelled) = {
            if resources.get::<VolumeCache>().is_none() {
                resources.insert(VolumeCache::default());
            }
            let Some(cache) = resources.get_mut::<VolumeCache>() else {
                return Vec::new();
            };
            let ct = cache.get_or_upload(device, queue, desc.volume_key, &desc.volume).map(|t| (t.view.clone(), t.map));
            let mask = desc
                .overlay
                .as_ref()
                .and_then(|ov| cache.get_or_update_mask(device, queue, ov.key, &ov.mask, ov.previous))
                .map(|t| (t.view.clone(), t.map, t.labelled));
            let labelled = mask.as_ref().and_then(|m| m.2);
            let mask = mask.map(|(v, m, _)| (v, m));
            let layer = desc
                .layer
                .as_ref()
                .and_then(|l| cache.get_or_upload(device, queue, l.key, &l.volume))
                .map(|t| (t.view.clone(), t.map));
            (ct, mask, layer, labelled)
        };
        let Some(renderer) = resources.get_mut::<SliceRenderer>() else {
            log_missing_install();
            return Vec::new();
        };
        let viewport = viewport_px(self.rect, screen.pixels_per_point);
        let u = uniforms(
            desc,
            viewport,
            ct.as_ref().map(|(_, m)| m),
            mask.as_ref().map(|(_, m)| m),
            layer.as_ref().map(|(_, m)| m),
            renderer.srgb_target,
        );
        renderer.ensure_pipeline(device, variant(&u));
        // no labels, no overlay draw
        let overlay = overlay_variant(&u).zip(labelled.zip(desc.overlay.as_ref())).map(|(v, (b, ov))| {
            let step = mask.as_ref().map_or([1; 3], |(_, m)| m.step);
            (v, overlay_rect_px(&desc.plane, viewport, &ov.mask.geometry, &b, step))
        });
        if let Some((v, _)) = overlay {
            renderer.ensure_pipeline(device, v);
        }

        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("hepaview slice uniforms"),
            contents: bytemuck::bytes_of(&u),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let ct_view = ct.as_ref().map_or(&renderer.empty_ct, |(v, _)| v);
        let mask_view = mask.as_ref().map_or(&renderer.empty_mask, |(v, _)| v);
        let layer_view = layer.as_ref().map_or(&renderer.empty_ct, |(v, _)| v);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("hepaview slice bind group"),
            layout: &renderer.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(ct_view) },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(mask_view) },
                wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(layer_view) },
                wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::Sampler(&renderer.linear) },
                wgpu::BindGroupEntry { binding: 5, resource: wgpu::BindingResource::Sampler(&renderer.nearest) },
            ],
        });
        if let Ok(mut slot) = self.bind_group.lock() {
            *slot = Some((bind_group, variant(&u), overlay));
        }
        Vec::new()
    }

    fn paint(
        &self,
        info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(renderer) = resources.get::<SliceRenderer>() else {
            return;
        };
        let Ok(slot) = self.bind_group.lock() else {
            return;
        };
        let Some((bind_group, variant, overlay)) = slot.as_ref() else {
            return;
        };
        let Some(Some(pipeline)) = renderer.pipelines.get(*variant) else {
            return;
        };
        // egui has already set the viewport to our rect and the scissor to the clip rect.
        render_pass.set_pipeline(pipeline);
        render_pass.set_bind_group(0, bind_group, &[]);
        render_pass.draw(0..3, 0..1);
        let Some((v, labels_px)) = overlay else {
            return;
        };
        let Some(Some(pipeline)) = renderer.pipelines.get(*v) else {
            return;
        };
        let clip = info.clip_rect_in_pixels();
        let clip_px =
            [clip.left_px, clip.top_px, clip.left_px + clip.width_px, clip.top_px + clip.height_px].map(i64::from);
        if let Some(r) = intersect(*labels_px, clip_px) {
            // pixels within the clip rect, which lies within the framebuffer
            render_pass.set_scissor_rect(r[0] as u32, r[1] as u32, (r[2] - r[0]) as u32, (r[3] - r[1]) as u32);
            render_pass.set_pipeline(pipeline);
            render_pass.draw(0..3, 0..1);
            render_pass.set_scissor_rect(
                clip_px[0] as u32,
                clip_px[1] as u32,
                clip.width_px as u32,
                clip.height_px as u32,
            );
        }
    }
}

fn log_missing_install() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        log::warn!("hepaview: slice views need app::gpu::install(render_state) at startup; drawing nothing");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axial view at 1 mm per pixel of a 1 mm grid: the overlay's rectangle is the
    /// labelled columns and rows, out to the voxels' edges, plus a pixel; clipping keeps
    /// what overlaps and drops what does not.
    #[test]
    fn overlay_rect_is_the_labelled_box_on_screen() {
        let g = Geometry::axis_aligned([10, 40, 40], [2.0, 1.0, 1.0], [0.0; 3]);
        // a 40 × 40 viewport at (100, 50) px centred on world (19.5, 19.5): pixel (x, y)
        // shows voxel (x − 100, y − 50)
        let plane =
            ScreenPlane { centre_mm: [19.5, 19.5, 4.0], right: [1.0, 0.0, 0.0], down: [0.0, 1.0, 0.0], mm_per_px: 1.0 };
        // voxels x 5..9, y 10..12 (on slices 2..4): pixels x 105..109, y 60..62
        let b = VoxelBox { lo: [2, 10, 5], hi: [4, 12, 9] };
        let r = overlay_rect_px(&plane, [100.0, 50.0, 40.0, 40.0], &g, &b, [1; 3]);
        assert_eq!(r, [104, 59, 110, 63]);
        // a texture of every 2nd voxel shows each texel 2 voxels wide: half a texel more
        assert_eq!(overlay_rect_px(&plane, [100.0, 50.0, 40.0, 40.0], &g, &b, [2; 3]), [103, 58, 111, 64]);
        assert_eq!(intersect(r, [0, 0, 105, 60]), Some([104, 59, 105, 60]));
        assert_eq!(intersect(r, [110, 0, 200, 200]), None);
    }
}
