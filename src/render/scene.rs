//! What the 3D view draws, built once per mask on a worker thread: the surfaces of
//! [`crate::mesh::build_objects`] packed into one vertex and one index buffer's worth of
//! data, their colours and draw ranges, and each tumour's measurements (volume, longest
//! diameter, centroid, depth below the liver surface, distance to the vessels).
//!
//! Vertices are stored relative to the scene's centre (`origin_mm`): the GPU gets f32
//! offsets of at most a few hundred mm, and the view matrix carries the translation in f64.

use rayon::prelude::*;

use crate::lesion::measure_voxels;
use crate::mesh::{build_objects_with_progress, MeshError, MeshObject, MeshOptions, ObjectKind};
use crate::volume::region::connected_components;
use crate::volume::{det3, Lps, Mask, Progress};

use super::camera::Ray;
use super::distance::SurfaceGrid;
use super::pick::pick_mesh;

/// Display colours (sRGB, 0…1): liver as the slice overlay's label 1, tumours a saturated
/// yellow-green that stands out through the reddish liver, vessels blue (label 3).
pub const LIVER_RGB: [f32; 3] = [0.85, 0.45, 0.35];
pub const TUMOUR_RGB: [f32; 3] = [0.55, 0.95, 0.2];
pub const VESSEL_RGB: [f32; 3] = [0.3, 0.5, 1.0];

/// One vertex as the GPU reads it (`shaders/mesh.wgsl`, `VertexIn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Vertex {
    /// mm from the scene origin, LPS.
    pub position: [f32; 3],
    pub normal: [f32; 3],
}

/// Measurements shown beside a tumour.
#[derive(Clone, Debug, PartialEq)]
pub struct TumourInfo {
    /// 1-based, as `tumour_N` and the lesion table's `#N` (both number the tumour label's
    /// connected components largest first).
    pub number: usize,
    /// Voxel count × voxel volume, as the lesion table.
    pub volume_ml: f64,
    /// Longest 3D diameter through the voxels (the lesion table's measure).
    pub longest_diameter_mm: f64,
    /// Mean of the voxel centres, LPS mm.
    pub centroid_mm: Lps,
    /// Shortest distance from the tumour's surface to the liver's outer surface (0 when it
    /// reaches the capsule); `None` without a liver object.
    pub depth_mm: Option<f64>,
    /// Shortest distance from the tumour's surface to the vessel surface, when meshed.
    pub vessel_mm: Option<f64>,
}

/// Objects above this many triangles also get a copy decimated to it, drawn while the
/// camera moves: lavapipe's cost is per triangle (a 300k-triangle liver drawn as back and
/// front faces takes ~55 ms a frame on 2 cores, its 60k copy a fifth of that), and a
/// coarser surface in motion is hard to see.
pub const LOD_TRIANGLES: usize = 60_000;

/// A range of the packed index data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawRange {
    pub first_index: u32,
    pub index_count: u32,
    pub base_vertex: i32,
}

/// One drawn object.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneObject {
    pub name: String,
    pub kind: ObjectKind,
    /// sRGB colour; alpha 1 (the liver's opacity is a view setting).
    pub rgb: [f32; 3],
    pub full: DrawRange,
    /// The decimated copy drawn while the camera moves, for large objects.
    pub lod: Option<DrawRange>,
    pub tumour: Option<TumourInfo>,
}

/// A mesh build, ready to upload and draw.
#[derive(Clone, Debug)]
pub struct Scene {
    /// New for every build: the GPU cache uploads each key once.
    pub key: u64,
    /// The mask key it was built from.
    pub mask_key: u64,
    pub origin_mm: Lps,
    pub objects: Vec<SceneObject>,
    /// The meshes themselves, for picking and export (same order as `objects`).
    pub meshes: Vec<MeshObject>,
    pub vertices: Vec<Vertex>,
    pub indices: Vec<u32>,
    /// Bounds of every surface, `[min, max]` LPS mm.
    pub bounds_mm: [Lps; 2],
    /// Bounds of the mask's grid (voxel centres ± half a voxel).
    pub grid_bounds_mm: [Lps; 2],
}

