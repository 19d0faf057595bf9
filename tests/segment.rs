//! The segmentation U-Net: shapes, weight files (missing, mismatched, golden output), the
//! whole pipeline on the small phantom with the shipped weights, and a few training steps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hepaview::phantom::PhantomOptions;
use hepaview::segment::synth::{self, LabelMapStyle, PhantomStyle, SynthRecipe};
use hepaview::segment::train::seeded_init;
use hepaview::segment::{self, SegmentError, TrainOptions, UNet, UNetConfig};
use hepaview::study::Study;

mod common;

fn tiny_config() -> UNetConfig {
    UNetConfig { features: vec![4, 8, 16], spacing_mm: 3.0, ..UNetConfig::default() }
}

fn seeded_model(cfg: &UNetConfig, seed: u64) -> (VarMap, UNet) {
    let vm = VarMap::new();
    let model = UNet::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), cfg).expect("build");
    seeded_init(&vm, seed).expect("init");
    (vm, model)
}

/// A smooth fixed input: no RNG, so it is the same everywhere.
fn fixed_input(n: usize, side: usize) -> Tensor {
    let mut v = Vec::with_capacity(n * 3 * side * side);
    for b in 0..n {
        for c in 0..3 {
            for y in 0..side {
                for x in 0..side {
                    v.push(((x as f32 * 0.37 + y as f32 * 0.21 + c as f32 * 1.3 + b as f32).sin() + 1.0) * 0.5);
                }
            }
        }
    }
    Tensor::from_vec(v, (n, 3, side, side), &Device::Cpu).expect("tensor")
}

#[test]
fn forward_has_the_right_shapes() {
    let cfg = tiny_config();
    let (_, model) = seeded_model(&cfg, 1);
    let y = model.forward(&fixed_input(2, 32), false).expect("forward");
    assert_eq!(y.dims(), &[2, 3, 32, 32]);
    let y = model.forward(&fixed_input(1, 16), true).expect("forward train");
    assert_eq!(y.dims(), &[1, 3, 16, 16]);
    // sides must be multiples of 4 for three levels
    assert!(model.forward(&fixed_input(1, 18), false).is_err());
    assert_eq!(UNetConfig::default().size_multiple(), 8);
}

#[test]
fn missing_weights_file_is_a_clear_error() {
    let path = Path::new("/nonexistent/hepaview/unet.safetensors");
    match segment::load_unet(path) {
        Err(e @ SegmentError::WeightsMissing { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("/nonexistent/hepaview/unet.safetensors"), "{msg}");
            assert!(msg.contains("hepaview train"), "{msg}");
        }
        other => panic!("expected WeightsMissing, got {:?}", other.err()),
    }
    let study = Study::demo(&PhantomOptions::small());
    let err = hepaview::study::segment_study(&study, path, &|_, _| true).expect_err("no weights, no mask");
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn mismatched_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = tiny_config();
    let (vm, _) = seeded_model(&cfg, 3);
    let good = dir.path().join("good.safetensors");
    segment::save_unet(&vm, &cfg, &good).expect("save");
    assert!(segment::load_unet(&good).is_ok());

    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&good, &Device::Cpu).expect("read");
    // a wrong shape
    let mut bad = tensors.clone();
    bad.insert("down.1.conv1.weight".into(), Tensor::zeros((8, 5, 3, 3), DType::F32, &Device::Cpu).expect("t"));
    let p = dir.path().join("shape.safetensors");
    candle_core::safetensors::save(&bad, &p).expect("save");
    let msg = segment::load_unet(&p).expect_err("wrong shape").to_string();
    assert!(msg.contains("down.1.conv1.weight") && msg.contains("shape.safetensors"), "{msg}");

    // a missing tensor
    let mut bad = tensors.clone();
    bad.remove("head.weight");
    let p = dir.path().join("missing.safetensors");
    candle_core::safetensors::save(&bad, &p).expect("save");
    let msg = segment::load_unet(&p).expect_err("missing tensor").to_string();
    assert!(msg.contains("missing head.weight"), "{msg}");

    // no config: not a hepaview file
    tensors.remove(segment::weights::CONFIG_TENSOR);
    let p = dir.path().join("noconfig.safetensors");
    candle_core::safetensors::save(&tensors, &p).expect("save");
    let msg = segment::load_unet(&p).expect_err("no config").to_string();
    assert!(msg.contains(segment::weights::CONFIG_TENSOR), "{msg}");

    // not safetensors at all
    let p = dir.path().join("junk.safetensors");
    std::fs::write(&p, b"not a model").expect("write");
    assert!(matches!(segment::load_unet(&p), Err(SegmentError::WeightsMismatch { .. })));
}

