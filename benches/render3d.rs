//! Frame time of the 3D view on the machine's wgpu adapter (Mesa lavapipe without a GPU)
//! for a liver of about 300k triangles.
//!
//! `cargo bench --bench render3d -- --bench [--frames N] [--size WxH]`:
//! 1. The default demo phantom's mask (256 × 256 × 80 at 1.5 × 1.5 × 2.5 mm) upsampled ×2
//!    in every axis (nearest; 512 × 512 × 160 at 0.75 × 0.75 × 1.25 mm), so the liver's
//!    surface comes to the default 300k-triangle budget; surfaces and tumour measurements
//!    built as the app builds them ([`Scene::build`], timed).
//! 2. `--frames` frames (default 40) rendered off-screen at `--size` (default 640 × 800,
//!    the 3D cell beside three slice views in a 1500 × 900 window at 1×; and 1280 × 960),
//!    the camera turning 9° per frame so no frame is skipped as unchanged; each frame is
//!    recorded, submitted and waited for (the GPU's whole work, no read-back). Median and
//!    95th percentile reported: still frames (with and without the slice planes), the
//!    frames drawn while the camera moves (the liver's decimated copy,
//!    `render::scene::LOD_TRIANGLES`), and the tumours alone (what the liver costs). The
//!    variants take turns frame by frame.
//! 3. A click: the CPU pick of a ray through the middle of the view.
//! 4. Direct volume rendering (`--dvr-size`, default 512 × 512): the default demo's
//!    arterial phase (256 × 256 × 80, uploaded as it is) marched under the tumours (liver
//!    hidden) with the vessels/bone preset shaded and unshaded, the soft-tissue preset, the
//!    half-resolution frames drawn while the camera moves, and with the whole 300k-triangle
//!    liver shown too. `--only mesh` or `--only dvr` runs one part.
//!
//! Ends with one JSON line. Without `--bench` (as `cargo test --all-targets` runs it) it
//! only says how to run it.

use std::time::Instant;

