//! Writes `tests/data/crlm-1006` with three lesions of the training generator
//! (`segment::tumours`) of 10–30 mm across implanted anywhere in the liver, its surface
//! included, in the arterial, the portal venous and the delayed look, with their truth.
//! `implanted_cases` puts one large lesion at the liver's deepest point; these cases ask
//! what the goal "every tumour of 10 mm or more found" asks, where lesions usually are:
//! small, several, some under the capsule. In-distribution (the generator the tumour stage
//! trained on), so plumbing and the check's rules, not accuracy on real lesions.
//!
//! `cargo run --release --example implanted_small -- OUT_DIR [N]` writes N cases (default
//! 10, seeds 200, 201, …) as `OUT_DIR/small-s<seed>-<phase>/{ct,truth}.nii.gz` and prints
//! each lesion: kind, radius, centre (LPS mm) and depth below the liver's surface.

use std::path::PathBuf;

use hepaview::io::nifti;
use hepaview::segment::tumours::{implant, Kind, Lesion};
use hepaview::segment::Rng;
use hepaview::volume::Volume;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: implanted_small OUT_DIR [N]"));
    let n: u64 = std::env::args().nth(2).map_or(10, |n| n.parse().expect("N, a count"));
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crlm-1006");
    let ct = nifti::read_ct(&case.join("ct.nii.gz")).expect("crlm-1006 CT").0;
    let truth = nifti::read_mask(&case.join("truth.nii.gz")).expect("truth").0;
    let g = ct.geometry.clone();
    let sq = |mask: ndarray::Array3<bool>| hepaview::volume::region::squared_distance_mm2(&mask, g.spacing_mm);
    // depth below the liver's surface, and distance from the metastases already there
    let depth = sq(truth.data.mapv(|l| l == 0)).mapv(f32::sqrt);
    let from_tumour = sq(truth.data.mapv(|l| l == 2)).mapv(f32::sqrt);
    let liver: Vec<(usize, usize, usize)> =
        truth.data.indexed_iter().filter(|(_, &l)| l == 1).map(|(p, _)| p).collect();
    let kinds = [Kind::Hcc, Kind::Metastasis, Kind::Cyst, Kind::Haemangioma, Kind::Lipiodol];
    for seed in 200..200 + n {
        let mut rng = Rng::new(seed);
        let mut lesions: Vec<Lesion> = Vec::new();
        while lesions.len() < 3 {
            let kind = kinds[rng.below(kinds.len())];
            // 5–15 mm in radius, log-uniform
            let r = (5f64.ln() + rng.f32() as f64 * (15f64.ln() - 5f64.ln())).exp();
            let p = liver[rng.below(liver.len())];
            let centre = g.index_to_world([p.2 as f64, p.1 as f64, p.0 as f64]);
            // apart from the metastases and from each other, so each is its own lesion
            let apart = from_tumour[p] as f64 > r + 10.0
                && lesions.iter().all(|l| {
                    let d2: f64 = (0..3).map(|a| (l.centre[a] - centre[a]).powi(2)).sum();
                    d2.sqrt() > 1.3 * (r + l.radius()) + 10.0
                });
            if apart {
                println!(
                    "s{seed}: {kind:?} r {r:.1} mm at [{:.0}, {:.0}, {:.0}], depth {:.1} mm",
                    centre[0], centre[1], centre[2], depth[p]
                );
                lesions.push(Lesion::draw(&mut rng, kind, centre, r));
            }
        }
        let hu = ct.data.mapv(|v| v as f32);
        let mut phases = vec![hu.clone(), hu.clone(), hu];
        let mut labels = truth.data.clone();
        implant(&mut rng, &g, &mut phases, &mut labels, &lesions);
        for (phase, name) in [(0, "arterial"), (1, "pv"), (2, "delayed")] {
            let dir = out.join(format!("small-s{seed}-{name}"));
            std::fs::create_dir_all(&dir).expect("make the case's folder");
            let v = Volume::new(phases[phase].mapv(|v| v.round().clamp(-1024.0, 3071.0) as i16), g.clone());
            nifti::write_volume(&v, &dir.join("ct.nii.gz")).expect("write the CT");
            nifti::write_volume(&Volume::new(labels.clone(), g.clone()), &dir.join("truth.nii.gz"))
                .expect("write the truth");
        }
    }
}