/// Stored output of the seeded tiny network (seed 7) on the fixed input, after a save/load
/// round trip: sum of logits per class and four sample logits.
const GOLDEN_CLASS_SUMS: [f32; 3] = [625.44604, 285.7459, -195.36926];
const GOLDEN_SAMPLES: [f32; 4] = [1.1448774, 1.2875788, 0.8056351, -1.5485897];

#[test]
fn golden_output_of_seeded_weights() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = tiny_config();
    let (vm, _) = seeded_model(&cfg, 7);
    let path = dir.path().join("golden.safetensors");
    segment::save_unet(&vm, &cfg, &path).expect("save");
    let model = segment::load_unet(&path).expect("load");
    let y = model.forward(&fixed_input(1, 16), false).expect("forward");
    let sums: Vec<f32> = y.sum((0, 2, 3)).expect("sum").to_vec1().expect("vec");
    let flat: Vec<f32> = y.flatten_all().expect("flat").to_vec1().expect("vec");
    let samples = [flat[0], flat[100], flat[300], flat[700]];
    eprintln!("class sums {sums:?} samples {samples:?}");
    for (a, b) in sums.iter().zip(GOLDEN_CLASS_SUMS) {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "class sums {sums:?} vs stored {GOLDEN_CLASS_SUMS:?}");
    }
    for (a, b) in samples.iter().zip(GOLDEN_SAMPLES) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "samples {samples:?} vs stored {GOLDEN_SAMPLES:?}");
    }
}

fn shipped_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(segment::DEFAULT_MODEL)
}

/// The viewer's live preview: the slices handed out while the network runs cover the
/// study's grid once, in order, in batches, with the network's labels there; the result is
/// the same as without the preview.
#[test]
fn live_slices_cover_the_study_once_and_leave_the_result_alone() {
    let study = Study::demo(&PhantomOptions::small());
    let model = shipped_model();
    let grid = study.phases[study.fixed_index()].volume.geometry.clone();
    let seen = std::sync::Mutex::new(Vec::new());
    let live = hepaview::study::segment_study_live(
        &study,
        &model,
        &|_, _| true,
        Some(&|k0: usize, labels: ndarray::Array3<u8>| {
            seen.lock().unwrap().push((k0, labels));
        }),
    )
    .expect("segment");
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 1, "more than one batch for {} slices", grid.shape[0]);
    let mut next = 0;
    let mut liver = 0;
    for (k0, labels) in &seen {
        assert_eq!(*k0, next, "batches in order, none skipped");
        assert_eq!([labels.dim().1, labels.dim().2], [grid.shape[1], grid.shape[2]], "on the study's grid");
        assert!(labels.iter().all(|&v| v <= 2));
        liver += labels.iter().filter(|&&v| v > 0).count();
        next += labels.dim().0;
    }
    assert_eq!(next, grid.shape[0], "every slice once");
    let final_liver = live.data.iter().filter(|&&v| v > 0).count();
    assert!(liver as f64 > 0.8 * final_liver as f64, "the preview shows the liver: {liver} vs {final_liver} voxels");
    let plain = hepaview::study::segment_study(&study, &model, &|_, _| true).expect("segment");
    assert_eq!(plain.data, live.data, "the preview must not change the result");
}

/// Liver Dice the shipped model reaches on the small phantom (seed 48, the demo's noise; the
/// phantom's anatomy is what training cases were drawn from, on other grids and seeds).
const PHANTOM_LIVER_DICE_MIN: f64 = 0.9;

#[test]
fn shipped_model_segments_the_small_phantom() {
    let model = shipped_model();
    assert!(model.is_file(), "{} is shipped with the repository", model.display());
    let study = Study::demo(&PhantomOptions::small());
    let truth = study.labels.as_ref().expect("demo has labels").mask.clone();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let mask = hepaview::study::segment_study(&study, &model, &|f, _| {
        assert!((0.0..=1.0).contains(&f));
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    })
    .expect("segment");
    assert_eq!(mask.geometry.shape, truth.geometry.shape, "mask on the portal venous grid");
    assert!(mask.data.iter().all(|&v| v <= 2));
    let d = segment::dice_liver(&mask, &truth);
    eprintln!("small phantom: liver Dice {d:.4}, tumour Dice {:.4}", segment::dice(&mask, &truth, 2));
    assert!(d >= PHANTOM_LIVER_DICE_MIN, "liver Dice {d:.4} < {PHANTOM_LIVER_DICE_MIN}");
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) > 2, "progress reported");

    // cancel stops it
    let err = hepaview::study::segment_study(&study, &model, &|_, _| false).expect_err("cancelled");
    assert!(matches!(err, SegmentError::Cancelled));
}

