//! Surface extraction beside scikit-image's `marching_cubes`, and the whole object pipeline
//! on a CT-sized mask.
//!
//! `cargo bench --bench mesh -- --bench`:
//! 1. **Extraction, same input as the anchor** (`../shared/anchors/marching_cubes_skimage.py
//!    --upsample 4`): `ts-abdomen/liver.nii.gz` upsampled ×4 (nearest) in every axis and
//!    padded by one zero voxel, 122 × 406 × 490 voxels of 0.75 mm. Hepaview's
//!    `mesh::surface` (normals included) is timed `--runs` times (default 5, min reported)
//!    on a rayon pool of `--threads` threads (default 2); right after, in the same run, the
//!    anchor times `marching_cubes` the same number of times. Both print vertices, faces and
//!    mesh/voxel volume. `--no-anchor` skips Python.
//! 2. **Pipeline** on a synthetic 400 × 512 × 512 mask (0.8 × 0.7 × 0.7 mm): a two-lobed
//!    liver with five tumours and a branching vessel tree. `mesh::build_objects` with
//!    default options (extraction, Taubin smoothing, decimation of every object) is timed
//!    (min of 3), then the liver's stages one by one.
//!
//! Ends with one JSON line. Without `--bench` (as `cargo test --all-targets` runs it) it
//! only says how to run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hepaview::io::nifti;
use hepaview::mesh::{self, MeshOptions, TaubinOptions};
use hepaview::volume::{Geometry, Mask, Volume};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("mesh: run with `cargo bench --bench mesh -- --bench` to measure");
        return;
    }
    let runs = arg_value(&args, "--runs", 5).max(1);
    let threads = arg_value(&args, "--threads", 2).max(1);
    let skip_anchor = args.iter().any(|a| a == "--no-anchor");
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("thread pool: {e}");
            return;
        }
    };
    println!(
        "mesh bench: {threads} threads, {runs} runs, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let extraction = pool.install(|| extraction_bench(&shared, runs));
    let anchor = match (&extraction, skip_anchor) {
        (Some(_), false) => run_anchor(&shared.join("anchors"), runs),
        _ => None,
    };
    if let Some(ours) = &extraction {
        print_side_by_side(ours, anchor.as_ref());
    }
    let pipeline = pool.install(pipeline_bench);
    let json = serde_json::json!({
        "bench": "mesh",
        "threads": threads,
        "runs": runs,
        "extraction": extraction.as_ref().map(|e| e.to_json()),
        "skimage": anchor,
        "pipeline": pipeline,
    });
    println!("{json}");
}

fn arg_value(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn min_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, Vec<f64>, T) {
    let mut secs = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        secs.push(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
    (min, secs, last.expect("runs ≥ 1"))
}

// ---------------------------------------------------------------------------------------
// 1. Extraction beside scikit-image
// ---------------------------------------------------------------------------------------

struct Extraction {
    shape: [usize; 3],
    seconds_min: f64,
    seconds_all: Vec<f64>,
    vertices: usize,
    faces: usize,
    mesh_ml: f64,
    voxel_ml: f64,
    closed: bool,
}

impl Extraction {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "volume_shape_zyx": self.shape, "seconds_min": self.seconds_min, "seconds_all": self.seconds_all,
            "n_vertices": self.vertices, "n_faces": self.faces, "mesh_volume_ml": self.mesh_ml,
            "voxel_volume_ml": self.voxel_ml, "mesh_over_voxel_volume": self.mesh_ml / self.voxel_ml, "closed": self.closed,
        })
    }
}

/// Nearest ×f in every axis plus a one-voxel zero pad: `np.pad(np.repeat(...), 1)`.
fn upsample_and_pad(m: &Mask, f: usize) -> Mask {
    let [nz, ny, nx] = m.geometry.shape;
    let shape = [nz * f + 2, ny * f + 2, nx * f + 2];
    let mut data = Array3::<u8>::zeros(shape);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
        if k == 0 || k > nz * f {
            return;
        }
        for j in 1..=ny * f {
            for i in 1..=nx * f {
                slice[[j, i]] = m.data[[(k - 1) / f, (j - 1) / f, (i - 1) / f]];
            }
        }
    });
    let mut g = m.geometry.clone();
    g.spacing_mm = g.spacing_mm.map(|s| s / f as f64);
    Volume::new(data, g)
}

