//! 3D textures of CT volumes (`R16Float`) and label masks (`R8Unorm`), uploaded once per
//! [`VolumeKey`] and kept in egui_wgpu's `CallbackResources` as a [`VolumeCache`].
//!
//! Both are float formats so the slice shader reads them through samplers (one filtered
//! fetch for trilinear); labels reach the shader exactly, HU exactly within ±2048.
//!
//! The cache only hears about volumes when a paint callback asks for one, so it cannot know
//! when the app dropped a volume. It forgets textures by disuse instead: every request is
//! stamped with a running count, and textures not requested for [`EVICT_AFTER_REQUESTS`]
//! requests, or the least recently used ones once the total passes [`BUDGET_BYTES`], are
//! dropped. Without this, each mask edit (a new key) would leak a whole texture.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use egui_wgpu::wgpu;
use ndarray::Array3;

use super::VolumeKey;
use crate::volume::region::VoxelBox;
use crate::volume::{invert3, mat_vec, Geometry, Volume};

/// Requests (one per drawn viewport) after which an unused texture is dropped: a few hundred
/// frames with three or four viewports on screen.
const EVICT_AFTER_REQUESTS: u64 = 1000;

/// Above this many bytes of cached textures, least recently used ones go first.
const BUDGET_BYTES: u64 = 2 << 30;

/// Textures requested within this many requests are in use on screen and never evicted
/// for the budget (several viewports usually share one CT).
const PROTECT_RECENT_REQUESTS: u64 = 16;

/// Upload in slabs of about this size so wgpu's staging copy stays small for big volumes.
const UPLOAD_SLAB_BYTES: usize = 64 << 20;

/// What a texture holds; CT and mask keys come from different counters, so they are
/// cached apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeKind {
    /// `i16` HU as `R16Float`.
    Ct,
    /// `u8` labels as `R8Unorm`.
    Mask,
}

/// Voxel types that have a matching texture format, of the same size per texel.
pub trait TexelType: Copy + bytemuck::Pod + Send + Sync + 'static {
    const FORMAT: wgpu::TextureFormat;
    const KIND: VolumeKind;
    /// The texture's bytes for `texels`.
    fn texture_bytes(texels: &[Self]) -> Cow<'_, [u8]>;
    /// For masks, the voxel box holding every label (see [`GpuVolume::labelled`]).
    fn labelled_box(_data: &Array3<Self>) -> Option<VoxelBox> {
        None
    }
}

/// HU as half floats: a filterable format, so the slice shader's trilinear sampling is one
/// hardware (or lavapipe) filtered fetch instead of eight loads. Exact for |HU| ≤ 2048; above,
/// steps of 2 HU (display only: HU readouts come from the volume, not the texture).
impl TexelType for i16 {
    const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R16Float;
    const KIND: VolumeKind = VolumeKind::Ct;
    fn texture_bytes(texels: &[i16]) -> Cow<'_, [u8]> {
        use rayon::prelude::*;
        // every i16 has one f16: a 128 KiB table makes the conversion a lookup per voxel
        static HALF_OF: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
        let table =
            HALF_OF.get_or_init(|| (0..=u16::MAX).map(|b| half::f16::from_f32(b as i16 as f32).to_bits()).collect());
        let mut out = vec![0u8; texels.len() * 2];
        out.par_chunks_mut(1 << 17).zip(texels.par_chunks(1 << 16)).for_each(|(o, t)| {
            for (o, &v) in o.chunks_exact_mut(2).zip(t) {
                o.copy_from_slice(&table[v as u16 as usize].to_le_bytes());
            }
        });
        Cow::Owned(out)
    }
}

/// Labels as unsigned normalised bytes (label / 255): a float format, so the shader reads
/// them with one nearest-sampler fetch, which lavapipe runs faster than a clamped load.
impl TexelType for u8 {
    const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R8Unorm;
    const KIND: VolumeKind = VolumeKind::Mask;
    fn texture_bytes(texels: &[u8]) -> Cow<'_, [u8]> {
        Cow::Borrowed(texels)
    }
    fn labelled_box(data: &Array3<u8>) -> Option<VoxelBox> {
        VoxelBox::enclosing(data.view(), |v| v != 0)
    }
}