/// The phases breathe apart (the phantom moves them up to 7 mm), and the network reads them
/// voxel by voxel: registering them onto portal venous first must not lose tumour, and must
/// change the result (the registration is wired in). The first weights gained more than
/// 0.03 from it; the weights shipped on 2026-12-06, fine-tuned on more real portal venous
/// CT, lean on the portal venous channel and gain less (run E 0.840 → 0.848 here; run D
/// 0.839 → 0.846, with twice the breathing 0.813 → 0.832), so the floor is on the
/// registered result.
#[test]
fn registering_the_phases_first_sharpens_the_tumours_on_the_small_phantom() {
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let study = Study::demo(&PhantomOptions::small());
    let truth = study.labels.as_ref().expect("demo has labels").mask.clone();
    let run = |register: bool| {
        let opts = segment::InferOptions { register, ..segment::InferOptions::default() };
        hepaview::study::segment_phases(&model, &study, &opts, &|_, _| true).expect("segment")
    };
    let (plain, registered) = (run(false), run(true));
    let (d0, d1) = (segment::dice(&plain, &truth, 2), segment::dice(&registered, &truth, 2));
    eprintln!("small phantom tumour Dice: phases as they are {d0:.4}, registered first {d1:.4}");
    assert!(d1 > d0, "registration did not help: {d0:.4} → {d1:.4}");
    assert!(d1 >= 0.82, "registered tumour Dice {d1:.4} below 0.82");
    assert!(segment::dice_liver(&registered, &truth) >= PHANTOM_LIVER_DICE_MIN);
}

/// A phase that cannot be registered (here: blank) is left out, as if the study lacked
/// it, instead of being fed to the network unaligned or failing the whole segmentation.
#[test]
fn a_phase_that_fails_to_register_is_left_out() {
    use hepaview::io::phase::Phase;
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let study = Study::demo(&PhantomOptions::small());
    let mut blank = study.clone();
    let art = blank.phases.iter_mut().find(|p| p.phase() == Phase::Arterial).expect("demo has an arterial phase");
    let mut flat = (*art.volume).clone();
    flat.data.fill(40);
    art.volume = std::sync::Arc::new(flat);
    let mut without = study.clone();
    without.phases.retain(|p| p.phase() != Phase::Arterial);
    let run = |s: &Study| {
        hepaview::study::segment_phases(&model, s, &segment::InferOptions::default(), &|_, _| true).expect("segment")
    };
    let (a, b) = (run(&blank), run(&without));
    assert_eq!(a.data, b.data, "the blank arterial phase must be left out");
    assert_ne!(run(&study).data, b.data, "the arterial phase counts when it registers");
}

/// The tumour goals on a held-out noise seed of the full-size phantom (256² × 80,
/// 1.5 mm pixels): every lesion (all are 20 mm or more across) found, tumour Dice ≥ 0.80,
/// with the three phases and with portal venous alone, and no false lesion.
/// The lesion search, asked for, does not run after the tumour stage's checked tumours (it
/// added only false lesions there).
#[test]
fn every_lesion_of_the_full_size_phantom_is_found() {
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let study = Study::demo(&PhantomOptions { seed: 9, ..PhantomOptions::default() });
    let truth = study.labels.as_ref().expect("demo has labels").mask.clone();
    let (lesions, _) = hepaview::lesion::connected_components(&truth, 2, 1);
    assert_eq!(lesions.len(), 4);
    let found = |mask: &hepaview::volume::Mask| {
        let labels = mask.data.as_slice().expect("standard layout");
        lesions.iter().filter(|c| c.voxels.iter().any(|&v| labels[v] == 2)).count()
    };
    let opts = segment::InferOptions::default();
    assert!(opts.search_lesions, "the search is asked for by default");
    let searched = hepaview::study::segment_phases_live(&model, &study, &opts, &|_, _| true, None).expect("segment");
    assert!(searched.confirmed.is_some(), "the stage's tumours were checked");
    assert!(searched.searched.is_none(), "the search ran after the checked stage");
    let dice = segment::dice(&searched.mask, &truth, 2);
    eprintln!("phantom seed 9: finds {} of 4 (tumour Dice {dice:.4})", found(&searched.mask));
    assert_eq!(found(&searched.mask), 4, "every lesion found");
    assert!(dice >= 0.80, "tumour Dice {dice:.4} < 0.80");
    // no false lesion: until a small proposal refused by one click and unanswered by the
    // others went back to liver, a 5 mL one stayed at the hilum (model card)
    let false_ml = |mask: &hepaview::volume::Mask| {
        let score = segment::score::score_lesions(mask, &truth);
        score.false_lesions(0.1).iter().map(|l| l.ml).collect::<Vec<_>>()
    };
    let f = false_ml(&searched.mask);
    eprintln!("phantom seed 9: false lesions {f:.1?} mL");
    assert!(f.is_empty(), "false lesions of {f:.1?} mL");
    // portal venous alone, as for a single-phase study
    let mut pv = study.clone();
    pv.phases.retain(|p| p.phase() == hepaview::io::phase::Phase::PortalVenous);
    let alone =
        hepaview::study::segment_phases(&model, &pv, &segment::InferOptions::default(), &|_, _| true).expect("segment");
    let dice = segment::dice(&alone, &truth, 2);
    eprintln!("phantom seed 9, portal venous alone: finds {} of 4, tumour Dice {dice:.4}", found(&alone));
    assert_eq!(found(&alone), 4, "every lesion found with portal venous alone");
    assert!(dice >= 0.80, "portal venous alone: tumour Dice {dice:.4} < 0.80");
    let f = false_ml(&alone);
    eprintln!("phantom seed 9, portal venous alone: false lesions {f:.1?} mL");
    assert!(f.is_empty(), "portal venous alone: false lesions of {f:.1?} mL");
}

