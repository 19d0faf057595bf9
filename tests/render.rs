//! The 3D view: camera conventions (radiological LPS), exact picking, the demo phantom's
//! surfaces rendered on wgpu (Mesa lavapipe without a GPU) with the tumours visible through
//! the liver, clicking a tumour moves the crosshair, snapshot and turntable pictures, the
//! orientation cube, and direct volume rendering of the arterial phase with the surfaces.

use std::sync::Arc;

use egui::{Event, Key, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use hepaview::app::gpu::dvr::GpuDvrVolume;
use hepaview::app::gpu::mesh::{render_image, render_turntable, Drawing, GpuScene, Renderer3d};
use hepaview::app::view::ViewState;
use hepaview::app::view3d::View3d;
use hepaview::app::HepaviewApp;
use hepaview::io::phase::Phase;
use hepaview::mesh::{self, MeshObject, MeshOptions, ObjectKind};
use hepaview::phantom::PhantomOptions;
use hepaview::render::frame::BACKGROUND;
use hepaview::render::{Camera, DvrParams, DvrVolume, FrameDesc, Scene, StandardView, TransferPreset};
use hepaview::study::Study;
use hepaview::volume::{Geometry, Lps, Volume};
use ndarray::Array3;

fn dist(a: Lps, b: Lps) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// A wgpu render state with the slice and 3D pipelines, or `None` after saying why (a
/// failure under CI).
fn render_state() -> Option<egui_wgpu::RenderState> {
    let opts = egui_wgpu::RendererOptions::PREDICTABLE;
    match hepaview::app::gpu::headless_render_state_with(opts) {
        Ok(rs) => {
            hepaview::app::gpu::view3d::install(&rs, &opts);
            Some(rs)
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: no wgpu adapter ({e}); install mesa-vulkan-drivers");
            None
        }
        Err(e) => panic!("no wgpu adapter under CI: {e}"),
    }
}

/// A ball of `radius_mm` around `centre` on a 1 mm grid, meshed as a tumour object.
fn sphere_scene(centre: Lps, radius_mm: f64) -> Scene {
    sphere_scene_spacing(centre, radius_mm, 1.0)
}

fn sphere_scene_spacing(centre: Lps, radius_mm: f64, spacing_mm: f64) -> Scene {
    let n = ((2.0 * radius_mm + 8.0) / spacing_mm) as usize;
    let half = n as f64 * spacing_mm / 2.0;
    let origin = [centre[0] - half, centre[1] - half, centre[2] - half];
    let g = Geometry::axis_aligned([n, n, n], [spacing_mm; 3], origin);
    let data = Array3::from_shape_fn(g.shape, |(k, j, i)| {
        (dist(g.index_to_world([i as f64, j as f64, k as f64]), centre) <= radius_mm) as u8
    });
    let mask = Volume::new(data, g);
    let mut m = mesh::surface(&mask, &[1]).expect("sphere surface");
    m.compute_normals();
    let obj = MeshObject {
        name: "tumour_1".into(),
        kind: ObjectKind::Tumour,
        labels: vec![1],
        voxels: 0,
        voxel_volume_ml: 0.0,
        mesh: m,
    };
    Scene::from_objects(vec![obj], vec![], hepaview::render::scene::grid_bounds(&mask), 1)
}

#[test]
fn anterior_view_looks_at_the_patients_face() {
    let c = Camera::fit([[-100.0, -100.0, -100.0], [100.0, 100.0, 100.0]], StandardView::Anterior);
    let size = [800.0, 600.0];
    // anterior (−y) is nearer the camera than posterior (+y)
    let (_, d_ant) = c.project([0.0, -50.0, 0.0], size).unwrap();
    let (_, d_post) = c.project([0.0, 50.0, 0.0], size).unwrap();
    assert!(d_post > d_ant + 99.0, "posterior at {d_post} mm, anterior at {d_ant} mm");
    // patient left (+x) on screen right, superior (+z) up
    let (left, _) = c.project([50.0, 0.0, 0.0], size).unwrap();
    let (right, _) = c.project([-50.0, 0.0, 0.0], size).unwrap();
    assert!(left[0] > 400.0 && right[0] < 400.0, "patient left at x={}, right at x={}", left[0], right[0]);
    let (sup, _) = c.project([0.0, 0.0, 50.0], size).unwrap();
    assert!(sup[1] < 300.0, "superior drawn at y={}", sup[1]);
    // posterior view mirrors left/right; superior view puts anterior up and the
    // patient's right on screen right; inferior (from the feet) as the axial slices
    let p = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Posterior);
    assert!(p.project([50.0, 0.0, 0.0], size).unwrap().0[0] < 400.0);
    let s = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Superior);
    assert!(
        s.project([0.0, -50.0, 0.0], size).unwrap().0[1] < 300.0
            && s.project([-50.0, 0.0, 0.0], size).unwrap().0[0] > 400.0
    );
    let i = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Inferior);
    assert!(i.project([-50.0, 0.0, 0.0], size).unwrap().0[0] < 400.0, "inferior: patient right on screen left");
    assert!(
        i.project([0.0, 0.0, -50.0], size).unwrap().1 < i.project([0.0, 0.0, 50.0], size).unwrap().1,
        "inferior: feet nearer"
    );
    // left view: anterior on screen left, as the sagittal slices
    let l = Camera::fit([[-100.0; 3], [100.0; 3]], StandardView::Left);
    assert!(l.project([0.0, -50.0, 0.0], size).unwrap().0[0] < 400.0);
    assert!(
        l.project([50.0, 0.0, 0.0], size).unwrap().1 < l.project([-50.0, 0.0, 0.0], size).unwrap().1,
        "left side nearer"
    );
}

