//! The viewer driven as a user would, headless (egui_kittest): keys, clicks and drags
//! change the shared view state as documented, and a wgpu render (Mesa lavapipe without a
//! GPU) draws the three phases side by side.

use egui::{Event, Key, Modifiers, PointerButton, Pos2, Role};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use hepaview::app::view::{Layout, Orientation, WindowLevel};
use hepaview::app::HepaviewApp;
use hepaview::io::phase::Phase;
use hepaview::phantom::PhantomOptions;
use hepaview::study::Study;
use hepaview::volume::Lps;

fn app() -> HepaviewApp {
    HepaviewApp::new(Study::demo(&PhantomOptions::small()))
}

/// A wgpu render state (lavapipe without a GPU), or `None` after saying why; under CI
/// a missing adapter is a failure.
fn render_state() -> Option<egui_wgpu::RenderState> {
    match hepaview::app::gpu::headless_render_state_with(egui_wgpu::RendererOptions::PREDICTABLE) {
        Ok(rs) => Some(rs),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: no wgpu adapter ({e}); install mesa-vulkan-drivers");
            None
        }
        Err(e) => panic!("no wgpu adapter under CI: {e}"),
    }
}

fn harness(app: HepaviewApp) -> Harness<'static, HepaviewApp> {
    Harness::builder().with_size([1400.0, 800.0]).build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), app)
}

/// A harness that draws with wgpu, or `None` when there is no adapter (see `render_state`).
fn gpu_harness(app: HepaviewApp) -> Option<Harness<'static, HepaviewApp>> {
    let rs = render_state()?;
    Some(
        Harness::builder()
            .with_size([1400.0, 800.0])
            .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
            .build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), app),
    )
}

#[test]
fn phases_are_in_reading_order() {
    let a = app();
    let phases: Vec<Phase> = a.study.phases.iter().map(|p| p.phase()).collect();
    assert_eq!(phases, vec![Phase::Arterial, Phase::PortalVenous, Phase::Delayed]);
    assert_eq!(a.study.fixed_index(), 1);
}

#[test]
fn keys_change_window_layout_and_slice() {
    let mut h = harness(app());
    h.run();
    h.key_press(Key::Num1);
    h.run();
    assert!(h.state().view.window.iter().all(|w| *w == WindowLevel::PRESETS[0].1), "1 = liver window on every phase");
    let z0 = h.state().view.crosshair_mm[2];
    let step = h.state().view.step_mm[Orientation::Axial as usize];
    h.key_press(Key::ArrowUp);
    h.run();
    assert!((h.state().view.crosshair_mm[2] - (z0 + step)).abs() < 1e-9, "↑ moves one slice superior");
    h.key_press(Key::PageDown);
    h.run();
    assert!((h.state().view.crosshair_mm[2] - (z0 + step - 10.0 * step)).abs() < 1e-9, "PgDn moves ten slices");
    h.key_press(Key::L);
    h.run();
    assert_eq!(h.state().view.layout, Layout::Grid);
    h.key_press(Key::I);
    h.run();
    assert!(!h.state().view.linear);
}

#[test]
fn clicking_sets_the_crosshair_in_world_coordinates_for_every_phase() {
    let mut h = harness(app());
    h.run();
    let before = h.state().view.crosshair_mm;
    // somewhere inside the middle (portal venous) viewport of the 1×3 row
    let at = Pos2::new(800.0, 300.0);
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
    // an axial click moves x and y, never z
    assert!((after[2] - before[2]).abs() < 1e-9);
    assert!((after[0] - before[0]).abs() > 1.0 || (after[1] - before[1]).abs() > 1.0, "{before:?} → {after:?}");
    // the HU readout samples every phase at that world point
    let hover = h.state().hover_mm.expect("pointer over a viewport");
    for p in &h.state().study.phases {
        assert!(p.volume.sample_world(hover, hepaview::Interp::Nearest).is_some());
    }
}