/// On the real `hcc048-pv` the network labels the stomach below the liver and the back of
/// the heart above the dome as liver, each joined to it by a thin neck; cutting thin
/// bridges takes them out (slices 0–15 hold no liver: 53 mL labelled there before, 140 mL
/// of stomach and heart in all) and leaves the liver (slices 30–65: 1134 mL both ways).
/// What is left of the heart is the underside next to the dome, in slices 74–88 (the dome
/// itself there is labelled by neither of those weights): 37.4 mL with the first weights
/// (2.1 mL of it in 80–88), 33.5 mL with run D (11.5 mL in 80–88), 0.2 mL with run E (shipped
/// 2026-12-06, trained on hcc048-pv with that heart taken out of its label, so not a held-out
/// figure); the bound catches the bridge cut failing (model card).
#[test]
fn on_hcc048_the_stomach_and_the_heart_on_thin_bridges_are_not_liver() {
    let Some(data) = common::shared_data() else { return };
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let study = Study::open(&[data.join("hcc048-pv")]).expect("hcc048-pv opens");
    let mask = hepaview::study::segment_phases(&model, &study, &segment::InferOptions::default(), &|_, _| true)
        .expect("segment");
    let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let ml = |k0: usize, k1: usize| {
        mask.data.slice(ndarray::s![k0..k1, .., ..]).iter().filter(|&&v| v > 0).count() as f64 * voxel_ml
    };
    let (below, heart, liver) = (ml(0, 16), ml(74, 89), ml(30, 66));
    eprintln!("hcc048-pv: labelled liver in slices 0–15 {below:.1} mL, 74–88 {heart:.1} mL, 30–65 {liver:.1} mL");
    assert!(below < 10.0, "stomach below the liver labelled liver: {below:.1} mL");
    assert!(heart < 45.0, "heart labelled liver: {heart:.1} mL");
    assert!(liver > 1000.0, "the liver itself lost: {liver:.1} mL");
}

#[test]
fn postprocess_keeps_one_liver_without_holes_and_tumour_inside() {
    use hepaview::volume::{Geometry, Mask};
    let g = Geometry::axis_aligned([5, 12, 12], [1.0; 3], [0.0; 3]);
    let mut m: Mask = hepaview::volume::Volume::filled(g, 0u8);
    for k in 1..4 {
        for j in 2..9 {
            for i in 2..9 {
                m.data[[k, j, i]] = 1;
            }
        }
    }
    m.data[[2, 5, 5]] = 0; // a hole
    m.data[[2, 4, 4]] = 2; // tumour inside
    m.data[[2, 10, 10]] = 2; // a stray island outside
    m.data[[0, 0, 0]] = 1;
    segment::postprocess(&mut m);
    assert_eq!(m.data[[2, 5, 5]], 1, "hole filled as liver");
    assert_eq!(m.data[[2, 4, 4]], 2, "tumour inside kept");
    assert_eq!(m.data[[2, 10, 10]], 0, "island removed");
    assert_eq!(m.data[[0, 0, 0]], 0, "island removed");
}

#[test]
fn a_few_training_steps_lower_the_loss() {
    let case = synth::phantom_case(5, PhantomStyle::Realistic, 12.0, 32, SynthRecipe::default());
    assert!(!case.liver_slices().is_empty());
    let cfg = UNetConfig { features: vec![8, 16], spacing_mm: 12.0, ..UNetConfig::default() };
    let opts = TrainOptions {
        config: cfg,
        patch: 32,
        batch: 4,
        epochs: 1,
        steps_per_epoch: 40,
        learning_rate: 1e-2,
        seed: 3,
        out: None,
        val_slices_per_case: 2,
        ..TrainOptions::default()
    };
    let (_, report) =
        segment::train(std::slice::from_ref(&case), std::slice::from_ref(&case), &opts, &|_| true).expect("train");
    let first: f32 = report.first_losses.iter().sum::<f32>() / report.first_losses.len() as f32;
    let last: f32 = report.last_losses.iter().sum::<f32>() / report.last_losses.len() as f32;
    eprintln!("loss {first:.4} → {last:.4}, val liver Dice {:.3}", report.best_val_dice);
    assert_eq!(report.steps, 40);
    assert!(last < 0.8 * first, "loss should fall: {first} → {last}");
}

