//! The wgpu side of the 3D view.
//!
//! egui's render pass has no depth buffer, and the liver's transparency needs a pass
//! order of its own, so the scene is drawn off-screen: [`encode_frame`] renders into a
//! colour (`Rgba8Unorm`, display values) + depth (`Depth32Float`) target of the
//! viewport's size, inside the paint callback's `prepare`; `paint` then copies that target
//! into egui's pass (`fs_blit`). The same [`encode_frame`] serves snapshots and turntable
//! strips ([`render_image`], [`render_turntable`]), read back from the target.
//!
//! Transparency: one closed surface (the liver) is see-through, everything else opaque.
//! Passes: opaque tumours and vessels with depth writes; the liver's back faces (the far
//! wall, seen through the near one), then the translucent slice-plane fills, then the
//! liver's front faces, all depth-tested against the opaque surfaces without writing;
//! plane outlines last. Tumours are therefore seen through the liver from any side, and
//! the liver in front of a tumour tints it. Where the liver folds so that several of its
//! own back faces overlap they blend in arbitrary order; they share one colour, so this
//! shows only as slight shading differences.
//!
//! GPU buffers are uploaded once per scene (keyed by [`Scene::key`]); a frame whose
//! camera, size and settings equal the last one's is not drawn again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt as _;

use super::camera::{mat_mul, to_gpu, translation, Camera};

/// A sampler that clamps to the edge on every axis and filters with `filter` within one
/// mip level: what the slice and volume shaders sample their 3D textures with.
pub fn clamped_sampler(device: &wgpu::Device, label: &str, filter: wgpu::FilterMode) -> wgpu::Sampler {
    device.create_sampler(&wgpu::SamplerDescriptor {
        label: Some(label),
        address_mode_u: wgpu::AddressMode::ClampToEdge,
        address_mode_v: wgpu::AddressMode::ClampToEdge,
        address_mode_w: wgpu::AddressMode::ClampToEdge,
        mag_filter: filter,
        min_filter: filter,
        ..Default::default()
    })
}
use super::dvr::{DvrParams, DvrRenderer, DvrVolume, GpuDvrVolume};
use super::scene::Scene;
use crate::mesh::ObjectKind;
use crate::volume::Lps;

const SHADER: &str = include_str!("../../shaders/mesh.wgsl");

/// Off-screen colour format: display values, read back as they are for PNGs.
pub const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
pub const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

/// Background of the 3D view (display values).
pub const BACKGROUND: [f64; 3] = [0.07, 0.075, 0.09];

/// Slice-plane colours (axial, coronal, sagittal), as 3D Slicer's red, green and yellow.
pub const PLANE_RGB: [[f32; 3]; 3] = [[0.95, 0.3, 0.3], [0.35, 0.85, 0.35], [0.95, 0.85, 0.25]];

/// Uniforms of one frame. Keep in sync with `Frame` in shaders/mesh.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FrameUniforms {
    pub view_proj: [[f32; 4]; 4],
    pub eye: [f32; 4],
    /// Liver opacity, ambient, diffuse, specular.
    pub params: [f32; 4],
}

/// A vertex of the plane fills and outlines.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct FlatVertex {
    position: [f32; 3],
    colour: [f32; 4],
}

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

/// Pipelines and layouts, made once per device.
pub struct Renderer3d {
    layout: wgpu::BindGroupLayout,
    opaque: wgpu::RenderPipeline,
    liver_back: wgpu::RenderPipeline,
    liver_front: wgpu::RenderPipeline,
    fills: wgpu::RenderPipeline,
    lines: wgpu::RenderPipeline,
    /// Direct volume rendering (`shaders/dvr.wgsl`).
    pub dvr: DvrRenderer,
}

/// The copy into egui's pass, made for egui's target format.
pub struct Blit {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::RenderPipeline,
}

/// One scene's buffers on the GPU.
pub struct GpuScene {
    pub key: u64,
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    objects: wgpu::Buffer,
}

/// An off-screen colour + depth target.
pub struct Target {
    pub color: wgpu::Texture,
    color_view: wgpu::TextureView,
    depth_view: wgpu::TextureView,
    pub size_px: [u32; 2],
}