fn extraction_bench(shared: &Path, runs: usize) -> Option<Extraction> {
    let path = shared.join("data/ts-abdomen/liver.nii.gz");
    let liver = match nifti::read_mask(&path) {
        Ok((m, _)) => m,
        Err(e) => {
            eprintln!("skipping extraction: {e}");
            return None;
        }
    };
    let up = upsample_and_pad(&liver, 4);
    let voxel_ml =
        up.data.iter().filter(|&&v| v == 1).count() as f64 * up.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let (seconds_min, seconds_all, m) = min_time(runs, || mesh::surface(&up, &[1]));
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            eprintln!("extraction failed: {e}");
            return None;
        }
    };
    Some(Extraction {
        shape: up.geometry.shape,
        seconds_min,
        seconds_all,
        vertices: m.vertex_count(),
        faces: m.triangle_count(),
        mesh_ml: m.volume_ml(),
        voxel_ml,
        closed: m.is_closed_manifold(),
    })
}

/// The anchor's JSON line, or `None` (with the reason) when Python or scikit-image is not
/// there.
fn run_anchor(anchors: &Path, runs: usize) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg("marching_cubes_skimage.py")
        .args(["--upsample", "4", "--runs", &runs.to_string()])
        .current_dir(anchors)
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("anchor failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            return None;
        }
        Err(e) => {
            eprintln!("anchor not run (python3: {e}); `pip install -r ../shared/anchors/requirements.txt`");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().rev().find_map(|l| serde_json::from_str(l).ok())
}

fn print_side_by_side(ours: &Extraction, theirs: Option<&serde_json::Value>) {
    println!();
    println!("surface extraction, ts-abdomen liver ×4 + pad, {:?} voxels (z, y, x)", ours.shape);
    println!("| | seconds (min) | vertices | faces | mesh / voxel volume | closed |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Hepaview mesh::surface | {:.4} | {} | {} | {:.5} | {} |",
        ours.seconds_min,
        ours.vertices,
        ours.faces,
        ours.mesh_ml / ours.voxel_ml,
        ours.closed
    );
    let Some(theirs) = theirs else { return };
    let f = |k: &str| theirs[k].as_f64().unwrap_or(f64::NAN);
    let sk = f("seconds_min");
    println!(
        "| scikit-image {} marching_cubes | {:.4} | {} | {} | {:.5} | – |",
        theirs["versions"]["scikit-image"].as_str().unwrap_or("?"),
        sk,
        f("n_vertices"),
        f("n_faces"),
        f("mesh_over_voxel_volume")
    );
    println!("speed-up: {:.1}× (goal ≥ 2×)", sk / ours.seconds_min);
    println!();
}

// ---------------------------------------------------------------------------------------
// 2. Whole pipeline on a CT-sized mask
// ---------------------------------------------------------------------------------------

/// Distance from p to segment a–b.
fn seg_dist(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let t = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]))
        .clamp(0.0, 1.0);
    let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// A two-lobed liver (label 1) with a wavy surface, five tumours (2) and a branching