/// Cases made from a real CT and its organ label map: the liver label is the liver class
/// of the map, tumours fall only inside it, the real style keeps the CT as portal venous,
/// and the synthetic styles change organ intensities but not air.
#[test]
fn label_map_cases_follow_the_real_labels() {
    let Some(data) = common::shared_data() else { return };
    let ts = data.join("ts-abdomen");
    let (ct, _) = hepaview::io::nifti::read_ct(&ts.join("ct.nii.gz")).expect("ct");
    let (labels, _) = hepaview::io::nifti::read_mask(&ts.join("seg_total_multilabel.nii.gz")).expect("labels");
    let grid = segment::preprocess::model_grid(&labels.geometry, 4.0, 8);
    let on_grid = labels.resample_to(&grid, hepaview::volume::Interp::Nearest, 0);
    let liver_truth: Vec<bool> = on_grid.data.iter().map(|&c| c == 5).collect();
    let mut tumour_cases = 0;
    for (i, style) in
        [LabelMapStyle::Real, LabelMapStyle::Offsets, LabelMapStyle::Means].into_iter().cycle().take(9).enumerate()
    {
        // odd cases with the large tumours: still only inside the map's liver
        let recipe = SynthRecipe { mimics: 0.0, large_tumours: i % 2 == 1, ..SynthRecipe::default() };
        let case = synth::label_map_case("ts", &ct, &labels, &[5], style, i as u64, 4.0, 8, recipe);
        let (nz, c, ny, nx) = case.image.dim();
        assert_eq!([nz, ny, nx], grid.shape);
        assert_eq!(c, 3);
        assert_eq!(case.present, if style == LabelMapStyle::Real { [false, true, false] } else { [true; 3] });
        let lab: Vec<u8> = case.labels.iter().copied().collect();
        for (v, &liver) in lab.iter().zip(&liver_truth) {
            assert_eq!(*v > 0, liver, "labelled liver+tumour must be exactly the map's liver class");
        }
        tumour_cases += lab.contains(&2) as usize;
        // air (the CT below -500 HU, window 0) stays at the bottom of the window in every phase
        let real = segment::preprocess::onto_grid(&ct, &grid);
        for ((k, j, i), &hu) in real.data.indexed_iter() {
            if hu < -600 && lab[(k * ny + j) * nx + i] == 0 {
                for ch in 0..3 {
                    assert!(case.image[[k, ch, j, i]] <= 20, "air moved in {style:?} phase {ch}");
                }
            }
        }
    }
    assert!(tumour_cases >= 3, "random tumours should appear in most cases ({tumour_cases} of 9)");
}

/// Liver mimics (heart, stomach, bowel) change only voxels outside the liver and tumours,
/// leave the labels alone (they are background), and put soft-tissue intensity right
/// against the liver in most cases: what the network must learn not to call liver.
#[test]
fn liver_mimics_are_background_beside_the_liver() {
    let mut with_mimics = 0;
    for seed in 21..25 {
        let base = synth::phantom_case(seed, PhantomStyle::SynthSeg, 4.0, 96, SynthRecipe::default());
        let with = synth::phantom_case(
            seed,
            PhantomStyle::SynthSeg,
            4.0,
            96,
            SynthRecipe { mimics: 1.0, large_tumours: false, ..SynthRecipe::default() },
        );
        assert_eq!(base.labels, with.labels, "mimics must not change the labels");
        let (nz, _, ny, nx) = base.image.dim();
        let mut changed = 0;
        let mut touching = 0;
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let differs = (0..3).any(|c| base.image[[k, c, j, i]] != with.image[[k, c, j, i]]);
                    if !differs {
                        continue;
                    }
                    assert_eq!(base.labels[[k, j, i]], 0, "a mimic replaced liver or tumour at {k},{j},{i}");
                    changed += 1;
                    let near_liver = [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)].iter().any(|&(dj, di)| {
                        let (jj, ii) = (j as i64 + dj, i as i64 + di);
                        jj >= 0
                            && ii >= 0
                            && (jj as usize) < ny
                            && (ii as usize) < nx
                            && base.labels[[k, jj as usize, ii as usize]] > 0
                    });
                    // soft tissue (0…300 HU is window 0.4…1) right beside the liver
                    touching += (near_liver && with.image[[k, 1, j, i]] > 100) as usize;
                }
            }
        }
        eprintln!("seed {seed}: {changed} voxels changed, {touching} beside the liver");
        with_mimics += (touching > 0) as usize;
    }
    assert!(with_mimics >= 2, "mimics should touch the liver in most cases ({with_mimics} of 4)");
}