impl Target {
    pub fn new(device: &wgpu::Device, size_px: [u32; 2]) -> Target {
        let size = wgpu::Extent3d { width: size_px[0].max(1), height: size_px[1].max(1), depth_or_array_layers: 1 };
        let make = |format, usage, label| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let color = make(
            COLOR_FORMAT,
            wgpu::TextureUsages::RENDER_ATTACHMENT
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            "hepaview 3d colour",
        );
        // read by the volume rendering's rays, which stop at the opaque surfaces
        let depth = make(
            DEPTH_FORMAT,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
            "hepaview 3d depth",
        );
        Target {
            color_view: color.create_view(&wgpu::TextureViewDescriptor::default()),
            depth_view: depth.create_view(&wgpu::TextureViewDescriptor::default()),
            color,
            size_px: [size.width, size.height],
        }
    }

    pub fn depth_view(&self) -> &wgpu::TextureView {
        &self.depth_view
    }
}

fn shader(device: &wgpu::Device) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("hepaview mesh.wgsl"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    })
}

impl Renderer3d {
    pub fn new(device: &wgpu::Device) -> Renderer3d {
        let module = shader(device);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hepaview 3d bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<FrameUniforms>() as u64),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::VERTEX,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("hepaview 3d pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let mesh_attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3];
        let flat_attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x4];
        let alpha_blend = Some(wgpu::BlendState::ALPHA_BLENDING);
        struct Spec<'a> {
            label: &'a str,
            vs: &'a str,
            fs: &'a str,
            flat: bool,
            topology: wgpu::PrimitiveTopology,
            cull: Option<wgpu::Face>,
            depth_write: bool,
            compare: wgpu::CompareFunction,
            blend: Option<wgpu::BlendState>,
        }
        let make = |s: Spec| {
            let buffers = [Some(wgpu::VertexBufferLayout {
                array_stride: if s.flat {
                    std::mem::size_of::<FlatVertex>()
                } else {
                    std::mem::size_of::<super::scene::Vertex>()
                } as u64,
                step_mode: wgpu::VertexStepMode::Vertex,
                attributes: if s.flat { &flat_attributes } else { &mesh_attributes },
            })];
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(s.label),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some(s.vs),
                    compilation_options: Default::default(),
                    buffers: &buffers,
                },
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some(s.fs),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: COLOR_FORMAT,
                        blend: s.blend,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                primitive: wgpu::PrimitiveState {
                    topology: s.topology,
                    front_face: wgpu::FrontFace::Ccw,
                    cull_mode: s.cull,
                    ..Default::default()
                },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: DEPTH_FORMAT,
                    depth_write_enabled: Some(s.depth_write),
                    depth_compare: Some(s.compare),
                    stencil: wgpu::StencilState::default(),
                    bias: wgpu::DepthBiasState::default(),
                }),
                multisample: wgpu::MultisampleState::default(),
                multiview_mask: None,
                cache: None,
            })
        };
        use wgpu::CompareFunction::{Less, LessEqual};
        use wgpu::PrimitiveTopology::{LineList, TriangleList};
        Renderer3d {
            // Closed surfaces: their back faces are hidden behind their front faces, so
            // culling them halves the fragment work.
            opaque: make(Spec {
                label: "hepaview 3d opaque",
                vs: "vs_mesh",
                fs: "fs_opaque",
                flat: false,
                topology: TriangleList,
                cull: Some(wgpu::Face::Back),
                depth_write: true,
                compare: Less,
                blend: None,
            }),
            liver_back: make(Spec {
                label: "hepaview 3d liver back",
                vs: "vs_liver",
                fs: "fs_liver",
                flat: false,
                topology: TriangleList,
                cull: Some(wgpu::Face::Front),
                depth_write: false,
                compare: Less,
                blend: alpha_blend,
            }),
            liver_front: make(Spec {
                label: "hepaview 3d liver front",
                vs: "vs_liver",
                fs: "fs_liver",
                flat: false,
                topology: TriangleList,
                cull: Some(wgpu::Face::Back),
                depth_write: false,
                compare: Less,
                blend: alpha_blend,
            }),
            fills: make(Spec {
                label: "hepaview 3d plane fills",
                vs: "vs_flat",
                fs: "fs_flat",
                flat: true,
                topology: TriangleList,
                cull: None,
                depth_write: false,
                compare: Less,
                blend: alpha_blend,
            }),
            lines: make(Spec {
                label: "hepaview 3d plane lines",
                vs: "vs_flat",
                fs: "fs_flat",
                flat: true,
                topology: LineList,
                cull: None,
                depth_write: false,
                compare: LessEqual,
                blend: alpha_blend,
            }),
            layout,
            dvr: DvrRenderer::new(device),
        }
    }
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

