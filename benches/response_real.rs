//! Follow-up response on real anatomy with known truth (issue 10's "pair made from
//! hcc048-pv"): `hepaview demo --from-study` implants a lesion in the real liver and
//! simulates the follow-up (lesion treated: lipiodol core, necrosis, viable rim; patient
//! moved by a known rigid transform), then `hepaview compare` measures the pair.
//!
//! Two sources:
//! - `triphase-hcc048` (hcc048-pv as its portal venous phase, plus arterial and delayed with
//!   their true breathing fields): viable tumour and mRECIST are measurable;
//! - `hcc048-pv` alone: one phase, so viable tumour and mRECIST are not, and the response
//!   falls back to RECIST 1.1, volumes and lipiodol.
//!
//! `cargo bench --bench response_real -- --bench` prints truth against measurement and the
//! whole-process times; then the speed goal (rigid + affine + Demons on the liver
//! between the two portal venous phases). The last line is JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hepaview::register::affine::{register_affine, resample_affine, AffineParams, AffineTransform, Model};
use hepaview::study::Study;
use hepaview::volume::{Mask, Volume};

fn run(args: &[String]) -> (String, f64) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_hepaview")).args(args).output().expect("hepaview runs");
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "hepaview {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), secs)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Makes the pair from `source`, compares it, prints truth against measurement.
fn measure(name: &str, source: &[String], tmp: &Path) -> serde_json::Value {
    let pair = tmp.join(name);
    let mut args = vec!["demo".to_string(), "--from-study".into()];
    args.extend(source.iter().cloned());
    args.extend(["--out".into(), s(&pair)]);
    let (out, t_demo) = run(&args);
    print!("{name}: {out}");
    let (dicom_b, dicom_f) = (pair.join("baseline/dicom"), pair.join("followup/dicom"));
    let cmp = pair.join("compare");
    let (out, t_compare) = run(&[
        "compare".into(),
        "--baseline".into(),
        s(&dicom_b),
        "--baseline-mask".into(),
        s(&pair.join("baseline/mask.nii.gz")),
        "--followup".into(),
        s(&dicom_f),
        "--followup-mask".into(),
        s(&pair.join("followup/mask.nii.gz")),
        "--out".into(),
        s(&cmp),
    ]);
    print!("{out}");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair.join("truth.json")).expect("truth.json")).expect("json");
    let t = &truth["truth"];
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cmp.join("compare.json")).expect("compare.json")).expect("json");
    let r = &report["response"];
    let lesions = r["lesions"].as_array().cloned().unwrap_or_default();
    let l = lesions
        .iter()
        .find(|l| !l["pairing"]["baseline"].is_null() && !l["pairing"]["followup"].is_null())
        .cloned()
        .unwrap_or_default();
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let pct = |m: f64, t: f64| 100.0 * (m / t - 1.0);
    let parts = &l["followup_parts"];
    let lip = f(&parts["lipiodol_ml"]).max(f(&l["followup_lipiodol_ml"]));
    let est: Option<AffineTransform> = serde_json::from_value(report["baseline_to_followup"].clone()).ok();
    let truth_t: AffineTransform = serde_json::from_value(t["baseline_to_followup"].clone()).expect("truth pose");
    let c: [f64; 3] = serde_json::from_value(t["lesion_centre_mm"].clone()).expect("centre");
    let centre_err = est.map(|e| {
        let (a, b) = (e.apply(c), truth_t.apply(c));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    });
    println!(
        "{name}: lesion {:.2} → {:.2} mL measured vs {:.2} → {:.2} truth ({:+.1} %, {:+.1} %); viable {:.2} vs {:.2}, necrotic {:.2} vs {:.2}, lipiodol {:.2} vs {:.2} mL; centre mapped {:.2} mm from the truth; RECIST {} (truth {}), mRECIST {} (truth {}); demo {t_demo:.1} s, compare {t_compare:.1} s",
        f(&l["baseline_ml"]),
        f(&l["followup_ml"]),
        f(&t["baseline_ml"]),
        f(&t["followup_ml"]),
        pct(f(&l["baseline_ml"]), f(&t["baseline_ml"])),
        pct(f(&l["followup_ml"]), f(&t["followup_ml"])),
        f(&parts["viable_ml"]),
        f(&t["viable_ml"]),
        f(&parts["necrotic_ml"]),
        f(&t["necrotic_ml"]),
        lip,
        f(&t["lipiodol_ml"]),
        centre_err.unwrap_or(f64::NAN),
        r["recist"]["category"],
        t["recist"],
        if r["mrecist"].is_null() { "not measurable (no arterial phase)".to_string() } else { r["mrecist"]["category"].to_string() },
        t["mrecist"],
    );
    serde_json::json!({"source": name, "demo_s": t_demo, "compare_s": t_compare, "truth": t, "measured": l, "recist": r["recist"]["category"], "mrecist": r["mrecist"]["category"], "centre_error_mm": centre_err, "pair": pair})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("response_real: run with `cargo bench --bench response_real -- --bench` to measure");
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let tri = data.join("triphase-hcc048");
    if !tri.is_dir() {
        eprintln!("{} not found; nothing to measure", tri.display());
        return;
    }
    let tmp: PathBuf = std::env::temp_dir().join(format!("hepaview-response-real-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let triphase = measure(
        "triphase-hcc048",
        &[
            s(&tri.join("dicom")),
            "--true-field".into(),
            format!("arterial={}", s(&tri.join("true_field_arterial.nii.gz"))),
            "--true-field".into(),
            format!("delayed={}", s(&tri.join("true_field_delayed.nii.gz"))),
        ],
        &tmp,
    );
    let pv_only = measure("hcc048-pv", &[s(&data.join("hcc048-pv"))], &tmp);

    // issue 10's speed goal: rigid + affine between the visits, then Demons on the liver
    let pair = tmp.join("triphase-hcc048");
    let open_pv = |dir: PathBuf| {
        let st = Study::open(&[dir]).expect("visit opens");
        st.phases[st.fixed_index()].volume.as_ref().clone()
    };
    let (base, follow) = (open_pv(pair.join("baseline/dicom")), open_pv(pair.join("followup/dicom")));
    let (base_mask, _) = hepaview::io::nifti::read_mask(&pair.join("baseline/mask.nii.gz")).expect("mask");
    let none = |_: f32, _: &str| true;
    let t = Instant::now();
    let rigid = register_affine(&base, &follow, &AffineParams::default(), None, &none).expect("rigid");
    let affine_params =
        AffineParams { model: Model::Affine, level_spacing_mm: vec![4.0, 2.0], ..AffineParams::default() };
    let affine = register_affine(&base, &follow, &affine_params, Some(rigid.transform), &none).expect("affine");
    let t_affine = t.elapsed().as_secs_f64();
    let aligned = resample_affine(&follow, &base.geometry, &affine.transform);
    let liver_only: Mask = Volume::new(base_mask.data.mapv(|l| (l > 0) as u8), base_mask.geometry.clone());
    let t2 = Instant::now();
    let demons = hepaview::register::register_ct(
        &base,
        &aligned,
        Some(&liver_only),
        &hepaview::register::Params::default(),
        &none,
    )
    .expect("demons");
    let t_demons = t2.elapsed().as_secs_f64();
    println!(
        "rigid + affine {t_affine:.1} s, then Demons on the liver {t_demons:.1} s (RMSD in the liver {:.1} -> {:.1} HU): {:.1} s in all (goal < 30 s); load average before: {}",
        demons.report.rmsd_before_hu,
        demons.report.rmsd_after_hu,
        t_affine + t_demons,
        load.trim()
    );
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "{}",
        serde_json::json!({"bench": "response_real", "triphase": triphase, "pv_only": pv_only, "affine_s": t_affine, "liver_demons_s": t_demons})
    );
}