/// Not a check: times candle's conv2d against the shifted-copies + matmul path on one
/// layer of the anchor's size (`cargo test --release --test segment conv_paths -- --ignored --nocapture`).
#[test]
#[ignore]
fn conv_paths_timing() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    for (cin, cout, side) in [(32usize, 32usize, 256usize), (128, 128, 64)] {
        let conv = hepaview::segment::model::Conv::new(vb.pp(format!("c{cin}")), cin, cout, 3, false).expect("conv");
        let x = Tensor::randn(0f32, 1.0, (8, cin, side, side), &Device::Cpu).expect("x");
        let _ = conv.forward(&x, false).expect("warm");
        let t = std::time::Instant::now();
        let a = conv.forward(&x, false).expect("conv2d");
        let t_conv = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let b = conv.forward_matmul(&x).expect("matmul");
        let t_mm = t.elapsed().as_secs_f64();
        let d: f32 = (a - b).expect("d").abs().expect("a").max_all().expect("m").to_scalar().expect("s");
        eprintln!("{cin}→{cout} at {side}², batch 8: conv2d {t_conv:.3} s, matmul {t_mm:.3} s (max diff {d:.1e})");
    }
}

/// `init` starts training from saved weights: a second run from the first one's checkpoint
/// begins near the loss the first ended at, not at a random network's; a file of another
/// network is refused, naming it.
#[test]
fn training_can_start_from_saved_weights() {
    let dir = tempfile::tempdir().expect("tmp");
    let case = synth::phantom_case(5, PhantomStyle::Realistic, 12.0, 32, SynthRecipe::default());
    let cfg = UNetConfig { features: vec![8, 16], spacing_mm: 12.0, ..UNetConfig::default() };
    let first_out = dir.path().join("first.safetensors");
    let opts = TrainOptions {
        config: cfg.clone(),
        patch: 32,
        batch: 4,
        epochs: 1,
        steps_per_epoch: 40,
        learning_rate: 1e-2,
        seed: 3,
        out: Some(first_out.clone()),
        val_slices_per_case: 2,
        ..TrainOptions::default()
    };
    let (_, first) =
        segment::train(std::slice::from_ref(&case), std::slice::from_ref(&case), &opts, &|_| true).expect("train");
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let again = TrainOptions {
        steps_per_epoch: 5,
        learning_rate: 1e-4,
        seed: 4,
        out: None,
        init: Some(first_out.clone()),
        ..opts.clone()
    };
    let (_, resumed) =
        segment::train(std::slice::from_ref(&case), std::slice::from_ref(&case), &again, &|_| true).expect("fine-tune");
    let scratch = TrainOptions { init: None, ..again.clone() };
    let (_, fresh) = segment::train(std::slice::from_ref(&case), std::slice::from_ref(&case), &scratch, &|_| true)
        .expect("from scratch");
    eprintln!(
        "first run {:.4} → {:.4}; resumed starts at {:.4}; from scratch at {:.4}",
        mean(&first.first_losses),
        mean(&first.last_losses),
        mean(&resumed.first_losses),
        mean(&fresh.first_losses)
    );
    assert!(
        mean(&resumed.first_losses) < 0.8 * mean(&fresh.first_losses),
        "resumed training starts from the saved weights"
    );

    let other = TrainOptions { config: UNetConfig { features: vec![4, 8], ..cfg }, ..again };
    let Err(err) = segment::train(std::slice::from_ref(&case), std::slice::from_ref(&case), &other, &|_| true) else {
        panic!("weights of another network were accepted");
    };
    assert!(err.to_string().contains("first.safetensors"), "{err}");
}