impl GpuScene {
    pub fn upload(device: &wgpu::Device, scene: &Scene) -> GpuScene {
        let init = |label, contents: &[u8], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage })
        };
        // wgpu refuses empty buffers; an empty scene draws nothing anyway
        let pad = |b: &[u8]| if b.is_empty() { vec![0u8; 16] } else { b.to_vec() };
        let objects: Vec<[f32; 4]> = scene
            .objects
            .iter()
            .map(|o| {
                let kind = match o.kind {
                    ObjectKind::Liver => 0.0,
                    ObjectKind::Tumour => 1.0,
                    ObjectKind::Vessels => 2.0,
                };
                [o.rgb[0], o.rgb[1], o.rgb[2], kind]
            })
            .collect();
        GpuScene {
            key: scene.key,
            vertices: init(
                "hepaview 3d vertices",
                &pad(bytemuck::cast_slice(&scene.vertices)),
                wgpu::BufferUsages::VERTEX,
            ),
            indices: init("hepaview 3d indices", &pad(bytemuck::cast_slice(&scene.indices)), wgpu::BufferUsages::INDEX),
            objects: init("hepaview 3d objects", &pad(bytemuck::cast_slice(&objects)), wgpu::BufferUsages::STORAGE),
        }
    }
}

/// Uniforms of `frame` for a scene centred at `origin`.
pub fn frame_uniforms(frame: &FrameDesc, origin: Lps) -> FrameUniforms {
    let aspect = frame.size_px[0] as f64 / frame.size_px[1].max(1) as f64;
    let m = mat_mul(&frame.camera.view_projection(aspect), &translation(origin));
    let e = frame.camera.eye_mm();
    FrameUniforms {
        view_proj: to_gpu(&m),
        eye: [(e[0] - origin[0]) as f32, (e[1] - origin[1]) as f32, (e[2] - origin[2]) as f32, 0.0],
        params: [frame.liver_opacity.clamp(0.0, 1.0), 0.28, 0.72, 0.25],
    }
}

/// The three crosshair planes clipped to the grid's box: fills (triangles) and outlines
/// (line pairs), relative to `origin`.
fn plane_geometry(at: Lps, bounds: [Lps; 2], origin: Lps) -> (Vec<FlatVertex>, Vec<FlatVertex>) {
    let mut fills = Vec::new();
    let mut lines = Vec::new();
    let [lo, hi] = bounds;
    // axial (normal S = z), coronal (normal P = y), sagittal (normal L = x)
    for (n, axis) in [2usize, 1, 0].into_iter().enumerate() {
        if at[axis] < lo[axis] || at[axis] > hi[axis] {
            continue;
        }
        let (u, v) = match axis {
            2 => (0, 1),
            1 => (0, 2),
            _ => (1, 2),
        };
        let corner = |a: f64, b: f64| {
            let mut p = at;
            p[u] = a;
            p[v] = b;
            [(p[0] - origin[0]) as f32, (p[1] - origin[1]) as f32, (p[2] - origin[2]) as f32]
        };
        let c = [corner(lo[u], lo[v]), corner(hi[u], lo[v]), corner(hi[u], hi[v]), corner(lo[u], hi[v])];
        let rgb = PLANE_RGB[n];
        let fill = [rgb[0], rgb[1], rgb[2], 0.07];
        let line = [rgb[0], rgb[1], rgb[2], 0.9];
        for i in [0, 1, 2, 0, 2, 3] {
            fills.push(FlatVertex { position: c[i], colour: fill });
        }
        for i in 0..4 {
            lines.push(FlatVertex { position: c[i], colour: line });
            lines.push(FlatVertex { position: c[(i + 1) % 4], colour: line });
        }
    }
    (fills, lines)
}

/// A scene ready to draw: the pipelines, its buffers, and the scene itself (draw ranges,
/// origin, bounds), and the volume for direct volume rendering, if uploaded.
#[derive(Clone, Copy)]
pub struct Drawing<'a> {
    pub renderer: &'a Renderer3d,
    pub gpu: &'a GpuScene,
    pub scene: &'a Scene,
    pub volume: Option<&'a GpuDvrVolume>,
}