#[test]
fn pick_ray_from_the_centre_hits_the_front_of_a_sphere() {
    let centre = [12.0, -30.0, 41.0];
    let r = 20.0;
    let scene = sphere_scene(centre, r);
    for v in StandardView::ALL {
        let cam = Camera::fit(scene.bounds_mm, v);
        let size = [640.0, 480.0];
        let ray = cam.ray(320.0, 240.0, size);
        let hit = scene.pick(&ray).expect("the centre ray hits the sphere");
        // the near pole: centre moved towards the camera by the radius
        let b = cam.back();
        let expected = [centre[0] + r * b[0], centre[1] + r * b[1], centre[2] + r * b[2]];
        assert!(dist(hit.point_mm, expected) < 1.0, "{v:?}: hit {:?}, expected {expected:?}", hit.point_mm);
        // a ray past the sphere's edge misses
        let miss = cam.ray(320.0 + 0.9 * 240.0 * 1.0, 240.0, size);
        assert!(scene.pick(&miss).is_none() || dist(scene.pick(&miss).unwrap().point_mm, centre) <= r + 1.0);
    }
}

fn demo() -> Study {
    Study::demo(&PhantomOptions::small())
}

fn built(study: &Study) -> View3d {
    let mut v = View3d::default();
    v.visible = true;
    let ctx = egui::Context::default();
    v.poll(study, &ctx);
    v.wait_for_build(study, &ctx);
    assert!(v.error.is_none(), "{:?}", v.error);
    assert!(v.scene.is_some(), "surfaces built");
    v
}

#[test]
fn demo_surfaces_and_tumour_measurements() {
    let study = demo();
    let v = built(&study);
    let scene = v.scene.as_ref().unwrap();
    let kinds: Vec<ObjectKind> = scene.objects.iter().map(|o| o.kind).collect();
    assert_eq!(kinds[0], ObjectKind::Liver);
    let tumours: Vec<_> = scene.objects.iter().filter_map(|o| o.tumour.as_ref()).collect();
    assert_eq!(tumours.len(), 4, "four phantom lesions");
    // the same numbers as the lesion table (same components, same measures)
    let mask = &study.labels.as_ref().unwrap().mask;
    let lesions =
        hepaview::lesion::analyse_lesions(mask, &[], &hepaview::lesion::LesionOptions::default()).expect("lesions");
    for (t, l) in tumours.iter().zip(&lesions.lesions) {
        assert!((t.volume_ml - l.volume_ml).abs() < 1e-9, "#{}: {} vs {} mL", t.number, t.volume_ml, l.volume_ml);
        assert!((t.longest_diameter_mm - l.longest_diameter_3d_mm).abs() < 1e-9);
        assert!(dist(t.centroid_mm, l.centroid_mm) < 1e-6);
        // inside the liver: a depth below its surface, not more than the liver is thick
        let d = t.depth_mm.expect("liver present");
        assert!((0.0..80.0).contains(&d), "#{} depth {d}", t.number);
        assert!(t.vessel_mm.is_none(), "the demo mask has no vessel label");
    }
}