/// Fine-tuning with phase subsets marks the file (format 2), so inference feeds a study's
/// phases in their own channels; weights trained without stay format 1, readable as before.
#[test]
fn weights_trained_with_phase_subsets_say_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let case = synth::phantom_case(6, PhantomStyle::Realistic, 12.0, 32, SynthRecipe::default());
    let cfg = UNetConfig { features: vec![8, 16], spacing_mm: 12.0, ..UNetConfig::default() };
    let plain = dir.path().join("plain.safetensors");
    let opts = TrainOptions {
        config: cfg.clone(),
        patch: 32,
        batch: 2,
        epochs: 1,
        steps_per_epoch: 3,
        seed: 5,
        out: Some(plain.clone()),
        val_slices_per_case: 7,
        ..TrainOptions::default()
    };
    let one = std::slice::from_ref(&case);
    segment::train(one, one, &opts, &|_| true).expect("train");
    let (read, _) = segment::read_checkpoint(&plain).expect("read");
    assert!(!read.any_phase_subset);
    let subsets = dir.path().join("subsets.safetensors");
    let tuned = TrainOptions { subset_prob: 0.5, init: Some(plain.clone()), out: Some(subsets.clone()), ..opts };
    segment::train(one, one, &tuned, &|_| true).expect("fine-tune with subsets");
    let (read, _) = segment::read_checkpoint(&subsets).expect("read");
    assert!(read.any_phase_subset, "the file says the network saw phase subsets");
    assert_eq!(read, UNetConfig { any_phase_subset: true, ..cfg }, "and is otherwise the same network");
    assert!(segment::load_unet(&subsets).is_ok());
}

/// Every non-empty phase subset comes up, portal venous left out as often as the others,
/// and a sample never keeps a phase its case lacks.
#[test]
fn phase_subset_dropout_draws_every_protocol() {
    use hepaview::segment::train::{augment_slice, PhaseChoice, PHASE_SUBSETS};
    let case = synth::phantom_case(7, PhantomStyle::Realistic, 12.0, 32, SynthRecipe::default());
    let k = case.liver_slices()[0];
    let mut rng = hepaview::segment::Rng::new(9);
    let mut seen = std::collections::HashMap::new();
    for _ in 0..700 {
        let phases = PhaseChoice::Dropout { pv_only_prob: 0.35, subset_prob: 1.0 };
        let (x, _) = augment_slice(&case, k, 32, &mut rng, phases, true);
        let kept: [bool; 3] = std::array::from_fn(|c| x[c * 32 * 32..(c + 1) * 32 * 32].iter().any(|&v| v > -0.5));
        *seen.entry(kept).or_insert(0usize) += 1;
    }
    for s in PHASE_SUBSETS {
        let n = seen.get(&s).copied().unwrap_or(0);
        assert!((60..=140).contains(&n), "subset {s:?} drawn {n} times of 700: {seen:?}");
    }
    assert_eq!(seen.values().sum::<usize>(), 700, "no sample without a phase: {seen:?}");
    // a one-phase case (a real portal venous CT) lends its image to every channel in turn,
    // so no channel is left without real anatomy
    let mut pv_only = case.clone();
    pv_only.present = [false, true, false];
    let mut channels = [0usize; 3];
    for _ in 0..300 {
        let phases = PhaseChoice::Dropout { pv_only_prob: 0.35, subset_prob: 1.0 };
        let (x, _) = augment_slice(&pv_only, k, 32, &mut rng, phases, true);
        let kept: Vec<usize> =
            (0..3).filter(|&c| x[c * 32 * 32..(c + 1) * 32 * 32].iter().any(|&v| v > -0.5)).collect();
        assert_eq!(kept.len(), 1, "one phase, one channel");
        channels[kept[0]] += 1;
    }
    assert!(channels.iter().all(|&n| (60..=140).contains(&n)), "{channels:?}");
    // and keeps portal venous where a validation subset asks for none it has
    let (x, _) = augment_slice(&pv_only, k, 32, &mut rng, PhaseChoice::Only([true, false, true]), false);
    assert!(x[32 * 32..2 * 32 * 32].iter().any(|&v| v > -0.5) && x[..32 * 32].iter().all(|&v| v < -0.5));
}

/// The files of the series of `study_dir` whose phases are `phases`, copied into a folder
/// of their own: how a clinic exports an arterial or an equilibrium series alone.
fn series_alone(study_dir: &Path, phases: &[hepaview::io::phase::Phase], into: &Path) {
    let scan = hepaview::io::dicom::scan(study_dir, &hepaview::io::dicom::no_progress).expect("scan");
    let study = &scan.studies[0];
    let calls = hepaview::io::phase::detect_study_phases(study);
    for (series, call) in study.series.iter().zip(&calls) {
        if phases.contains(&call.phase) {
            for f in &series.frames {
                std::fs::copy(&f.path, into.join(f.path.file_name().expect("name"))).expect("copy");
            }
        }
    }
}

