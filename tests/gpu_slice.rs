//! The slice shader end to end: egui_kittest renders `gpu::slice_callback` through egui's
//! wgpu renderer (lavapipe on machines with no GPU), and pixels are compared with values
//! worked out by hand from a synthetic ramp volume, and with the CPU reslicer for oblique
//! planes.
//!
//! No adapter at all (no Vulkan, no GL): the tests print a skip message, except under CI,
//! where that is a failure.

use std::sync::Arc;

use egui_kittest::wgpu::{default_wgpu_setup, WgpuTestRenderer};
use egui_kittest::Harness;
use egui_wgpu::wgpu;
use hepaview::app::gpu::{self, LayerDesc, LayerKind, OverlayDesc, ScreenPlane, SliceViewDesc};
use hepaview::volume::{CtVolume, Geometry, Interp, Lps, Mask};
use ndarray::Array3;

const NX: usize = 16;
const NY: usize = 16;
const NZ: usize = 8;
const ORIGIN: Lps = [-10.0, 20.0, 30.0];
/// `(sz, sy, sx)` mm.
const SPACING: [f64; 3] = [2.5, 1.0, 1.0];

/// HU of voxel `(i, j, k)`: each axis moves the value by a different amount, so any pixel
/// says which voxel it came from.
fn hu(i: usize, j: usize, k: usize) -> i16 {
    (10 * i + 160 * j + 2560 * k) as i16 - 500
}

fn ct() -> Arc<CtVolume> {
    let data = Array3::from_shape_fn((NZ, NY, NX), |(k, j, i)| hu(i, j, k));
    Arc::new(CtVolume::new(data, Geometry::axis_aligned([NZ, NY, NX], SPACING, ORIGIN)))
}

fn world(i: f64, j: f64, k: f64) -> Lps {
    [ORIGIN[0] + i * SPACING[2], ORIGIN[1] + j * SPACING[1], ORIGIN[2] + k * SPACING[0]]
}

/// Axial plane through CT slice `k`, 1 mm per pixel, centred so that in a 16×16 viewport
/// pixel `(u, v)` shows voxel `(u + di, v, k)`.
fn axial(k: f64, di: f64) -> ScreenPlane {
    ScreenPlane { centre_mm: world(7.5 + di, 7.5, k), right: [1.0, 0.0, 0.0], down: [0.0, 1.0, 0.0], mm_per_px: 1.0 }
}

/// Level/width whose window starts at `lo` HU and spans `per_grey · 255` HU, so that
/// `grey·255 = (hu − lo) / per_grey`.
fn window(lo: f32, per_grey: f32) -> (f32, f32) {
    let width = 255.0 * per_grey;
    (lo + width / 2.0, width)
}

fn desc(plane: ScreenPlane, (level_hu, width_hu): (f32, f32), interp: Interp) -> SliceViewDesc {
    SliceViewDesc { volume: ct(), volume_key: 1, plane, level_hu, width_hu, interp, overlay: None, layer: None }
}

/// A fresh render state with the slice pipeline installed, or `None` (after saying why)
/// when this machine has no adapter and is not CI.
fn render_state(max_3d: Option<u32>) -> Option<egui_wgpu::RenderState> {
    let mut setup = default_wgpu_setup();
    if let (Some(max_3d), egui_wgpu::WgpuSetup::CreateNew(new)) = (max_3d, &mut setup) {
        let base = new.device_descriptor.clone();
        new.device_descriptor = Arc::new(move |adapter| {
            let mut d = base(adapter);
            d.required_limits.max_texture_dimension_3d = max_3d;
            d
        });
    }
    let instance = pollster::block_on(setup.new_instance());
    let config = egui_wgpu::WgpuConfiguration { wgpu_setup: setup, ..Default::default() };
    match pollster::block_on(egui_wgpu::RenderState::create(
        &config,
        &instance,
        None,
        egui_wgpu::RendererOptions::PREDICTABLE,
    )) {
        Ok(rs) => {
            gpu::install(&rs);
            Some(rs)
        }
        Err(err) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no wgpu adapter under CI ({err}); install mesa-vulkan-drivers (lavapipe)"
            );
            eprintln!("skipping GPU slice test: no wgpu adapter ({err}); apt-get install mesa-vulkan-drivers");
            None
        }
    }
}