#[test]
fn right_drag_changes_window_level() {
    let mut h = harness(app());
    h.run();
    let before = h.state().view.window[0];
    let a = Pos2::new(300.0, 300.0);
    let b = Pos2::new(360.0, 280.0);
    h.hover_at(a);
    h.event(Event::PointerButton {
        pos: a,
        button: PointerButton::Secondary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.run();
    for t in 1..=4 {
        let f = t as f32 / 4.0;
        h.event(Event::PointerMoved(a + (b - a) * f));
        h.run();
    }
    h.event(Event::PointerButton {
        pos: b,
        button: PointerButton::Secondary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
    let after = h.state().view.window[0];
    assert!(after.width_hu > before.width_hu && after.level_hu > before.level_hu, "{before:?} → {after:?}");
    // linked by default: every phase follows
    assert!(h.state().view.window.iter().all(|w| *w == after));
}

#[test]
fn renders_three_phases_side_by_side_on_the_gpu() {
    let Some(mut h) = gpu_harness(app()) else { return };
    h.run();
    let img = h.render().expect("render");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer.png");
    img.save(&out).unwrap();
    // each third of the viewport area holds a lit body (CT drawn), not just black
    let (w, h_px) = img.dimensions();
    let side = 260.0 / 1400.0 * w as f32; // side panel
    let usable = w as f32 - side;
    for k in 0..3 {
        let x0 = (side + usable * (k as f32 + 0.3) / 3.0) as u32;
        let x1 = (side + usable * (k as f32 + 0.7) / 3.0) as u32;
        let lit = (x0..x1)
            .step_by(4)
            .flat_map(|x| (h_px / 3..2 * h_px / 3).step_by(4).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y)[0] > 60)
            .count();
        assert!(lit > 50, "viewport {k} looks empty ({lit} lit samples); see {}", out.display());
    }
}

fn wait_loaded(h: &mut Harness<'static, HepaviewApp>) {
    for _ in 0..600 {
        h.step();
        if !h.state().is_loading() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("study did not load within a minute");
}

#[test]
fn opening_a_study_runs_in_the_background_and_replaces_the_demo() {
    let Some(data) = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/triphase-hcc048/dicom")
        .canonicalize()
        .ok()
    else {
        assert!(std::env::var_os("CI").is_none(), "shared data missing under CI");
        return;
    };
    let mut h = harness(app());
    h.run();
    h.state_mut().open_in_background(vec![data]);
    h.step();
    assert!(h.state().is_loading(), "loading happens on a worker thread while the UI runs");
    wait_loaded(&mut h);
    let descs: Vec<&str> = h.state().study.phases.iter().map(|p| p.description.as_str()).collect();
    assert_eq!(descs, vec!["LIVER ART 2.5mm", "LIVER PV 2.5mm", "LIVER DELAYED 2.5mm"]);
    assert!(h.state().error.is_none());
}

#[test]
fn a_bad_path_shows_an_error_and_keeps_the_study() {
    let mut h = harness(app());
    h.run();
    h.state_mut().open_in_background(vec!["/no/such/study".into()]);
    wait_loaded(&mut h);
    let err = h.state().error.clone().expect("an error for the user");
    assert!(err.contains("/no/such/study"), "{err}");
    assert_eq!(h.state().study.phases.len(), 3, "the demo stays open");
}

#[test]
fn grid_layout_matches_its_snapshot() {
    // The 3×3 layout of the small demo, crosshair at the centre, liver window: the picture a
    // radiologist would check (orientation letters, coronal/sagittal the right way up,
    // overlays aligned). `UPDATE_SNAPSHOTS=1 cargo test --test app_ui` rewrites it.
    let Some(rs) = render_state() else { return };
    let mut a = app();
    a.view.layout = Layout::Grid;
    for p in 0..a.view.window.len() {
        a.view.set_window(p, WindowLevel::PRESETS[0].1);
    }
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
        .build_ui_state(|ui, app: &mut HepaviewApp| app.ui(ui), a);
    h.run();
    h.snapshot_options(
        "viewer_grid_demo_small",
        &egui_kittest::SnapshotOptions::new().threshold(2.0).max_failed_pixels(200),
    );
}

#[test]
fn phases_can_be_reordered_with_their_settings() {
    let mut a = app();
    a.view.link_window = false;
    a.view.set_window(0, WindowLevel::PRESETS[2].1);
    a.view.hidden[0] = true;
    a.move_phase(0, true);
    let phases: Vec<Phase> = a.study.phases.iter().map(|p| p.phase()).collect();
    assert_eq!(phases, vec![Phase::PortalVenous, Phase::Arterial, Phase::Delayed]);
    assert_eq!(a.view.window[1], WindowLevel::PRESETS[2].1, "the arterial window moved with it");
    assert!(a.view.hidden[1] && !a.view.hidden[0]);
    a.move_phase(0, false); // already first: nothing to do
    assert_eq!(a.study.phases[0].phase(), Phase::PortalVenous);
    // through the panel: the first row's ">" button
    let mut h = harness(app());
    h.run();
    h.get_all_by_label(">").next().expect("a move-later button").click();
    h.run();
    assert_eq!(h.state().study.phases[0].phase(), Phase::PortalVenous);
}

#[test]
fn register_button_runs_in_the_background_and_shows_registered_phases() {
    let Some(mut h) = gpu_harness(app()) else { return };
    h.run();
    let fixed_geometry = h.state().study.phases[1].volume.geometry.clone();
    let arterial_before = h.state().study.phases[0].volume.geometry.clone();
    assert_ne!(arterial_before, fixed_geometry, "the small demo's arterial phase has its own grid");
    h.get_by_label("Register onto portal venous").click();
    h.step();
    assert!(h.state().registration.is_running(), "the work runs on a worker thread");
    for _ in 0..600 {
        h.step();
        if !h.state().registration.is_running() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    h.run();
    let reg = &h.state().registration;
    assert!(reg.error.is_none(), "{:?}", reg.error);
    assert_eq!(h.state().study.registrations.len(), 2, "arterial and delayed registered");
    for (r, view) in h.state().study.registrations.iter().zip(&reg.views) {
        assert!(r.report.rmsd_after_hu < r.report.rmsd_before_hu);
        assert_eq!(view.mode, hepaview::app::registration::CompareMode::Registered);
    }
    // the moving phases now show the registered images, on the fixed grid
    assert_eq!(h.state().study.phases[0].volume.geometry, fixed_geometry);
    assert_eq!(h.state().study.phases[2].volume.geometry, fixed_geometry);
    // a checkerboard with the fixed phase, then back to the original
    let app = h.state_mut();
    app.registration.set_mode(&mut app.study, 0, hepaview::app::registration::CompareMode::Checkerboard);
    h.run();
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("registered_checkerboard.png")).unwrap();
    // overlays drawn with the registered phase in one pass: colour fusion, heat map, grid
    use hepaview::app::registration::CompareMode;
    let app = h.state_mut();
    app.view.show_labels = false;
    app.registration.set_mode(&mut app.study, 0, CompareMode::Registered);
    app.registration.set_mode(&mut app.study, 1, CompareMode::Registered);
    h.run();
    let plain = h.render().expect("render");
    let count = |img: &image::RgbaImage, pred: &dyn Fn(i32, i32, i32) -> bool| {
        img.pixels().filter(|p| pred(p[0] as i32, p[1] as i32, p[2] as i32)).count()
    };
    let fused = |img: &image::RgbaImage| count(img, &|r, g, b| (r - b).abs() < 12 && (g - r).abs() > 15);
    let hot = |img: &image::RgbaImage| count(img, &|r, g, b| r > g + 30 && g > b + 30);
    let yellow = |img: &image::RgbaImage| count(img, &|r, g, b| r > 180 && g > 150 && b < 90);
    let app = h.state_mut();
    app.registration.set_mode(&mut app.study, 0, CompareMode::FusionMagentaGreen);
    app.registration.set_mode(&mut app.study, 1, CompareMode::HeatMap);
    assert_eq!(h.state().study.phases[0].volume.geometry, fixed_geometry, "fusion shows the registered phase");
    h.run();
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("registered_fusion_heat.png")).unwrap();
    assert!(fused(&img) > fused(&plain) + 2000, "magenta/green fusion: {} vs {} pixels", fused(&img), fused(&plain));
    assert!(hot(&img) > hot(&plain) + 500, "heat map: {} vs {} pixels", hot(&img), hot(&plain));
    let app = h.state_mut();
    app.registration.set_mode(&mut app.study, 0, CompareMode::Grid);
    h.run();
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("registered_grid.png")).unwrap();
    assert!(yellow(&img) > yellow(&plain) + 1000, "deformation grid: {} vs {} pixels", yellow(&img), yellow(&plain));
    let app = h.state_mut();
    app.registration.set_mode(&mut app.study, 0, CompareMode::Original);
    assert_eq!(h.state().study.phases[0].volume.geometry, arterial_before);
    assert!(h.state().registration.layer_for(&h.state().study, h.state().study.phases[0].key).is_none());
    // showing the original, the link goes through the field: the point shown for a fixed
    // point p is p + u(p), where the registered image took its value from
    let app = h.state();
    // a voxel centre of the fixed grid, where the registered image holds moving(p + u(p))
    let p = fixed_geometry.index_to_world([30.0, 28.0, 12.0]);
    let off = app.study.registration_offset(app.study.phases[0].key, p);
    assert!(off.iter().any(|v| v.abs() > 0.01), "u at the crosshair: {off:?}");
    let r = &app.study.registrations[0];
    let via_field = r.original.sample_world(hepaview::volume::add(p, off), hepaview::Interp::Linear).unwrap();
    let registered = r.registered.sample_world(p, hepaview::Interp::Linear).unwrap();
    assert!((via_field - registered).abs() < 1.0, "{via_field} vs {registered} HU");
    assert_eq!(
        app.study.registration_offset(app.study.phases[2].key, p),
        [0.0; 3],
        "a registered phase needs no offset"
    );
}

/// Steps the harness until `done` or about a minute has passed.
fn wait_for(h: &mut Harness<'static, HepaviewApp>, done: impl Fn(&HepaviewApp) -> bool) {
    for _ in 0..600 {
        h.step();
        if done(h.state()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    h.run();
}

#[test]
fn cluster_and_lesion_panel_runs_in_the_background_and_edits_the_mask() {
    let Some(mut h) = gpu_harness(app()) else { return };
    h.run();
    h.get_by_label("Cluster").scroll_to_me();
    h.run();
    h.get_by_label("Cluster").click();
    h.step();
    assert!(h.state().analysis.is_running(), "clustering runs on a worker thread");
    wait_for(&mut h, |a| !a.analysis.is_running());
    let a = h.state();
    assert!(a.analysis.error.is_none(), "{:?}", a.analysis.error);
    let layer = a.analysis.clusters.as_ref().expect("clusters");
    assert_eq!(layer.report.k, hepaview::cluster::DEFAULT_K);
    let labels = a.study.labels.as_ref().unwrap();
    assert_eq!(layer.mask.geometry.shape, labels.mask.geometry.shape);
    // the region clustered is the liver + tumour of the mask where every phase has data
    let region = labels.mask.data.iter().filter(|&&l| l == 1 || l == 2).count();
    let clustered = layer
        .mask
        .data
        .iter()
        .zip(labels.mask.data.iter())
        .filter(|(&c, _)| c > 0)
        .inspect(|(_, &l)| assert!(l == 1 || l == 2))
        .count();
    assert!(clustered as f64 > 0.8 * region as f64 && clustered <= region, "{clustered} of {region}");
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("clusters_overlay.png")).unwrap();

    // the brightest cluster (highest portal-venous HU) becomes label 2, then undo
    let before = h.state().study.labels.as_ref().unwrap().mask.data.clone();
    let app = h.state_mut();
    let top = app.analysis.clusters.as_ref().unwrap().report.k as u8;
    app.analysis.cluster_to_label(&mut app.study, top);
    let after = &h.state().study.labels.as_ref().unwrap().mask;
    let changed = after.data.iter().zip(before.iter()).filter(|(a, b)| a != b).count();
    assert!(
        changed > 0
            && after
                .data
                .iter()
                .zip(h.state().analysis.clusters.as_ref().unwrap().mask.data.iter())
                .all(|(&l, &c)| c != top || l == 2)
    );
    let app = h.state_mut();
    app.analysis.undo(&mut app.study);
    assert_eq!(h.state().study.labels.as_ref().unwrap().mask.data, before, "undo restores the mask");

    // lesion table: four phantom lesions; picking one moves the crosshair to it
    h.get_by_label("Measure lesions").scroll_to_me();
    h.run();
    h.get_by_label("Measure lesions").click();
    wait_for(&mut h, |a| !a.analysis.is_running());
    let t = h.state().analysis.lesions.as_ref().expect("lesion table");
    assert_eq!(t.report.lesions.len(), 4);
    let centroid = t.report.lesions[1].centroid_mm;
    // each lesion's depth below the liver surface, as the 3D view labels it, in the table
    let depths: Vec<f64> = t
        .report
        .lesions
        .iter()
        .map(|l| t.distances.iter().find(|d| d.number == l.id).and_then(|d| d.depth_mm).expect("a depth per lesion"))
        .collect();
    assert!(depths.iter().all(|d| (0.0..80.0).contains(d)), "{depths:?}");
    h.run();
    assert!(h.query_by_label(&format!("{:.1}", depths[1])).is_some(), "depth {:.1} shown in the table", depths[1]);
    // the table sits below the fold of the side panel at this window size
    h.get_by_label("#2").scroll_to_me();
    h.run();
    h.get_by_label("#2").click();
    h.run();
    let c = h.state().view.crosshair_mm;
    assert!((0..3).all(|i| (c[i] - centroid[i]).abs() < 1e-6), "crosshair {c:?} vs lesion {centroid:?}");

    // export writes the report into the chosen folder
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    h.state_mut().analysis.export_dir = out.display().to_string();
    h.get_by_label("Export report").scroll_to_me();
    h.run();
    h.get_by_label("Export report").click();
    h.run();
    assert!(out.join("report.html").is_file(), "{:?}", h.state().analysis.error);
}

#[test]
fn brush_strokes_paint_the_mask_and_undo_restores_it() {
    let mut h = harness(app());
    h.run();
    let before = h.state().study.labels.as_ref().unwrap().mask.data.clone();
    let key_before = h.state().study.labels.as_ref().unwrap().key;
    h.key_press(Key::B);
    h.run();
    assert_eq!(h.state().edit.tool, hepaview::app::edit::Tool::Brush);
    let crosshair = h.state().view.crosshair_mm;
    // one stroke across the middle of the portal venous viewport (the second of three)
    let (a, b) = (Pos2::new(830.0, 420.0), Pos2::new(900.0, 430.0));
    h.hover_at(a);
    h.event(Event::PointerButton { pos: a, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.run();
    for t in 1..=5 {
        h.event(Event::PointerMoved(a + (b - a) * (t as f32 / 5.0)));
        h.run();
    }
    h.event(Event::PointerButton {
        pos: b,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
    let app = h.state();
    let after = &app.study.labels.as_ref().unwrap().mask.data;
    let changed = after.iter().zip(before.iter()).filter(|(x, y)| x != y).count();
    assert!(changed > 10, "the stroke painted {changed} voxels");
    assert!(
        after.iter().zip(before.iter()).all(|(x, y)| x == y || *x == 2),
        "the brush paints label 2 (tumour) by default"
    );
    assert_ne!(app.study.labels.as_ref().unwrap().key, key_before, "the overlay is redrawn");
    assert_eq!(app.view.crosshair_mm, crosshair, "painting does not move the crosshair");
    assert_eq!(app.edits.history.undo_steps(), 1, "one stroke, one undo step");

    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert_eq!(h.state().study.labels.as_ref().unwrap().mask.data, before, "Ctrl+Z restores the exact mask");
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.run();
    assert_eq!(
        h.state().study.labels.as_ref().unwrap().mask.data.iter().zip(before.iter()).filter(|(x, y)| x != y).count(),
        changed,
        "Ctrl+Shift+Z redoes it"
    );
    h.key_press(Key::Escape);
    h.run();
    assert!(!h.state().edit.is_editing());
}

#[test]
fn a_follow_up_visit_shows_beside_each_phase_with_its_date() {
    let opts = PhantomOptions::small();
    let mut study = Study::demo(&opts);
    let follow = Study::demo(&opts.follow_up());
    hepaview::study::analysis::add_follow_up(&mut study, &follow, "20260316", &|_, _| true).unwrap();
    let Some(mut h) = gpu_harness(HepaviewApp::new(study)) else { return };
    h.run();
    assert_eq!(h.state().view.window.len(), 6, "window/level per phase, follow-up included");
    // the study panel lists the three follow-up series by visit
    assert_eq!(h.query_all_by_label_contains("FOLLOW-UP 20260316").count(), 3);
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("follow_up_row.png")).unwrap();
}

#[test]
fn segment_button_fills_the_label_layer_or_names_the_missing_model() {
    let mut h = harness(app());
    h.run();
    let own = h.state().study.labels.as_ref().map(|l| (l.source.clone(), l.mask.data.clone()));
    h.get_by_label("Segment liver and tumours").scroll_to_me();
    h.run();
    h.get_by_label("Segment liver and tumours").click();
    h.run();
    if hepaview::app::segment::model_path().is_none() {
        let e = h.state().segment.error.clone().unwrap_or_default();
        assert!(e.contains("unet.safetensors"), "{e}");
        return;
    }
    for _ in 0..1200 {
        h.step();
        if !h.state().segment.is_running() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    h.run();
    let app = h.state();
    assert!(app.segment.error.is_none(), "{:?}", app.segment.error);
    let labels = app.study.labels.as_ref().unwrap();
    assert_eq!(labels.source.to_string_lossy(), "U-Net segmentation");
    assert!(labels.mask.data.iter().any(|&v| v == 1), "the model finds liver in the demo");
    h.get_by_label("Undo segmentation").click();
    h.run();
    // Undo brings back the study's own labels, not the mask shown while the U-Net ran
    let back = h.state().study.labels.as_ref().map(|l| (l.source.clone(), l.mask.data.clone()));
    assert!(back == own, "Undo must restore the labels from before the run");
}

/// After the user registered the phases in the Registration panel, Segment reads those
/// registered phases (the full registration they looked at) and does not register again.
#[test]
fn segment_after_registration_reads_the_registered_phases() {
    let mut h = harness(app());
    h.run();
    let Some(model) = hepaview::app::segment::model_path() else { return };
    let wait = |h: &mut Harness<'static, HepaviewApp>, busy: fn(&HepaviewApp) -> bool| {
        for _ in 0..1200 {
            h.step();
            if !busy(h.state()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        h.run();
    };
    h.get_by_label("Register onto portal venous").click();
    h.step();
    wait(&mut h, |a| a.registration.is_running());
    assert_eq!(h.state().study.registrations.len(), 2, "{:?}", h.state().registration.error);
    h.get_by_label("Segment liver and tumours").scroll_to_me();
    h.run();
    h.get_by_label("Segment liver and tumours").click();
    h.step();
    wait(&mut h, |a| a.segment.is_running());
    let app = h.state();
    assert!(app.segment.error.is_none(), "{:?}", app.segment.error);
    let shown = app.study.labels.as_ref().expect("segmented").mask.data.clone();
    let registered = app.study.registered_study().expect("registered phases");
    let net = hepaview::segment::load_unet(&model).expect("weights");
    let opts = hepaview::segment::InferOptions { register: false, ..Default::default() };
    let expected = hepaview::study::segment_phases(&net, &registered, &opts, &|_, _| true).expect("segment");
    assert!(shown == expected.data, "the mask must come from the panel's registered phases");
}

/// A lesion the lesion search added is listed under the segmentation with its volume, and
/// its button centres the views on it (the radiologist checks what the network did not call).
#[test]
fn a_lesion_from_the_search_is_one_click_away() {
    let mut h = harness(app());
    h.run();
    let grid = h.state().study.phases[h.state().study.fixed_index()].volume.geometry.clone();
    let target =
        grid.index_to_world([grid.shape[2] as f64 / 3.0, grid.shape[1] as f64 / 2.0, grid.shape[0] as f64 / 4.0]);
    assert!(h.state().view.crosshair_mm != target);
    h.state_mut().segment.searched = vec![(11.62, target)];
    h.run();
    let label =
        format!("Check: 11.6 mL at ({:.0}, {:.0}, {:.0}) mm, from the lesion search", target[0], target[1], target[2]);
    h.get_by_label(&label).scroll_to_me();
    h.run();
    h.get_by_label(&label).click();
    h.run();
    assert_eq!(h.state().view.crosshair_mm, target);
    assert_eq!(h.state().view.centre_mm, target);
}

/// Presses the left button at `path[0]`, moves through the rest of `path` one frame per
/// point, and lets go at the last point.
fn left_drag(h: &mut Harness<'static, HepaviewApp>, path: &[Pos2]) {
    h.hover_at(path[0]);
    h.event(Event::PointerButton {
        pos: path[0],
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.run();
    for &p in &path[1..] {
        h.event(Event::PointerMoved(p));
        h.run();
    }
    let end = *path.last().unwrap();
    h.event(Event::PointerButton {
        pos: end,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
}

fn mask_data(h: &Harness<'static, HepaviewApp>) -> ndarray::Array3<u8> {
    h.state().study.labels.as_ref().unwrap().mask.data.clone()
}

/// Pixels of the portal venous viewport (middle of three, away from the side panel)
/// for which `pred(r, g, b)` holds.
fn count_pixels(img: &image::RgbaImage, pred: impl Fn(i32, i32, i32) -> bool) -> usize {
    let (w, h) = img.dimensions();
    let (x0, x1) = ((w as f32 * 0.50) as u32, (w as f32 * 0.72) as u32);
    let (y0, y1) = (h / 4, 3 * h / 4);
    (x0..x1)
        .flat_map(|x| (y0..y1).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let p = img.get_pixel(x, y);
            pred(p[0] as i32, p[1] as i32, p[2] as i32)
        })
        .count()
}

#[test]
fn label_table_renames_recolours_and_hides_labels() {
    let Some(mut h) = gpu_harness(app()) else { return };
    h.run();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let img = h.render().expect("render");
    img.save(dir.join("labels_shown.png")).unwrap();
    // the liver (label 1) tints the CT with its colour (0.85, 0.45, 0.35)
    let reddish = |r: i32, g: i32, b: i32| r - g > 15 && r - b > 15 && (g - b).abs() < 30; // not the yellow crosshair
    let liver_before = count_pixels(&img, reddish);
    assert!(liver_before > 2000, "{liver_before} liver-tinted pixels");

    // rename label 2 in its name field; the paint-over list follows
    h.get_by(|n| n.role() == Role::TextInput && n.value().as_deref() == Some("tumour")).set_text_value_accesskit("HCC");
    h.run();
    assert_eq!(h.state().edits.labels.name_of(2), "HCC");
    h.get_by_label("paint").click();
    h.run();
    assert!(h.query_by_label("over HCC only").is_some(), "the paint-over list names the renamed label");
    h.key_press(Key::Escape);
    h.run();

    // hide the liver: its pixels are no longer tinted
    h.get_by_label("show 1").click();
    h.run();
    assert!(!h.state().edits.labels.get(1).unwrap().visible);
    let img = h.render().expect("render");
    img.save(dir.join("liver_hidden.png")).unwrap();
    let liver_hidden = count_pixels(&img, reddish);
    assert!(
        liver_hidden * 20 < liver_before,
        "{liver_hidden} of {liver_before} pixels still liver-tinted; see {}",
        dir.display()
    );
    h.get_by_label("show 1").click();
    h.run();
    assert!(h.state().edits.labels.get(1).unwrap().visible);

    // recolour the liver blue (what the colour picker's edit does to the table)
    let bluish = |r: i32, g: i32, b: i32| b - r > 15 && b - g > 15;
    let blue_before = count_pixels(&h.render().expect("render"), bluish);
    h.state_mut().edits.labels.recolour(1, [0, 0, 255, 255]).unwrap();
    h.run();
    let img = h.render().expect("render");
    img.save(dir.join("liver_blue.png")).unwrap();
    let blue_after = count_pixels(&img, bluish);
    assert!(blue_after > blue_before + liver_before / 2, "{blue_before} -> {blue_after} blue pixels");
    assert_eq!(hepaview::app::edit::palette(&h.state().edits.labels)[1], [0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn lasso_fills_the_outline_as_one_undoable_edit() {
    let mut h = harness(app());
    h.run();
    // a new label, so every voxel the lasso fills is counted
    h.get_by_label("Add label").scroll_to_me();
    h.run();
    h.get_by_label("Add label").click();
    h.run();
    assert_eq!(h.state().edit.label, 4, "the added label becomes the active one");
    h.key_press(Key::P);
    h.run();
    assert_eq!(h.state().edit.tool, hepaview::app::edit::Tool::Lasso);
    let before = mask_data(&h);
    assert!(!before.iter().any(|&v| v == 4));
    // a 60-point square in the middle of the portal venous viewport, drawn edge by edge
    let (x0, y0, side) = (800.0f32, 370.0f32, 60.0f32);
    let corners = [
        Pos2::new(x0, y0),
        Pos2::new(x0 + side, y0),
        Pos2::new(x0 + side, y0 + side),
        Pos2::new(x0, y0 + side),
        Pos2::new(x0, y0),
    ];
    let path: Vec<Pos2> = corners
        .windows(2)
        .flat_map(|w| (0..15).map(move |t| w[0] + (w[1] - w[0]) * (t as f32 / 15.0)))
        .chain([corners[0]])
        .collect();
    left_drag(&mut h, &path);
    let after = mask_data(&h);
    let filled = after.iter().filter(|&&v| v == 4).count();
    assert!(after.iter().zip(before.iter()).all(|(a, b)| a == b || *a == 4), "only the active label is written");
    let g = &h.state().study.labels.as_ref().unwrap().mask.geometry;
    let side_mm = side as f64 * h.state().view.mm_per_point;
    let (w, hh) = (side_mm / g.spacing_mm[2], side_mm / g.spacing_mm[1]);
    let expected = w * hh;
    // voxel centres inside a square: its area give or take one row and one column
    assert!(
        (filled as f64 - expected).abs() <= w + hh + 2.0,
        "filled {filled} voxels, the square covers {expected:.1}"
    );
    assert_eq!(h.state().edits.history.undo_steps(), 1, "one lasso, one undo step");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert_eq!(mask_data(&h), before, "Ctrl+Z restores the exact mask");
}

#[test]
fn locked_labels_are_not_painted_over() {
    let mut h = harness(app());
    h.run();
    h.key_press(Key::B);
    h.run();
    let before = mask_data(&h);
    let stroke: Vec<Pos2> = (0..=8).map(|t| Pos2::new(760.0 + 15.0 * t as f32, 410.0)).collect();
    left_drag(&mut h, &stroke);
    let liver_painted = mask_data(&h).iter().zip(before.iter()).filter(|(a, b)| a != b && **b == 1).count();
    assert!(liver_painted > 10, "unlocked, the tumour brush paints over liver ({liver_painted} voxels)");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert_eq!(mask_data(&h), before);

    h.get_by_label("lock 1").scroll_to_me();
    h.run();
    h.get_by_label("lock 1").click();
    h.run();
    assert!(h.state().edits.labels.get(1).unwrap().locked);
    left_drag(&mut h, &stroke);
    let after = mask_data(&h);
    let changed: Vec<(u8, u8)> =
        after.iter().zip(before.iter()).filter(|(a, b)| a != b).map(|(a, b)| (*b, *a)).collect();
    assert!(changed.iter().all(|&(b, _)| b != 1), "a locked liver voxel was painted");
    assert!(!changed.is_empty(), "the stroke still paints where it may (background)");
}

#[test]
fn saving_the_mask_writes_its_label_descriptions_beside_it() {
    let mut a = app();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.nii.gz");
    a.edits.labels.rename(2, "HCC").unwrap();
    a.edits.labels.set_locked(1, true).unwrap();
    a.edit.save_path = path.display().to_string();
    a.edit.save(&a.study, &mut a.edits);
    assert!(a.edits.error.is_none(), "{:?}", a.edits.error);
    assert!(path.is_file());
    let side = dir.path().join("edited.labels.txt");
    let t = hepaview::edit::LabelTable::from_itksnap(&std::fs::read_to_string(&side).unwrap(), "sidecar").unwrap();
    assert_eq!(t, a.edits.labels, "names, colours, opacity, visibility and locks come back");
    // a second study opened from that mask would read it; saving again elsewhere never
    // overwrites someone else's file
    a.edit.save_path = dir.path().join("other.nii.gz").display().to_string();
    std::fs::write(dir.path().join("other.labels.txt"), "not ours").unwrap();
    a.edit.save(&a.study, &mut a.edits);
    assert!(a.edits.error.as_deref().unwrap_or("").contains("other.labels.txt"), "{:?}", a.edits.error);
    assert!(!dir.path().join("other.nii.gz").exists());
}

#[test]
fn each_frame_of_a_stroke_uploads_only_what_changed_since_the_last_frame() {
    // The overlay updates the mask texture in place from the key the GPU was given last
    // frame; were the box counted from the stroke's first frame, the GPU (which no longer
    // holds that key) would re-upload the whole mask on every frame of a stroke.
    let mut h = harness(app());
    h.run();
    h.key_press(Key::B);
    h.run();
    let a = Pos2::new(780.0, 410.0);
    h.hover_at(a);
    h.event(Event::PointerButton { pos: a, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.run();
    for t in 1..=6 {
        let shown = h.state().study.labels.as_ref().unwrap().key;
        h.event(Event::PointerMoved(a + egui::vec2(12.0 * t as f32, 0.0)));
        h.step();
        let app = h.state();
        let key = app.study.labels.as_ref().unwrap().key;
        if key != shown {
            let (from, to, _) = app.edits.gpu_update.expect("an edit leaves an update for the overlay");
            assert_eq!((from, to), (shown, key), "frame {t}: update from the key drawn last frame");
        }
    }
    h.event(Event::PointerButton {
        pos: a,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
}

/// Three time points: a lesion new at the first follow-up is followed into the second (the
/// same follow-up study, as if nothing changed between them), in one row with both cells,
/// instead of a second "new" row.
#[test]
fn a_lesion_new_at_one_follow_up_is_followed_into_the_next() {
    let opts = PhantomOptions::small();
    let mut app = HepaviewApp::new(Study::demo(&opts));
    let a = &mut app;
    for label in ["20260316", "20260615"] {
        a.follow_up.add_visit(&mut a.study, Study::demo(&opts.follow_up()), label, &|_, _| true).unwrap();
    }
    let Some(mut h) = gpu_harness(app) else { return };
    h.run();
    h.get_by_label("Compare visits").scroll_to_me();
    h.run();
    h.get_by_label("Compare visits").click();
    h.step();
    wait_for(&mut h, |a| !a.follow_up.is_running());
    let f = &h.state().follow_up;
    assert!(f.error.is_none(), "{:?}", f.error);
    let c = f.comparison.as_ref().expect("a comparison");
    assert_eq!(c.time_points().len(), 3);
    let rows = c.rows();
    let names: Vec<String> = rows.iter().map(|r| format!("{} {}", r.name, r.status)).collect();
    let new: Vec<_> = rows.iter().filter(|r| r.status.contains("NEW")).collect();
    assert_eq!(new.len(), 1, "one new lesion, one row: {names:?}");
    assert!(new[0].cells[0].is_none() && new[0].cells[1].is_some() && new[0].cells[2].is_some(), "{names:?}");
    assert!(new[0].status.starts_with("NEW at 20260316; F"), "{}", new[0].status);
    let (a1, a2) = (new[0].cells[1].unwrap().volume_ml, new[0].cells[2].unwrap().volume_ml);
    assert!((a1 - a2).abs() < 0.05 * a1, "the same study twice: the same volume ({a1} vs {a2} mL)");
}

/// The Follow-up panel on the demo pair: Compare visits measures both visits (the
/// follow-up's own mask carried through the visit alignment), the table follows each
/// baseline lesion (the hemangioma gone, a new HCC), RECIST 1.1 and mRECIST are shown
/// with their reasons; a re-pair by hand changes the assessment, a row click moves the
/// crosshair, and a nudge moves the follow-up images by exactly the shift asked for.
#[test]
fn follow_up_panel_compares_visits_repairs_and_nudges() {
    let opts = PhantomOptions::small();
    let mut app = HepaviewApp::new(Study::demo(&opts));
    let follow = Study::demo(&opts.follow_up());
    let label = "20260316";
    let a = &mut app;
    a.follow_up.add_visit(&mut a.study, follow, label, &|_, _| true).unwrap();
    let Some(mut h) = gpu_harness(app) else { return };
    h.run();
    assert_eq!(h.state().view.window.len(), 6, "the visit's phases get a window each");
    let v = &h.state().study.visits[0];
    let (ncc_auto, keys) = (v.ncc_auto.expect("residual NCC of the automatic alignment"), v.keys.clone());
    assert!(ncc_auto > 0.5, "{ncc_auto}");

    h.get_by_label("Compare visits").scroll_to_me();
    h.run();
    h.get_by_label("Compare visits").click();
    h.step();
    assert!(h.state().follow_up.is_running(), "the comparison runs on a worker thread");
    wait_for(&mut h, |a| !a.follow_up.is_running());
    let f = &h.state().follow_up;
    assert!(f.error.is_none(), "{:?}", f.error);
    let c = f.comparison.as_ref().expect("a comparison");
    assert_eq!(c.time_points().len(), 2);
    let rows = c.rows();
    let names: Vec<String> = rows.iter().map(|r| format!("{} {}", r.name, r.status)).collect();
    assert_eq!(c.baseline.report.lesions.len(), 4, "{names:?}");
    assert_eq!(rows.iter().filter(|r| r.status.contains("NEW")).count(), 1, "{names:?}");
    assert_eq!(rows.iter().filter(|r| r.status.contains("GONE")).count(), 1, "{names:?}");
    assert_eq!(
        rows.iter().filter(|r| r.cells.iter().all(|c| c.is_some())).count(),
        3,
        "three lesions followed: {names:?}"
    );
    let r = &c.visits[0].response;
    assert_eq!(r.recist.category, hepaview::response::Category::PD, "{}", r.recist.reason);
    assert!(r.recist.reason.contains("new lesion"), "{}", r.recist.reason);
    assert!(r.mrecist.is_some(), "both visits have an arterial phase");
    assert!(c.visits[0].mask_note.contains("own mask"), "{}", c.visits[0].mask_note);
    let gone = c.visits[0].pairs.iter().find(|p| p.followup.is_none()).and_then(|p| p.baseline).unwrap();
    let new = c.visits[0].pairs.iter().find(|p| p.baseline.is_none()).and_then(|p| p.followup).unwrap();
    let b1 = c.baseline.report.lesions[0].centroid_mm;
    h.run();
    assert!(
        h.query_by_label("RECIST 1.1: PD (computed, to confirm)").is_some(),
        "the category is shown as an aid to confirm"
    );
    assert!(h.query_by_label_contains("mRECIST: ").is_some());
    assert!(h.query_by_label(hepaview::response::RESPONSE_DISCLAIMER).is_some());
    assert!(
        h.query_by_label("NEW").is_some() && h.query_by_label("GONE").is_some(),
        "new and gone flagged in the table"
    );
    assert!(h.query_by_label(&format!("F{new}")).is_some(), "the new lesion has a row");

    // a row click moves the crosshair to the lesion
    h.get_by_label("B1").scroll_to_me();
    h.run();
    h.get_by_label("B1").click();
    h.run();
    let x = h.state().view.crosshair_mm;
    assert!((0..3).all(|i| (x[i] - b1[i]).abs() < 1e-6), "crosshair {x:?} vs lesion {b1:?}");
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("follow_up_panel.png")).unwrap();

    // the follow-up viewports show the visit's own lesion parts, the baseline's its mask
    {
        use hepaview::response::{LIPIODOL, NECROTIC, VIABLE};
        let a = h.state();
        let c = a.follow_up.comparison.as_ref().unwrap();
        let fu = a.study.phases.iter().find(|p| p.description.starts_with("FOLLOW-UP")).unwrap();
        let (m, _) = a.follow_up.overlay_for(&a.study, fu.key).expect("a compared follow-up has its overlay");
        let count = |mask: &hepaview::volume::Mask, l: u8| mask.data.iter().filter(|&&v| v == l).count();
        for l in [VIABLE, NECROTIC, LIPIODOL] {
            assert_eq!(count(m, l), count(&c.visits[0].followup.parts_mask, l), "label {l}");
        }
        // (the small phantom's 5 mm lipiodol core is smaller than its 6 × 6 × 8 mm voxels)
        assert!(count(m, VIABLE) > 0 && count(m, NECROTIC) > 0);
        assert!(a.follow_up.overlay_for(&a.study, a.study.phases[0].key).is_none(), "not over the baseline");
    }
    assert!(
        h.query_by_label_contains("necrotic 0.").is_some() || h.query_by_label_contains("necrotic 1.").is_some(),
        "parts per follow-up lesion listed"
    );
    h.get_by_label("lesion parts on the follow-up:").scroll_to_me();
    h.run();
    let with_parts = h.render().expect("render");
    h.get_by_label("lesion parts on the follow-up:").click();
    h.run();
    assert!(h.state().follow_up.hide_parts);
    let without = h.render().expect("render");
    let x0 = with_parts.width() / 3;
    let changed = (0..with_parts.height())
        .flat_map(|y| (x0..with_parts.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| with_parts.get_pixel(x, y) != without.get_pixel(x, y))
        .count();
    assert!(changed > 100, "hiding the parts changes the follow-up viewports ({changed} px)");
    h.get_by_label("lesion parts on the follow-up:").click();
    h.run();
    h.get_by_label("Timeline").scroll_to_me();
    h.run();
    let img = h.render().expect("render");
    img.save(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("follow_up_timeline.png")).unwrap();

    // re-pair the lesion that was gone with the new one: no new lesion, no PD for it
    let combo = format!("pair B{gone} in {label}");
    h.get_by_label(&combo).scroll_to_me();
    h.run();
    h.get_by_label(&combo).click();
    h.run();
    h.get_by_label(&format!("-> F{new}")).click();
    h.run();
    let v = &h.state().follow_up.comparison.as_ref().unwrap().visits[0];
    assert!(v.pairs.iter().any(|p| p.baseline == Some(gone) && p.followup == Some(new)), "{:?}", v.pairs);
    assert_eq!(v.response.recist.new_lesions, 0);
    assert_ne!(v.response.recist.category, hepaview::response::Category::PD, "{}", v.response.recist.reason);
    let rows = h.state().follow_up.comparison.as_ref().unwrap().rows();
    assert!(rows.iter().all(|r| !r.status.contains("NEW")), "the new lesion is now the re-paired one's follow-up");
    assert!(rows.iter().any(|r| r.status.contains("paired by hand")));

    // the radiologist overrides the computed category
    let over = format!("RECIST 1.1 read {label}");
    h.get_by_label(&over).scroll_to_me();
    h.run();
    h.get_by_label(&over).click();
    h.run();
    h.get_by_label("CR").click();
    h.run();
    assert_eq!(
        h.state().follow_up.comparison.as_ref().unwrap().visits[0].recist_override,
        Some(hepaview::response::Category::CR)
    );
    assert!(h.query_by_label("RECIST 1.1: CR (read by the radiologist)").is_some());

    // split a followed lesion into its own follow-up lesion and the re-paired one: its row
    // and its RECIST target add both fragments; the lesion they were taken from is gone again
    let b = {
        let v = &h.state().follow_up.comparison.as_ref().unwrap().visits[0];
        (1..)
            .find(|&b| {
                b != gone && v.pairs.iter().filter(|p| p.baseline == Some(b) && p.followup.is_some()).count() == 1
            })
            .unwrap()
    };
    let split = format!("split B{b} in {label}");
    h.get_by_label(&split).scroll_to_me();
    h.run();
    h.get_by_label(&split).click();
    h.run();
    h.get_by_label(&format!("+ F{new}")).click();
    h.run();
    let c = h.state().follow_up.comparison.as_ref().unwrap();
    let v = &c.visits[0];
    assert!(v.liver_note.starts_with("Demons on the liver: RMSD"), "{}", v.liver_note);
    assert_eq!(v.pairs.iter().filter(|p| p.baseline == Some(b)).count(), 2, "{:?}", v.pairs);
    assert!(v.pairs.iter().any(|p| p.baseline == Some(gone) && p.followup.is_none()), "{:?}", v.pairs);
    let row = c.rows().into_iter().find(|r| r.name == format!("B{b}")).unwrap();
    assert!(row.status.contains("split into"), "{}", row.status);
    let frag_ml: f64 = v
        .pairs
        .iter()
        .filter(|p| p.baseline == Some(b))
        .filter_map(|p| p.followup)
        .map(|f| v.followup.report.lesions[f - 1].volume_ml)
        .sum();
    assert!((row.cells[1].unwrap().volume_ml - frag_ml).abs() < 1e-9, "the row adds the fragments' volumes");
    if let Some(t) = v.response.recist.targets.iter().find(|t| t.baseline_id == b) {
        assert_eq!(t.followup_fragments.len(), 2);
    }

    // Save report: the HTML and JSON carry the reader's CR beside the computed category,
    // and the pairs as edited here; a second save refuses to overwrite
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("follow_up_report_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    h.state_mut().follow_up.report_dir = dir.display().to_string();
    let save = "Save report (HTML, JSON, CSV)";
    h.get_by_label(save).scroll_to_me();
    h.run();
    h.get_by_label(save).click();
    h.run();
    assert!(h.state().follow_up.error.is_none(), "{:?}", h.state().follow_up.error);
    let html = std::fs::read_to_string(dir.join("compare.html")).expect("compare.html");
    assert!(
        html.contains("Read by the radiologist as CR (complete response)"),
        "the reader's category is in the report"
    );
    assert!(html.contains("data:image/png;base64,"), "key images");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["reader"]["recist"], "CR");
    assert_eq!(json["reader"]["recist_overridden"], true);
    let saved_pairs = json["response"]["lesions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["pairing"]["baseline"] == b as u64 && !l["pairing"]["followup"].is_null())
        .count();
    assert_eq!(saved_pairs, 2, "the split as made by hand");
    h.get_by_label(save).click();
    h.run();
    assert!(
        h.state().follow_up.error.as_deref().is_some_and(|e| e.contains("exists")),
        "{:?}",
        h.state().follow_up.error
    );

    // nudge the follow-up one voxel (6 mm) to the patient's left: every phase moves by it
    let pv_key = keys
        .iter()
        .copied()
        .find(|k| h.state().study.phases.iter().any(|p| p.key == *k && p.description.contains("portal venous")))
        .unwrap();
    let before = std::sync::Arc::clone(&h.state().study.phases.iter().find(|p| p.key == pv_key).unwrap().volume);
    h.state_mut().follow_up.visits[0].pending_mm = [before.geometry.spacing_mm[2], 0.0, 0.0];
    let apply = format!("Apply nudge {label}");
    h.get_by_label(&apply).scroll_to_me();
    h.run();
    h.get_by_label(&apply).click();
    h.step();
    wait_for(&mut h, |a| !a.follow_up.is_running());
    let a = h.state();
    assert!(a.follow_up.error.is_none(), "{:?}", a.follow_up.error);
    let v = &a.study.visits[0];
    assert_eq!(v.nudge_mm, [before.geometry.spacing_mm[2], 0.0, 0.0]);
    let new_pv = v
        .keys
        .iter()
        .find_map(|k| a.study.phases.iter().find(|p| p.key == *k && p.description.contains("portal venous")))
        .expect("the nudged phase, under a new key");
    assert_ne!(new_pv.key, pv_key, "new data, new key (the GPU uploads it again)");
    let [nz, ny, nx] = before.geometry.shape;
    let (mut same, mut n) = (0usize, 0usize);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx - 1 {
                n += 1;
                same +=
                    ((new_pv.volume.data[[k, j, i + 1]] as i32 - before.data[[k, j, i]] as i32).abs() <= 1) as usize;
            }
        }
    }
    assert!(same as f64 > 0.999 * n as f64, "{same} of {n} voxels moved by one column");
    let (auto, now) = (v.ncc_auto.unwrap(), v.ncc_now.unwrap());
    assert!(now < auto, "a 6 mm nudge off the automatic alignment lowers the NCC: {auto:.3} -> {now:.3}");
    assert!(a.follow_up.comparison.as_ref().unwrap().stale);
    h.run();
    assert!(h.query_by_label_contains("residual NCC: automatic").is_some());
}

/// A follow-up added without the panel (as `hepaview open --follow-up` does) is picked up
/// from the study; with no mask of its own, Compare visits outlines it with the shipped
/// U-Net and says so.
#[test]
fn follow_up_without_a_mask_is_segmented_by_the_unet_and_says_so() {
    if hepaview::app::segment::model_path().is_none() {
        eprintln!("skipping: models/unet.safetensors not found");
        return;
    }
    let opts = PhantomOptions::small();
    let mut study = Study::demo(&opts);
    hepaview::study::analysis::add_follow_up(&mut study, &Study::demo(&opts.follow_up()), "20260316", &|_, _| true)
        .unwrap();
    let mut h = harness(HepaviewApp::new(study));
    h.run();
    assert_eq!(h.state().study.visits.len(), 1, "the visit found in the study");
    assert!(h.query_by_label_contains("outlines it with the shipped U-Net").is_some());
    h.get_by_label("Compare visits").scroll_to_me();
    h.run();
    h.get_by_label("Compare visits").click();
    wait_for(&mut h, |a| !a.follow_up.is_running());
    let f = &h.state().follow_up;
    assert!(f.error.is_none(), "{:?}", f.error);
    let c = f.comparison.as_ref().expect("a comparison");
    assert!(c.visits[0].mask_note.contains("U-Net"), "{}", c.visits[0].mask_note);
    assert_eq!(c.baseline.report.lesions.len(), 4);
    h.run();
    assert!(h.query_by_label_contains("follow-up mask: outlined by the shipped U-Net").is_some());
}

#[test]
fn viewing_a_study_without_editing_writes_nothing_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    hepaview::phantom::write_demo_study(&dir, &PhantomOptions::small()).unwrap();
    let study = Study::open(&[dir.join("dicom"), dir.join("labels.nii.gz")]).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.join("dicom")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut h = harness(HepaviewApp::new(study));
    // longer than the label table's save interval (1 s): an untouched table is not "changed"
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_millis(1600) {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(h.state().edits.error.is_none(), "{:?}", h.state().edits.error);
    let after: Vec<_> = std::fs::read_dir(dir.join("dicom")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "the study folder is as it was");
}

/// A left click (press and release) at `at`, then a frame.
fn left_click(h: &mut Harness<'static, HepaviewApp>, at: Pos2) {
    h.hover_at(at);
    for pressed in [true, false] {
        h.event(Event::PointerButton { pos: at, button: PointerButton::Primary, pressed, modifiers: Modifiers::NONE });
    }
    h.run();
}

/// Issue 24: with the Outline tool, one click on the full-size phantom's HCC (which the
/// mask here leaves as liver, as the network might) outlines it in 3-D as one undoable
/// edit of the tumour label, and its row (volume, RECIST, depth, hint) appears.
/// The full-size phantom with its lesions labelled liver, the axial slice through the
/// HCC shown, and a map from world x, y to screen points in the portal venous viewport
/// (found from two navigation clicks).
#[allow(clippy::type_complexity)]
fn phantom_at_the_hcc(
) -> (Harness<'static, HepaviewApp>, hepaview::phantom::Phantom, hepaview::phantom::LesionTruth, Box<dyn Fn(Lps) -> Pos2>)
{
    use hepaview::phantom::{make_phantom, LesionKind};
    let opts = PhantomOptions::default();
    let ph = make_phantom(&opts);
    let hcc = ph.lesions.iter().find(|l| l.kind == LesionKind::Hcc).expect("an HCC").clone();
    let mut study = Study::demo(&opts);
    let labels = study.labels.as_mut().expect("the demo has labels");
    let liver_only = labels.mask.data.mapv(|l| (l != 0) as u8);
    std::sync::Arc::make_mut(&mut labels.mask).data.assign(&liver_only);
    let mut h = harness(HepaviewApp::new(study));
    h.run();
    h.state_mut().view.crosshair_mm[2] = hcc.centre_mm[2];
    h.run();
    let (p1, p2) = (Pos2::new(800.0, 380.0), Pos2::new(880.0, 460.0));
    let mut seen = Vec::new();
    for p in [p1, p2] {
        left_click(&mut h, p);
        seen.push(h.state().view.crosshair_mm);
    }
    let to_screen = move |w: Lps| {
        let f = |a: usize, s1: f32, s2: f32| s1 + (s2 - s1) * ((w[a] - seen[0][a]) / (seen[1][a] - seen[0][a])) as f32;
        Pos2::new(f(0, p1.x, p2.x), f(1, p1.y, p2.y))
    };
    (h, ph, hcc, Box::new(to_screen))
}

/// Issue 24: with the Outline tool, a box dragged around the phantom's HCC on its slice
/// outlines it, inside the box, as one undo step.
#[test]
fn a_box_dragged_around_the_hcc_outlines_it() {
    let (mut h, _, hcc, to_screen) = phantom_at_the_hcc();
    h.key_press(Key::O);
    h.run();
    let m = hcc.radius_mm + 4.0;
    let c = hcc.centre_mm;
    let (a, b) = (to_screen([c[0] - m, c[1] - m, c[2]]), to_screen([c[0] + m, c[1] + m, c[2]]));
    let path: Vec<Pos2> = (0..=6).map(|t| a + (b - a) * (t as f32 / 6.0)).collect();
    left_drag(&mut h, &path);
    let corners = h.state().outline.prompts.box_mm.expect("the drag became a box prompt");
    assert!((corners[0][0] - (c[0] - m)).abs() < 3.0 && (corners[1][1] - (c[1] + m)).abs() < 3.0, "{corners:?}");
    wait_for(&mut h, |app| !app.outline.is_running());
    let app = h.state();
    assert!(app.outline.error.is_none(), "{:?}", app.outline.error);
    let row = app.outline.row.as_ref().expect("the lesion's row");
    let true_ml = 4.0 / 3.0 * std::f64::consts::PI * hcc.radius_mm.powi(3) / 1000.0;
    assert!((row.volume_ml / true_ml - 1.0).abs() < 0.35, "{} mL vs a {true_ml:.1} mL sphere", row.volume_ml);
    assert_eq!(app.edits.history.undo_steps(), 1);
}

#[test]
fn one_click_outlines_the_phantom_hcc_and_shows_its_row() {
    let (mut h, ph, hcc, to_screen) = phantom_at_the_hcc();
    let at = to_screen(hcc.centre_mm);
    h.key_press(Key::O);
    h.run();
    assert_eq!(h.state().edit.tool, hepaview::app::edit::Tool::Outline);
    let steps = h.state().edits.history.undo_steps();
    left_click(&mut h, at);
    let click = *h.state().outline.prompts.include.first().expect("the click became a prompt");
    let off: f64 = (0..3).map(|a| (click[a] - hcc.centre_mm[a]).powi(2)).sum::<f64>().sqrt();
    assert!(off < hcc.radius_mm / 2.0, "the click landed {off:.1} mm from the HCC's centre");
    wait_for(&mut h, |app| !app.outline.is_running());
    let app = h.state();
    assert!(app.outline.error.is_none(), "{:?}", app.outline.error);
    assert_eq!(app.edits.history.undo_steps(), steps + 1, "one click, one undo step");
    // the outline against the phantom's true HCC
    let m = &app.study.labels.as_ref().unwrap().mask;
    let g = &m.geometry;
    let (mut both, mut outlined, mut truth) = (0usize, 0usize, 0usize);
    for ((k, j, i), &v) in m.data.indexed_iter() {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        let inside_true = ph.labels.data[[k, j, i]] == 2
            && (0..3).map(|a| (p[a] - hcc.centre_mm[a]).powi(2)).sum::<f64>().sqrt() <= hcc.radius_mm + 3.0;
        both += (v == 2 && inside_true) as usize;
        outlined += (v == 2) as usize;
        truth += inside_true as usize;
    }
    let dice = 2.0 * both as f64 / (outlined + truth) as f64;
    assert!(dice > 0.8, "outline Dice {dice:.3} against the true HCC");
    let row = app.outline.row.as_ref().expect("the lesion's row");
    assert!((row.volume_ml - outlined as f64 * g.spacing_mm.iter().product::<f64>() / 1000.0).abs() < 0.05);
    let text = hepaview::app::outline::row_text(row);
    assert!(text.contains("RECIST") && text.contains("below the liver surface") && text.contains("Hint"), "{text}");
    // the panel shows it
    assert!(h.query_by_label_contains("RECIST").is_some(), "the row is in the side panel");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert!(!h.state().study.labels.as_ref().unwrap().mask.data.iter().any(|&v| v == 2), "undo takes it out");
}

/// Issue 24 item 4: with a follow-up visit open, the HCC outlined on the baseline is carried
/// to the follow-up by "Outline in follow-up" (on a worker thread) and outlined there as it
/// is now (treated, smaller), into the visit's own layer, never the baseline's mask; the
/// follow-up row shows; Ctrl+Z undoes it first. The hemangioma, gone at the follow-up, is
/// said not found at the carried position and paints nothing.
#[test]
fn a_baseline_outline_is_carried_to_the_follow_up() {
    use hepaview::phantom::{make_phantom, LesionKind};
    let opts = PhantomOptions::default();
    let mut study = Study::demo(&opts);
    let labels = study.labels.as_mut().expect("the demo has labels");
    let liver_only = labels.mask.data.mapv(|l| (l != 0) as u8);
    std::sync::Arc::make_mut(&mut labels.mask).data.assign(&liver_only);
    let mut h = harness(HepaviewApp::new(study));
    {
        let a = h.state_mut();
        a.follow_up.add_visit(&mut a.study, Study::demo(&opts.follow_up()), "20260316", &|_, _| true).unwrap();
    }
    h.run();
    h.key_press(Key::O);
    h.run();
    let base = make_phantom(&opts);
    let lesion = |k: LesionKind| base.lesions.iter().find(|l| l.kind == k).expect("the lesion").clone();
    let (hcc, gone) = (lesion(LesionKind::Hcc), lesion(LesionKind::Hemangioma));
    // the baseline outline, from a click at the HCC (the click itself is driven in the test above)
    {
        let a = h.state_mut();
        a.outline.click_in(&a.study, None, hcc.centre_mm, false);
    }
    wait_for(&mut h, |app| !app.outline.is_running());
    assert!(h.state().outline.error.is_none(), "{:?}", h.state().outline.error);
    let base_mask = h.state().study.labels.as_ref().unwrap().mask.clone();
    let steps = h.state().edits.history.undo_steps();
    h.get_by_label("Outline in follow-up 20260316 (F)").scroll_to_me();
    h.run();
    h.get_by_label("Outline in follow-up 20260316 (F)").click();
    h.step();
    h.step();
    let o = &h.state().outline;
    assert!(o.is_running(), "the carry runs on a worker thread: {:?} {:?}", o.message, o.error);
    wait_for(&mut h, |app| !app.outline.is_running());
    let app = h.state();
    assert!(app.outline.error.is_none(), "{:?}", app.outline.error);
    let msg = app.outline.message.clone().unwrap_or_default();
    assert!(msg.contains("outlined on the follow-up"), "{msg}");
    let (layer, _) = app.edits.follow_ups.layer("20260316").expect("the visit's layer");
    assert_eq!(app.study.labels.as_ref().unwrap().mask.data, base_mask.data, "the baseline's mask is untouched");
    assert_eq!(app.edits.history.undo_steps(), steps);
    // against the follow-up's true treated HCC, on the baseline grid through the visit alignment
    let fu = make_phantom(&opts.follow_up());
    let t = app.study.visits[0].transform();
    let truth = hepaview::study::analysis::resample_mask_affine(&fu.labels, &layer.geometry, &t);
    let g = &layer.geometry;
    let r = fu.lesions.iter().find(|l| l.kind == LesionKind::TreatedHcc).expect("the treated HCC").radius_mm;
    let (mut both, mut outlined, mut true_n) = (0usize, 0usize, 0usize);
    for ((k, j, i), &v) in layer.data.indexed_iter() {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        let inside = truth.data[[k, j, i]] == 2
            && (0..3).map(|a| (p[a] - hcc.centre_mm[a]).powi(2)).sum::<f64>().sqrt() <= r + 3.0;
        both += (v == 2 && inside) as usize;
        outlined += (v == 2) as usize;
        true_n += inside as usize;
    }
    let dice = 2.0 * both as f64 / (outlined + true_n).max(1) as f64;
    eprintln!("carried HCC in the viewer: Dice {dice:.3} ({outlined} voxels vs {true_n})");
    assert!(dice > 0.8, "carried outline Dice {dice:.3} against the treated HCC");
    assert!(h.query_by_label_contains("Follow-up 20260316: Lesion").is_some(), "the follow-up row is shown");
    // Ctrl+Z undoes the follow-up outline, not the baseline's
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert!(h.state().edits.follow_ups.layer("20260316").is_none(), "undone");
    assert_eq!(h.state().edits.history.undo_steps(), steps, "the baseline's outline stays");
    // the hemangioma, gone at the follow-up: not found, nothing painted
    {
        let a = h.state_mut();
        a.outline.click_in(&a.study, None, gone.centre_mm, false);
    }
    wait_for(&mut h, |app| !app.outline.is_running());
    h.key_press(Key::F);
    h.run();
    wait_for(&mut h, |app| !app.outline.is_running());
    let app = h.state();
    let msg = app.outline.message.clone().unwrap_or_default();
    assert!(msg.contains("not found at the carried position"), "{msg}");
    assert!(app.edits.follow_ups.layer("20260316").is_none(), "nothing painted for a lesion that is gone");
}

/// Issue 25: Save mask to a name ending in `.nii` writes an uncompressed NIfTI (it wrote
/// gzip bytes under that name, which then could not be read).
#[test]
fn save_mask_as_nii_writes_plain_nifti() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(app());
    h.run();
    let path = tmp.path().join("mask.nii");
    let app = h.state_mut();
    app.edit.save_path = path.display().to_string();
    let study = app.study.clone();
    app.edit.save(&study, &mut app.edits);
    assert!(app.edits.error.is_none(), "{:?}", app.edits.error);
    let bytes = std::fs::read(&path).unwrap();
    assert_ne!(&bytes[..2], &[0x1f, 0x8b], "gzip bytes in a .nii");
    let (m, _) = hepaview::io::nifti::read_mask(&path).unwrap();
    assert_eq!(m.data, study.labels.as_ref().unwrap().mask.data);
}

/// Issue 27: the Open window offers the desktop's dialogs; what a dialog answers goes
/// through `open_paths`, which closes the window and loads in the background.
#[test]
fn a_study_chosen_in_the_open_dialog_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("demo");
    hepaview::phantom::write_demo_study(&root, &PhantomOptions::small()).unwrap();
    let mut h = harness(app());
    h.run();
    h.get_by_label("Open… (Ctrl+O)").click();
    h.run();
    assert!(h.state().open_window_shown());
    assert!(h.query_by_label("Browse folder…").is_some() && h.query_by_label("Browse files…").is_some());
    h.state_mut().open_paths(vec![root.join("dicom")]);
    h.step();
    assert!(!h.state().open_window_shown(), "the window closes on a choice");
    assert!(h.state().is_loading(), "loading on a worker thread");
    wait_loaded(&mut h);
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert!(!h.state().study.title.starts_with("Demo:"), "{}", h.state().study.title);
    assert_eq!(h.state().study.phases.len(), 3);
    assert!(h.query_by_label("Browse folder…").is_none());
}

/// Issue 27: "Save as…" asks the desktop's save dialog; its answer goes through
/// `save_as`: the mask and its label file are written there (`.nii.gz` added to a bare
/// name), and a name already taken is refused, never overwritten.
#[test]
fn a_file_chosen_in_the_save_dialog_receives_the_mask_and_its_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(app());
    h.run();
    assert!(h.query_by_label("Save as…").is_some(), "the edit panel offers the save dialog");
    let app = h.state_mut();
    let study = app.study.clone();
    app.edit.save_as(&tmp.path().join("chosen"), &study, &mut app.edits);
    assert!(app.edits.error.is_none(), "{:?}", app.edits.error);
    let path = tmp.path().join("chosen.nii.gz");
    assert_eq!(app.edit.save_path, path.display().to_string());
    let (m, _) = hepaview::io::nifti::read_mask(&path).unwrap();
    assert_eq!(m.data, study.labels.as_ref().unwrap().mask.data);
    assert!(tmp.path().join("chosen.labels.txt").is_file());

    let taken = tmp.path().join("taken.nii.gz");
    std::fs::write(&taken, b"someone else's").unwrap();
    app.edit.save_as(&taken, &study, &mut app.edits);
    assert!(app.edits.error.as_deref().unwrap_or("").contains("taken.nii.gz"), "{:?}", app.edits.error);
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's");
}

/// Issue 27: the report folder a dialog answers goes through `set_export_dir`.
#[test]
fn a_folder_chosen_in_the_report_dialog_becomes_the_report_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = app();
    a.analysis.error = Some("an earlier failure".into());
    a.analysis.set_export_dir(tmp.path());
    assert_eq!(a.analysis.export_dir, tmp.path().display().to_string());
    assert!(a.analysis.error.is_none(), "a new folder clears the old error");
}