/// Issue 23: an arterial-only, a delayed-only, or an arterial + delayed study (each copied
/// to its own folder from `triphase-hcc048`) gave an empty mask, because the network's
/// portal venous channel was left empty. Now each phase fills that channel (alone, and with
/// its own channel too) and the answers are pooled. Measured (shipped weights,
/// 2026-12-06), liver Dice against the three-phase result through the known breathing
/// motion: arterial 0.901, delayed 0.856, both 0.893 (the goal, 0.93, is not met: the
/// delayed phase alone takes in the stomach and the heart). The pooling was chosen among
/// six on this very study, so these are not held-out figures; the floors below guard
/// against a return to empty or far-off masks.
#[test]
fn a_study_without_a_portal_venous_phase_gives_the_liver() {
    use hepaview::io::phase::Phase;
    let Some(data) = common::shared_data() else { return };
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let dir = data.join("triphase-hcc048/dicom");
    let all = Study::open(std::slice::from_ref(&dir)).expect("triphase opens");
    let opts = segment::InferOptions::default();
    let three = hepaview::study::segment_phases_live(&model, &all, &opts, &|_, _| true, None).expect("segment");
    assert!(three.check.is_plausible(), "three phases: {:?}", three.check.concerns);
    // The portal vein divides at the hilum near (-38, -39, -260) mm (LPS): the tumour stage
    // proposes 3.2 mL there, bright and branching, which one click refuses as a vessel and
    // the others cannot bound; it was kept as a lesion (1,262 tumour voxels within 10 mm)
    // until such a proposal went back to liver (model card, "Unanswered clicks and the
    // lesion search").
    let g = &three.mask.geometry;
    let at_hilum = three
        .mask
        .data
        .indexed_iter()
        .filter(|&((k, j, i), &l)| {
            let p = g.index_to_world([i as f64, j as f64, k as f64]);
            l == 2 && (p[0] + 38.0).hypot(p[1] + 39.0).hypot(p[2] + 260.0) <= 10.0
        })
        .count();
    assert_eq!(at_hilum, 0, "tumour at the portal vein's bifurcation");
    let cases: [(&[Phase], f64); 3] =
        [(&[Phase::Arterial], 0.88), (&[Phase::Delayed], 0.83), (&[Phase::Arterial, Phase::Delayed], 0.87)];
    for (phases, floor) in cases {
        let tmp = tempfile::tempdir().expect("tmp");
        series_alone(&dir, phases, tmp.path());
        let alone = Study::open(&[tmp.path().to_path_buf()]).expect("the series open");
        assert_eq!(alone.phases.len(), phases.len());
        let s = hepaview::study::segment_phases_live(&model, &alone, &opts, &|_, _| true, None).expect("segment");
        // The series were made from the portal venous one moved by a known breathing
        // motion (moving(x + u(x)) = fixed(x)); the mask lies on the fixed phase's grid
        // (delayed when there is one), so it is carried through that phase's motion onto the
        // three-phase result's grid and only the segmentation is compared.
        let fixed = alone.phases[alone.fixed_index()].phase();
        let field = data.join(format!("triphase-hcc048/true_field_{}.nii.gz", fixed.slug()));
        let (u, _) = hepaview::io::nifti::read_field(&field).expect("true field");
        let u = hepaview::register::resample_field(&u, &three.mask.geometry);
        let on_grid = hepaview::register::warp_volume(&s.mask, &u, hepaview::volume::Interp::Nearest, 0u8);
        let dice = segment::dice_liver(&on_grid, &three.mask);
        eprintln!(
            "{phases:?} alone: liver {:.0} mL, Dice {dice:.4} against all three phases ({:.0} mL)",
            s.check.liver_ml, three.check.liver_ml
        );
        assert!(s.check.liver_ml > 0.0, "{phases:?}: empty mask");
        assert!(dice >= floor, "{phases:?}: liver Dice {dice:.4} against the three-phase result");
    }
}

/// Issue 27: the progress bar moves through the whole run (it sat at 97–99 % for most of
/// it): it never goes back, the network's part ends well before the end, every step after
/// it is named, and it ends at 100 %.
#[test]
fn segment_progress_rises_through_every_step() {
    let model = segment::load_unet(&shipped_model()).expect("weights");
    let study = Study::demo(&PhantomOptions::small());
    let seen = std::sync::Mutex::new(Vec::<(f32, String)>::new());
    let report = |f: f32, m: &str| {
        seen.lock().unwrap().push((f, m.to_string()));
        true
    };
    hepaview::study::segment_phases(&model, &study, &segment::InferOptions::default(), &report).expect("segment");
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[1].0 >= w[0].0 - 1e-6), "progress went back: {seen:?}");
    let last_net = seen.iter().rev().find(|(_, m)| m.starts_with("U-Net")).expect("the network reports").0;
    assert!(last_net <= 0.8, "the network's part ends at {last_net}: the post-processing would sit near 100 %");
    for step in ["gas-filled", "thin bridges", "refining", "searching"] {
        assert!(seen.iter().any(|(f, m)| m.contains(step) && *f < 0.95), "{step}: {seen:?}");
    }
    assert!(seen.last().is_some_and(|s| (s.0 - 1.0).abs() < 1e-5), "{:?}", seen.last());
}
