//! The segmentation on real CT it was never trained on, scored as the real-CT goals are:
//! `tests/data/crlm-1006` (a colorectal-liver-metastases CT, CC BY 4.0, liver and four
//! metastases outlined here; see its README). The floors are today's figures less a small
//! margin, so a change that makes real CT worse fails here even when the phantom still
//! passes; the goals themselves (liver Dice ≥ 0.95, every tumour ≥ 10 mm found, at most one
//! false lesion) are printed beside them and are not met yet.
//!
//! The same CT also holds the one-click outline (issue 24) to real lesions: a click at each
//! metastasis (its deepest point on its largest slice, where a reader would click) with the
//! reference's liver as the mask, scored against that lesion of the reference.

use std::path::PathBuf;

use hepaview::io::nifti;
use hepaview::io::phase::Phase;
use hepaview::outline::{outline_lesion, OutlineOptions, Prompts};
use hepaview::segment::{self, score::score_lesions, InferOptions};
use hepaview::study::Study;
use hepaview::volume::region::connected_components;
use hepaview::volume::{Interp, Lps};

fn case() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crlm-1006")
}

fn shipped_liver_network() -> segment::UNet {
    segment::load_unet(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(segment::DEFAULT_MODEL))
        .expect("shipped weights")
}

fn crlm_1006() -> Study {
    Study::open(&[case().join("ct.nii.gz")]).expect("crlm-1006 opens")
}

#[test]
fn crlm_1006_liver_and_metastases_are_measured_and_do_not_regress() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let mask =
        hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let truth = if truth.geometry.shape == mask.geometry.shape {
        truth
    } else {
        truth.resample_to(&mask.geometry, Interp::Nearest, 0)
    };
    let liver = segment::dice_liver(&mask, &truth);
    let tumour = segment::dice(&mask, &truth, 2);
    let lesions = score_lesions(&mask, &truth);
    let (found, of) = lesions.found(0.0);
    let false_lesions = lesions.false_lesions(0.1).len();
    eprintln!(
        "crlm-1006: liver Dice {liver:.4} (goal 0.95), tumour Dice {tumour:.3} (goal 0.65), \
         {found} of {of} metastases found (goal all), {false_lesions} false lesion(s) of 0.1 mL or more (goal ≤ 1)"
    );
    assert_eq!(of, 4, "the reference holds four metastases");
    assert!(liver >= LIVER_FLOOR, "liver Dice on real CT fell to {liver:.4} (floor {LIVER_FLOOR})");
    assert!(found >= FOUND_FLOOR, "metastases found fell to {found} of 4 (floor {FOUND_FLOOR})");
    assert!(false_lesions <= FALSE_CEILING, "false lesions rose to {false_lesions} (ceiling {FALSE_CEILING})");
    assert!(tumour >= TUMOUR_FLOOR, "tumour Dice on real CT fell to {tumour:.3} (floor {TUMOUR_FLOOR})");
}

/// The first network alone finds fewer of the metastases than the tumour stage: the stage
/// is what finds them, so switching it off must show (and the stage must be wired in).
#[test]
fn crlm_1006_the_tumour_stage_finds_what_the_first_network_misses() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let found = |opts: &InferOptions| {
        let mask = hepaview::study::segment_phases(&model, &study, opts, &|_, _| true).expect("segment");
        score_lesions(&mask, &truth).found(0.0).0
    };
    let with = InferOptions::default();
    assert!(with.tumour_model.as_ref().is_some_and(|p| p.is_file()), "the tumour stage is shipped in models/");
    let (staged, alone) = (found(&with), found(&InferOptions { tumour_model: None, ..with.clone() }));
    eprintln!("crlm-1006 metastases found: first network alone {alone} of 4, with the tumour stage {staged}");
    assert!(staged > alone, "the tumour stage found {staged}, the first network alone {alone}");
}

