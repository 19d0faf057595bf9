//! The surface renderer of the 3D view (`shaders/mesh.wgsl`): pipelines made once
//! ([`Renderer3d`]), a scene's buffers ([`GpuScene`]), the passes of one frame
//! ([`encode_frame`]), and off-screen pictures read back ([`render_image`],
//! [`render_turntable`]).
//!
//! egui's render pass has no depth buffer, and the liver's transparency needs a pass
//! order of its own, so the scene is drawn off-screen: [`encode_frame`] renders into a
//! colour (`Rgba8Unorm`, display values) + depth (`Depth32Float`) [`Target`] of the
//! viewport's size, inside the paint callback's `prepare` (`super::view3d`); `paint` then
//! copies that target into egui's pass (`fs_blit`). The same [`encode_frame`] serves
//! snapshots and turntable strips, read back from the target.
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
//! A scene's buffers are uploaded once (`super::view3d` keys them by [`Scene::key`]).

use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt as _;

use super::dvr::{draw_composite, encode_march, DvrRenderer, GpuDvrVolume};
use super::targets::{read_back, uniform_entry, Target, COLOR_FORMAT, DEPTH_FORMAT};
use crate::mesh::ObjectKind;
use crate::render::camera::{mat_mul, to_gpu, translation};
use crate::render::frame::{FrameDesc, BACKGROUND, PLANE_RGB};
use crate::render::scene::{Scene, Vertex};
use crate::volume::Lps;

const SHADER: &str = include_str!("../../../shaders/mesh.wgsl");

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

/// One scene's buffers on the GPU.
pub struct GpuScene {
    pub key: u64,
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    objects: wgpu::Buffer,
}

pub(super) fn shader(device: &wgpu::Device) -> wgpu::ShaderModule {
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
                uniform_entry::<FrameUniforms>(0, wgpu::ShaderStages::VERTEX_FRAGMENT),
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
                array_stride: if s.flat { std::mem::size_of::<FlatVertex>() } else { std::mem::size_of::<Vertex>() }
                    as u64,
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
                    view: target.color_view(),
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
                    view: target.depth_view(),
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
        let marched = encode_march(
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
            draw_composite(&renderer.dvr, m, &mut pass);
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