#[test]
fn depth_below_the_liver_surface_and_distance_to_vessels_match_the_geometry() {
    // liver: ball of 40 mm; tumour: ball of 10 mm whose centre sits 15 mm from the liver's
    // (so 15 mm of liver between it and the surface); vessel: a tube of radius 4 mm along S
    // whose axis passes 26 mm from the tumour's centre (gap 12 mm), inside the liver
    let c = [0.0, 0.0, 0.0];
    let t = [15.0, 0.0, 0.0];
    let g = Geometry::axis_aligned([100, 100, 100], [1.0; 3], [-49.5, -49.5, -49.5]);
    let data = Array3::from_shape_fn(g.shape, |(k, j, i)| {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        let tube = ((p[0] - 15.0).powi(2) + (p[1] + 26.0).powi(2)).sqrt() <= 4.0 && p[2].abs() <= 20.0;
        if dist(p, t) <= 10.0 {
            2
        } else if tube {
            3
        } else if dist(p, c) <= 40.0 {
            1
        } else {
            0
        }
    });
    let mask = Volume::new(data, g);
    let scene = Scene::build(&mask, 7, &MeshOptions::default(), &|_, _| true).expect("scene");
    let kinds: Vec<ObjectKind> = scene.objects.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, vec![ObjectKind::Liver, ObjectKind::Tumour, ObjectKind::Vessels]);
    let info = scene.objects[1].tumour.clone().expect("measured");
    let depth = info.depth_mm.unwrap();
    let gap = info.vessel_mm.unwrap();
    // voxelised at 1 mm and smoothed: within a millimetre and a half
    assert!((depth - 15.0).abs() < 1.5, "depth {depth:.2} mm, expected 15");
    assert!((gap - 12.0).abs() < 1.5, "vessel gap {gap:.2} mm, expected 12");
    assert!((info.volume_ml - 4.0 / 3.0 * std::f64::consts::PI * 1e3 / 1e3).abs() < 0.15, "{} mL", info.volume_ml);
}