/// Checking the stage's tumours with the one-click outline (`tumour_stage::confirm`) turns
/// most of its false lesions back into liver and raises tumour Dice, losing no
/// metastasis: switching it off must show. With S6: 4 found, 0 false, Dice 0.670 checked
/// (since the sixth session, when a small proposal none of whose clicks outlined is also
/// tried on the slices beside it: the fourth metastasis lies on the slice next to its
/// proposal, under the dome); 4, 8, 0.090 unchecked. Before that the check lost the fourth
/// (3 found, Dice 0.637). With S5 the check lost none (2 of 4 either way).
#[test]
fn crlm_1006_checking_the_stage_with_the_outline_drops_false_lesions() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let score = |opts: &InferOptions| {
        let result = hepaview::study::segment_phases_live(&model, &study, opts, &|_, _| true, None).expect("segment");
        let lesions = score_lesions(&result.mask, &truth);
        (
            lesions.found(0.0).0,
            lesions.false_lesions(0.1).len(),
            segment::dice(&result.mask, &truth, 2),
            result.confirmed,
        )
    };
    let checked = InferOptions::default();
    assert!(checked.confirm_tumours, "the check is on by default");
    let (found, false_lesions, dice, confirmed) = score(&checked);
    let (found0, false0, dice0, none) = score(&InferOptions { confirm_tumours: false, ..checked.clone() });
    eprintln!(
        "crlm-1006 with the check: {found} found, {false_lesions} false, tumour Dice {dice:.3} ({confirmed:?}); \
         without: {found0}, {false0}, {dice0:.3}"
    );
    let confirmed = confirmed.expect("the check ran");
    assert!(none.is_none(), "the check ran while switched off");
    assert!(!confirmed.dropped.is_empty() && confirmed.redrawn > 0, "{confirmed:?}");
    assert!(found >= found0, "the check lost a metastasis: {found} vs {found0}");
    assert!(false_lesions < false0, "false lesions {false_lesions} with the check, {false0} without");
    assert!(dice > dice0, "tumour Dice {dice:.3} with the check, {dice0:.3} without");
}

/// crlm-1006's gallbladder lies in its fossa under the liver, and the first network's liver
/// takes it in; the tumour stage then proposes it as a tumour (6.6 mL, the largest false
/// lesion before the rule). The check outlines it as fluid with a third of its border
/// outside the liver, and takes it out of the mask: neither tumour nor liver.
#[test]
fn crlm_1006_the_gallbladder_is_neither_tumour_nor_liver() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let result = hepaview::study::segment_phases_live(&model, &study, &InferOptions::default(), &|_, _| true, None)
        .expect("segment");
    let confirmed = result.confirmed.expect("the check ran");
    assert_eq!(confirmed.surface_fluid, 1, "{confirmed:?}");
    // the gallbladder's lumen (LPS mm; 18 HU there, seen on the image): a 5 mm ball
    let g = &result.mask.geometry;
    let centre = g.world_to_index([-69.0, 5.0, -301.4]);
    let (mut n, mut labelled) = (0usize, 0usize);
    for ((k, j, i), &l) in result.mask.data.indexed_iter() {
        let d = [i as f64 - centre[0], j as f64 - centre[1], k as f64 - centre[2]];
        if (0..3).map(|a| (d[a] * g.spacing_mm[a]).powi(2)).sum::<f64>() <= 25.0 {
            n += 1;
            labelled += (l != 0) as usize;
        }
    }
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let liver = segment::dice_liver(&result.mask, &truth);
    eprintln!("crlm-1006 gallbladder: {labelled} of {n} voxels labelled; liver Dice {liver:.4}; {confirmed:?}");
    assert!(n > 0 && labelled * 10 <= n, "{labelled} of {n} voxels of the gallbladder still labelled");
}