/// Renders the given viewports (rects in points, ppp 1) into a `size` screen.
fn render_with(rs: egui_wgpu::RenderState, size: [f32; 2], views: Vec<(egui::Rect, SliceViewDesc)>) -> Image {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(size[0], size[1]))
        .with_pixels_per_point(1.0)
        .renderer(WgpuTestRenderer::from_render_state(rs))
        .build_ui(move |ui| {
            for (rect, d) in &views {
                ui.painter().add(gpu::slice_callback(*rect, d.clone()));
            }
        });
    let img = harness.render().expect("render through egui_wgpu");
    assert_eq!((img.width(), img.height()), (size[0] as u32, size[1] as u32));
    Image { width: img.width(), rgba: img.into_raw() }
}

/// The rendered RGBA8 screen (kept apart from the `image` crate, which is not ours to name).
struct Image {
    width: u32,
    rgba: Vec<u8>,
}

fn render(views: Vec<(egui::Rect, SliceViewDesc)>, size: [f32; 2]) -> Option<Image> {
    Some(render_with(render_state(None)?, size, views))
}

fn full(size: [f32; 2]) -> egui::Rect {
    egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(size[0], size[1]))
}

fn px(img: &Image, u: u32, v: u32) -> [u8; 4] {
    let at = 4 * (v * img.width + u) as usize;
    [img.rgba[at], img.rgba[at + 1], img.rgba[at + 2], img.rgba[at + 3]]
}

#[track_caller]
fn assert_near(got: [u8; 4], want: [f32; 3], tol: f32, what: &str) {
    let ok = (0..3).all(|c| (got[c] as f32 - want[c]).abs() <= tol) && got[3] == 255;
    assert!(ok, "{what}: got {got:?}, want {want:?} ±{tol}, opaque");
}

#[track_caller]
fn assert_grey(img: &Image, u: u32, v: u32, want: f32) {
    assert_near(px(img, u, v), [want; 3], 1.0, &format!("pixel ({u}, {v})"));
}

/// Grey (0…255) the CPU reslicer gives for a world point; black outside.
fn cpu_grey(vol: &CtVolume, p: Lps, (level, width): (f32, f32), interp: Interp) -> f32 {
    match vol.sample_world(p, interp) {
        Some(hu) => ((hu - (level - width / 2.0)) / width).clamp(0.0, 1.0) * 255.0,
        None => 0.0,
    }
}

/// World point of pixel `(u, v)` per `ScreenPlane`'s contract.
fn pixel_world(plane: &ScreenPlane, size: [f32; 2], u: u32, v: u32) -> Lps {
    let du = (u as f64 + 0.5 - size[0] as f64 / 2.0) * plane.mm_per_px;
    let dv = (v as f64 + 0.5 - size[1] as f64 / 2.0) * plane.mm_per_px;
    [0, 1, 2].map(|a| plane.centre_mm[a] + du * plane.right[a] + dv * plane.down[a])
}

#[test]
fn axial_nearest_shows_each_voxel_with_window_level() {
    let size = [16.0, 16.0];
    // Slice k = 3: grey·255 = (10 i + 160 j) / 10 = i + 16 j, all of 0…255.
    let lo = (2560 * 3 - 500) as f32;
    let d = desc(axial(3.0, 0.0), window(lo, 10.0), Interp::Nearest);
    let Some(img) = render(vec![(full(size), d)], size) else { return };
    for v in 0..16 {
        for u in 0..16 {
            assert_grey(&img, u, v, (u + 16 * v) as f32);
        }
    }
}

