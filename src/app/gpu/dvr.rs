//! The volume-rendering pipelines (`shaders/dvr.wgsl`): a phase's [`DvrVolume`] as a 3D
//! texture ([`GpuDvrVolume`]), the ray march into a target of its own ([`encode_march`])
//! and its composite over the surfaces ([`draw_composite`]). What the volume, the presets
//! and the march size are is `render::dvr`'s; the order of passes is `super::mesh`'s.

use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt as _;

use super::targets::{clamped_sampler, texture_3d, uniform_entry, Target, COLOR_FORMAT, DEPTH_FORMAT};
use crate::render::camera::{to_gpu, Camera};
use crate::render::dvr::{
    march_size, transfer_table, DvrParams, DvrVolume, TransferPreset, BRICK, TABLE_ENTRIES, TABLE_HU,
};
use crate::volume::Lps;

const SHADER: &str = include_str!("../../../shaders/dvr.wgsl");

/// The march target's format: premultiplied display colour.
const MARCH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// Most samples per ray (a 256³ box crossed diagonally at one voxel per step is ~450).
const MAX_STEPS: u32 = 1024;

/// Uniforms of the march. Keep in sync with `Dvr` in shaders/dvr.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DvrUniforms {
    pub world_to_tex: [[f32; 4]; 4],
    pub eye: [f32; 4],
    pub right: [f32; 4],
    pub up: [f32; 4],
    pub forward: [f32; 4],
    pub tf: [f32; 4],
    pub size: [f32; 4],
    pub voxel: [f32; 4],
    /// Transparent-below HU, brick side in voxels, unused, unused.
    pub skip: [f32; 4],
}

/// The march's uniforms for `camera` over a view of `size_px`, marched at `march_px`, with
/// positions relative to `origin` (the scene's centre).
pub fn dvr_uniforms(
    vol: &DvrVolume,
    params: &DvrParams,
    camera: &Camera,
    origin: Lps,
    size_px: [u32; 2],
    march_px: [u32; 2],
) -> Option<DvrUniforms> {
    let w2t = vol.world_to_tex()?;
    // scene-relative p: tex = A·(p + origin) + b
    let mut m = [[0.0; 4]; 4];
    for r in 0..3 {
        m[r] = [w2t[r][0], w2t[r][1], w2t[r][2], w2t[r][3] + (0..3).map(|c| w2t[r][c] * origin[c]).sum::<f64>()];
    }
    m[3] = [0.0, 0.0, 0.0, 1.0];
    let aspect = size_px[0] as f64 / size_px[1].max(1) as f64;
    let tan_y = (camera.fov_y_deg.to_radians() * 0.5).tan();
    let tan_x = tan_y * aspect;
    let (n, fa) = camera.depth_range();
    let (a, b) = (fa / (n - fa), n * fa / (n - fa));
    let e = camera.eye_mm();
    let f = camera.forward();
    let step = vol.step_mm();
    let dims = vol.dims();
    let v4 = |v: Lps, s: f64, w: f64| [(v[0] * s) as f32, (v[1] * s) as f32, (v[2] * s) as f32, w as f32];
    Some(DvrUniforms {
        world_to_tex: to_gpu(&m),
        eye: [(e[0] - origin[0]) as f32, (e[1] - origin[1]) as f32, (e[2] - origin[2]) as f32, step as f32],
        right: v4(camera.right, tan_x, a),
        up: v4(camera.up, tan_y, b),
        forward: v4(f, 1.0, step * params.opacity.max(0.0) as f64),
        tf: [
            TABLE_HU[0],
            (TABLE_ENTRIES - 1) as f32 / (TABLE_HU[1] - TABLE_HU[0]),
            (TABLE_ENTRIES - 1) as f32,
            if params.shading { 1.0 } else { 0.0 },
        ],
        size: [size_px[0] as f32, size_px[1] as f32, march_px[0] as f32, march_px[1] as f32],
        voxel: [
            1.0 / dims[0].max(1) as f32,
            1.0 / dims[1].max(1) as f32,
            1.0 / dims[2].max(1) as f32,
            MAX_STEPS as f32,
        ],
        skip: [
            if params.skip_empty { params.preset.transparent_below_hu().max(-1.0e30) } else { -1.0e30 },
            BRICK as f32,
            0.0,
            0.0,
        ],
    })
}

