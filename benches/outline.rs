//! Click to outline (issue 24): the time from a click to the lesion's 3-D mask and its
//! measurements, with the phases already on one grid (what the viewer holds when the user
//! clicks). No peer tool runs here to compare with: there is no anchor for this.
//!
//! Cases:
//!   - the full-size phantom (256 × 256 × 80, 1.5 × 1.5 × 2.5 mm), its 17 mm HCC clicked at
//!     the centre, three phases and the portal venous phase alone, with its liver mask;
//!   - `../shared/data/triphase-hcc048/dicom` (512 × 512 × 89, 0.70 × 0.70 × 2.5 mm), the
//!     three phases resampled onto the portal venous grid (not registered: the outline
//!     costs the same either way), without a liver mask, clicked at `--at X,Y,Z` (default:
//!     a darker area at the dome where growth leaks, the slowest path: four growths, then a
//!     refusal) and on plain parenchyma (refused at once).
//!
//! `cargo bench --bench outline` runs each `--runs` times (default 5) on a rayon pool of
//! `--threads` threads (default 2) and prints the median and range of the outline alone and
//! of outline + measurements, then one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use hepaview::io::phase::Phase;
use hepaview::outline::{measure_outline, outline_lesion, OutlineOptions, Prompts};
use hepaview::phantom::{make_phantom, LesionKind, PhantomOptions};
use hepaview::study::analysis::{align_phases, Alignment};
use hepaview::study::Study;
use hepaview::volume::{CtVolume, Interp, Lps, Mask};

/// A darker area at the liver's dome in hcc048, without a mask: the region finds no
/// boundary within the box, so this times the worst path (four growths, then a refusal).
/// The README's large HCC was not located for this bench; the U-Net labels no tumour here.
const HCC048_AT: Lps = [-48.5, 8.4, -233.5];
/// Plain right-lobe parenchyma of hcc048: the refusal path.
const HCC048_PARENCHYMA: Lps = [-88.6, -53.4, -290.0];

struct Timing {
    case: String,
    outline_s: Vec<f64>,
    with_measure_s: Vec<f64>,
    volume_ml: f64,
    note: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn time_case(case: &str, phases: &[(Phase, &CtVolume)], liver: Option<&Mask>, at: Lps, runs: usize) -> Timing {
    let prompts = Prompts { include: vec![at], ..Prompts::default() };
    let opts = OutlineOptions::default();
    let (mut outline_s, mut with_measure_s) = (Vec::new(), Vec::new());
    let mut volume_ml = 0.0;
    let mut note = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        match outline_lesion(phases, liver, &prompts, &opts) {
            Ok(o) => {
                outline_s.push(t.elapsed().as_secs_f64());
                let row = measure_outline(&o, phases, liver);
                with_measure_s.push(t.elapsed().as_secs_f64());
                volume_ml = o.volume_ml;
                note = match row {
                    Ok(r) => format!(
                        "{:.2} mL, RECIST {:.1} × {:.1} mm, {}",
                        r.volume_ml,
                        r.lesion.recist.long_axis_mm,
                        r.lesion.recist.short_axis_mm,
                        r.lesion.pattern.summary
                    ),
                    Err(e) => format!("measure failed: {e}"),
                };
            }
            Err(e) => {
                outline_s.push(t.elapsed().as_secs_f64());
                with_measure_s.push(t.elapsed().as_secs_f64());
                note = format!("refused: {e}");
            }
        }
    }
    Timing { case: case.into(), outline_s, with_measure_s, volume_ml, note }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let runs: usize = get("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads: usize = get("--threads").and_then(|s| s.parse().ok()).unwrap_or(2);
    let at: Lps = get("--at")
        .and_then(|s| {
            let v: Vec<f64> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        })
        .unwrap_or(HCC048_AT);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
    let mut out = Vec::new();
    pool.install(|| {
        let t = Instant::now();
        let ph = make_phantom(&PhantomOptions { breathing_scale: 0.0, ..PhantomOptions::default() });
        let grid = ph.labels.geometry.clone();
        let vols: Vec<(Phase, CtVolume)> =
            ph.phases.iter().map(|p| (p.name, p.volume.resample_to(&grid, Interp::Linear, -1024))).collect();
        let liver = Mask::new(ph.labels.data.mapv(|l| (l != 0) as u8), grid);
        eprintln!("phantom made in {:.1} s", t.elapsed().as_secs_f64());
        let hcc = ph.lesions.iter().find(|l| l.kind == LesionKind::Hcc).expect("an HCC");
        let three: Vec<(Phase, &CtVolume)> = vols.iter().map(|(p, v)| (*p, v)).collect();
        let pv: Vec<(Phase, &CtVolume)> = three.iter().copied().filter(|(p, _)| *p == Phase::PortalVenous).collect();
        out.push(time_case("phantom HCC (r 17 mm), 3 phases, liver mask", &three, Some(&liver), hcc.centre_mm, runs));
        out.push(time_case("phantom HCC (r 17 mm), portal venous, liver mask", &pv, Some(&liver), hcc.centre_mm, runs));

        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/triphase-hcc048/dicom");
        if !dir.is_dir() {
            eprintln!("skipping triphase-hcc048: {} not found", dir.display());
            return;
        }
        let t = Instant::now();
        let study = match Study::open(&[dir]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping triphase-hcc048: {e}");
                return;
            }
        };
        let grid = study.phases[study.fixed_index()].volume.geometry.clone();
        let aligned =
            align_phases(&study, &grid, &Alignment::Resample, None, &|_, _| true).expect("phases on one grid");
        eprintln!("triphase-hcc048 opened and resampled in {:.1} s", t.elapsed().as_secs_f64());
        let three: Vec<(Phase, &CtVolume)> = aligned.iter().map(|p| (p.phase, p.volume.as_ref())).collect();
        let pv: Vec<(Phase, &CtVolume)> = three.iter().copied().filter(|(p, _)| *p == Phase::PortalVenous).collect();
        out.push(time_case(&format!("triphase-hcc048 at {at:?}, 3 phases, no mask"), &three, None, at, runs));
        out.push(time_case(&format!("triphase-hcc048 at {at:?}, portal venous, no mask"), &pv, None, at, runs));
        let p = HCC048_PARENCHYMA;
        out.push(time_case(&format!("triphase-hcc048 parenchyma {p:?}, 3 phases, no mask"), &three, None, p, runs));
    });
    println!("{:<62} {:>12} {:>22} {:>10}  result", "case", "outline s", "outline + measure s", "mL");
    for t in &out {
        let lo = t.outline_s.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = t.outline_s.iter().cloned().fold(0.0, f64::max);
        println!(
            "{:<62} {:>5.3} ({:.3}–{:.3}) {:>10.3} {:>10.2}  {}",
            t.case,
            median(&t.outline_s),
            lo,
            hi,
            median(&t.with_measure_s),
            t.volume_ml,
            t.note
        );
    }
    let json: Vec<serde_json::Value> = out
        .iter()
        .map(|t| {
            serde_json::json!({"case": t.case, "outline_median_s": median(&t.outline_s), "with_measure_median_s": median(&t.with_measure_s), "volume_ml": t.volume_ml, "threads": threads, "runs": runs})
        })
        .collect();
    println!("{}", serde_json::Value::Array(json));
}