#[test]
fn linear_interpolates_between_voxels_and_slices() {
    let size = [16.0, 16.0];
    // 0.4 voxel right of the centres in x and a quarter of the way from slice 0 to 1.
    // Row j = 2, window from the value of (0, 2, 0.25), 1 HU per grey level:
    // linear gives 10·(u + 0.4) = 10 u + 4; nearest would give 10 u − 640 → 0.
    // (Slices 0 and 1 hold −500…2060 HU: exact in the GPU's half-float CT texture, which
    // steps by 2 HU above 2048 and by 8 HU near slice 3's 8000.)
    let lo = 160.0 * 2.0 + 2560.0 * 0.25 - 500.0;
    let plane = axial(0.25, 0.4);
    let Some(img) = render(vec![(full(size), desc(plane, window(lo, 1.0), Interp::Linear))], size) else { return };
    for u in 0..15 {
        assert_grey(&img, u, 2, (10 * u + 4) as f32);
    }
    // i = 15.4 is still inside (≤ 15.5) and reads the last column, as volume::trilinear does.
    assert_grey(&img, 15, 2, 150.0);
    // Same plane, nearest: slice 0 (0.25 rounds down), x rounds down.
    let lo = 160.0 * 2.0 - 500.0;
    let Some(img) = render(vec![(full(size), desc(plane, window(lo, 1.0), Interp::Nearest))], size) else { return };
    for u in 0..16 {
        assert_grey(&img, u, 2, (10 * u) as f32);
    }
}

#[test]
fn outside_the_volume_is_black() {
    let size = [16.0, 16.0];
    // Shifted 8 voxels right: pixels u ≥ 8 fall past the last voxel (i = u + 8 > 15.5).
    // A window far below the data makes every inside pixel white.
    let d = desc(axial(3.0, 8.0), (-3000.0, 10.0), Interp::Linear);
    let Some(img) = render(vec![(full(size), d)], size) else { return };
    for v in [0, 7, 15] {
        for u in 0..8 {
            assert_grey(&img, u, v, 255.0);
        }
        for u in 8..16 {
            assert_grey(&img, u, v, 0.0);
        }
    }
}

#[test]
fn coronal_plane_puts_superior_at_the_top() {
    let size = [16.0, 16.0];
    // right = +x (patient left), down = −z (inferior); j = 5; 1 mm per pixel over 2.5 mm
    // slices: pixel (u, v) shows i = u, k = round(6.4 − 0.4 v) (no ties).
    let plane =
        ScreenPlane { centre_mm: world(7.5, 5.0, 3.4), right: [1.0, 0.0, 0.0], down: [0.0, 0.0, -1.0], mm_per_px: 1.0 };
    let w = window(0.0, 80.0);
    let Some(img) = render(vec![(full(size), desc(plane, w, Interp::Nearest))], size) else { return };
    // By hand: (4, 3) → voxel (4, 5, 5): 40 + 800 + 12800 − 500 = 13140 HU → 164.25.
    assert_grey(&img, 4, 3, 164.0);
    // (4, 0) → slice 6: 15700 HU → 196.25; (4, 15) → slice 0: 340 HU → 4.25.
    assert_grey(&img, 4, 0, 196.0);
    assert_grey(&img, 4, 15, 4.0);
    let vol = ct();
    for v in 0..16 {
        for u in 0..16 {
            let want = cpu_grey(&vol, pixel_world(&plane, size, u, v), w, Interp::Nearest);
            assert_grey(&img, u, v, want);
        }
    }
}

#[test]
fn oblique_plane_matches_cpu_reslice() {
    let size = [24.0, 20.0];
    let s = std::f64::consts::FRAC_1_SQRT_2;
    // Rotated 45° about z and tilted: right = (x + y)/√2, down = (−x + y)/√2 mixed with z.
    let right = [s, s, 0.0];
    let (c, sn) = (0.8f64, 0.6f64);
    let down = [-s * c, s * c, -sn];
    let plane = ScreenPlane { centre_mm: world(7.3, 7.9, 3.6), right, down, mm_per_px: 0.7 };
    let w = window(-500.0, 80.0);
    let Some(img) = render(vec![(full(size), desc(plane, w, Interp::Linear))], size) else { return };
    let vol = ct();
    let mut inside = 0;
    for v in 0..size[1] as u32 {
        for u in 0..size[0] as u32 {
            let p = pixel_world(&plane, size, u, v);
            let want = cpu_grey(&vol, p, w, Interp::Linear);
            // Pixels within a hair of the volume's edge may land either side in f32.
            let ijk = vol.geometry.world_to_index(p);
            let n = [NX as f64, NY as f64, NZ as f64];
            let near_edge = (0..3).any(|a| (ijk[a] + 0.5).abs() < 1e-3 || (ijk[a] - (n[a] - 0.5)).abs() < 1e-3);
            if near_edge {
                continue;
            }
            inside += usize::from(want > 0.0);
            assert_near(px(&img, u, v), [want; 3], 1.5, &format!("oblique pixel ({u}, {v})"));
        }
    }
    assert!(inside > 100, "the oblique plane should cross the volume ({inside} pixels)");
}