/// One uploaded volume.
pub struct GpuVolume {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    pub map: TexelMap,
    /// Masks only: the voxel box (of the volume, not the texture) outside which every label
    /// is 0, or `None` when there are none. The overlay draw is limited to it. After edits
    /// it may be larger than the labels (erasing does not shrink it), never smaller.
    pub labelled: Option<VoxelBox>,
    bytes: u64,
    last_used: u64,
}

/// Where a texture's texels sit in the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TexelMap {
    /// Texture size `(x, y, z)`, after any downsampling.
    pub dims: [u32; 3],
    /// Texels per volume voxel skipped along `(x, y, z)`; 1 unless the volume was larger
    /// than the device allows.
    pub step: [u32; 3],
    /// World (LPS mm) → continuous texel index `(i, j, k)`: `t = A·w + b`, rows `[A | b]`.
    /// The downsampling step is already folded in.
    pub world_to_texel: [[f64; 4]; 3],
}

impl TexelMap {
    /// The map of `geometry` drawn from every `step`-th voxel; `None` if the geometry cannot
    /// be inverted.
    pub fn new(geometry: &Geometry, step: [u32; 3]) -> Option<Self> {
        let [nz, ny, nx] = geometry.shape;
        let inv = invert3(&geometry.index_to_world_matrix())?;
        // index = inv·(w − o); texel = index / step.
        let b = mat_vec(&inv, geometry.origin_mm);
        let mut world_to_texel = [[0.0; 4]; 3];
        for r in 0..3 {
            let s = step[r] as f64;
            world_to_texel[r] = [inv[r][0] / s, inv[r][1] / s, inv[r][2] / s, -b[r] / s];
        }
        let dims = [nx, ny, nz];
        Some(TexelMap { dims: [0, 1, 2].map(|a| dims[a].div_ceil(step[a] as usize) as u32), step, world_to_texel })
    }

    /// Continuous texel index of a world point.
    pub fn texel_of(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.world_to_texel;
        [0, 1, 2].map(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3])
    }

    /// Texel step of a world displacement (no translation).
    pub fn texel_step_of(&self, d: [f64; 3]) -> [f64; 3] {
        let m = &self.world_to_texel;
        [0, 1, 2].map(|r| m[r][0] * d[0] + m[r][1] * d[1] + m[r][2] * d[2])
    }
}

/// Uploaded volumes by `(kind, key)`. Lives in `CallbackResources`; created on first use.
#[derive(Default)]
pub struct VolumeCache {
    entries: HashMap<(VolumeKind, VolumeKey), GpuVolume>,
    requests: u64,
}

impl VolumeCache {
    /// The texture of `vol` under `key`, uploading it on first request. `None` when the
    /// volume is empty or its geometry cannot be inverted (nothing sensible to draw).
    pub fn get_or_upload<T: TexelType>(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        key: VolumeKey,
        vol: &Volume<T>,
    ) -> Option<&GpuVolume> {
        self.requests += 1;
        let now = self.requests;
        let id = (T::KIND, key);
        if !self.entries.contains_key(&id) {
            // Make room first, so the old and the new texture of a replaced volume are not
            // both held when memory is tight.
            self.evict(upload_bytes(device, vol));
        }
        let entry = match self.entries.entry(id) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(upload(device, queue, vol)?),
        };
        entry.last_used = now;
        Some(entry)
    }

    /// The texture of an edited mask: when the texture of `previous.0` (the mask before the
    /// edits) is held, it is taken over under `key` and only the voxel box `previous.1`
    /// (`[z0, z1, y0, y1, x0, x1]`, end exclusive) is written, so a brush stroke costs the
    /// bricks it touched instead of the whole volume. Otherwise a full upload.
    pub fn get_or_update_mask(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        key: VolumeKey,
        vol: &Volume<u8>,
        previous: Option<(VolumeKey, [usize; 6])>,
    ) -> Option<&GpuVolume> {
        let new_id = (VolumeKind::Mask, key);
        if let Some((old_key, b)) = previous {
            let old_id = (VolumeKind::Mask, old_key);
            let reusable = !self.entries.contains_key(&new_id)
                && self.entries.get(&old_id).is_some_and(|e| {
                    e.map.step == [1, 1, 1]
                        && e.map.dims
                            == [
                                vol.geometry.shape[2] as u32,
                                vol.geometry.shape[1] as u32,
                                vol.geometry.shape[0] as u32,
                            ]
                });
            if reusable {
                if let Some(mut entry) = self.entries.remove(&old_id) {
                    write_box(queue, &entry.texture, vol, b);
                    entry.labelled = union_box(entry.labelled, labelled_in(vol, b));
                    self.entries.insert(new_id, entry);
                }
            }
        }
        self.get_or_upload(device, queue, key, vol)
    }

    /// Whether `(kind, key)` is uploaded (for tests and diagnostics).
    pub fn contains(&self, kind: VolumeKind, key: VolumeKey) -> bool {
        self.entries.contains_key(&(kind, key))
    }

    /// Number of textures held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of texture memory held.
    pub fn bytes(&self) -> u64 {
        self.entries.values().map(|e| e.bytes).sum()
    }

    /// Drops textures unused for [`EVICT_AFTER_REQUESTS`], then least recently used ones
    /// until `incoming` more bytes fit the budget (sparing those on screen now).
    fn evict(&mut self, incoming: u64) {
        let now = self.requests;
        self.entries.retain(|_, e| now.saturating_sub(e.last_used) < EVICT_AFTER_REQUESTS);
        while self.bytes() + incoming > BUDGET_BYTES {
            let oldest = self
                .entries
                .iter()
                .filter(|(_, e)| now.saturating_sub(e.last_used) >= PROTECT_RECENT_REQUESTS)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.entries.remove(&id);
                }
                None => break,
            }
        }
    }
}

