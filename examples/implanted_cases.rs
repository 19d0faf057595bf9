//! Writes `tests/data/crlm-1006` with one lesion of the training generator
//! (`segment::tumours`) implanted at the liver's deepest point, in the arterial, the
//! portal venous and the delayed look, with its truth: cases for the cascade's plumbing on large lesions
//! (in-distribution, not accuracy on real ones; the model card's "implanted" rows).
//!
//! `cargo run --release --example implanted_cases -- OUT_DIR` writes
//! `OUT_DIR/<kind>-<radius>-<phase>/{ct,truth}.nii.gz`.

use std::path::PathBuf;

use hepaview::io::nifti;
use hepaview::segment::tumours::{implant, Kind, Lesion};
use hepaview::segment::Rng;
use hepaview::volume::Volume;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: implanted_cases OUT_DIR"));
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crlm-1006");
    let ct = nifti::read_ct(&case.join("ct.nii.gz")).expect("crlm-1006 CT").0;
    let truth = nifti::read_mask(&case.join("truth.nii.gz")).expect("truth").0;
    let g = ct.geometry.clone();
    let outside = truth.data.mapv(|l| l == 0);
    let depth = hepaview::volume::region::squared_distance_mm2(&outside, g.spacing_mm);
    let (_, p) = depth.indexed_iter().fold((0f32, (0, 0, 0)), |b, (p, &d)| if d > b.0 { (d, p) } else { b });
    let centre = g.index_to_world([p.2 as f64, p.1 as f64, p.0 as f64]);
    // the model card's cases, then `N` more (second argument) of large lesions drawn from
    // seeds 100, 101, …: kind, and radius 18–40 mm
    let mut cases = vec![
        (Kind::Hcc, 35.0, 2),
        (Kind::Hcc, 25.0, 3),
        (Kind::Metastasis, 20.0, 4),
        (Kind::Infiltrative, 25.0, 5),
        (Kind::Haemangioma, 20.0, 6),
        (Kind::Hcc, 15.0, 7),
    ];
    let more: u64 = std::env::args().nth(2).map_or(0, |n| n.parse().expect("N, a count"));
    let kinds = [Kind::Hcc, Kind::Metastasis, Kind::Infiltrative, Kind::Haemangioma, Kind::Lipiodol, Kind::Cyst];
    for seed in 100..100 + more {
        let mut rng = Rng::new(seed);
        let kind = kinds[rng.below(kinds.len())];
        cases.push((kind, (rng.range(18.0, 40.0) as f64).round(), seed));
    }
    for (kind, radius, seed) in cases {
        let mut rng = Rng::new(seed);
        let hu = ct.data.mapv(|v| v as f32);
        let mut phases = vec![hu.clone(), hu.clone(), hu];
        let mut labels = truth.data.clone();
        let lesion = Lesion::draw(&mut rng, kind, centre, radius);
        implant(&mut rng, &g, &mut phases, &mut labels, &[lesion]);
        for (phase, name) in [(0, "arterial"), (1, "pv"), (2, "delayed")] {
            let dir = out.join(format!("{kind:?}-{radius}-{name}-s{seed}").to_lowercase());
            std::fs::create_dir_all(&dir).expect("make the case's folder");
            let v = Volume::new(phases[phase].mapv(|v| v.round().clamp(-1024.0, 3071.0) as i16), g.clone());
            nifti::write_volume(&v, &dir.join("ct.nii.gz")).expect("write the CT");
            nifti::write_volume(&Volume::new(labels.clone(), g.clone()), &dir.join("truth.nii.gz"))
                .expect("write the truth");
            println!("{}", dir.display());
        }
    }
}
