//! Follow-up response on real anatomy with known truth: `hepaview compare` on a pair made
//! from `../shared/data/hcc048-pv` (issue 10's "pair made from hcc048-pv").
//!
//! The data set has no tumour outline, so the truth is made, not traced: a lesion is
//! implanted in the real liver (hypodense by 45 HU over the real texture, soft edge), and
//! the follow-up is the same CT with the lesion shrunk (a smaller ellipsoid; the rest of the
//! liver gets its own voxels back) and a lipiodol core (+450 HU), then moved by a known
//! rigid transform plus 3 % in-plane scale, as a patient lies differently on another day.
//! The liver mask is grown from a seed in the liver (HU 60–200, opened, largest component,
//! holes filled). Volumes of lesion and core are counted on the masks that made the
//! images, so the measured figures have an exact truth.
//!
//! `cargo bench --bench response_real -- --bench` prints truth against measurement and the
//! whole process time of `hepaview compare`; the last line is JSON.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use hepaview::edit::tools::{fill_holes, keep_largest_component, open_label, region_grow, Grow, GrowCriterion, Reach};
use hepaview::edit::{Paint, PaintOver};
use hepaview::io::nifti;
use hepaview::register::affine::{resample_affine, AffineTransform};
use hepaview::study::Study;
use hepaview::volume::{mat_mul, CtVolume, Lps, Mask, Volume};