#[test]
fn v_key_shows_the_3d_view_and_clicking_a_tumour_moves_the_crosshair() {
    let study = demo();
    let mut app = HepaviewApp::new(study);
    // build before the UI runs, so the test does not wait on the debounce
    let v = built(&app.study);
    app.view3d = v;
    app.view3d.visible = false;
    let mut h =
        Harness::builder().with_size([1400.0, 800.0]).build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), app);
    h.run();
    h.key_press(Key::V);
    h.run();
    assert!(h.state().view3d.visible, "V shows the 3D view");
    let pic = h.state().view3d.picture_rect.expect("3D picture laid out");
    let (cam, scene) = (h.state().view3d.camera, Arc::clone(h.state().view3d.scene.as_ref().unwrap()));
    // the largest tumour's centroid, where it appears on screen
    let (ti, t) =
        scene.objects.iter().enumerate().find_map(|(i, o)| o.tumour.as_ref().map(|t| (i, t.clone()))).unwrap();
    let (p, _) = cam.project(t.centroid_mm, [pic.width() as f64, pic.height() as f64]).expect("in front of the camera");
    let at = pic.min + Vec2::new(p[0] as f32, p[1] as f32);
    assert!(pic.contains(at), "tumour at {at:?} outside the picture {pic:?}");
    let before = h.state().view.crosshair_mm;
    h.hover_at(at);
    h.event(Event::PointerButton {
        pos: at,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.event(Event::PointerButton {
        pos: at,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
    let after = h.state().view.crosshair_mm;
    assert!(dist(before, after) > 1.0, "crosshair moved: {before:?} -> {after:?}");
    assert_eq!(h.state().view.centre_mm, after, "the slice views centre on the picked point");
    let hit = h.state().view3d.last_pick.clone().expect("a pick");
    assert_eq!(hit.object, ti, "picked the tumour, not the liver in front of it");
    // on that tumour's surface (exact pick: within rounding of it)
    let grid = hepaview::render::distance::SurfaceGrid::new(&scene.meshes[ti].mesh).unwrap();
    let off = grid.distance(after, f64::INFINITY).unwrap();
    assert!(off < 0.5, "crosshair {after:?} is {off:.2} mm from the tumour surface");
    // and on the side facing the camera: nearer the eye than the centroid
    let eye = cam.eye_mm();
    assert!(dist(after, eye) < dist(t.centroid_mm, eye));
}

#[test]
fn orbit_pan_zoom_with_the_mouse() {
    let study = demo();
    let mut app = HepaviewApp::new(study);
    app.view3d = built(&app.study);
    let mut h =
        Harness::builder().with_size([1400.0, 800.0]).build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), app);
    h.run();
    let pic = h.state().view3d.picture_rect.unwrap();
    let c0 = h.state().view3d.camera;
    let drag = |h: &mut Harness<'static, HepaviewApp>, button: PointerButton, modifiers: Modifiers| {
        let a = pic.center();
        let b = a + Vec2::new(60.0, 0.0);
        h.hover_at(a);
        h.event(Event::PointerButton { pos: a, button, pressed: true, modifiers });
        h.run();
        for t in 1..=4 {
            h.event(Event::PointerMoved(a + (b - a) * (t as f32 / 4.0)));
            h.run();
        }
        h.event(Event::PointerButton { pos: b, button, pressed: false, modifiers });
        h.run();
    };
    drag(&mut h, PointerButton::Primary, Modifiers::NONE);
    let c1 = h.state().view3d.camera;
    assert!(c1.right != c0.right && c1.target_mm == c0.target_mm, "left-drag orbits");
    drag(&mut h, PointerButton::Middle, Modifiers::NONE);
    let c2 = h.state().view3d.camera;
    assert!(c2.target_mm != c1.target_mm && c2.right == c1.right, "middle-drag pans");
    h.hover_at(pic.center());
    h.event(Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: Vec2::new(0.0, 120.0),
        phase: egui::TouchPhase::Move,
        modifiers: Modifiers::NONE,
        source: egui::MouseWheelSource::Wheel,
    });
    for _ in 0..10 {
        h.run();
    }
    assert!(h.state().view3d.camera.distance_mm < c2.distance_mm, "wheel up zooms in");
    // while the camera moves the view draws the decimated surfaces; at rest the full ones
    drag(&mut h, PointerButton::Primary, Modifiers::NONE);
    let app = h.state();
    assert!(app.view3d.frame_desc(&app.view).interactive, "moving");
    std::thread::sleep(std::time::Duration::from_millis(400));
    h.run();
    let app = h.state();
    assert!(!app.view3d.frame_desc(&app.view).interactive, "at rest again");
}

#[test]
fn large_surfaces_get_a_decimated_copy_for_motion() {
    let big = sphere_scene_spacing([0.0; 3], 45.0, 0.5);
    let o = &big.objects[0];
    let full = o.full.index_count as usize / 3;
    assert!(full > hepaview::render::scene::LOD_TRIANGLES * 3 / 2, "{full} triangles");
    let lod = o.lod.expect("a decimated copy");
    assert!(lod.index_count as usize / 3 <= hepaview::render::scene::LOD_TRIANGLES);
    assert_eq!(big.triangle_count(), full, "still frames count the full surface only");
    // small objects draw the same triangles either way
    assert!(sphere_scene([0.0; 3], 10.0).objects[0].lod.is_none());
}

#[test]
fn mask_edit_rebuilds_after_the_debounce() {
    let mut study = demo();
    let mut v = built(&study);
    let first = v.scene.as_ref().unwrap().key;
    // a new mask (an edit): same voxels, new key
    let labels = study.labels.as_mut().unwrap();
    labels.key = hepaview::study::next_key();
    let ctx = egui::Context::default();
    v.poll(&study, &ctx);
    assert!(v.is_building() && v.progress().is_none(), "waits out the debounce first");
    std::thread::sleep(hepaview::app::view3d::REBUILD_DEBOUNCE);
    v.wait_for_build(&study, &ctx);
    let s = v.scene.as_ref().unwrap();
    assert_ne!(s.key, first);
    assert_eq!(s.mask_key, study.labels.as_ref().unwrap().key);
}

/// The small demo's 3D view alone, from the anterior view, at a fixed size.
fn view3d_harness(rs: egui_wgpu::RenderState) -> Harness<'static, (View3d, Study, ViewState)> {
    let study = demo();
    let v = built(&study);
    let g = study.phases[study.fixed_index()].volume.geometry.clone();
    let view = ViewState::new(&g, study.phases.len(), 400.0);
    Harness::builder()
        .with_size([640.0, 560.0])
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
        .build_ui_state(
            |ui, s: &mut (View3d, Study, ViewState)| {
                let rect = ui.max_rect();
                s.0.ui(ui, rect, &s.1, &mut s.2);
            },
            (v, study, view),
        )
}