/// What a pick hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub object: usize,
    pub point_mm: Lps,
    pub distance_mm: f64,
}

impl Scene {
    /// Meshes `mask` (liver, tumours, vessels as `opts` says), measures the tumours and
    /// packs everything for the GPU. `progress` gets fractions of the whole job.
    pub fn build(mask: &Mask, mask_key: u64, opts: &MeshOptions, progress: Progress) -> Result<Scene, MeshError> {
        let meshing = |f: f32, m: &str| progress(0.9 * f, m);
        let meshes = build_objects_with_progress(mask, opts, &meshing)?;
        if !progress(0.9, "measuring tumours") {
            return Err(MeshError::Cancelled);
        }
        let tumours = measure_tumours(mask, opts, &meshes);
        let scene = Scene::from_objects(meshes, tumours, grid_bounds(mask), mask_key);
        progress(1.0, "done");
        Ok(scene)
    }

    /// Packs already built objects; `tumours` gives the measurements per object index.
    pub fn from_objects(
        meshes: Vec<MeshObject>,
        mut tumours: Vec<Option<TumourInfo>>,
        grid_bounds_mm: [Lps; 2],
        mask_key: u64,
    ) -> Scene {
        tumours.resize(meshes.len(), None);
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for m in &meshes {
            if let Some(b) = m.mesh.bounds_mm() {
                for a in 0..3 {
                    lo[a] = lo[a].min(b[0][a] as f64);
                    hi[a] = hi[a].max(b[1][a] as f64);
                }
            }
        }
        if !lo[0].is_finite() {
            (lo, hi) = (grid_bounds_mm[0], grid_bounds_mm[1]);
        }
        let origin = [0, 1, 2].map(|a| 0.5 * (lo[a] + hi[a]));
        let mut vertices = Vec::with_capacity(meshes.iter().map(|m| m.mesh.vertex_count()).sum());
        let mut indices = Vec::with_capacity(meshes.iter().map(|m| m.mesh.triangle_count() * 3).sum());
        let mut objects = Vec::with_capacity(meshes.len());
        let mut pack = |m: &crate::mesh::TriMesh| {
            let base_vertex = vertices.len() as i32;
            let first_index = indices.len() as u32;
            let normals = if m.normals.len() == m.positions_mm.len() { None } else { Some(vertex_normals(m)) };
            for (i, p) in m.positions_mm.iter().enumerate() {
                let n = normals.as_ref().map_or(m.normals[i], |n| n[i]);
                vertices.push(Vertex { position: [0, 1, 2].map(|a| (p[a] as f64 - origin[a]) as f32), normal: n });
            }
            indices.extend(m.triangles.iter().flatten());
            DrawRange { first_index, index_count: indices.len() as u32 - first_index, base_vertex }
        };
        let lods: Vec<Option<crate::mesh::TriMesh>> = meshes
            .par_iter()
            .map(|m| {
                (m.mesh.triangle_count() > LOD_TRIANGLES * 3 / 2).then(|| crate::mesh::decimate(&m.mesh, LOD_TRIANGLES))
            })
            .collect();
        for ((m, tumour), lod) in meshes.iter().zip(tumours).zip(&lods) {
            let full = pack(&m.mesh);
            let lod = lod.as_ref().map(&mut pack);
            let rgb = match m.kind {
                ObjectKind::Liver => LIVER_RGB,
                ObjectKind::Tumour => TUMOUR_RGB,
                ObjectKind::Vessels => VESSEL_RGB,
            };
            objects.push(SceneObject { name: m.name.clone(), kind: m.kind, rgb, full, lod, tumour });
        }
        Scene {
            key: crate::volume::next_key(),
            mask_key,
            origin_mm: origin,
            objects,
            meshes,
            vertices,
            indices,
            bounds_mm: [lo, hi],
            grid_bounds_mm,
        }
    }

