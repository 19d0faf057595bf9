//! Registration across visits: our rigid + affine (and Demons on top) beside SimpleITK's
//! affine registration (Mattes MI, 3 levels; `benches/anchors/affine_sitk.py`), same pair,
//! same run. The pair: `../shared/data/hcc048-pv` (512 × 512 × 89) as the baseline and a
//! follow-up made from it through a known transform (4° turn, 3 % scale, 18 mm shift), so
//! both results are scored against the truth (mean / max distance over body voxels).
//!
//! `cargo bench --bench affine -- --bench`; `--no-anchor` skips SimpleITK.

use std::process::Command;
use std::time::Instant;

use hepaview::register::affine::{register_affine, resample_affine, AffineParams, AffineTransform, Model};
use hepaview::register::{self, no_progress};
use hepaview::study::Study;
use hepaview::volume::{mat_mul, CtVolume, Lps};

/// Mean and max distance (mm) between where two point maps send the body voxels of `v`.
fn disagreement(a: &dyn Fn(Lps) -> Lps, b: &dyn Fn(Lps) -> Lps, v: &CtVolume) -> (f64, f64) {
    let [nz, ny, nx] = v.geometry.shape;
    let (mut sum, mut max, mut n) = (0.0, 0.0f64, 0usize);
    for k in (0..nz).step_by(4) {
        for j in (0..ny).step_by(8) {
            for i in (0..nx).step_by(8) {
                if v.data[[k, j, i]] > -500 {
                    let x = v.geometry.index_to_world([i as f64, j as f64, k as f64]);
                    let (p, q) = (a(x), b(x));
                    let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
                    sum += d;
                    max = max.max(d);
                    n += 1;
                }
            }
        }
    }
    (sum / n.max(1) as f64, max)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("affine: run with `cargo bench --bench affine -- --bench` to measure");
        return;
    }
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hcc048-pv");
    let study = Study::open(std::slice::from_ref(&data)).expect("hcc048-pv opens");
    let base = study.phases[0].volume.clone();
    let centre = base.geometry.centre_mm();
    let mut truth = AffineTransform::rigid([1.5f64.to_radians(), 0.0, 4f64.to_radians()], [18.0, -12.0, 10.0], centre);
    truth.matrix = mat_mul(&truth.matrix, &[[1.03, 0.0, 0.0], [0.0, 1.03, 0.0], [0.0, 0.0, 1.0]]);
    let follow = resample_affine(&base, &base.geometry, &truth.inverse().expect("invertible"));
    let tmp = std::env::temp_dir().join(format!("hepaview-affine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let (bp, fp) = (tmp.join("baseline.nii.gz"), tmp.join("followup.nii.gz"));
    hepaview::io::nifti::write_volume(&base, &bp).expect("write baseline");
    hepaview::io::nifti::write_volume(&follow, &fp).expect("write follow-up");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "pair: {:?} voxels, truth rotation {:.1} deg + 3 % in-plane scale; load average {}",
        base.geometry.shape,
        truth.rotation_deg(),
        load.trim()
    );

    let t = Instant::now();
    let rigid = register_affine(&base, &follow, &AffineParams::default(), None, &no_progress).expect("rigid");
    let t_rigid = t.elapsed().as_secs_f64();
    let affine_params =
        AffineParams { model: Model::Affine, level_spacing_mm: vec![4.0, 2.0], ..AffineParams::default() };
    let affine = register_affine(&base, &follow, &affine_params, Some(rigid.transform), &no_progress).expect("affine");
    let t_affine = t.elapsed().as_secs_f64();
    let ours = affine.transform;
    let (mean, max) = disagreement(&|x| ours.apply(x), &|x| truth.apply(x), &base);
    println!("hepaview rigid {t_rigid:.2} s + affine {:.2} s = {t_affine:.2} s; error mean {mean:.2} mm, max {max:.2} mm; NCC {:.3} -> {:.3}", t_affine - t_rigid, rigid.ncc_before, affine.ncc_after);
    // then Demons on the affinely aligned follow-up, as `hepaview compare` would for the liver
    let aligned = resample_affine(&follow, &base.geometry, &ours);
    let t2 = Instant::now();
    let demons =
        register::register_ct(&base, &aligned, None, &register::Params::default(), &no_progress).expect("demons");
    let t_demons = t2.elapsed().as_secs_f64();
    println!(
        "hepaview Demons after affine {t_demons:.2} s (RMSD {:.1} -> {:.1} HU); affine + Demons {:.1} s (goal < 30 s)",
        demons.report.rmsd_before_hu,
        demons.report.rmsd_after_hu,
        t_affine + t_demons
    );

    let mut anchor = serde_json::Value::Null;
    if !args.iter().any(|a| a == "--no-anchor") {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/anchors/affine_sitk.py");
        match Command::new("python3").arg(&script).arg(&bp).arg(&fp).output() {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                anchor = text
                    .lines()
                    .rev()
                    .find(|l| l.starts_with('{'))
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default();
                let m: Vec<f64> = anchor["matrix"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                let tr: Vec<f64> = anchor["translation"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                let c: Vec<f64> = anchor["center"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                if m.len() == 9 && tr.len() == 3 && c.len() == 3 {
                    // ITK: y = M (x − c) + c + t, the same convention as ours
                    let sitk_map = |x: Lps| {
                        [0, 1, 2].map(|a| (0..3).map(|b| m[3 * a + b] * (x[b] - c[b])).sum::<f64>() + c[a] + tr[a])
                    };
                    let (sm, sx) = disagreement(&sitk_map, &|x| truth.apply(x), &base);
                    let secs = anchor["seconds"].as_f64().unwrap_or(f64::NAN);
                    println!("SimpleITK affine (Mattes MI, 3 levels) {secs:.2} s, {} iterations; error mean {sm:.2} mm, max {sx:.2} mm", anchor["iterations"]);
                    println!("hepaview rigid+affine / SimpleITK affine: {:.2}", t_affine / secs);
                    anchor["error_mean_mm"] = sm.into();
                    anchor["error_max_mm"] = sx.into();
                }
            }
            Ok(o) => eprintln!("anchor failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
            Err(e) => eprintln!("anchor skipped: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "{}",
        serde_json::json!({"ours": {"rigid_s": t_rigid, "affine_total_s": t_affine, "demons_s": t_demons, "error_mean_mm": mean, "error_max_mm": max}, "sitk": anchor})
    );
}