#[test]
fn demo_3d_view_matches_its_snapshot_with_tumours_seen_through_the_liver() {
    let Some(rs) = render_state() else { return };
    let mut h = view3d_harness(rs);
    h.run();
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("view3d_demo_anterior.png")).unwrap();
    // every tumour's centroid shows the tumour colour (green over red) through the liver
    let ppp = 1.0;
    let (v, _, _) = h.state();
    let pic = v.picture_rect.unwrap();
    let scene = v.scene.as_ref().unwrap();
    let mut seen = 0;
    for o in &scene.objects {
        let Some(t) = &o.tumour else { continue };
        let (p, _) = v.camera.project(t.centroid_mm, [pic.width() as f64, pic.height() as f64]).unwrap();
        // a few pixels left of the centroid: the label's dot marks the centroid itself
        let x = ((pic.min.x + p[0] as f32 - 6.0) * ppp) as u32;
        let y = ((pic.min.y + p[1] as f32) * ppp) as u32;
        let px = img.get_pixel(x, y);
        // liver pixels are red over green by 40 or more; a tumour through the liver is
        // yellow-green
        if px[1] >= px[0] && px[1] as i32 > px[2] as i32 + 60 {
            seen += 1;
        } else {
            eprintln!("tumour #{} at ({x}, {y}) shows {px:?}", t.number);
        }
    }
    assert!(seen >= 3, "only {seen} of the tumours show through the liver");
    // and the liver is drawn (reddish pixels around them), not just the background
    let reddish = img.pixels().filter(|p| p[0] as i32 > p[1] as i32 + 30 && p[0] > 60).count();
    assert!(reddish > 5000, "{reddish} liver pixels");
    h.snapshot_options(
        "view3d_demo_anterior",
        &egui_kittest::SnapshotOptions::new().threshold(2.0).max_failed_pixels(400),
    );
}

#[test]
fn snapshot_and_turntable_pictures_are_written() {
    let Some(rs) = render_state() else { return };
    let mut h = view3d_harness(rs);
    let dir = tempfile::tempdir().unwrap();
    h.state_mut().0.export_dir = dir.path().display().to_string();
    h.state_mut().0.turntable_size_px = 160;
    h.state_mut().0.capture(hepaview::app::gpu::CaptureKind::Turntable { views: 6, size_px: [160, 120] });
    h.state_mut().0.turntable_views = 6;
    for _ in 0..5 {
        h.step();
        let _ = h.render();
        if !h.state().0.is_capturing() {
            break;
        }
    }
    assert!(!h.state().0.is_capturing(), "picture done: {:?}", h.state().0.error);
    let path = dir.path().join("hepaview-turntable-1.png");
    let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgba8();
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("view3d_turntable.png")).unwrap();
    assert_eq!(img.dimensions(), (960, 120));
    let bg = BACKGROUND.map(|c| (c * 255.0).round() as i32);
    for n in 0..6 {
        // each view holds the liver: many pixels far from the background
        let lit = (n * 160..(n + 1) * 160)
            .flat_map(|x| (0..120).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x, y);
                (0..3).map(|c| (p[c] as i32 - bg[c]).abs()).sum::<i32>() > 60
            })
            .count();
        assert!(lit > 1500, "view {n} nearly blank ({lit} lit pixels)");
    }
    // views differ: the strip really turns
    let view = |n: u32| image::imageops::crop_imm(&img, n * 160, 0, 160, 120).to_image();
    assert_ne!(view(0), view(1));
    // and a snapshot of the current view
    h.state_mut().0.capture(hepaview::app::gpu::CaptureKind::Snapshot { size_px: [300, 200] });
    for _ in 0..5 {
        h.step();
        let _ = h.render();
        if !h.state().0.is_capturing() {
            break;
        }
    }
    let snap = image::open(dir.path().join("hepaview-3d-1.png")).expect("snapshot written").to_rgba8();
    assert_eq!(snap.dimensions(), (300, 200));
}