/// The first network reads one slice at a time and leaves out crlm-1006's dome (its last
/// two slices under the lung, 13 mL) and a rim of the right lobe's lower tip. The liver's
/// ends are completed from the slices beside them (`segment::complete`): the dome's last
/// two slices of the reference must now be labelled, where the network alone gives none.
#[test]
fn crlm_1006_the_domes_last_slices_are_completed_from_the_slice_below() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let top =
        (0..truth.geometry.shape[0]).rev().find(|&k| truth.data.slice(ndarray::s![k, .., ..]).iter().any(|&l| l > 0));
    let top = top.expect("the reference has a liver");
    let share = |opts: &InferOptions| {
        let mask = hepaview::study::segment_phases(&model, &study, opts, &|_, _| true).expect("segment");
        let (mut n, mut labelled) = (0usize, 0usize);
        for k in top - 1..=top {
            for (p, &l) in truth.data.slice(ndarray::s![k, .., ..]).indexed_iter() {
                if l > 0 {
                    n += 1;
                    labelled += (mask.data[[k, p.0, p.1]] > 0) as usize;
                }
            }
        }
        (labelled as f64 / n as f64, segment::dice_liver(&mask, &truth))
    };
    let (completed, dice) = share(&InferOptions::default());
    let (network, dice0) = share(&InferOptions { refine_edges: false, ..InferOptions::default() });
    eprintln!(
        "crlm-1006 dome, slices {}–{top}: {completed:.2} labelled (network's edges as drawn: {network:.2}); \
         liver Dice {dice:.4} ({dice0:.4})",
        top - 1
    );
    assert!(network < 0.1, "the network alone now labels {network:.2} of the dome's last slices");
    assert!(completed >= 0.8, "only {completed:.2} of the dome's last two slices labelled");
}