/// A volume's texture on the GPU.
pub struct GpuDvrVolume {
    pub key: u64,
    view: wgpu::TextureView,
    bricks: wgpu::TextureView,
    volume: std::sync::Arc<DvrVolume>,
}

impl GpuDvrVolume {
    /// Uploads `vol` as an `R16Float` 3D texture (filterable without device features).
    pub fn upload(device: &wgpu::Device, queue: &wgpu::Queue, vol: std::sync::Arc<DvrVolume>) -> GpuDvrVolume {
        let texture = texture_3d(
            device,
            queue,
            "hepaview dvr volume",
            vol.dims().map(|n| n.max(1)),
            wgpu::TextureFormat::R16Float,
            bytemuck::cast_slice(&vol.texels),
            2,
        );
        let bricks = texture_3d(
            device,
            queue,
            "hepaview dvr bricks",
            vol.brick_dims(),
            wgpu::TextureFormat::R32Float,
            bytemuck::cast_slice(&vol.brick_max),
            4,
        );
        GpuDvrVolume {
            key: vol.key,
            view: texture.create_view(&wgpu::TextureViewDescriptor::default()),
            bricks: bricks.create_view(&wgpu::TextureViewDescriptor::default()),
            volume: vol,
        }
    }

    pub fn volume(&self) -> &DvrVolume {
        &self.volume
    }
}

/// The DVR pipelines and transfer tables, made once per device.
pub struct DvrRenderer {
    march_layout: wgpu::BindGroupLayout,
    composite_layout: wgpu::BindGroupLayout,
    march: wgpu::RenderPipeline,
    composite: wgpu::RenderPipeline,
    sampler: wgpu::Sampler,
    tables: Vec<(TransferPreset, wgpu::Buffer)>,
}

impl DvrRenderer {
    pub fn new(device: &wgpu::Device) -> DvrRenderer {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("hepaview dvr.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let entry = |binding, visibility, ty| wgpu::BindGroupLayoutEntry { binding, visibility, ty, count: None };
        let frag = wgpu::ShaderStages::FRAGMENT;
        let sampler_entry = entry(2, frag, wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering));
        let march_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hepaview dvr march layout"),
            entries: &[
                uniform_entry::<DvrUniforms>(0, frag),
                entry(
                    1,
                    frag,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D3,
                        multisampled: false,
                    },
                ),
                sampler_entry,
                entry(
                    3,
                    frag,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    4,
                    frag,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Depth,
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                ),
                entry(
                    6,
                    frag,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D3,
                        multisampled: false,
                    },
                ),
            ],
        });
        let composite_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hepaview dvr composite layout"),
            entries: &[
                sampler_entry,
                entry(
                    5,
                    frag,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                ),
            ],
        });
        let pipeline = |label, layout: &wgpu::BindGroupLayout, fs, format, blend, depth: bool| {
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&pl),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some("vs_full"),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some(fs),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState { format, blend, write_mask: wgpu::ColorWrites::ALL })],
                }),
                primitive: wgpu::PrimitiveState::default(),
                // the composite runs inside the surfaces' second pass, which has their depth
                depth_stencil: depth.then(|| wgpu::DepthStencilState {
                    format: DEPTH_FORMAT,
                    depth_write_enabled: Some(false),
                    depth_compare: Some(wgpu::CompareFunction::Always),
                    stencil: wgpu::StencilState::default(),
                    bias: wgpu::DepthBiasState::default(),
                }),
                multisample: wgpu::MultisampleState::default(),
                multiview_mask: None,
                cache: None,
            })
        };
        // premultiplied "over"; the view's alpha stays 1
        let over = wgpu::BlendState {
            color: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::One,
                dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
                operation: wgpu::BlendOperation::Add,
            },
            alpha: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::Zero,
                dst_factor: wgpu::BlendFactor::One,
                operation: wgpu::BlendOperation::Add,
            },
        };
        let march = pipeline("hepaview dvr march", &march_layout, "fs_march", MARCH_FORMAT, None, false);
        let composite =
            pipeline("hepaview dvr composite", &composite_layout, "fs_composite", COLOR_FORMAT, Some(over), true);
        let sampler = clamped_sampler(device, "hepaview dvr linear", wgpu::FilterMode::Linear);
        let tables = TransferPreset::ALL
            .iter()
            .map(|&p| {
                let t = transfer_table(p);
                (
                    p,
                    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("hepaview dvr transfer table"),
                        contents: bytemuck::cast_slice(&t),
                        usage: wgpu::BufferUsages::STORAGE,
                    }),
                )
            })
            .collect();
        DvrRenderer { march_layout, composite_layout, march, composite, sampler, tables }
    }
}