#[test]
fn offscreen_turntable_of_a_sphere_is_round_from_every_side() {
    let Some(rs) = render_state() else { return };
    let scene = sphere_scene([0.0, 0.0, 0.0], 30.0);
    let renderer = Renderer3d::new(&rs.device);
    let gpu = GpuScene::upload(&rs.device, &scene);
    let frame = FrameDesc::new(Camera::fit(scene.bounds_mm, StandardView::Anterior), [128, 128]);
    let d = Drawing { renderer: &renderer, gpu: &gpu, scene: &scene, volume: None };
    let strip = render_turntable(&rs.device, &rs.queue, &d, &frame, 4, 1).expect("turntable");
    assert_eq!(strip.dimensions(), (512, 128));
    let one = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    let bg = BACKGROUND.map(|c| (c * 255.0).round() as u8);
    let count = |img: &image::RgbaImage, x0: u32| {
        (x0..x0 + 128)
            .flat_map(|x| (0..128).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[..3] != bg)
            .count()
    };
    let area = count(&one, 0);
    // a sphere fills the same disc from every side
    for n in 0..4 {
        let c = count(&strip, n * 128);
        assert!((c as f64 - area as f64).abs() < 0.05 * area as f64, "view {n}: {c} vs {area} pixels");
    }
    // lit by the headlight: brightest in the middle, darker at the rim
    let centre = one.get_pixel(64, 64);
    let mut rim = None;
    for x in 0..64 {
        if one.get_pixel(x, 64).0[..3] != bg {
            rim = Some(one.get_pixel(x + 1, 64));
            break;
        }
    }
    let rim = rim.expect("sphere drawn");
    assert!(centre[1] > rim[1] + 40, "centre {centre:?} rim {rim:?}");
    let _ = Pos2::ZERO;
}

/// Whether a pixel differs from the background by more than `by` (sum over channels).
fn off_background(p: &image::Rgba<u8>, by: i32) -> bool {
    let bg = BACKGROUND.map(|c| (c * 255.0).round() as i32);
    (0..3).map(|c| (p[c] as i32 - bg[c]).abs()).sum::<i32>() > by
}