/// crlm-1006 with one lesion of the training generator (`segment::tumours`) implanted at the
/// liver's deepest point, in the look of `phase` (0 arterial, 1 portal venous), written to a
/// temp dir: the study, its truth (1 liver, 2 tumour), and the dir that holds it.
fn implanted(
    kind: hepaview::segment::tumours::Kind,
    radius_mm: f64,
    seed: u64,
    phase: usize,
) -> (Study, hepaview::volume::Mask, tempfile::TempDir) {
    use hepaview::segment::tumours::{implant, Lesion};
    let ct = nifti::read_ct(&case().join("ct.nii.gz")).expect("crlm-1006 CT").0;
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let g = ct.geometry.clone();
    // the liver voxel deepest inside
    let outside = truth.data.mapv(|l| l == 0);
    let depth = hepaview::volume::region::squared_distance_mm2(&outside, g.spacing_mm);
    let (_, p) = depth.indexed_iter().fold((0f32, (0, 0, 0)), |b, (p, &d)| if d > b.0 { (d, p) } else { b });
    let centre = g.index_to_world([p.2 as f64, p.1 as f64, p.0 as f64]);
    let mut rng = segment::Rng::new(seed);
    let hu = ct.data.mapv(|v| v as f32);
    let mut phases = vec![hu.clone(), hu.clone(), hu];
    let mut labels = truth.data.clone();
    let lesion = Lesion::draw(&mut rng, kind, centre, radius_mm);
    implant(&mut rng, &g, &mut phases, &mut labels, &[lesion]);
    let shown =
        hepaview::volume::Volume::new(phases[phase].mapv(|v| v.round().clamp(-1024.0, 3071.0) as i16), g.clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ct-with-lesion.nii.gz");
    nifti::write_volume(&shown, &path).expect("write");
    let study = Study::open(&[path]).expect("the implanted CT opens");
    (study, hepaview::volume::Volume::new(labels, g), dir)
}

/// A large tumour (an HCC of 35 mm equivalent radius, 184 mL, drawn by the training
/// generator `segment::tumours` into crlm-1006's liver, which is not in training) survives
/// the check: the outline, made for lesions inside its 8 cm box, finds parts of it, and the
/// stage's drawing must stay (`tumour_stage::confirm::LARGE_ML`). The lesion is of the
/// training generator's kind, so this checks the cascade's plumbing on a large lesion, not
/// its accuracy on real ones. Before the rule: Dice 0.03 with the check, 0.82 without.
#[test]
fn crlm_1006_a_large_implanted_hcc_survives_the_check() {
    // the portal venous look, as the CT is portal venous
    let (study, truth, _dir) = implanted(hepaview::segment::tumours::Kind::Hcc, 35.0, 2, 1);
    let model = shipped_liver_network();
    let dice = |opts: &InferOptions| {
        let mask = hepaview::study::segment_phases(&model, &study, opts, &|_, _| true).expect("segment");
        segment::dice(&mask, &truth, 2)
    };
    let checked = dice(&InferOptions::default());
    let unchecked = dice(&InferOptions { confirm_tumours: false, ..InferOptions::default() });
    eprintln!("implanted 184 mL HCC: tumour Dice {checked:.3} with the check, {unchecked:.3} without");
    assert!(checked >= unchecked - 0.02, "the check cost the large tumour: {checked:.3} vs {unchecked:.3}");
    assert!(checked >= 0.75, "tumour Dice {checked:.3} on the implanted HCC");
}

/// A lesion treated by TACE (the training generator's lipiodol kind, 29 mm equivalent
/// radius, patchy lipiodol over 1,000 HU in a non-enhancing lesion) survives the check.
/// The check tries the lesion's most unlike voxels first, the lipiodol; the outline refused
/// those as "outside the liver" (denser than soft tissue) and the lesion went back to
/// liver: tumour Dice 0.05 before lipiodol deep in the liver counted as lesion.
#[test]
fn crlm_1006_an_implanted_lesion_full_of_lipiodol_survives_the_check() {
    let (study, truth, _dir) = implanted(hepaview::segment::tumours::Kind::Lipiodol, 29.0, 110, 1);
    let model = shipped_liver_network();
    let mask =
        hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
    let dice = segment::dice(&mask, &truth, 2);
    eprintln!("implanted treated lesion with lipiodol: tumour Dice {dice:.3}");
    assert!(dice >= 0.75, "tumour Dice {dice:.3} on the treated lesion");
}

/// The tumour stage has its own stretch of the progress bar (it takes a quarter to a half
/// of the segmentation after registration), and the bar never goes back.
#[test]
fn crlm_1006_the_tumour_stage_reports_its_progress() {
    let model = shipped_liver_network();
    let study = crlm_1006();
    let seen = std::sync::Mutex::new(Vec::<(f32, String)>::new());
    let report = |f: f32, m: &str| {
        seen.lock().unwrap().push((f, m.to_string()));
        true
    };
    let result =
        hepaview::study::segment_phases_live(&model, &study, &InferOptions::default(), &report, None).expect("segment");
    assert!(result.tumour_stage_ran, "crlm-1006 (1.6 mm pixels) suits the tumour stage");
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[1].0 >= w[0].0 - 1e-6), "progress went back: {seen:?}");
    let stage: Vec<f32> = seen.iter().filter(|(_, m)| m.contains("tumour stage")).map(|(f, _)| *f).collect();
    assert!(stage.len() > 2, "the stage reports as it goes: {seen:?}");
    let (first, last) = (stage[0], stage[stage.len() - 1]);
    assert!(first <= 0.65 && last >= 0.85, "the stage's stretch of the bar: {first} → {last}");
    // the lesion search does not run after the checked stage, so the bar does not name it
    // (it did until the seventh session); the step that does run is named instead
    assert!(result.confirmed.is_some(), "the stage's tumours are checked by default");
    assert!(!seen.iter().any(|(_, m)| m.contains("searching")), "a search that does not run is named: {seen:?}");
    assert!(seen.iter().any(|(_, m)| m.contains("dome and tip")), "{seen:?}");
    assert!(seen.last().is_some_and(|s| (s.0 - 1.0).abs() < 1e-5), "{:?}", seen.last());
}