#[test]
fn two_viewports_in_one_frame_keep_their_own_planes() {
    let size = [32.0, 16.0];
    let left = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(16.0, 16.0));
    let right = egui::Rect::from_min_size(egui::pos2(16.0, 0.0), egui::vec2(16.0, 16.0));
    let lo3 = (2560 * 3 - 500) as f32;
    let lo5 = (2560 * 5 - 500) as f32;
    let views = vec![
        (left, desc(axial(3.0, 0.0), window(lo3, 10.0), Interp::Nearest)),
        // Shows slice 5 with a window that starts 40 HU lower: grey + 4.
        (right, desc(axial(5.0, 0.0), window(lo5 - 40.0, 10.0), Interp::Nearest)),
    ];
    let Some(img) = render(views, size) else { return };
    for v in [0, 5, 9] {
        for u in [0, 3, 11, 15] {
            assert_grey(&img, u, v, (u + 16 * v) as f32);
            assert_grey(&img, 16 + u, v, (u + 16 * v + 4).min(255) as f32);
        }
    }
}

/// Mask on its own coarser grid: 8×8×4 voxels of 2×2×5 mm, whose voxel `a` covers CT
/// voxels `2a` and `2a + 1`. Label 1 fills mask voxels i, j ∈ 2..4 (CT pixels 4…7) on
/// every slice; label 2 fills i ∈ 6..8, j ∈ 0..2 (CT pixels u 12…15, v 0…3).
fn mask() -> Arc<Mask> {
    let origin = world(0.5, 0.5, 0.5);
    let data = Array3::from_shape_fn((4, 8, 8), |(_, j, i)| {
        if (2..4).contains(&i) && (2..4).contains(&j) {
            1u8
        } else if (6..8).contains(&i) && j < 2 {
            2
        } else {
            0
        }
    });
    Arc::new(Mask::new(data, Geometry::axis_aligned([4, 8, 8], [5.0, 2.0, 2.0], origin)))
}

fn palette() -> [[f32; 4]; 16] {
    let mut p = [[0.0; 4]; 16];
    p[1] = [1.0, 0.0, 0.0, 1.0];
    p[2] = [0.0, 0.0, 1.0, 0.5];
    p
}

fn overlay_desc(outline: bool) -> SliceViewDesc {
    let lo = (2560 * 3 - 500) as f32;
    let mut d = desc(axial(3.0, 0.0), window(lo, 10.0), Interp::Nearest);
    d.overlay = Some(OverlayDesc { mask: mask(), key: 7, opacity: 0.6, outline, palette: palette(), previous: None });
    d
}

/// CT grey at pixel (u, v) of `overlay_desc`, mixed with `rgba` at `opacity · a`.
fn blended(u: u32, v: u32, rgba: [f32; 4], opacity: f32) -> [f32; 3] {
    let g = (u + 16 * v) as f32;
    let a = rgba[3] * opacity;
    [0, 1, 2].map(|c| g * (1.0 - a) + 255.0 * rgba[c] * a)
}

#[test]
fn filled_overlay_colours_labelled_pixels_only() {
    let size = [16.0, 16.0];
    let Some(img) = render(vec![(full(size), overlay_desc(false))], size) else { return };
    let pal = palette();
    for v in 0..16 {
        for u in 0..16 {
            let want = if (4..8).contains(&u) && (4..8).contains(&v) {
                blended(u, v, pal[1], 0.6)
            } else if u >= 12 && v < 4 {
                blended(u, v, pal[2], 0.6)
            } else {
                [(u + 16 * v) as f32; 3]
            };
            assert_near(px(&img, u, v), want, 1.0, &format!("filled overlay ({u}, {v})"));
        }
    }
}

