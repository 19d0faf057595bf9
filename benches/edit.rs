//! Mask editing on a clinical-size grid: 400 × 512 × 512 voxels of 1.0 × 0.75 × 0.75 mm,
//! a synthetic CT (air, a body at 40 HU, a liver-shaped ellipsoid at 110 HU with a
//! 40 HU "tumour", Gaussian-like noise σ 15 HU, fixed seed) and its liver mask.
//!
//! `cargo bench --bench edit` times (median of `--runs`, default 3, on a rayon pool of
//! `--threads`, default 2):
//! 1. **Region growing** of the liver from a click (HU within 45 of the seed, 3-D), and
//!    the same limited to the clicked axial slice.
//! 2. **Interpolation** of the liver drawn on every 5th axial slice (the rest empty).
//! 3. **One brush stroke**: 50 segments of a 10 mm axial brush dragged across slice 200,
//!    each recorded into the undo history inside one stroke (brick diffs), then
//!    `end_stroke` (compression), the journal record (fsync'd), and undo of the stroke.
//!    The per-dab time is what one mouse-move event costs before the overlay upload.
//! 4. **Whole-label tools** on the liver: closing 2 mm, fill holes, keep largest
//!    component; and an autosave snapshot of the whole mask.
//! 5. **The viewer while painting** (`--viewer-only` runs just this): the app on this
//!    study (one 512² axial viewport, 1600 × 900 points, 1 pixel per point) in an
//!    egui_kittest harness on the wgpu renderer (Mesa lavapipe without a GPU), set up as the
//!    window is (`gpu::WINDOW_RENDERER`). A 10 mm brush stroke of `--dabs` mouse moves
//!    (default 60) across the liver, one move per frame; each frame is one UI pass (the
//!    edit, new overlay key, dirty box) and one render up to the GPU finishing (the
//!    overlay's dirty box written into the mask texture, the slice drawn), without reading
//!    the image back and without the full-window background egui_kittest paints around a
//!    test UI (neither exists in the window; as `benches/viewer_frames.rs` loop 2). Frames
//!    with the pointer still are timed the same way for comparison.
//!
//! Ends with one JSON line. Without `--bench` (as `cargo test --all-targets` runs it) it
//! only says how to run it.

use std::time::Instant;

use hepaview::edit::tools::{
    close_label, fill_holes, interpolate_slices, keep_largest_component, paint_line, region_grow, Brush, Grow,
    GrowCriterion, Reach,
};
use hepaview::edit::{History, Orientation, Paint, PaintOver, Session};
use hepaview::volume::{CtVolume, Geometry, Mask, Volume};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

const SHAPE: [usize; 3] = [400, 512, 512];
const SPACING: [f64; 3] = [1.0, 0.75, 0.75];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("edit: run with `cargo bench --bench edit` to measure");
        return;
    }
    let runs = arg_value(&args, "--runs", 3).max(1);
    let threads = arg_value(&args, "--threads", 2).max(1);
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("thread pool: {e}");
            return;
        }
    };
    println!("edit bench: {}×{}×{} voxels, {threads} threads, {runs} runs", SHAPE[0], SHAPE[1], SHAPE[2]);
    let dabs = arg_value(&args, "--dabs", 60).max(2);
    let mut json = if args.iter().any(|a| a == "--viewer-only") {
        serde_json::json!({ "bench": "edit" })
    } else {
        pool.install(|| run(runs))
    };
    match pool.install(|| viewer_stroke(dabs)) {
        Ok(v) => json["viewer_stroke"] = v,
        Err(e) => println!("viewer stroke not measured: {e}"),
    }
    println!("{json}");
}

/// Median and 95th percentile (nearest rank) of milliseconds.
fn median_p95(ms: &[f64]) -> (f64, f64) {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[n / 2], v[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1])
}