/// Bytes the texture of `vol` will take on `device`.
fn upload_bytes<T: TexelType>(device: &wgpu::Device, vol: &Volume<T>) -> u64 {
    let step = downsample_step(vol.geometry.shape, device.limits().max_texture_dimension_3d);
    let [nz, ny, nx] = vol.geometry.shape;
    let texels: u64 = [nx, ny, nz].iter().zip(step).map(|(&n, s)| n.div_ceil(s as usize) as u64).product();
    texels * std::mem::size_of::<T>() as u64
}

/// Integer step per axis `(x, y, z)` so that every texture side fits `max_side`.
pub fn downsample_step(shape_zyx: [usize; 3], max_side: u32) -> [u32; 3] {
    let max_side = max_side.max(1) as usize;
    let [nz, ny, nx] = shape_zyx;
    [nx, ny, nz].map(|n| n.div_ceil(max_side).max(1) as u32)
}

fn union_box(a: Option<VoxelBox>, b: Option<VoxelBox>) -> Option<VoxelBox> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(&b)),
        (a, b) => a.or(b),
    }
}

/// `b` (`[z0, z1, y0, y1, x0, x1]`, end exclusive) clipped to `vol`'s grid, or `None` when
/// nothing is left.
fn clip_box(vol: &Volume<u8>, b: [usize; 6]) -> Option<[usize; 6]> {
    let [nz, ny, nx] = vol.geometry.shape;
    let c = [b[0].min(nz), b[1].min(nz), b[2].min(ny), b[3].min(ny), b[4].min(nx), b[5].min(nx)];
    (c[0] < c[1] && c[2] < c[3] && c[4] < c[5]).then_some(c)
}

/// The labels' box within `b` (`[z0, z1, y0, y1, x0, x1]`, clipped to the volume).
fn labelled_in(vol: &Volume<u8>, b: [usize; 6]) -> Option<VoxelBox> {
    let [z0, z1, y0, y1, x0, x1] = clip_box(vol, b)?;
    VoxelBox::enclosing(vol.data.slice(ndarray::s![z0..z1, y0..y1, x0..x1]), |v| v != 0).map(|x| x.offset([z0, y0, x0]))
}

/// Writes the voxels of `b` (`[z0, z1, y0, y1, x0, x1]`, clipped to the volume) of `vol`
/// into its full-resolution texture.
fn write_box(queue: &wgpu::Queue, texture: &wgpu::Texture, vol: &Volume<u8>, b: [usize; 6]) {
    let Some([z0, z1, y0, y1, x0, x1]) = clip_box(vol, b) else { return };
    let part = vol.data.slice(ndarray::s![z0..z1, y0..y1, x0..x1]).as_standard_layout().to_owned();
    let Some(texels) = part.as_slice() else { return };
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x: x0 as u32, y: y0 as u32, z: z0 as u32 },
            aspect: wgpu::TextureAspect::All,
        },
        texels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((x1 - x0) as u32),
            rows_per_image: Some((y1 - y0) as u32),
        },
        wgpu::Extent3d { width: (x1 - x0) as u32, height: (y1 - y0) as u32, depth_or_array_layers: (z1 - z0) as u32 },
    );
}