#[test]
fn outline_overlay_colours_only_the_boundary() {
    let size = [16.0, 16.0];
    let Some(img) = render(vec![(full(size), overlay_desc(true))], size) else { return };
    let pal = palette();
    for v in 0..16 {
        for u in 0..16 {
            let in1 = (4..8).contains(&u) && (4..8).contains(&v);
            let edge1 = in1 && (u == 4 || u == 7 || v == 4 || v == 7);
            // Label 2 reaches the mask's top and right edges; the neighbour beyond an
            // edge reads as label 0, so rows/columns there are boundary too.
            let in2 = u >= 12 && v < 4;
            let edge2 = in2 && (u == 12 || u == 15 || v == 0 || v == 3);
            let want = if edge1 {
                blended(u, v, pal[1], 0.6)
            } else if edge2 {
                blended(u, v, pal[2], 0.6)
            } else {
                [(u + 16 * v) as f32; 3]
            };
            assert_near(px(&img, u, v), want, 1.0, &format!("outline overlay ({u}, {v})"));
        }
    }
}

/// The overlay is a second draw limited to the labels' projected box: on an oblique plane, in
/// a viewport that does not start at the framebuffer's origin, exactly the pixels whose
/// point the CPU finds labelled change colour, and the rest equal the same view drawn
/// without an overlay.
#[test]
fn oblique_overlay_colours_exactly_the_labelled_pixels() {
    let (w, h) = (24u32, 22u32);
    let size = [2.0 * w as f32, h as f32];
    let left = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(w as f32, h as f32));
    let right = egui::Rect::from_min_size(egui::pos2(w as f32, 0.0), egui::vec2(w as f32, h as f32));
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let (c, sn) = (0.8f64, 0.6f64);
    let plane =
        ScreenPlane { centre_mm: world(9.3, 5.9, 3.6), right: [s, s, 0.0], down: [-s * c, s * c, -sn], mm_per_px: 0.6 };
    let plain = desc(plane, window(-500.0, 80.0), Interp::Linear);
    let mut labelled = plain.clone();
    labelled.overlay =
        Some(OverlayDesc { mask: mask(), key: 7, opacity: 0.6, outline: false, palette: palette(), previous: None });
    let Some(img) = render(vec![(left, plain), (right, labelled)], size) else { return };
    let m = mask();
    let (mut shown, mut hidden) = (0, 0);
    for v in 0..h {
        for u in 0..w {
            let p = pixel_world(&plane, [w as f32, h as f32], u, v);
            // pixels within a hair of a mask voxel's edge may round either way in f32
            let ijk = m.geometry.world_to_index(p);
            if ijk.iter().any(|&x| ((x + 0.5) - (x + 0.5).round()).abs() < 1e-3) {
                continue;
            }
            let label = m.sample_world(p, Interp::Nearest).unwrap_or(0.0);
            let (base, over) = (px(&img, u, v), px(&img, w + u, v));
            if label > 0.0 {
                shown += 1;
                assert_ne!(base, over, "labelled pixel ({u}, {v}) shows its label");
            } else {
                hidden += 1;
                assert_eq!(base, over, "unlabelled pixel ({u}, {v}) keeps the CT");
            }
        }
    }
    assert!(shown > 20 && hidden > 20, "the plane should cross labels and background ({shown} / {hidden})");
}

#[test]
fn volume_over_the_device_limit_is_downsampled_not_dropped() {
    let size = [16.0, 16.0];
    // A device that allows 8 texels per 3D side: the 16×16×8 CT goes up as every 2nd voxel
    // in x and y (texel t = voxel 2t), still in place: pixel (u, v) shows the texel nearest
    // voxel (u, v, 3), i.e. voxel 2·round(u/2) (halves up), clamped to the last texel.
    let Some(rs) = render_state(Some(8)) else { return };
    let lo = (2560 * 3 - 500) as f32;
    let img = render_with(rs, size, vec![(full(size), desc(axial(3.0, 0.0), window(lo, 10.0), Interp::Nearest))]);
    for v in 0..16u32 {
        for u in 0..16u32 {
            let (i, j) = (2 * u.div_ceil(2).min(7), 2 * v.div_ceil(2).min(7));
            assert_grey(&img, u, v, (i + 16 * j) as f32);
        }
    }
}