/// Draws one frame's output as the window does, up to the GPU finishing, without reading
/// the image back; consumes the output, so no paint callback (and no `Arc` of the mask)
/// outlives the frame, as in eframe.
fn render_frame(rs: &egui_wgpu::RenderState, ctx: &egui::Context, output: egui::FullOutput) {
    use egui_wgpu::wgpu;
    let ppp = output.pixels_per_point;
    let size = ctx.content_rect().size() * ppp;
    let screen = egui_wgpu::ScreenDescriptor {
        pixels_per_point: ppp,
        size_in_pixels: [size.x.round() as u32, size.y.round() as u32],
    };
    let tessellated = ctx.tessellate(output.shapes, ppp);
    let mut renderer = rs.renderer.write();
    for (id, deltas) in &output.textures_delta.set {
        for delta in deltas {
            renderer.update_texture(&rs.device, &rs.queue, *id, delta);
        }
    }
    let mut encoder =
        rs.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("edit bench encoder") });
    let user_buffers = renderer.update_buffers(&rs.device, &rs.queue, &mut encoder, &tessellated, &screen);
    let texture = rs.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("edit bench target"),
        size: wgpu::Extent3d {
            width: screen.size_in_pixels[0],
            height: screen.size_in_pixels[1],
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: rs.target_format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    {
        let mut pass = encoder
            .begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("edit bench pass"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                ..Default::default()
            })
            .forget_lifetime();
        renderer.render(&mut pass, &tessellated, &screen);
    }
    for id in &output.textures_delta.free {
        renderer.free_texture(id);
    }
    drop(renderer);
    rs.queue.submit(user_buffers.into_iter().chain(std::iter::once(encoder.finish())));
    rs.device
        .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(std::time::Duration::from_secs(30)) })
        .expect("poll");
}

/// 5. in the module doc: frame times of the viewer while a brush stroke paints.
fn viewer_stroke(dabs: usize) -> Result<serde_json::Value, String> {
    use egui::{Event, Modifiers, PointerButton, Pos2};
    use hepaview::app::HepaviewApp;
    use hepaview::io::phase::{Phase, PhaseCall};
    use hepaview::study::{next_key, Labels, PhaseImage, Study};
    use std::sync::Arc;

    let rs = hepaview::app::gpu::headless_render_state()?;
    let info = rs.adapter.get_info();
    let (ct, truth) = synthetic();
    let study = Study {
        title: "edit bench".into(),
        phases: vec![PhaseImage {
            call: PhaseCall { phase: Phase::PortalVenous, confidence: 1.0, reason: "synthetic".into() },
            description: "synthetic 512×512×400".into(),
            source: "synthetic".into(),
            volume: Arc::new(ct),
            key: next_key(),
        }],
        labels: Some(Labels { mask: Arc::new(truth), key: next_key(), source: "synthetic".into() }),
        warnings: Vec::new(),
        registrations: Vec::new(),
        visits: Vec::new(),
    };
    // egui driven directly, as eframe does (egui_kittest keeps the last frame's output,
    // and with it an `Arc` of the mask, alive through the next UI pass: every dab would
    // then copy the 105 MB mask, which the window never does)
    let ctx = egui::Context::default();
    let mut app = HepaviewApp::new(study);
    let screen = egui::Rect::from_min_size(Pos2::ZERO, egui::vec2(1600.0, 900.0));
    let start = Instant::now();
    let frame = |app: &mut HepaviewApp, events: Vec<Event>| {
        let mut input = egui::RawInput {
            screen_rect: Some(screen),
            time: Some(start.elapsed().as_secs_f64()),
            events,
            ..Default::default()
        };
        input.viewports.entry(egui::ViewportId::ROOT).or_default().native_pixels_per_point = Some(1.0);
        let t = Instant::now();
        let output = ctx.run_ui(input, |ui| app.ui(ui));
        let ui_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        render_frame(&rs, &ctx, output);
        (ui_ms, t.elapsed().as_secs_f64() * 1e3)
    };
    // first frames upload the CT and mask textures (timed apart)
    let t0 = Instant::now();
    for _ in 0..3 {
        frame(&mut app, Vec::new());
    }
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    app.edit.tool = hepaview::app::edit::Tool::Brush;
    app.edit.diameter_mm = 10.0;
    frame(&mut app, Vec::new());
    let still: Vec<(f64, f64)> = (0..20).map(|_| frame(&mut app, Vec::new())).collect();
    // the viewport fills the area right of the side panel; stroke through its middle
    let (y, x0, x1) = (screen.center().y, screen.min.x + 0.45 * screen.width(), screen.min.x + 0.8 * screen.width());
    let at = |t: f32| Pos2::new(x0 + (x1 - x0) * t, y + 20.0 * (t * 6.0).sin());
    let before_key = app.study.labels.as_ref().map(|l| l.key);
    let copies = |app: &HepaviewApp| app.study.labels.as_ref().map_or(0, |l| Arc::strong_count(&l.mask));
    frame(&mut app, vec![Event::PointerMoved(at(0.0))]);
    let mut painting = Vec::with_capacity(dabs);
    let mut shared = 0;
    painting.push(frame(
        &mut app,
        vec![Event::PointerButton {
            pos: at(0.0),
            button: PointerButton::Primary,
            pressed: true,
            modifiers: Modifiers::NONE,
        }],
    ));
    for d in 1..dabs {
        shared = shared.max(copies(&app));
        painting.push(frame(&mut app, vec![Event::PointerMoved(at(d as f32 / (dabs - 1) as f32))]));
    }
    let end = frame(
        &mut app,
        vec![Event::PointerButton {
            pos: at(1.0),
            button: PointerButton::Primary,
            pressed: false,
            modifiers: Modifiers::NONE,
        }],
    );
    let changed = app.edits.history.undo_steps();
    if app.study.labels.as_ref().map(|l| l.key) == before_key || changed != 1 {
        return Err(format!("the stroke did not paint (undo steps {changed}); is the viewport where expected?"));
    }
    if shared > 1 {
        println!("  note: the mask's Arc was shared ({shared}) between frames: each dab copied the mask");
    }
    let total = |v: &[(f64, f64)]| v.iter().map(|(a, b)| a + b).collect::<Vec<f64>>();
    let (paint_med, paint_p95) = median_p95(&total(&painting));
    let (paint_ui, _) = median_p95(&painting.iter().map(|x| x.0).collect::<Vec<_>>());
    let (paint_render, _) = median_p95(&painting.iter().map(|x| x.1).collect::<Vec<_>>());
    let (still_med, still_p95) = median_p95(&total(&still));
    let (still_ui, _) = median_p95(&still.iter().map(|x| x.0).collect::<Vec<_>>());
    let (still_render, _) = median_p95(&still.iter().map(|x| x.1).collect::<Vec<_>>());
    println!(
        "viewer while painting ({}, {dabs} dabs of 10 mm, one per frame; first frames with uploads {first_ms:.0} ms):",
        info.name
    );
    println!("  painting: median {paint_med:.1} ms, p95 {paint_p95:.1} ms per frame (UI pass {paint_ui:.1}, render {paint_render:.1})");
    println!("  still:    median {still_med:.1} ms, p95 {still_p95:.1} ms per frame (UI pass {still_ui:.1}, render {still_render:.1})");
    println!("  end of stroke frame (compression, journal): {:.1} ms", end.0 + end.1);
    Ok(serde_json::json!({
        "adapter": info.name,
        "dabs": dabs,
        "first_frames_ms": first_ms,
        "painting_median_ms": paint_med,
        "painting_p95_ms": paint_p95,
        "painting_ui_median_ms": paint_ui,
        "painting_render_median_ms": paint_render,
        "still_median_ms": still_med,
        "still_p95_ms": still_p95,
        "still_ui_median_ms": still_ui,
        "still_render_median_ms": still_render,
        "end_of_stroke_frame_ms": end.0 + end.1,
    }))
}

