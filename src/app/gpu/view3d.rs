//! The 3D view's egui paint callback ([`View3dCallback`]): in `prepare` it uploads the
//! scene and volume it is handed (kept in [`ViewResources`], dropped after a few hundred
//! frames unused), draws the frame into the view's own target with `super::mesh`, and
//! renders any pictures asked for ([`CaptureRequest`]); `paint` copies the target into
//! egui's pass ([`Blit`]). [`install`] makes the pipelines once per render state.
//!
//! A frame whose scene, camera, size and settings equal the last one's is not drawn again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use egui_wgpu::wgpu;

use super::dvr::GpuDvrVolume;
use super::mesh::{encode_frame, render_image, render_turntable, shader, Drawing, GpuScene, Renderer3d};
use super::targets::Target;
use crate::render::dvr::DvrVolume;
use crate::render::frame::FrameDesc;
use crate::render::scene::Scene;

/// The copy into egui's pass, made for egui's target format.
pub struct Blit {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::RenderPipeline,
}

impl Blit {
    /// For egui's render pass: its target format, sample count and depth attachment.
    pub fn new(
        device: &wgpu::Device,
        target_format: wgpu::TextureFormat,
        msaa_samples: u32,
        depth_stencil_format: Option<wgpu::TextureFormat>,
    ) -> Blit {
        let module = shader(device);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hepaview 3d blit layout"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 2,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            }],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("hepaview 3d blit pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants = [("SRGB", target_format.is_srgb() as u8 as f64)];
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("hepaview 3d blit"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_blit"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_blit"),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            primitive: wgpu::PrimitiveState::default(),
            // a flat picture in egui's pass: neither tests nor writes a depth buffer there
            depth_stencil: depth_stencil_format.map(|format| wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: wgpu::StencilState::default(),
                bias: wgpu::DepthBiasState::default(),
            }),
            multisample: wgpu::MultisampleState { count: msaa_samples.max(1), ..Default::default() },
            multiview_mask: None,
            cache: None,
        });
        Blit { layout, pipeline }
    }
}

/// What a capture request asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CaptureKind {
    /// The current view at `size_px`.
    Snapshot { size_px: [u32; 2] },
    /// `views` pictures of `size_px` around the superior axis in one strip.
    Turntable { views: usize, size_px: [u32; 2] },
}

/// A picture of the 3D view to be rendered off-screen by the next paint callback; the app
/// polls `result`.
pub struct CaptureRequest {
    pub kind: CaptureKind,
    started: AtomicBool,
    pub result: Mutex<Option<Result<image::RgbaImage, String>>>,
}

impl CaptureRequest {
    pub fn new(kind: CaptureKind) -> Arc<CaptureRequest> {
        Arc::new(CaptureRequest { kind, started: AtomicBool::new(false), result: Mutex::new(None) })
    }

    /// The picture once rendered (taken once).
    pub fn take(&self) -> Option<Result<image::RgbaImage, String>> {
        self.result.lock().ok()?.take()
    }
}

/// GPU state of the 3D views in egui's `CallbackResources`.
#[derive(Default)]
pub struct ViewResources {
    scenes: HashMap<u64, (GpuScene, u64)>,
    /// Volumes for direct volume rendering by key, with the request count of last use.
    volumes: HashMap<u64, (GpuDvrVolume, u64)>,
    targets: HashMap<u64, ViewTarget>,
    requests: u64,
}

struct ViewTarget {
    target: Target,
    blit: wgpu::BindGroup,
    /// Scene key and frame last drawn into `target`.
    drawn: Option<(u64, FrameDesc)>,
}

impl ViewResources {
    /// The scene's buffers, uploading them on first use; scenes unused for a few hundred
    /// frames are dropped (a mask edit makes a new scene, and the old one must go).
    fn scene(&mut self, device: &wgpu::Device, scene: &Scene) -> &GpuScene {
        self.requests += 1;
        let now = self.requests;
        self.scenes.retain(|k, (_, used)| *k == scene.key || now - *used < 300);
        let entry = self.scenes.entry(scene.key).or_insert_with(|| (GpuScene::upload(device, scene), now));
        entry.1 = now;
        &entry.0
    }

    /// The volume's texture, uploading it on first use; only the volumes used in the last
    /// few hundred frames are kept (each is up to 32 MB).
    fn volume(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, vol: &Arc<DvrVolume>) {
        let now = self.requests;
        self.volumes.retain(|k, (_, used)| *k == vol.key || now.saturating_sub(*used) < 300);
        let entry =
            self.volumes.entry(vol.key).or_insert_with(|| (GpuDvrVolume::upload(device, queue, Arc::clone(vol)), now));
        entry.1 = now;
    }