/// How many metastases are found hardly depends on where the grid starts: the same CT
/// cropped by one to three pixels at its edge (the same voxels at the same world positions)
/// finds within one of the whole. With S4 the crops gave 2,
/// 2, 1 and 3 against the whole's 3: its probability on these metastases sat near 0.5 and
/// the 1.5 mm grid's phase decided. S5 (trained on thicker slices too) gave 2 on all five;
/// S6 (trained with other scanners' textures too) gave 3 on the whole and 3, 2, 3, 3 on
/// the crops; with the seeds on the slices beside a proposal (sixth session), 4 and 4, 3, 4, 4.
#[test]
fn crlm_1006_the_metastases_found_do_not_depend_on_where_the_grid_starts() {
    let ct = nifti::read_ct(&case().join("ct.nii.gz")).expect("crlm-1006 CT").0;
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let model = shipped_liver_network();
    let dir = tempfile::tempdir().expect("temp dir");
    let found = |skip: [usize; 2]| {
        // drop `skip` = [rows, columns] at the start of each slice, keeping world positions
        let crop = |g: &hepaview::volume::Geometry| hepaview::volume::Geometry {
            shape: [g.shape[0], g.shape[1] - skip[0], g.shape[2] - skip[1]],
            origin_mm: g.index_to_world([skip[1] as f64, skip[0] as f64, 0.0]),
            ..g.clone()
        };
        let ct = hepaview::volume::Volume::new(
            ct.data.slice(ndarray::s![.., skip[0].., skip[1]..]).to_owned(),
            crop(&ct.geometry),
        );
        let truth = hepaview::volume::Volume::new(
            truth.data.slice(ndarray::s![.., skip[0].., skip[1]..]).to_owned(),
            crop(&truth.geometry),
        );
        let path = dir.path().join(format!("ct-{}-{}.nii.gz", skip[0], skip[1]));
        nifti::write_volume(&ct, &path).expect("write");
        let study = Study::open(&[path]).expect("the cropped CT opens");
        let mask =
            hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
        score_lesions(&mask, &truth).found(0.0).0
    };
    let whole = found([0, 0]);
    let crops: Vec<usize> = [[0, 1], [1, 0], [2, 2], [0, 3]].into_iter().map(found).collect();
    eprintln!("crlm-1006 metastases found: whole {whole}, cropped by 1-3 pixels {crops:?}");
    assert!(crops.iter().all(|&n| n + 1 >= whole), "whole {whole}, crops {crops:?}");
}

/// Today's figures with the shipped weights (2026-12-07, sixth session: liver run E, the
/// tumour stage S6, each of its tumours checked by the outline, a large proposal kept as
/// drawn only when two or more of its clicks outline, a small one none of whose clicks
/// outlined tried on the slices beside it): liver Dice 0.9572, 4 of 4 found, 0 false
/// lesions, tumour Dice 0.670 (the fifth session: 3 of 4, 0.637). With S5: 0.9572, 2 of 4, 1 false, 0.544. With S4 before it: 0.9572, 3 of 4, 2 false,
/// 0.576, but S4's third metastasis came and went with where the grid starts (the test
/// above: crops of a pixel or two gave 1-3 of 4 and 1-3 false lesions); S5 finds the same
/// two on every crop with 1 false lesion each. Earlier: before the tube check 0.9573, 3, 3,
/// 0.418; before the completion: liver 0.9464; before the fluid rule: 0.9446, 3, 4, 0.313;
/// without the check: 3 of 4, 12, 0.094; run E alone: 0.9446, 1 of 4, 11, 0.034; run D
/// alone: 0.9316, 1, 9; the weights before them: 0.8675, 2 of 4, 8; model card), less a
/// margin for another CPU's rounding.
const LIVER_FLOOR: f64 = 0.95;
const FOUND_FLOOR: usize = 4;
const FALSE_CEILING: usize = 1;
const TUMOUR_FLOOR: f64 = 0.65;