fn upload<T: TexelType>(device: &wgpu::Device, queue: &wgpu::Queue, vol: &Volume<T>) -> Option<GpuVolume> {
    let shape = vol.geometry.shape;
    if shape.contains(&0) || vol.data.dim() != (shape[0], shape[1], shape[2]) {
        return None;
    }
    // Volumes larger than the device's 3D limit (egui's default device allows 2048 per side,
    // GL only 256) are drawn from every `step`-th voxel instead of not at all; the step is
    // folded into the world→texel affine below so the image stays in place, only coarser.
    let step = downsample_step(shape, device.limits().max_texture_dimension_3d);
    let map = TexelMap::new(&vol.geometry, step)?;
    let data: Cow<'_, Array3<T>> = if step == [1, 1, 1] {
        Cow::Borrowed(&vol.data)
    } else {
        let [sx, sy, sz] = step.map(|s| s as isize);
        Cow::Owned(vol.data.slice(ndarray::s![..;sz, ..;sy, ..;sx]).to_owned())
    };
    let (tz, ty, tx) = data.dim();
    let dims = map.dims;
    debug_assert_eq!(dims, [tx as u32, ty as u32, tz as u32]);
    let contiguous = data.as_standard_layout();
    let texels: &[T] = contiguous.as_slice()?;

    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(match T::KIND {
            VolumeKind::Ct => "hepaview ct volume",
            VolumeKind::Mask => "hepaview mask volume",
        }),
        size: wgpu::Extent3d { width: dims[0], height: dims[1], depth_or_array_layers: dims[2] },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format: T::FORMAT,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });

    let bpp = std::mem::size_of::<T>();
    let plane = tx * ty;
    let slab = (UPLOAD_SLAB_BYTES / (plane * bpp)).max(1);
    let mut z0 = 0;
    while z0 < tz {
        let nzs = slab.min(tz - z0);
        let part = &texels[z0 * plane..(z0 + nzs) * plane];
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: 0, z: z0 as u32 },
                aspect: wgpu::TextureAspect::All,
            },
            &T::texture_bytes(part),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some((tx * bpp) as u32),
                rows_per_image: Some(ty as u32),
            },
            wgpu::Extent3d { width: dims[0], height: dims[1], depth_or_array_layers: nzs as u32 },
        );
        z0 += nzs;
    }
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());

    Some(GpuVolume {
        texture,
        view,
        map,
        labelled: T::labelled_box(&vol.data),
        bytes: std::mem::size_of_val(texels) as u64,
        last_used: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_fits_limit() {
        assert_eq!(downsample_step([89, 512, 512], 2048), [1, 1, 1]);
        assert_eq!(downsample_step([300, 512, 512], 256), [2, 2, 2]);
        assert_eq!(downsample_step([257, 10, 4097], 256), [17, 1, 2]);
        // 4097 / 17 rounds up to 242 ≤ 256.
        assert!(4097usize.div_ceil(17) <= 256);
    }

    #[test]
    fn texel_map_inverts_geometry_and_folds_step() {
        let mut g = Geometry::axis_aligned([10, 20, 30], [2.0, 0.5, 0.7], [-5.0, 3.0, 100.0]);
        g.direction = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let m = TexelMap::new(&g, [1, 1, 1]).expect("invertible");
        let ijk = [3.0, 7.5, 2.25];
        let t = m.texel_of(g.index_to_world(ijk));
        assert!((0..3).all(|a| (t[a] - ijk[a]).abs() < 1e-9), "{t:?}");
        let m2 = TexelMap::new(&g, [2, 1, 4]).expect("invertible");
        assert_eq!(m2.dims, [15, 20, 3]);
        let t2 = m2.texel_of(g.index_to_world([8.0, 5.0, 8.0]));
        assert!((t2[0] - 4.0).abs() < 1e-9 && (t2[1] - 5.0).abs() < 1e-9 && (t2[2] - 2.0).abs() < 1e-9);
    }
}