#[test]
fn cache_reuses_by_key_and_forgets_unused_volumes() {
    use gpu::volumes::{VolumeCache, VolumeKind};
    let Some(rs) = render_state(None) else { return };
    let (device, queue) = (&rs.device, &rs.queue);
    let vol = ct();
    let mut cache = VolumeCache::default();
    let first = cache.get_or_upload(device, queue, 1, &vol).map(|t| t.texture.clone()).expect("uploads");
    let again = cache.get_or_upload(device, queue, 1, &vol).map(|t| t.texture.clone()).expect("cached");
    assert_eq!(first, again, "the same key must reuse the texture");
    assert_eq!(cache.bytes(), (NX * NY * NZ * 2) as u64);
    // Key 2 stays on screen for a long time; key 1 is never asked for again.
    for _ in 0..1100 {
        cache.get_or_upload(device, queue, 2, &vol).expect("cached");
    }
    assert!(cache.contains(VolumeKind::Ct, 1), "eviction happens only when something new arrives");
    cache.get_or_upload(device, queue, 3, &vol).expect("uploads");
    assert!(!cache.contains(VolumeKind::Ct, 1), "an unused texture is dropped");
    assert!(cache.contains(VolumeKind::Ct, 2) && cache.contains(VolumeKind::Ct, 3));
    // A mask and a CT may share a key number without clashing.
    let m = mask();
    cache.get_or_upload(device, queue, 2, &m).expect("uploads");
    assert!(cache.contains(VolumeKind::Mask, 2) && cache.contains(VolumeKind::Ct, 2));
    // An empty volume has nothing to draw.
    let empty = CtVolume::new(Array3::zeros((0, 4, 4)), Geometry::axis_aligned([0, 4, 4], SPACING, ORIGIN));
    assert!(cache.get_or_upload(device, queue, 9, &empty).is_none());
}

#[test]
fn pipeline_builds_for_msaa_and_depth_passes() {
    let Some(rs) = render_state(None) else { return };
    for (samples, depth) in [(1, None), (4, None), (4, Some(wgpu::TextureFormat::Depth32Float))] {
        let scope = rs.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let _ = gpu::slice::SliceRenderer::new(&rs.device, rs.target_format, samples, depth);
        let err = pollster::block_on(scope.pop());
        assert!(err.is_none(), "pipeline for {samples}× MSAA, depth {depth:?}: {err:?}");
    }
}

/// An edited mask drawn through the incremental path (old texture taken over, only the
/// edited box rewritten) looks exactly like the same mask uploaded whole.
fn render_edit(update_box: [usize; 6]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let size = [16.0, 16.0];
    let rs = render_state(None)?;
    let state = std::sync::Arc::new(std::sync::Mutex::new(overlay_desc(false)));
    let shared = std::sync::Arc::clone(&state);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(size[0], size[1]))
        .with_pixels_per_point(1.0)
        .renderer(WgpuTestRenderer::from_render_state(rs))
        .build_ui(move |ui| {
            let d = shared.lock().unwrap().clone();
            ui.painter().add(gpu::slice_callback(full([16.0, 16.0]), d));
        });
    let before = harness.render().expect("render").into_raw();
    // paint label 2 into a 2 × 2 column through every slice, as a 3D brush would
    let mut edited = (*mask()).clone();
    for k in 0..4 {
        for j in 0..2 {
            for i in 0..2 {
                edited.data[[k, j, i]] = 2;
            }
        }
    }
    let edited = Arc::new(edited);
    {
        let mut d = state.lock().unwrap();
        let ov = d.overlay.as_mut().unwrap();
        ov.mask = Arc::clone(&edited);
        ov.key = 8;
        ov.previous = Some((7, update_box));
    }
    harness.run();
    let incremental = harness.render().expect("render").into_raw();
    let mut fresh = overlay_desc(false);
    let ov = fresh.overlay.as_mut().unwrap();
    ov.mask = edited;
    ov.key = 9;
    let whole = render(vec![(full(size), fresh)], size)?.rgba;
    Some((before, incremental, whole))
}

#[test]
fn an_edited_mask_updates_only_its_box_and_draws_like_a_full_upload() {
    let Some((before, incremental, whole)) = render_edit([0, 4, 0, 2, 0, 2]) else { return };
    assert_ne!(before, incremental, "the edit shows");
    assert_eq!(incremental, whole, "incremental upload draws the same as a full upload");
}