/// Records the passes of one frame of the drawing's scene into `target`.
pub fn encode_frame(
    device: &wgpu::Device,
    d: &Drawing,
    frame: &FrameDesc,
    target: &Target,
    encoder: &mut wgpu::CommandEncoder,
) {
    let Drawing { renderer, gpu, scene, volume } = *d;
    let u = frame_uniforms(frame, scene.origin_mm);
    // a fresh buffer per frame (contents set at creation), so several frames recorded
    // before one submit (a turntable) each keep their own camera
    let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("hepaview 3d frame"),
        contents: bytemuck::bytes_of(&u),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("hepaview 3d bind group"),
        layout: &renderer.layout,
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: uniforms.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: gpu.objects.as_entire_binding() },
        ],
    });
    let (fills, lines) = match frame.planes_at_mm {
        Some(at) => plane_geometry(at, scene.plane_bounds_mm(), scene.origin_mm),
        None => (Vec::new(), Vec::new()),
    };
    let flat = |v: &[FlatVertex]| {
        (!v.is_empty()).then(|| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("hepaview 3d planes"),
                contents: bytemuck::cast_slice(v),
                usage: wgpu::BufferUsages::VERTEX,
            })
        })
    };
    let (fill_buf, line_buf) = (flat(&fills), flat(&lines));

    let begin = |encoder: &mut wgpu::CommandEncoder, clear: bool| {
        let mut pass = encoder
            .begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("hepaview 3d pass"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &target.color_view,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: if clear {
                            wgpu::LoadOp::Clear(wgpu::Color {
                                r: BACKGROUND[0],
                                g: BACKGROUND[1],
                                b: BACKGROUND[2],
                                a: 1.0,
                            })
                        } else {
                            wgpu::LoadOp::Load
                        },
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &target.depth_view,
                    depth_ops: Some(wgpu::Operations {
                        load: if clear { wgpu::LoadOp::Clear(1.0) } else { wgpu::LoadOp::Load },
                        store: wgpu::StoreOp::Store,
                    }),
                    stencil_ops: None,
                }),
                ..Default::default()
            })
            .forget_lifetime();
        pass.set_bind_group(0, &bind_group, &[]);
        pass.set_vertex_buffer(0, gpu.vertices.slice(..));
        pass.set_index_buffer(gpu.indices.slice(..), wgpu::IndexFormat::Uint32);
        pass
    };
    let mut pass = begin(encoder, true);
    let shown = |kind: ObjectKind| match kind {
        ObjectKind::Liver => frame.show_liver,
        ObjectKind::Tumour => frame.show_tumours,
        ObjectKind::Vessels => frame.show_vessels,
    };
    let draw = |pass: &mut wgpu::RenderPass<'_>, liver: bool| {
        for (i, o) in scene.objects.iter().enumerate() {
            let r = if frame.interactive { o.lod.unwrap_or(o.full) } else { o.full };
            if (o.kind == ObjectKind::Liver) == liver && shown(o.kind) && r.index_count > 0 {
                pass.draw_indexed(r.first_index..r.first_index + r.index_count, r.base_vertex, i as u32..i as u32 + 1);
            }
        }
    };
    pass.set_pipeline(&renderer.opaque);
    draw(&mut pass, false);
    // the volume: marched to the opaque surfaces' depth, laid over them, under the liver
    let dvr = frame.dvr.zip(volume).filter(|(p, v)| p.volume_key == v.key);
    if let Some((params, vol)) = dvr {
        drop(pass);
        let marched = super::dvr::encode_march(
            device,
            &renderer.dvr,
            vol,
            &params,
            &frame.camera,
            scene.origin_mm,
            frame.interactive,
            target,
            encoder,
        );
        pass = begin(encoder, false);
        if let Some(m) = &marched {
            super::dvr::draw_composite(&renderer.dvr, m, &mut pass);
            // the composite has a bind group of its own; the surfaces' again for the rest
            pass.set_bind_group(0, &bind_group, &[]);
        }
    }
    let liver_on = frame.liver_opacity > 0.0;
    if liver_on {
        pass.set_pipeline(&renderer.liver_back);
        draw(&mut pass, true);
    }
    if let Some(b) = &fill_buf {
        pass.set_pipeline(&renderer.fills);
        pass.set_vertex_buffer(0, b.slice(..));
        pass.draw(0..fills.len() as u32, 0..1);
        pass.set_vertex_buffer(0, gpu.vertices.slice(..));
    }
    if liver_on {
        pass.set_pipeline(&renderer.liver_front);
        draw(&mut pass, true);
    }
    if let Some(b) = &line_buf {
        pass.set_pipeline(&renderer.lines);
        pass.set_vertex_buffer(0, b.slice(..));
        pass.draw(0..lines.len() as u32, 0..1);
    }
}