#[test]
fn dvr_of_the_arterial_phase_shows_the_aorta_red_and_the_spine_white() {
    let Some(rs) = render_state() else { return };
    let study = demo();
    let art = study.phases.iter().find(|p| p.phase() == Phase::Arterial).expect("arterial phase");
    let vol = Arc::new(DvrVolume::from_ct(&art.volume, art.key, 256));
    // no surfaces: a scene spanning the CT, as the view draws without a label mask
    let bounds = hepaview::render::scene::geometry_bounds(&art.volume.geometry);
    let scene = Scene::from_objects(Vec::new(), Vec::new(), bounds, 0);
    let renderer = Renderer3d::new(&rs.device);
    let gpu = GpuScene::upload(&rs.device, &scene);
    let gvol = GpuDvrVolume::upload(&rs.device, &rs.queue, Arc::clone(&vol));
    let d = Drawing { renderer: &renderer, gpu: &gpu, scene: &scene, volume: Some(&gvol) };
    let size = [160u32, 160];
    let camera = Camera::fit(scene.bounds_mm, StandardView::Anterior);
    let mut frame = FrameDesc::new(camera, size);
    let off = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    assert!(off.pixels().all(|p| !off_background(p, 6)), "DVR off, no surfaces: background only");
    frame.dvr = Some(DvrParams::new(vol.key));
    let img = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvr_demo_anterior.png")).unwrap();
    // outside the body (air) and the corners: background
    for (x, y) in [(1, 1), (158, 1), (1, 158), (158, 158)] {
        assert!(!off_background(img.get_pixel(x, y), 6), "corner ({x}, {y}) shows {:?}", img.get_pixel(x, y));
    }
    // the aorta (x 18 mm, y 42 mm, radius 12, 300 HU in the arterial phase) in front of the
    // spine: red; the vertebral body (250 HU inside a thin 700 HU shell, blurred by the
    // small demo's 6 mm voxels) beside it, at x -5 mm: lit
    let z = -207.0;
    let px = |p: Lps| {
        let (q, _) = camera.project(p, [size[0] as f64, size[1] as f64]).expect("in front");
        *img.get_pixel(q[0] as u32, q[1] as u32)
    };
    let aorta = px([18.0, 42.0, z]);
    assert!(aorta[0] as i32 > aorta[1] as i32 + 60 && aorta[0] > 120, "aorta shows {aorta:?}");
    let spine = px([-5.0, 62.0, z]);
    assert!(off_background(&spine, 150), "spine shows {spine:?}");
    // soft tissue (the liver at 75 HU, the body wall) stays transparent: most of the body's
    // area is background, unlike the soft-tissue preset, which fills it
    let lit = |img: &image::RgbaImage| img.pixels().filter(|p| off_background(p, 40)).count();
    let vessels = lit(&img);
    frame.dvr = Some(DvrParams { preset: TransferPreset::SoftTissue, ..DvrParams::new(vol.key) });
    let soft = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    soft.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvr_demo_soft_tissue.png")).unwrap();
    assert!(lit(&soft) > vessels + 2000, "soft tissue {} vs vessels/bone {vessels} lit pixels", lit(&soft));
    // the half-resolution frames drawn while the camera moves show the same picture, softer
    frame.dvr = Some(DvrParams::new(vol.key));
    frame.interactive = true;
    let moving = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    let diff = moving
        .pixels()
        .zip(img.pixels())
        .filter(|(a, b)| (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum::<i32>() > 90)
        .count();
    assert!(diff < img.len() / 4 / 10, "{diff} pixels differ much at half resolution");
}

#[test]
fn dvr_colours_follow_the_transfer_function() {
    // a synthetic CT (2 mm voxels, LPS): air, a soft-tissue block (60 HU) holding a
    // contrast-filled rod (300 HU) along S, and a dense bone block (1200 HU) on the
    // patient's left; seen from the front
    let Some(rs) = render_state() else { return };
    let g = Geometry::axis_aligned([40, 40, 40], [2.0; 3], [-39.0, -39.0, -39.0]);
    let data = Array3::from_shape_fn(g.shape, |(k, j, i)| {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        if p[0] > 12.0 && p[0] < 30.0 && p[1].abs() < 10.0 && p[2].abs() < 10.0 {
            1200
        } else if ((p[0] + 12.0).powi(2) + p[1].powi(2)).sqrt() < 6.0 && p[2].abs() < 30.0 {
            300
        } else if p.iter().all(|c| c.abs() < 34.0) {
            60
        } else {
            -1000
        }
    });
    let ct = Volume::new(data, g.clone());
    let vol = Arc::new(DvrVolume::from_ct(&ct, 77, 256));
    let scene = Scene::from_objects(Vec::new(), Vec::new(), hepaview::render::scene::geometry_bounds(&g), 0);
    let renderer = Renderer3d::new(&rs.device);
    let gpu = GpuScene::upload(&rs.device, &scene);
    let gvol = GpuDvrVolume::upload(&rs.device, &rs.queue, Arc::clone(&vol));
    let d = Drawing { renderer: &renderer, gpu: &gpu, scene: &scene, volume: Some(&gvol) };
    let size = [96u32, 96];
    let camera = Camera::fit(scene.bounds_mm, StandardView::Anterior);
    let mut frame = FrameDesc::new(camera, size);
    frame.dvr = Some(DvrParams::new(vol.key));
    let img = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvr_synthetic.png")).unwrap();
    let px = |p: Lps| {
        let (q, _) = camera.project(p, [size[0] as f64, size[1] as f64]).expect("in front");
        *img.get_pixel(q[0] as u32, q[1] as u32)
    };
    let rod = px([-12.0, -34.0, 0.0]);
    assert!(rod[0] as i32 > rod[1] as i32 + 80, "contrast rod red: {rod:?}");
    let bone = px([21.0, -34.0, 0.0]);
    assert!(bone.0[..3].iter().all(|&c| c > 170), "bone white: {bone:?}");
    // patient's left on screen right, as the anterior view shows it
    assert!(camera.project([21.0, 0.0, 0.0], [96.0, 96.0]).unwrap().0[0] > 48.0);
    let tissue = px([-24.0, -34.0, 16.0]);
    assert!(!off_background(&tissue, 6), "soft tissue transparent under vessels/bone: {tissue:?}");
    // the soft-tissue preset shows it
    frame.dvr = Some(DvrParams { preset: TransferPreset::SoftTissue, ..DvrParams::new(vol.key) });
    let soft = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    soft.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvr_synthetic_soft.png")).unwrap();
    let (q, _) = camera.project([-24.0, -34.0, 16.0], [96.0, 96.0]).unwrap();
    assert!(
        off_background(soft.get_pixel(q[0] as u32, q[1] as u32), 40),
        "soft tissue shown: {:?}",
        soft.get_pixel(q[0] as u32, q[1] as u32)
    );
}

#[test]
fn dvr_stops_at_the_tumour_surfaces() {
    let Some(rs) = render_state() else { return };
    let study = demo();
    let v = built(&study);
    let scene = Arc::clone(v.scene.as_ref().unwrap());
    let art = study.phases.iter().find(|p| p.phase() == Phase::Arterial).unwrap();
    let vol = Arc::new(DvrVolume::from_ct(&art.volume, art.key, 256));
    let renderer = Renderer3d::new(&rs.device);
    let gpu = GpuScene::upload(&rs.device, &scene);
    let gvol = GpuDvrVolume::upload(&rs.device, &rs.queue, Arc::clone(&vol));
    let d = Drawing { renderer: &renderer, gpu: &gpu, scene: &scene, volume: Some(&gvol) };
    let size = [200u32, 200];
    let camera = Camera::fit(scene.bounds_mm, StandardView::Anterior);
    let mut frame = FrameDesc::new(camera, size);
    frame.liver_opacity = 0.0;
    frame.show_liver = false;
    let meshes = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    frame.dvr = Some(DvrParams { shading: false, ..DvrParams::new(vol.key) });
    let both = render_image(&rs.device, &rs.queue, &d, &frame, 1).unwrap();
    both.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvr_with_tumours.png")).unwrap();
    assert_ne!(meshes, both, "the volume adds to the surfaces");
    // a tumour in front of the spine keeps its own colour: the rays stop at its surface
    let mut same = 0;
    for o in &scene.objects {
        let Some(t) = &o.tumour else { continue };
        let (p, _) = camera.project(t.centroid_mm, [size[0] as f64, size[1] as f64]).unwrap();
        let (a, b) = (meshes.get_pixel(p[0] as u32, p[1] as u32), both.get_pixel(p[0] as u32, p[1] as u32));
        if (0..3).all(|c| (a[c] as i32 - b[c] as i32).abs() <= 3) {
            same += 1;
        } else {
            eprintln!("tumour #{}: {a:?} alone, {b:?} with the volume", t.number);
        }
    }
    assert!(same >= 3, "only {same} tumours unchanged by the volume behind them");
}

#[test]
fn dvr_toggle_and_orientation_cube_in_the_3d_view() {
    let Some(rs) = render_state() else { return };
    let mut h = view3d_harness(rs);
    h.run();
    let before = h.render().expect("render");
    assert!(!h.state().0.dvr.enabled);
    h.get_by_label("DVR").click();
    h.run();
    let (v, _, view) = h.state();
    assert!(v.dvr.enabled, "the DVR toggle turns volume rendering on");
    let p = v.frame_desc(view).dvr.expect("the frame asks for DVR");
    let arterial = h.state().1.phases.iter().find(|p| p.phase() == Phase::Arterial).unwrap().key;
    assert_eq!(p.volume_key, arterial, "the arterial phase by default");
    assert_eq!(p.preset, TransferPreset::VesselsBone);
    let after = h.render().expect("render");
    after.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("view3d_dvr.png")).unwrap();
    assert_ne!(before, after, "the picture changes");
    // clicking the cube's visible face (anterior view: A) keeps the anterior view; after
    // orbiting, clicking the L face that came into view turns to the left view
    let pic = h.state().0.picture_rect.unwrap();
    let centre = Pos2::new(pic.min.x + 40.0, pic.max.y - 40.0);
    h.state_mut().0.camera.orbit(-45.0, 0.0);
    h.run();
    let faces = hepaview::render::orientation::cube_faces(&h.state().0.camera, 22.0);
    let l = faces.iter().find(|f| f.view == StandardView::Left).expect("L face in view");
    let at = centre + Vec2::new(l.centre[0] as f32, l.centre[1] as f32);
    h.hover_at(at);
    h.event(Event::PointerButton {
        pos: at,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.event(Event::PointerButton {
        pos: at,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
    let c = h.state().0.camera;
    assert_eq!((c.right, c.up), StandardView::Left.axes(), "the L face gives the left view");
    assert!(h.state().0.last_pick.is_none(), "a cube click is not a pick");
}