/// The proof that only the box is written: given a box that misses the edit, the old
/// texture is reused and the edit does not show.
#[test]
fn only_the_given_box_is_rewritten() {
    let Some((before, incremental, whole)) = render_edit([0, 4, 6, 8, 6, 8]) else { return };
    assert_eq!(before, incremental, "voxels outside the box keep their old texels");
    assert_ne!(incremental, whole);
}

/// A layer on the CT's grid whose voxel `(i, j, k)` holds `f(i, j)` on every slice.
fn layer(key: u64, kind: LayerKind, f: impl Fn(usize, usize) -> i16) -> LayerDesc {
    let data = Array3::from_shape_fn((NZ, NY, NX), |(_, j, i)| f(i, j));
    LayerDesc {
        volume: Arc::new(CtVolume::new(data, Geometry::axis_aligned([NZ, NY, NX], SPACING, ORIGIN))),
        key,
        kind,
    }
}

/// The ramp's slice 3 through `window(lo, 10)`: pixel (u, v) has grey u + 16 v.
fn layered(kind: LayerKind, f: impl Fn(usize, usize) -> i16) -> SliceViewDesc {
    let lo = (2560 * 3 - 500) as f32;
    let mut d = desc(axial(3.0, 0.0), window(lo, 10.0), Interp::Nearest);
    d.layer = Some(layer(11, kind, f));
    d
}

#[test]
fn fusion_layer_colours_each_image_through_the_window() {
    let size = [16.0, 16.0];
    let lo = 2560 * 3 - 500;
    // the layer's grey is 100 on the left half, 0 (below the window) on the right
    let kind = LayerKind::Fusion { ct_rgb: [1.0, 0.0, 0.0], layer_rgb: [0.0, 1.0, 0.0] };
    let d = layered(kind, |i, _| if i < 8 { (lo + 1000) as i16 } else { -1000 });
    let Some(img) = render(vec![(full(size), d)], size) else { return };
    for v in 0..16 {
        for u in 0..16 {
            let want = [(u + 16 * v) as f32, if u < 8 { 100.0 } else { 0.0 }, 0.0];
            assert_near(px(&img, u, v), want, 1.0, &format!("fusion ({u}, {v})"));
        }
    }
}

#[test]
fn heat_layer_blends_a_ramp_above_its_minimum_only() {
    let size = [16.0, 16.0];
    // 150 of 0..300 is t = 0.5: heat (1, 0.5, 0); below the minimum the CT shows alone
    let kind = LayerKind::Heat { min: 0.0, max: 300.0, opacity: 0.5 };
    let d = layered(kind, |i, _| if i < 8 { 150 } else { -10 });
    let Some(img) = render(vec![(full(size), d)], size) else { return };
    for v in 0..16 {
        for u in 0..16 {
            let g = (u + 16 * v) as f32;
            let want = if u < 8 { [0.5 * g + 127.5, 0.5 * g + 63.75, 0.5 * g] } else { [g; 3] };
            assert_near(px(&img, u, v), want, 1.5, &format!("heat ({u}, {v})"));
        }
    }
}

#[test]
fn grid_layer_draws_only_the_planes_that_cut_the_view() {
    use hepaview::register::compare::{GRID_X, GRID_Y, GRID_Z};
    let size = [16.0, 16.0];
    let kind = LayerKind::Grid { rgb: [1.0, 1.0, 0.0] };
    // x planes at i = 5, y planes at j = 3; a z plane at j = 9 lies in the axial view's own
    // plane direction and must not draw
    let d = layered(kind, |i, j| {
        (if i == 5 { GRID_X } else { 0 }) | (if j == 3 { GRID_Y } else { 0 }) | (if j == 9 { GRID_Z } else { 0 })
    });
    let Some(img) = render(vec![(full(size), d)], size) else { return };
    for v in 0..16 {
        for u in 0..16 {
            let g = (u + 16 * v) as f32;
            let line = u == 5 || v == 3;
            let want = if line { [0.15 * g + 216.75, 0.15 * g + 216.75, 0.15 * g] } else { [g; 3] };
            assert_near(px(&img, u, v), want, 1.5, &format!("grid ({u}, {v})"));
        }
    }
}
