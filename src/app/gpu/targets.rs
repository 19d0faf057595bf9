//! What the drawables share: the off-screen colour + depth [`Target`] and its formats,
//! [`read_back`] of a target into an image, the clamped sampler every 3D texture is read
//! through (slices and volume rendering), a uniform buffer's layout entry, and a 3D texture
//! made and filled in one call.

use egui_wgpu::wgpu;

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

/// The bind group layout entry of a uniform buffer holding one `U` (the `#[repr(C)]` struct
/// its shader reads).
pub fn uniform_entry<U>(binding: u32, visibility: wgpu::ShaderStages) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<U>() as u64),
        },
        count: None,
    }
}

/// A sampled 3D texture of `dims` (x, y, z) texels of `format`, filled with `texels`
/// (`texel_bytes` each, x fastest) when there are exactly enough of them; otherwise left
/// as the GPU made it (zeros), as a volume too small to hold data is.
pub fn texture_3d(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    dims: [u32; 3],
    format: wgpu::TextureFormat,
    texels: &[u8],
    texel_bytes: u32,
) -> wgpu::Texture {
    let [w, h, d] = dims;
    let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: d };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    if texels.len() as u64 == u64::from(w) * u64::from(h) * u64::from(d) * u64::from(texel_bytes) {
        queue.write_texture(
            texture.as_image_copy(),
            texels,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(w * texel_bytes), rows_per_image: Some(h) },
            size,
        );
    }
    texture
}

/// Off-screen colour format: display values, read back as they are for PNGs.
pub const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
pub const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

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

    pub fn color_view(&self) -> &wgpu::TextureView {
        &self.color_view
    }

    pub fn depth_view(&self) -> &wgpu::TextureView {
        &self.depth_view
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