/// vessel tree (3) inside, on a 400 × 512 × 512 grid of 0.8 × 0.7 × 0.7 mm. Positions in
/// mm from the grid's corner.
fn synthetic_mask() -> Mask {
    let g = Geometry::axis_aligned([400, 512, 512], [0.8, 0.7, 0.7], [-180.0, -180.0, -160.0]);
    let [nz, ny, nx] = g.shape;
    let [sz, sy, sx] = g.spacing_mm;
    let tumours: [([f64; 3], f64); 5] = [
        ([150.0, 170.0, 160.0], 25.0),
        ([220.0, 150.0, 170.0], 12.0),
        ([120.0, 210.0, 140.0], 8.0),
        ([260.0, 180.0, 150.0], 5.0),
        ([170.0, 130.0, 185.0], 15.0),
    ];
    let vessels: [([f64; 3], [f64; 3], f64); 6] = [
        ([180.0, 250.0, 60.0], [180.0, 190.0, 150.0], 6.0),
        ([180.0, 190.0, 150.0], [120.0, 170.0, 170.0], 4.0),
        ([180.0, 190.0, 150.0], [250.0, 175.0, 165.0], 4.0),
        ([120.0, 170.0, 170.0], [90.0, 150.0, 200.0], 2.5),
        ([250.0, 175.0, 165.0], [280.0, 160.0, 195.0], 2.5),
        ([180.0, 190.0, 150.0], [200.0, 140.0, 130.0], 3.0),
    ];
    let mut data = Array3::<u8>::zeros([nz, ny, nx]);
    data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
        let z = k as f64 * sz;
        for j in 0..ny {
            let y = j as f64 * sy;
            for i in 0..nx {
                let x = i as f64 * sx;
                let p = [x, y, z];
                let e = |c: [f64; 3], r: [f64; 3]| {
                    ((x - c[0]) / r[0]).powi(2) + ((y - c[1]) / r[1]).powi(2) + ((z - c[2]) / r[2]).powi(2)
                };
                let wave = 1.0 + 0.04 * (x / 9.0).sin() * (y / 11.0).cos() + 0.03 * (z / 7.0).sin();
                let liver = e([150.0, 175.0, 160.0], [85.0, 70.0, 75.0]) < wave
                    || e([225.0, 160.0, 170.0], [60.0, 40.0, 45.0]) < wave;
                if !liver {
                    continue;
                }
                let v = if tumours.iter().any(|&(c, r)| e(c, [r; 3]) < 1.0) {
                    2
                } else if vessels.iter().any(|&(a, b, r)| seg_dist(p, a, b) < r) {
                    3
                } else {
                    1
                };
                slice[[j, i]] = v;
            }
        }
    });
    Volume::new(data, g)
}

fn pipeline_bench() -> serde_json::Value {
    let t = Instant::now();
    let mask = synthetic_mask();
    println!("synthetic 400 × 512 × 512 mask built in {:.2} s", t.elapsed().as_secs_f64());
    let opts = MeshOptions::default();
    let (secs, all, objs) = min_time(3, || mesh::build_objects(&mask, &opts));
    let objs = match objs {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pipeline failed: {e}");
            return serde_json::Value::Null;
        }
    };
    println!("\nwhole pipeline (mesh::build_objects, default options): {secs:.3} s min of {all:.3?} (goal < 2 s)");
    println!("| object | voxels | triangles | mesh / voxel volume | closed |");
    println!("|---|---|---|---|---|");
    let mut per_object = Vec::new();
    for o in &objs {
        let r = o.mesh.volume_ml() / o.voxel_volume_ml;
        let closed = o.mesh.is_closed_manifold();
        println!("| {} | {} | {} | {:.4} | {} |", o.name, o.voxels, o.mesh.triangle_count(), r, closed);
        per_object.push(serde_json::json!({"name": o.name, "voxels": o.voxels, "triangles": o.mesh.triangle_count(), "mesh_over_voxel_volume": r, "closed": closed}));
    }
    // The liver's stages one by one (the objects above run in parallel with each other).
    let (t_surface, _, raw) = min_time(3, || mesh::surface(&mask, &opts.liver_labels));
    let Ok(raw) = raw else { return serde_json::Value::Null };
    let (t_smooth, _, smooth) = min_time(3, || {
        let mut m = raw.clone();
        mesh::taubin(&mut m, &TaubinOptions::default()).map(|_| m)
    });
    let Ok(smooth) = smooth else { return serde_json::Value::Null };
    let (t_decimate, _, dec) = min_time(3, || mesh::decimate(&smooth, opts.max_triangles_liver));
    println!(
        "liver stages: surface {t_surface:.3} s ({} triangles), Taubin ×{} {t_smooth:.3} s (incl. a clone), decimate to {} {t_decimate:.3} s ({} triangles)\n",
        raw.triangle_count(),
        opts.smoothing.iterations,
        opts.max_triangles_liver,
        dec.triangle_count()
    );
    serde_json::json!({
        "mask_shape_zyx": mask.geometry.shape, "spacing_mm": mask.geometry.spacing_mm,
        "seconds_min": secs, "seconds_all": all, "objects": per_object,
        "liver_stages_seconds": {"surface": t_surface, "taubin": t_smooth, "decimate": t_decimate},
        "liver_triangles": {"surface": raw.triangle_count(), "decimated": dec.triangle_count()},
    })
}