/// The four metastases of `tests/data/crlm-1006`, in the reference's component order: where
/// a reader would click (LPS mm), and today's Dice of the one-click outline against the
/// reference (a threshold made here, see the data's README), less a margin of 0.02.
const METASTASES: [(Lps, f64); 4] = [
    ([-97.3, 26.3, -301.4], DICE_FLOOR[0]),
    ([-73.1, 32.8, -186.4], DICE_FLOOR[1]),
    ([-71.5, 31.2, -221.4], DICE_FLOOR[2]),
    ([-65.1, 55.3, -201.4], DICE_FLOOR[3]),
];
/// Today: 0.760, 0.848, 0.582, 0.899 (the third outline holds 46 of the reference's 48
/// voxels and adds 60 on the slices beside it, a darker spot below and a faint strand above,
/// that the reference's hand-set radius left out).
const DICE_FLOOR: [f64; 4] = [0.74, 0.82, 0.56, 0.87];
const OUTLINED_FLOOR: usize = 4;

#[test]
fn crlm_1006_one_click_outlines_the_metastases_and_does_not_regress() {
    let ct = nifti::read_ct(&case().join("ct.nii.gz")).expect("crlm-1006 CT").0;
    let truth = nifti::read_mask(&case().join("truth.nii.gz")).expect("truth").0;
    let phases = [(Phase::PortalVenous, &ct)];
    let g = &ct.geometry;
    let [_, ny, nx] = g.shape;
    let (metastases, _) = connected_components(&truth, 2, 1);
    let mut outlined = 0;
    let mut failures = Vec::new();
    for (n, &(at, floor)) in METASTASES.iter().enumerate() {
        let ijk = g.world_to_index(at);
        let seed = (ijk[2].round() as usize * ny + ijk[1].round() as usize) * nx + ijk[0].round() as usize;
        // the reference's metastasis (26-connected) under the click
        let mut lesion = vec![false; truth.data.len()];
        for &v in metastases.iter().find(|c| c.voxels.binary_search(&seed).is_ok()).map_or(&[][..], |c| &c.voxels[..]) {
            lesion[v] = true;
        }
        let size = lesion.iter().filter(|&&x| x).count();
        assert!(size > 0, "metastasis {} : the click at {at:?} is not on the reference's tumour", n + 1);
        let prompts = Prompts { include: vec![at], ..Prompts::default() };
        let t = std::time::Instant::now();
        match outline_lesion(&phases, Some(&truth), &prompts, &OutlineOptions::default()) {
            Ok(o) => {
                outlined += 1;
                let both = o.mask.data.iter().zip(&lesion).filter(|(&m, &l)| m != 0 && l).count();
                let dice = 2.0 * both as f64 / (o.voxel_count + size) as f64;
                eprintln!(
                    "crlm-1006 metastasis {}: Dice {dice:.3} (floor {floor}), {} voxels vs {size} ({:.2} mL), \
                     liver {:.0} ± {:.1} HU ({}), {:.2} s",
                    n + 1,
                    o.voxel_count,
                    o.volume_ml,
                    o.parenchyma.median_hu[0],
                    o.parenchyma.sd_hu[0],
                    if o.local_parenchyma { "around the lesion" } else { "the box's" },
                    t.elapsed().as_secs_f64()
                );
                if dice < floor {
                    failures.push(format!("metastasis {}: Dice {dice:.3} < {floor}", n + 1));
                }
            }
            Err(e) => {
                eprintln!("crlm-1006 metastasis {}: refused: {e}", n + 1);
                failures.push(format!("metastasis {}: refused", n + 1));
            }
        }
    }
    eprintln!("crlm-1006 one click: {outlined} of 4 metastases outlined (floor {OUTLINED_FLOOR})");
    assert!(outlined >= OUTLINED_FLOOR, "{failures:?}");
    assert!(failures.is_empty(), "{failures:?}");
}