    /// How many scenes are uploaded (tests).
    pub fn scene_count(&self) -> usize {
        self.scenes.len()
    }
}

/// Installs the 3D view's pipelines into `render_state` for egui's pass made with
/// `options` (as [`super::install_with`]). Without it the 3D view paints nothing.
pub fn install(render_state: &egui_wgpu::RenderState, options: &egui_wgpu::RendererOptions) {
    let device = &render_state.device;
    let renderer = Renderer3d::new(device);
    let blit = Blit::new(device, render_state.target_format, options.msaa_samples.max(1), options.depth_stencil_format);
    let mut r = render_state.renderer.write();
    r.callback_resources.insert(renderer);
    r.callback_resources.insert(blit);
    r.callback_resources.insert(ViewResources::default());
}

/// One 3D viewport.
pub struct View3dCallback {
    pub rect: egui::Rect,
    /// Tells several 3D views' targets apart.
    pub view_id: u64,
    pub scene: Arc<Scene>,
    /// `size_px` is filled in from the rect.
    pub frame: FrameDesc,
    pub capture: Option<Arc<CaptureRequest>>,
    /// The volume `frame.dvr` names, uploaded on first use.
    pub volume: Option<Arc<DvrVolume>>,
}

/// The egui shape that draws the 3D view into `rect`.
pub fn view3d_callback(cb: View3dCallback) -> egui::Shape {
    egui::Shape::Callback(egui_wgpu::Callback::new_paint_callback(cb.rect, cb))
}

impl egui_wgpu::CallbackTrait for View3dCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let ppp = screen.pixels_per_point;
        let l = (self.rect.min.x * ppp).round();
        let t = (self.rect.min.y * ppp).round();
        let size_px = [
            ((self.rect.max.x * ppp).round() - l).max(1.0) as u32,
            ((self.rect.max.y * ppp).round() - t).max(1.0) as u32,
        ];
        let frame = FrameDesc { size_px, ..self.frame };
        let Some(mut views) = resources.remove::<ViewResources>() else {
            log_missing_install();
            return Vec::new();
        };
        if let (Some(renderer), Some(blit)) = (resources.get::<Renderer3d>(), resources.get::<Blit>()) {
            views.scene(device, &self.scene);
            let vol = self.volume.as_ref().filter(|_| self.frame.dvr.is_some());
            if let Some(v) = vol {
                views.volume(device, queue, v);
            }
            let volume = vol.and_then(|v| views.volumes.get(&v.key)).map(|(g, _)| g);
            let d = Drawing { renderer, gpu: &views.scenes[&self.scene.key].0, scene: &self.scene, volume };
            if let Some(cap) = &self.capture {
                if !cap.started.swap(true, Ordering::SeqCst) {
                    let result = match cap.kind {
                        CaptureKind::Snapshot { size_px } => {
                            render_image(device, queue, &d, &FrameDesc { size_px, interactive: false, ..frame }, 2)
                        }
                        CaptureKind::Turntable { views: n, size_px } => {
                            // each picture shows the whole scene, from the current direction on
                            let mut f = FrameDesc { size_px, interactive: false, ..frame };
                            f.camera.frame_aspect(self.scene.bounds_mm, size_px[0] as f64 / size_px[1].max(1) as f64);
                            render_turntable(device, queue, &d, &f, n, 2)
                        }
                    };
                    if let Ok(mut slot) = cap.result.lock() {
                        *slot = Some(result);
                    }
                }
            }
            let stale = views.targets.get(&self.view_id).is_none_or(|v| v.target.size_px != size_px);
            if stale {
                let target = Target::new(device, size_px);
                let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("hepaview 3d blit bind group"),
                    layout: &blit.layout,
                    entries: &[wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::TextureView(target.color_view()),
                    }],
                });
                views.targets.insert(self.view_id, ViewTarget { target, blit: bind, drawn: None });
            }
            if let Some(v) = views.targets.get_mut(&self.view_id) {
                let now = Some((self.scene.key, frame));
                if v.drawn != now {
                    encode_frame(device, &d, &frame, &v.target, encoder);
                    v.drawn = now;
                }
            }
        } else {
            log_missing_install();
        }
        resources.insert(views);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let (Some(blit), Some(views)) = (resources.get::<Blit>(), resources.get::<ViewResources>()) else { return };
        let Some(v) = views.targets.get(&self.view_id) else { return };
        render_pass.set_pipeline(&blit.pipeline);
        render_pass.set_bind_group(0, &v.blit, &[]);
        render_pass.draw(0..3, 0..1);
    }
}

fn log_missing_install() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        log::warn!(
            "hepaview: the 3D view needs app::gpu::view3d::install(render_state, options) at startup; drawing nothing"
        )
    });
}