    /// Where the slice planes are drawn: the surfaces' bounds with a margin, inside the
    /// mask's grid. (The whole grid spans the body; planes that large would cover the view.)
    pub fn plane_bounds_mm(&self) -> [Lps; 2] {
        const MARGIN_MM: f64 = 15.0;
        let [lo, hi] = self.bounds_mm;
        let [glo, ghi] = self.grid_bounds_mm;
        [[0, 1, 2].map(|a| (lo[a] - MARGIN_MM).max(glo[a])), [0, 1, 2].map(|a| (hi[a] + MARGIN_MM).min(ghi[a]))]
    }

    /// Triangles drawn in a still frame (decimated copies not counted).
    pub fn triangle_count(&self) -> usize {
        self.objects.iter().map(|o| o.full.index_count as usize / 3).sum()
    }

    /// The surface point a click on `ray` means. Opaque objects (tumours, vessels) win over
    /// the see-through liver in front of them, because that is what the user sees and
    /// aims at; the liver is picked only where the ray meets nothing else.
    pub fn pick(&self, ray: &Ray) -> Option<Hit> {
        let hits: Vec<Hit> = self
            .meshes
            .iter()
            .enumerate()
            .filter_map(|(i, m)| pick_mesh(ray, &m.mesh).map(|(t, p)| Hit { object: i, point_mm: p, distance_mm: t }))
            .collect();
        let nearest = |opaque: bool| {
            hits.iter()
                .filter(|h| (self.objects[h.object].kind != ObjectKind::Liver) == opaque)
                .min_by(|a, b| a.distance_mm.total_cmp(&b.distance_mm))
                .cloned()
        };
        nearest(true).or_else(|| nearest(false))
    }
}

/// Area-weighted vertex normals, for meshes that come without them.
fn vertex_normals(m: &crate::mesh::TriMesh) -> Vec<[f32; 3]> {
    let mut n = vec![[0.0f32; 3]; m.positions_mm.len()];
    for t in &m.triangles {
        let p = |i: usize| m.positions_mm[t[i] as usize];
        let (a, b, c) = (p(0), p(1), p(2));
        let e1 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let e2 = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let f = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
        for &v in t {
            for a in 0..3 {
                n[v as usize][a] += f[a];
            }
        }
    }
    for v in &mut n {
        let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if l > 0.0 {
            *v = v.map(|x| x / l);
        }
    }
    n
}

/// The connected piece of a closed surface that encloses the largest volume: the outer
/// wall, without the walls of cavities inside it (or of separate small islands).
pub fn outer_shell(m: &crate::mesh::TriMesh) -> crate::mesh::TriMesh {
    let n = m.positions_mm.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    for t in &m.triangles {
        for e in [(t[0], t[1]), (t[1], t[2])] {
            let (a, b) = (find(&mut parent, e.0), find(&mut parent, e.1));
            if a != b {
                parent[a.max(b) as usize] = a.min(b);
            }
        }
    }
    // signed volume per piece (divergence theorem about the first vertex, in f64)
    let Some(o) = m.positions_mm.first().map(|p| p.map(|v| v as f64)) else { return m.clone() };
    let mut volume: std::collections::HashMap<u32, f64> = std::collections::HashMap::new();
    for t in &m.triangles {
        let r = |i: u32| {
            let p = m.positions_mm[i as usize];
            [p[0] as f64 - o[0], p[1] as f64 - o[1], p[2] as f64 - o[2]]
        };
        let (a, b, c) = (r(t[0]), r(t[1]), r(t[2]));
        let six_v = a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
            + a[2] * (b[0] * c[1] - b[1] * c[0]);
        *volume.entry(find(&mut parent, t[0])).or_default() += six_v;
    }
    let Some((&outer, _)) = volume.iter().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0))) else {
        return m.clone();
    };
    if volume.len() == 1 {
        return m.clone();
    }
    let triangles: Vec<[u32; 3]> = m.triangles.iter().filter(|t| find(&mut parent, t[0]) == outer).copied().collect();
    crate::mesh::TriMesh { positions_mm: m.positions_mm.clone(), triangles, normals: Vec::new() }
}