/// Copies `target`'s colour into an image (blocks until the GPU is done).
pub fn read_back(device: &wgpu::Device, queue: &wgpu::Queue, target: &Target) -> Result<image::RgbaImage, String> {
    let [w, h] = target.size_px;
    let unpadded = w as usize * 4;
    let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    let padded = unpadded.div_ceil(align) * align;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("hepaview 3d read back"),
        size: (padded * h as usize) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder =
        device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hepaview 3d read back") });
    encoder.copy_texture_to_buffer(
        target.color.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(padded as u32), rows_per_image: None },
        },
        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    let index = queue.submit(std::iter::once(encoder.finish()));
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: Some(std::time::Duration::from_secs(60)) })
        .map_err(|e| format!("the GPU did not finish the 3D render: {e}"))?;
    rx.recv().map_err(|e| e.to_string())?.map_err(|e| format!("could not read the 3D render back: {e}"))?;
    let data = buffer.slice(..).get_mapped_range().map_err(|e| format!("could not read the 3D render back: {e:?}"))?;
    let mut pixels = Vec::with_capacity(unpadded * h as usize);
    for row in data.chunks_exact(padded) {
        pixels.extend_from_slice(&row[..unpadded]);
    }
    image::RgbaImage::from_raw(w, h, pixels).ok_or_else(|| "read-back size mismatch".to_string())
}

/// Renders `frame` at `supersample`× its size and scales it down (smooth edges for a
/// picture that goes into a report).
pub fn render_image(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    d: &Drawing,
    frame: &FrameDesc,
    supersample: u32,
) -> Result<image::RgbaImage, String> {
    let s = supersample.clamp(1, 4);
    let big = FrameDesc { size_px: [frame.size_px[0] * s, frame.size_px[1] * s], ..*frame };
    let max = device.limits().max_texture_dimension_2d;
    if big.size_px[0] > max || big.size_px[1] > max || big.size_px.contains(&0) {
        return Err(format!(
            "a {}x{} picture is larger than this GPU allows ({max} per side)",
            big.size_px[0], big.size_px[1]
        ));
    }
    let target = Target::new(device, big.size_px);
    let mut encoder =
        device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hepaview 3d snapshot") });
    encode_frame(device, d, &big, &target, &mut encoder);
    queue.submit(std::iter::once(encoder.finish()));
    let img = read_back(device, queue, &target)?;
    Ok(if s == 1 {
        img
    } else {
        image::imageops::resize(&img, frame.size_px[0], frame.size_px[1], image::imageops::FilterType::Triangle)
    })
}

/// `views` pictures of `frame`'s size side by side, the camera turned about the patient's
/// superior axis by a full circle in equal steps, starting from `frame`'s camera.
pub fn render_turntable(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    d: &Drawing,
    frame: &FrameDesc,
    views: usize,
    supersample: u32,
) -> Result<image::RgbaImage, String> {
    let views = views.clamp(1, 72);
    let [w, h] = frame.size_px;
    let mut strip = image::RgbaImage::new(w * views as u32, h);
    let mut f = *frame;
    for n in 0..views {
        let img = render_image(device, queue, d, &f, supersample)?;
        image::imageops::replace(&mut strip, &img, (n as u32 * w) as i64, 0);
        f.camera.turn(std::f64::consts::TAU / views as f64);
    }
    Ok(strip)
}

// ---- the egui paint callback ------------------------------------------------------------

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
/// `options` (as [`crate::app::gpu::install_with`]). Without it the 3D view paints nothing.
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
                        resource: wgpu::BindingResource::TextureView(&target.color_view),
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
        eprintln!("hepaview: the 3D view needs render::install(render_state, options) at startup; drawing nothing")
    });
}