fn arg_value(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Median time of `f` over `runs`, each on a fresh `setup()` that is not timed (copying a
/// 100 MB mask would otherwise be most of the figure).
fn median_ms<S, T>(runs: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(&mut S) -> T) -> (f64, S, T) {
    let mut ms = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let mut s = setup();
        let t = Instant::now();
        let out = f(&mut s);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some((s, out));
    }
    ms.sort_by(f64::total_cmp);
    let (s, out) = last.expect("at least one run");
    (ms[ms.len() / 2], s, out)
}

/// Inside the liver: an ellipsoid (semi-axes 90, 70, 80 mm) with a bite out of it.
fn in_liver(x: f64, y: f64, z: f64) -> bool {
    let e = (x / 90.0).powi(2) + (y / 70.0).powi(2) + (z / 80.0).powi(2);
    let bite = ((x - 70.0) / 40.0).powi(2) + ((y + 50.0) / 40.0).powi(2) + (z / 60.0).powi(2);
    e <= 1.0 && bite > 1.0
}

/// Deterministic noise in −1…1 per voxel (splitmix64 of its index).
fn noise(n: u64) -> f64 {
    let z = hepaview::volume::random::splitmix64(n);
    // sum of two uniforms: a triangular distribution, close enough to Gaussian here
    let a = (z & 0xffff_ffff) as f64 / u32::MAX as f64;
    let b = (z >> 32) as f64 / u32::MAX as f64;
    a + b - 1.0
}

fn synthetic() -> (CtVolume, Mask) {
    let g = Geometry::axis_aligned(SHAPE, SPACING, [-191.625, -191.625, -200.0]);
    let [nz, ny, nx] = SHAPE;
    let mut ct = Array3::<i16>::zeros(SHAPE);
    let mut mask = Array3::<u8>::zeros(SHAPE);
    ct.axis_iter_mut(Axis(0)).into_par_iter().zip(mask.axis_iter_mut(Axis(0))).enumerate().for_each(
        |(k, (mut c, mut m))| {
            let z = k as f64 * SPACING[0] - nz as f64 * SPACING[0] / 2.0;
            for j in 0..ny {
                let y = (j as f64 - ny as f64 / 2.0) * SPACING[1];
                for i in 0..nx {
                    let x = (i as f64 - nx as f64 / 2.0) * SPACING[2];
                    let n = noise(((k * ny + j) * nx + i) as u64) * 26.0; // σ ≈ 15 HU
                    let body = (x / 170.0).powi(2) + (y / 130.0).powi(2) <= 1.0;
                    let liver = in_liver(x, y, z);
                    let tumour = (x + 30.0).powi(2) + (y - 10.0).powi(2) + (z - 10.0).powi(2) <= 20.0 * 20.0;
                    let hu = if liver && tumour {
                        40.0 + n
                    } else if liver {
                        110.0 + n
                    } else if body {
                        40.0 + n
                    } else {
                        -1000.0 + n
                    };
                    c[[j, i]] = hu.round() as i16;
                    m[[j, i]] = if liver && tumour { 2 } else { liver as u8 };
                }
            }
        },
    );
    (Volume::new(ct, g.clone()), Volume::new(mask, g))
}

fn count(m: &Mask, label: u8) -> usize {
    m.data.par_iter().filter(|&&v| v == label).count()
}

fn run(runs: usize) -> serde_json::Value {
    let t = Instant::now();
    let (ct, truth) = synthetic();
    println!(
        "synthetic study made in {:.1} s (liver {} voxels, tumour {})",
        t.elapsed().as_secs_f64(),
        count(&truth, 1),
        count(&truth, 2)
    );
    let g = truth.geometry.clone();
    let w = |k: usize, j: usize, i: usize| g.index_to_world([i as f64, j as f64, k as f64]);

    // 1. region growing of the liver from a click (25 mm right of the middle: liver, not tumour)
    let seed = w(200, 256, 290);
    let grow = Grow {
        criterion: GrowCriterion::HuAroundSeed { tolerance_hu: 45.0 },
        reach: Reach::Volume,
        max_voxels: 50_000_000,
    };
    let empty: Mask = Volume::filled(g.clone(), 0);
    let (grow_ms, grown, res) = median_ms(
        runs,
        || empty.clone(),
        |m| region_grow(m, Some(&ct), seed, &grow, &Paint::new(1, PaintOver::Everything)).expect("grow"),
    );
    println!(
        "region growing, 3-D: {grow_ms:.0} ms, {} voxels (liver without tumour: {})",
        res.region_voxels,
        count(&truth, 1)
    );
    let slice_grow = Grow { reach: Reach::Slice(Orientation::Axial), ..grow };
    let (grow2d_ms, _, res2d) = median_ms(
        runs,
        || empty.clone(),
        |m| region_grow(m, Some(&ct), seed, &slice_grow, &Paint::new(1, PaintOver::Everything)).expect("grow"),
    );
    println!("region growing, one axial slice: {grow2d_ms:.1} ms, {} voxels", res2d.region_voxels);

    // 2. interpolation between every 5th slice
    let mut sparse = truth.clone();
    sparse.data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut s)| {
        if k % 5 != 0 {
            s.mapv_inplace(|v| if v == 1 { 0 } else { v });
        }
    });
    let drawn = count(&sparse, 1);
    let (interp_ms, interp, diff) = median_ms(
        runs,
        || sparse.clone(),
        |m| interpolate_slices(m, Orientation::Axial, &Paint::new(1, PaintOver::Background)).expect("interpolate"),
    );
    let liver = count(&truth, 1);
    let wrong = interp.data.iter().zip(truth.data.iter()).filter(|(a, b)| (**a == 1) != (**b == 1)).count();
    println!(
        "interpolation from every 5th slice: {interp_ms:.0} ms, {} voxels filled ({drawn} drawn), {:.2} % of the liver differs from the truth",
        diff.changed_voxels(),
        100.0 * wrong as f64 / liver as f64
    );

    // 3. one brush stroke of 50 dabs on slice 200, through the history
    let brush = Brush::round_2d(Orientation::Axial, 10.0);
    let paint = Paint::new(2, PaintOver::Everything);
    let mut stroke_runs = Vec::new();
    let session_dir = tempfile::tempdir().expect("temp dir");
    let mut mask = truth.clone();
    let mut session = Session::open_in(session_dir.path(), &session_dir.path().join("session")).expect("session");
    session.autosave(&mask).expect("autosave");
    for _ in 0..runs {
        let mut h = History::default();
        let mut dab_ms = Vec::with_capacity(50);
        let t_all = Instant::now();
        h.begin_stroke();
        let mut prev = w(200, 150, 120);
        for n in 1..=50 {
            let next = w(200, 150 + (n * 4) % 200, 120 + n * 5);
            let t = Instant::now();
            let touched = h.apply(&mut mask, |m| paint_line(m, prev, next, &brush, &paint, None)).expect("dab");
            dab_ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(touched);
            prev = next;
        }
        let t_end = Instant::now();
        let touched = h.end_stroke();
        let end_ms = t_end.elapsed().as_secs_f64() * 1e3;
        let t_j = Instant::now();
        session.record(&mask, &touched).expect("journal");
        let journal_ms = t_j.elapsed().as_secs_f64() * 1e3;
        let total_ms = t_all.elapsed().as_secs_f64() * 1e3;
        let t_u = Instant::now();
        let undone = h.undo(&mut mask).expect("undo");
        let undo_ms = t_u.elapsed().as_secs_f64() * 1e3;
        dab_ms.sort_by(f64::total_cmp);
        stroke_runs.push((
            total_ms,
            dab_ms[25],
            dab_ms[49],
            end_ms,
            journal_ms,
            undo_ms,
            touched.brick_ids.len(),
            h.memory_used(),
            undone.brick_ids.len(),
        ));
    }
    stroke_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let s = stroke_runs[stroke_runs.len() / 2];
    println!(
        "brush stroke, 50 dabs of 10 mm: {:.1} ms in all (per dab median {:.2} ms, max {:.2} ms), end_stroke {:.2} ms, journal {:.2} ms, undo {:.2} ms; {} bricks, {} bytes of history",
        s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7
    );

    // 4. whole-label tools on the grown liver (its tumour is a hole), and an autosave
    let paint1 = Paint::new(1, PaintOver::Everything);
    let (close_ms, _, d) = median_ms(runs, || grown.clone(), |m| close_label(m, 2.0, &paint1).expect("close"));
    println!("closing 2 mm: {close_ms:.0} ms ({} voxels changed)", d.changed_voxels());
    let (holes_ms, _, d) = median_ms(runs, || grown.clone(), |m| fill_holes(m, Reach::Volume, &paint1).expect("holes"));
    println!("fill holes 3-D: {holes_ms:.0} ms ({} voxels filled)", d.changed_voxels());
    let (largest_ms, _, d) =
        median_ms(runs, || grown.clone(), |m| keep_largest_component(m, &paint1).expect("largest"));
    println!("keep largest component: {largest_ms:.0} ms ({} voxels removed)", d.changed_voxels());
    let (autosave_ms, _, _) = median_ms(runs, || (), |_| session.autosave(&truth).expect("autosave"));
    let snap = std::fs::metadata(session.snapshot_path()).map(|m| m.len()).unwrap_or(0);
    println!("autosave snapshot of the whole mask: {autosave_ms:.0} ms ({snap} bytes)");

    serde_json::json!({
        "bench": "edit",
        "shape": SHAPE,
        "spacing_mm": SPACING,
        "region_grow_3d_ms": grow_ms,
        "region_grow_3d_voxels": res.region_voxels,
        "region_grow_slice_ms": grow2d_ms,
        "interpolate_every_5th_ms": interp_ms,
        "interpolate_error_fraction": wrong as f64 / liver as f64,
        "stroke_50_dabs_ms": s.0,
        "dab_median_ms": s.1,
        "dab_max_ms": s.2,
        "end_stroke_ms": s.3,
        "journal_record_ms": s.4,
        "undo_stroke_ms": s.5,
        "stroke_bricks": s.6,
        "stroke_history_bytes": s.7,
        "close_2mm_ms": close_ms,
        "fill_holes_ms": holes_ms,
        "keep_largest_ms": largest_ms,
        "autosave_ms": autosave_ms,
        "snapshot_bytes": snap,
    })
}