use egui_wgpu::wgpu;
use hepaview::app::gpu::dvr::GpuDvrVolume;
use hepaview::app::gpu::mesh::{encode_frame, Drawing, GpuScene, Renderer3d};
use hepaview::app::gpu::targets::Target;
use hepaview::io::phase::Phase;
use hepaview::mesh::MeshOptions;
use hepaview::phantom::PhantomOptions;
use hepaview::render::{Camera, DvrParams, DvrVolume, FrameDesc, Scene, StandardView, TransferPreset};
use hepaview::study::Study;
use hepaview::volume::{Mask, Volume};
use ndarray::Array3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("render3d: run with `cargo bench --bench render3d -- --bench` to measure");
        return;
    }
    let frames = arg(&args, "--frames").and_then(|v| v.parse().ok()).unwrap_or(40usize).max(3);
    let sizes: Vec<[u32; 2]> = match arg(&args, "--size").and_then(parse_size) {
        Some(s) => vec![s],
        None => vec![[640, 800], [1280, 960]],
    };
    let rs = match hepaview::app::gpu::headless_render_state() {
        Ok(rs) => rs,
        Err(e) => {
            eprintln!("render3d: no wgpu adapter ({e}); install mesa-vulkan-drivers");
            return;
        }
    };
    let adapter = rs.adapter.get_info();
    println!("render3d bench: {} ({:?}), {frames} frames per size", adapter.name, adapter.backend);

    let t = Instant::now();
    let study = Study::demo(&PhantomOptions::default());
    let Some(labels) = study.labels.as_ref() else { return };
    let mask = upsample2(&labels.mask);
    println!(
        "mask {:?} at {:?} mm (phantom + upsampling {:.1} s)",
        mask.geometry.shape,
        mask.geometry.spacing_mm,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let scene = match Scene::build(&mask, 1, &MeshOptions::default(), &|_, _| true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("render3d: {e}");
            return;
        }
    };
    let build_s = t.elapsed().as_secs_f64();
    let liver_tris = scene
        .objects
        .iter()
        .find(|o| o.kind == hepaview::mesh::ObjectKind::Liver)
        .map_or(0, |o| o.full.index_count / 3);
    println!(
        "scene: {} objects, {} triangles (liver {liver_tris}), built in {build_s:.2} s (surfaces + measurements)",
        scene.objects.len(),
        scene.triangle_count()
    );
    for o in &scene.objects {
        if let Some(t) = &o.tumour {
            println!(
                "  {}: {:.1} mL, {:.0} mm, {:.1} mm to the liver surface",
                o.name,
                t.volume_ml,
                t.longest_diameter_mm,
                t.depth_mm.unwrap_or(f64::NAN)
            );
        }
    }

    let device = &rs.device;
    let queue = &rs.queue;
    let renderer = Renderer3d::new(device);
    let t = Instant::now();
    let gpu = GpuScene::upload(device, &scene);
    queue.submit([]);
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    let upload_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!("upload: {upload_ms:.1} ms");

    // Variants take turns frame by frame, so a load change on a shared machine hits all
    // of them alike and their ratios stay meaningful.
    struct Variant {
        name: &'static str,
        planes: bool,
        interactive: bool,
        liver: bool,
    }
    let variants = [
        Variant { name: "still, full surfaces", planes: true, interactive: false, liver: true },
        Variant { name: "still, no slice planes", planes: false, interactive: false, liver: true },
        Variant { name: "moving (decimated copies)", planes: true, interactive: true, liver: true },
        Variant { name: "still, liver hidden (tumours only)", planes: true, interactive: false, liver: false },
    ];
    let drawing = Drawing { renderer: &renderer, gpu: &gpu, scene: &scene, volume: None };
    let only = arg(&args, "--only");
    let mut results = Vec::new();
    for size in sizes.iter().filter(|_| only != Some("dvr")) {
        let target = Target::new(device, *size);
        let mut times = vec![Vec::with_capacity(frames); variants.len()];
        let mut camera = Camera::fit_aspect(scene.bounds_mm, StandardView::Anterior, size[0] as f64 / size[1] as f64);
        for n in 0..frames + 2 {
            camera.turn(9f64.to_radians());
            for (v, t_v) in variants.iter().zip(times.iter_mut()) {
                let mut frame = FrameDesc::new(camera, *size);
                frame.planes_at_mm = v.planes.then(|| mask.geometry.centre_mm());
                frame.interactive = v.interactive;
                frame.show_liver = v.liver;
                frame.liver_opacity = if v.liver { 0.25 } else { 0.0 };
                let ms = timed_frame(device, queue, &drawing, &frame, &target);
                // the first two rounds compile shaders and fault in memory
                if n >= 2 {
                    t_v.push(ms);
                }
            }
        }
        for (v, t) in variants.iter().zip(times.iter_mut()) {
            let (median, p95) = stats(t);
            println!(
                "{}x{} px, {}: median {median:.1} ms, p95 {p95:.1} ms ({:.0} fps)",
                size[0],
                size[1],
                v.name,
                1000.0 / median
            );
            results.push(serde_json::json!({"width": size[0], "height": size[1], "variant": v.name, "median_ms": median, "p95_ms": p95}));
        }
    }

    // direct volume rendering of the arterial phase under the surfaces
    let mut dvr_results = Vec::new();
    let mut dvr_prepare_ms = 0.0;
    if let (true, Some(art)) = (only != Some("mesh"), study.phases.iter().find(|p| p.phase() == Phase::Arterial)) {
        let size = arg(&args, "--dvr-size").and_then(parse_size).unwrap_or([512, 512]);
        let t = Instant::now();
        let vol = std::sync::Arc::new(DvrVolume::from_ct(&art.volume, art.key, hepaview::render::dvr::MAX_DIM));
        dvr_prepare_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let gvol = GpuDvrVolume::upload(device, queue, std::sync::Arc::clone(&vol));
        queue.submit([]);
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        println!(
            "DVR volume: {:?} (x, y, z) at {:?} mm, step {:.2} mm; prepared in {dvr_prepare_ms:.0} ms, uploaded in {:.0} ms",
            vol.dims(),
            vol.geometry.spacing_mm,
            vol.step_mm(),
            t.elapsed().as_secs_f64() * 1000.0
        );
        let d = Drawing { volume: Some(&gvol), ..drawing };
        struct DvrVariant {
            name: &'static str,
            preset: TransferPreset,
            shading: bool,
            interactive: bool,
            liver: bool,
            skip: bool,
        }
        let variants = [
            DvrVariant {
                name: "DVR vessels/bone, shaded, tumours",
                preset: TransferPreset::VesselsBone,
                shading: true,
                interactive: false,
                liver: false,
                skip: true,
            },
            DvrVariant {
                name: "DVR vessels/bone, shaded, tumours, no empty-space skipping",
                preset: TransferPreset::VesselsBone,
                shading: true,
                interactive: false,
                liver: false,
                skip: false,
            },
            DvrVariant {
                name: "DVR vessels/bone, unshaded, tumours",
                preset: TransferPreset::VesselsBone,
                shading: false,
                interactive: false,
                liver: false,
                skip: true,
            },
            DvrVariant {
                name: "DVR vessels/bone, moving (half resolution)",
                preset: TransferPreset::VesselsBone,
                shading: true,
                interactive: true,
                liver: false,
                skip: true,
            },
            DvrVariant {
                name: "DVR soft tissue, shaded, tumours",
                preset: TransferPreset::SoftTissue,
                shading: true,
                interactive: false,
                liver: false,
                skip: true,
            },
            DvrVariant {
                name: "DVR vessels/bone, shaded, full surfaces",
                preset: TransferPreset::VesselsBone,
                shading: true,
                interactive: false,
                liver: true,
                skip: true,
            },
        ];
        let target = Target::new(device, size);
        let mut times = vec![Vec::with_capacity(frames); variants.len()];
        let mut camera = Camera::fit_aspect(scene.bounds_mm, StandardView::Anterior, size[0] as f64 / size[1] as f64);
        for n in 0..frames + 2 {
            camera.turn(9f64.to_radians());
            for (v, t_v) in variants.iter().zip(times.iter_mut()) {
                let mut frame = FrameDesc::new(camera, size);
                frame.interactive = v.interactive;
                frame.show_liver = v.liver;
                frame.liver_opacity = if v.liver { 0.25 } else { 0.0 };
                frame.dvr = Some(DvrParams {
                    preset: v.preset,
                    shading: v.shading,
                    skip_empty: v.skip,
                    ..DvrParams::new(vol.key)
                });
                let ms = timed_frame(device, queue, &d, &frame, &target);
                if n >= 2 {
                    t_v.push(ms);
                }
            }
        }
        for (v, t) in variants.iter().zip(times.iter_mut()) {
            let (median, p95) = stats(t);
            println!(
                "{}x{} px, {}: median {median:.1} ms, p95 {p95:.1} ms ({:.1} fps)",
                size[0],
                size[1],
                v.name,
                1000.0 / median
            );
            dvr_results.push(serde_json::json!({"width": size[0], "height": size[1], "variant": v.name, "median_ms": median, "p95_ms": p95}));
        }
    }

    let cam = Camera::fit(scene.bounds_mm, StandardView::Anterior);
    let mut pick_ms = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let hit = scene.pick(&cam.ray(320.0, 400.0, [640.0, 800.0]));
        pick_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(hit);
    }
    pick_ms.sort_by(f64::total_cmp);
    println!("pick (ray through the middle, all {} triangles): median {:.1} ms", scene.triangle_count(), pick_ms[4]);

    let json = serde_json::json!({
        "bench": "render3d",
        "adapter": adapter.name,
        "backend": format!("{:?}", adapter.backend),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "triangles": scene.triangle_count(),
        "liver_triangles": liver_tris,
        "scene_build_s": build_s,
        "upload_ms": upload_ms,
        "frames": results,
        "dvr_prepare_ms": dvr_prepare_ms,
        "dvr_frames": dvr_results,
        "pick_ms": pick_ms[4],
    });
    println!("{json}");
}