/// A recorded march, ready to be composited into the surfaces' second pass.
pub struct Marched {
    bind_group: wgpu::BindGroup,
}

/// Records the march of `vol` for `camera` into a fresh target (its size from
/// [`march_size`]), reading `target`'s depth. `None` when the volume's geometry is
/// degenerate (nothing to draw).
#[allow(clippy::too_many_arguments)]
pub fn encode_march(
    device: &wgpu::Device,
    r: &DvrRenderer,
    vol: &GpuDvrVolume,
    params: &DvrParams,
    camera: &Camera,
    origin: Lps,
    interactive: bool,
    target: &Target,
    encoder: &mut wgpu::CommandEncoder,
) -> Option<Marched> {
    let march_px = march_size(target.size_px, interactive);
    let u = dvr_uniforms(vol.volume(), params, camera, origin, target.size_px, march_px)?;
    let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("hepaview dvr frame"),
        contents: bytemuck::bytes_of(&u),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let table = &r.tables.iter().find(|(p, _)| *p == params.preset).unwrap_or(&r.tables[0]).1;
    let out = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("hepaview dvr march target"),
        size: wgpu::Extent3d { width: march_px[0], height: march_px[1], depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: MARCH_FORMAT,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    let out_view = out.create_view(&wgpu::TextureViewDescriptor::default());
    let march_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("hepaview dvr march"),
        layout: &r.march_layout,
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: uniforms.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vol.view) },
            wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::Sampler(&r.sampler) },
            wgpu::BindGroupEntry { binding: 3, resource: table.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(target.depth_view()) },
            wgpu::BindGroupEntry { binding: 6, resource: wgpu::BindingResource::TextureView(&vol.bricks) },
        ],
    });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("hepaview dvr march"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &out_view,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
                depth_slice: None,
            })],
            ..Default::default()
        });
        pass.set_pipeline(&r.march);
        pass.set_bind_group(0, &march_bind, &[]);
        pass.draw(0..3, 0..1);
    }
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("hepaview dvr composite"),
        layout: &r.composite_layout,
        entries: &[
            wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::Sampler(&r.sampler) },
            wgpu::BindGroupEntry { binding: 5, resource: wgpu::BindingResource::TextureView(&out_view) },
        ],
    });
    Some(Marched { bind_group })
}

/// Lays a march over the view, inside a pass on the view's colour and depth.
pub fn draw_composite(r: &DvrRenderer, marched: &Marched, pass: &mut wgpu::RenderPass<'_>) {
    pass.set_pipeline(&r.composite);
    pass.set_bind_group(0, &marched.bind_group, &[]);
    pass.draw(0..3, 0..1);
}