/// `tests/data/crlm-1004`: a real CT of the same collection in which no liver lesion was
/// seen here (its README), so every tumour drawn on it is false. Held out for the tumour
/// stage and the check's rules, not for the liver (one of the first network's training
/// bodies; its hand-corrected training label was 1,366 mL). First measured in the eighth
/// session (S6 and the check as they were): 3 false lesions of 0.1 mL or more, 11.0 mL in
/// all, on the porta hepatis and the fissures of the ligamentum teres and venosum, whose
/// partial volume with fat the outline takes for a lesion. Since the ninth session an
/// outline that holds under a fifth of its proposal while growing past twice its size is
/// not the proposal's lesion (`confirm::MIN_HELD_SHARE`): 2 false lesions, 1.4 mL (1.27 mL
/// on the fissure of the ligamentum teres, a 0.15 mL bright speck). The ceilings are those
/// figures; the goal is at most one false lesion.
#[test]
fn crlm_1004_a_liver_without_a_lesion_seen_gets_no_more_false_lesions() {
    let model = shipped_liver_network();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crlm-1004/ct.nii.gz");
    let study = Study::open(&[path]).expect("crlm-1004 opens");
    let mask =
        hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
    let voxel_ml = hepaview::volume::region::voxel_volume_ml(&mask.geometry);
    let liver_ml = mask.data.iter().filter(|&&l| l > 0).count() as f64 * voxel_ml;
    let (components, _) = connected_components(&mask, 2, 1);
    let sizes: Vec<f64> = components.iter().map(|c| c.voxels.len() as f64 * voxel_ml).collect();
    let false_lesions = sizes.iter().filter(|&&ml| ml >= 0.1).count();
    let tumour_ml: f64 = sizes.iter().sum();
    eprintln!(
        "crlm-1004 (no lesion seen): liver {liver_ml:.0} mL (training label 1,366), {false_lesions} false lesion(s) \
         of 0.1 mL or more (goal ≤ 1), {tumour_ml:.1} mL of tumour in all"
    );
    assert!((1_200.0..=1_550.0).contains(&liver_ml), "liver {liver_ml:.0} mL");
    assert!(false_lesions <= 2, "false lesions rose to {false_lesions} (ceiling 2)");
    assert!(tumour_ml <= 2.0, "false tumour rose to {tumour_ml:.1} mL (ceiling 2)");
}

/// `tests/data/hcc006-arterial`: a real arterial series alone (HCC-TACE-Seg HCC_006), held
/// out for everything, without a reference. Read as the arterial phase, the shipped network
/// took 341 mL of the heart, joined to the dome, for liver; the thin-bridge cut now takes
/// a part of another density off (`segment::bridges`). Measured when it was added: liver
/// 1,484 mL, nothing in the heart's region (before: about 290 mL there, 1,918 mL of
/// "liver" at the study's full resolution). The heart's region is where the heart lay in that
/// mask: left of LPS x = 10 mm and above z = −94.5 mm; the liver does not reach it.
#[test]
fn hcc006_an_arterial_series_alone_gives_a_liver_without_the_heart() {
    let model = shipped_liver_network();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hcc006-arterial/arterial.nii.gz");
    let study = Study::open(&[path]).expect("hcc006-arterial opens");
    assert_eq!(study.phases.first().map(|p| p.phase()), Some(Phase::Arterial), "the file's name gives its phase");
    let mask =
        hepaview::study::segment_phases(&model, &study, &InferOptions::default(), &|_, _| true).expect("segment");
    let voxel_ml = hepaview::volume::region::voxel_volume_ml(&mask.geometry);
    let liver_ml = mask.data.iter().filter(|&&l| l > 0).count() as f64 * voxel_ml;
    let in_heart = mask
        .data
        .indexed_iter()
        .filter(|&(_, &l)| l > 0)
        .filter(|&((k, j, i), _)| {
            let w = mask.geometry.index_to_world([i as f64, j as f64, k as f64]);
            w[0] > 10.0 && w[2] > -94.5
        })
        .count() as f64
        * voxel_ml;
    eprintln!("hcc006, arterial alone (no reference): liver {liver_ml:.0} mL, {in_heart:.1} mL in the heart's region");
    assert!((1_250.0..=1_700.0).contains(&liver_ml), "liver {liver_ml:.0} mL");
    assert!(in_heart <= 20.0, "{in_heart:.1} mL of the heart's region labelled liver");
}