/// Median and 95th percentile (sorts `t`).
/// Milliseconds to encode, submit and finish one frame on the GPU.
fn timed_frame(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    drawing: &Drawing,
    frame: &FrameDesc,
    target: &Target,
) -> f64 {
    let t = Instant::now();
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bench") });
    encode_frame(device, drawing, frame, target, &mut encoder);
    let index = queue.submit(std::iter::once(encoder.finish()));
    let _ = device.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None });
    t.elapsed().as_secs_f64() * 1000.0
}

fn stats(t: &mut [f64]) -> (f64, f64) {
    if t.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[((t.len() * 95) / 100).min(t.len() - 1)])
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn parse_size(s: &str) -> Option<[u32; 2]> {
    let (w, h) = s.split_once('x')?;
    Some([w.parse().ok()?, h.parse().ok()?])
}

/// Nearest-neighbour ×2 in every axis, the grid's extent kept.
fn upsample2(m: &Mask) -> Mask {
    let [nz, ny, nx] = m.geometry.shape;
    let data = Array3::from_shape_fn((nz * 2, ny * 2, nx * 2), |(k, j, i)| m.data[[k / 2, j / 2, i / 2]]);
    let mut g = m.geometry.clone();
    g.shape = [nz * 2, ny * 2, nx * 2];
    g.spacing_mm = g.spacing_mm.map(|s| s / 2.0);
    // the first voxel centre moves back a quarter of an old voxel (half a new one)
    g.origin_mm = g.index_to_world([-0.5, -0.5, -0.5]);
    Volume::new(data, g)
}