/// Voxels of an ellipsoid with semi-axes `r` (mm, LPS x y z) around `c`, as a weight 0…1
/// with a 1.5 mm soft edge (so the implanted boundary looks like a real one, not a step).
fn ellipsoid_weight(p: Lps, c: Lps, r: [f64; 3]) -> f64 {
    let d = ((0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>()).sqrt();
    let mean_r = (r[0] + r[1] + r[2]) / 3.0;
    ((1.0 - d) * mean_r / 1.5 + 0.5).clamp(0.0, 1.0)
}

fn liver_mask(ct: &CtVolume, seed: Lps) -> Mask {
    let mut mask: Mask = Volume::filled(ct.geometry.clone(), 0u8);
    let paint = Paint::new(1, PaintOver::Everything);
    let grow = Grow { criterion: GrowCriterion::HuRange { lo_hu: 60.0, hi_hu: 200.0 }, reach: Reach::Volume, max_voxels: 8_000_000 };
    region_grow(&mut mask, Some(ct), seed, &grow, &paint).expect("grow the liver");
    open_label(&mut mask, 4.0, &paint).expect("open");
    keep_largest_component(&mut mask, &paint).expect("largest");
    fill_holes(&mut mask, Reach::Volume, &paint).expect("fill holes");
    mask
}

/// The deepest liver point (largest distance to the outside), and that depth in mm.
fn deepest(mask: &Mask) -> (Lps, f64) {
    let outside = mask.data.mapv(|l| l == 0);
    let d2 = hepaview::cluster::squared_distance_mm2(&outside, mask.geometry.spacing_mm);
    let ((k, j, i), &best) = d2.indexed_iter().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty");
    (mask.geometry.index_to_world([i as f64, j as f64, k as f64]), (best as f64).sqrt())
}

/// The CT with a lesion of semi-axes `r` at `c` (and a lipiodol core of radius `core`),
/// and the label mask of liver 1 / lesion 2.
fn implant(ct: &CtVolume, liver: &Mask, c: Lps, r: [f64; 3], core: f64) -> (CtVolume, Mask) {
    let mut img = ct.clone();
    let mut mask = liver.clone();
    let g = &ct.geometry;
    for ((k, j, i), v) in img.data.indexed_iter_mut() {
        let p = g.index_to_world([i as f64, j as f64, k as f64]);
        let w = ellipsoid_weight(p, c, r);
        if w <= 0.0 {
            continue;
        }
        let mut hu = *v as f64 - 45.0 * w;
        if core > 0.0 {
            hu += 450.0 * ellipsoid_weight(p, c, [core; 3]);
        }
        *v = hu.round() as i16;
        if w >= 0.5 {
            mask.data[[k, j, i]] = 2;
        }
    }
    (img, mask)
}

fn ml(mask: &Mask, pred: impl Fn(u8) -> bool) -> f64 {
    let s = mask.geometry.spacing_mm;
    mask.data.iter().filter(|&&l| pred(l)).count() as f64 * s[0] * s[1] * s[2] / 1000.0
}

/// `vol` as seen after the patient moved by `t` (a baseline point p shows at t(p)).
fn moved(vol: &CtVolume, t: &AffineTransform) -> CtVolume {
    resample_affine(vol, &vol.geometry, &t.inverse().expect("invertible"))
}

/// A label mask moved like [`moved`]: each label's indicator resampled, the strongest wins
/// (labels nest, liver around lesion, so the winner is the rounded value's label).
fn moved_mask(mask: &Mask, t: &AffineTransform) -> Mask {
    let as_ct = Volume::new(mask.data.mapv(|l| l as i16 * 1000), mask.geometry.clone());
    let m = moved(&as_ct, t);
    Volume::new(m.data.mapv(|v| ((v.max(0) as f64) / 1000.0).round() as u8), mask.geometry.clone())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("response_real: run with `cargo bench --bench response_real -- --bench` to measure");
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hcc048-pv");
    if !data.is_dir() {
        eprintln!("{} not found; nothing to measure", data.display());
        return;
    }
    let study = Study::open(std::slice::from_ref(&data)).expect("hcc048-pv opens");
    let ct = study.phases[0].volume.as_ref().clone();
    // a point in the right lobe (slice z −281 mm), well inside the liver on this study
    let liver = liver_mask(&ct, [-82.0, -40.0, -281.0]);
    let liver_ml = ml(&liver, |l| l == 1);
    let (centre, depth) = deepest(&liver);
    // semi-axes within the liver (5 mm of liver left around it) and plausible for an HCC
    let scale = ((depth - 5.0) / 22.0).min(1.0);
    let r0 = [22.0 * scale, 18.0 * scale, 16.0 * scale];
    let r1 = r0.map(|r| r * 0.7);
    let core = 0.35 * r1[2];
    println!("liver grown: {liver_ml:.0} mL; lesion centre {centre:.1?} mm at depth {depth:.1} mm; semi-axes {r0:.1?} -> {r1:.1?} mm, lipiodol core r {core:.1} mm");

    let (base_img, base_mask) = implant(&ct, &liver, centre, r0, 0.0);
    let (follow_native, follow_native_mask) = implant(&ct, &liver, centre, r1, core);
    let c = ct.geometry.centre_mm();
    let mut truth = AffineTransform::rigid([2.0f64.to_radians(), -1.0f64.to_radians(), 5.0f64.to_radians()], [22.0, -15.0, 12.0], c);
    truth.matrix = mat_mul(&truth.matrix, &[[1.03, 0.0, 0.0], [0.0, 1.03, 0.0], [0.0, 0.0, 1.0]]);
    let follow_img = moved(&follow_native, &truth);
    let follow_mask = moved_mask(&follow_native_mask, &truth);
    // lipiodol truth: core voxels of the follow-up (native grid: the volume does not depend on the pose but for the 3 % scale)
    let core_mask: Mask = Volume::new(
        ndarray::Array3::from_shape_fn(ct.geometry.shape, |(k, j, i)| {
            let p = ct.geometry.index_to_world([i as f64, j as f64, k as f64]);
            (ellipsoid_weight(p, centre, [core; 3]) >= 0.5) as u8
        }),
        ct.geometry.clone(),
    );
    let det = hepaview::volume::det3(&truth.matrix);
    let truth_base_ml = ml(&base_mask, |l| l == 2);
    let truth_follow_ml = ml(&follow_native_mask, |l| l == 2) * det;
    let truth_core_ml = ml(&core_mask, |l| l == 1) * det;
    println!(
        "truth: lesion {truth_base_ml:.2} -> {truth_follow_ml:.2} mL ({:+.1} %), lipiodol {truth_core_ml:.2} mL; longest axial diameter {:.1} -> {:.1} mm (x 1.03 in-plane)",
        100.0 * (truth_follow_ml / truth_base_ml - 1.0),
        2.0 * r0[0],
        2.0 * r1[0] * 1.03
    );

    let tmp = std::env::temp_dir().join(format!("hepaview-response-real-{}", std::process::id()));
    let (bdir, fdir, out) = (tmp.join("baseline"), tmp.join("followup"), tmp.join("compare"));
    std::fs::create_dir_all(&bdir).expect("temp");
    std::fs::create_dir_all(&fdir).expect("temp");
    nifti::write_volume(&base_img, &bdir.join("portal_venous.nii.gz")).expect("write");
    nifti::write_volume(&base_mask, &bdir.join("mask.nii.gz")).expect("write");
    nifti::write_volume(&follow_img, &fdir.join("portal_venous.nii.gz")).expect("write");
    nifti::write_volume(&follow_mask, &fdir.join("mask.nii.gz")).expect("write");

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_hepaview"))
        .arg("compare")
        .arg("--baseline")
        .arg(bdir.join("portal_venous.nii.gz"))
        .arg("--baseline-mask")
        .arg(bdir.join("mask.nii.gz"))
        .arg("--followup")
        .arg(fdir.join("portal_venous.nii.gz"))
        .arg("--followup-mask")
        .arg(fdir.join("mask.nii.gz"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("hepaview compare runs");
    let secs = t.elapsed().as_secs_f64();
    println!("{}", String::from_utf8_lossy(&o.stdout));
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "hepaview compare failed");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).expect("compare.json")).expect("json");
    let r = &report["response"];
    let lesions = r["lesions"].as_array().cloned().unwrap_or_default();
    let paired = lesions.iter().find(|l| !l["pairing"]["baseline"].is_null() && !l["pairing"]["followup"].is_null());
    let (mb, mf) = paired.map(|l| (l["baseline_ml"].as_f64().unwrap_or(f64::NAN), l["followup_ml"].as_f64().unwrap_or(f64::NAN))).unwrap_or((f64::NAN, f64::NAN));
    let lip = paired.and_then(|l| l["followup_parts"]["lipiodol_ml"].as_f64().or(l["followup_lipiodol_ml"].as_f64())).unwrap_or(f64::NAN);
    let t_est: Option<AffineTransform> = serde_json::from_value(report["baseline_to_followup"].clone()).ok();
    let centre_err = t_est.map(|t| {
        let (a, b) = (t.apply(centre), truth.apply(centre));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    });
    println!(
        "measured: {} lesions listed; paired lesion {mb:.2} -> {mf:.2} mL ({:+.1} % vs truth {:+.1} %; baseline {:+.1} %, follow-up {:+.1} % off), lipiodol {lip:.2} mL ({:+.1} %); lesion centre mapped to {:.2} mm of the truth; RECIST 1.1 {} ({}); mRECIST {}",
        lesions.len(),
        100.0 * (mf / mb - 1.0),
        100.0 * (truth_follow_ml / truth_base_ml - 1.0),
        100.0 * (mb / truth_base_ml - 1.0),
        100.0 * (mf / truth_follow_ml - 1.0),
        100.0 * (lip / truth_core_ml - 1.0),
        centre_err.unwrap_or(f64::NAN),
        r["recist"]["category"],
        r["recist"]["reason"].as_str().unwrap_or(""),
        if r["mrecist"].is_null() { "not measurable (no arterial phase)".to_string() } else { r["mrecist"]["category"].to_string() },
    );
    println!("hepaview compare, whole process: {secs:.1} s (load average before: {})", load.trim());

    // issue 10's speed goal: rigid + affine between the visits, then Demons on the liver
    use hepaview::register::affine::{register_affine, AffineParams, Model};
    let none = |_: f32, _: &str| true;
    let t = Instant::now();
    let rigid = register_affine(&base_img, &follow_img, &AffineParams::default(), None, &none).expect("rigid");
    let affine_params = AffineParams { model: Model::Affine, level_spacing_mm: vec![4.0, 2.0], ..AffineParams::default() };
    let affine = register_affine(&base_img, &follow_img, &affine_params, Some(rigid.transform), &none).expect("affine");
    let t_affine = t.elapsed().as_secs_f64();
    let aligned = resample_affine(&follow_img, &base_img.geometry, &affine.transform);
    let liver_only: Mask = Volume::new(base_mask.data.mapv(|l| (l > 0) as u8), base_mask.geometry.clone());
    let t2 = Instant::now();
    let demons = hepaview::register::register_ct(&base_img, &aligned, Some(&liver_only), &hepaview::register::Params::default(), &none).expect("demons");
    let t_demons = t2.elapsed().as_secs_f64();
    println!(
        "rigid + affine {t_affine:.1} s, then Demons on the liver {t_demons:.1} s (RMSD in the liver {:.1} -> {:.1} HU): {:.1} s in all (goal < 30 s)",
        demons.report.rmsd_before_hu,
        demons.report.rmsd_after_hu,
        t_affine + t_demons
    );
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "{}",
        serde_json::json!({
            "bench": "response_real", "seconds": secs, "affine_s": t_affine, "liver_demons_s": t_demons,
            "truth": {"baseline_ml": truth_base_ml, "followup_ml": truth_follow_ml, "lipiodol_ml": truth_core_ml},
            "measured": {"baseline_ml": mb, "followup_ml": mf, "lipiodol_ml": lip, "centre_error_mm": centre_err},
            "recist": r["recist"], "mrecist": r["mrecist"],
        })
    );
}