/// Each tumour's measurements as the 3D view labels them (volume, diameter, depth below
/// the liver's outer surface, distance to the vessels), without packing a scene for the
/// GPU: the lesion table shows the same figures. `progress` as [`Scene::build`]'s.
pub fn tumour_measurements(mask: &Mask, opts: &MeshOptions, progress: Progress) -> Result<Vec<TumourInfo>, MeshError> {
    let meshes = build_objects_with_progress(mask, opts, progress)?;
    Ok(measure_tumours(mask, opts, &meshes).into_iter().flatten().collect())
}

/// Bounds of the voxels of `mask`'s grid (corners ± half a voxel), LPS mm.
pub fn grid_bounds(mask: &Mask) -> [Lps; 2] {
    geometry_bounds(&mask.geometry)
}

/// Bounds of the voxels of a grid (corners ± half a voxel), LPS mm.
pub fn geometry_bounds(g: &crate::volume::Geometry) -> [Lps; 2] {
    let [nz, ny, nx] = g.shape;
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for k in [-0.5, nz as f64 - 0.5] {
        for j in [-0.5, ny as f64 - 0.5] {
            for i in [-0.5, nx as f64 - 0.5] {
                let w = g.index_to_world([i, j, k]);
                for a in 0..3 {
                    lo[a] = lo[a].min(w[a]);
                    hi[a] = hi[a].max(w[a]);
                }
            }
        }
    }
    [lo, hi]
}

/// Measurements of every tumour object, by object index. The tumour objects are the
/// tumour label's components in `lesion`'s order with the same size filter, so component
/// `n` is `tumour_{n+1}`; a component whose voxel count disagrees is left unmeasured
/// rather than given another tumour's figures.
fn measure_tumours(mask: &Mask, opts: &MeshOptions, meshes: &[MeshObject]) -> Vec<Option<TumourInfo>> {
    let mut out = vec![None; meshes.len()];
    let Some(label) = opts.tumour_label else { return out };
    let voxel_ml = det3(&mask.geometry.index_to_world_matrix()).abs() / 1000.0;
    let min_voxels = if voxel_ml > 0.0 { (opts.min_tumour_ml / voxel_ml).ceil() as usize } else { 1 };
    let (comps, _) = connected_components(mask, label, min_voxels.max(1));
    // the capsule only: a vessel label enclosed by the liver leaves a cavity in the liver
    // object's surface, and a tumour's depth is not its distance to that cavity
    let liver =
        meshes.iter().find(|m| m.kind == ObjectKind::Liver).and_then(|m| SurfaceGrid::new(&outer_shell(&m.mesh)));
    let vessels = meshes.iter().find(|m| m.kind == ObjectKind::Vessels).and_then(|m| SurfaceGrid::new(&m.mesh));
    let [_, ny, nx] = mask.geometry.shape;
    let tumour_objects = meshes.iter().enumerate().filter(|(_, m)| m.kind == ObjectKind::Tumour);
    for (n, ((i, m), c)) in tumour_objects.zip(&comps).enumerate() {
        if c.voxels.len() != m.voxels {
            continue;
        }
        let Ok((_, longest)) = measure_voxels(&c.voxels, &mask.geometry) else { continue };
        let mut sum = [0.0; 3];
        for &v in &c.voxels {
            let w = mask.geometry.index_to_world([(v % nx) as f64, ((v / nx) % ny) as f64, (v / (nx * ny)) as f64]);
            for a in 0..3 {
                sum[a] += w[a];
            }
        }
        let count = c.voxels.len().max(1) as f64;
        out[i] = Some(TumourInfo {
            number: n + 1,
            volume_ml: m.voxel_volume_ml,
            longest_diameter_mm: longest,
            centroid_mm: sum.map(|s| s / count),
            depth_mm: liver.as_ref().and_then(|g| g.min_distance(&m.mesh.positions_mm)),
            vessel_mm: vessels.as_ref().and_then(|g| g.min_distance(&m.mesh.positions_mm)),
        });
    }
    out
}
