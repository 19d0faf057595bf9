//! Treatment response on generated visits with known truth: matching, viable / necrotic /
//! lipiodol parts, RECIST 1.1 and mRECIST categories.

use hepaview::io::phase::Phase;
use hepaview::response::{
    assess, match_lesions, measure_visit, Category, ResponseOptions, Visit, LIPIODOL, NECROTIC, VIABLE,
};
use hepaview::volume::{CtVolume, Geometry, Lps, Mask};

/// What a lesion looks like: radius, and the radii inside which it is lipiodol / necrotic.
#[derive(Clone, Copy)]
struct Lesion {
    centre: Lps,
    radius: f64,
    lipiodol_r: f64,
    necrotic_r: f64,
}

struct Built {
    mask: Mask,
    arterial: CtVolume,
    portal: CtVolume,
    /// Voxel counts by truth: viable, necrotic, lipiodol.
    counts: [usize; 3],
}

fn grid() -> Geometry {
    Geometry::axis_aligned([40, 110, 110], [2.5, 1.0, 1.0], [-55.0, -55.0, -50.0])
}

/// A visit: liver ellipsoid (label 1) with lesions (label 2), all moved by `shift`.
fn build(lesions: &[Lesion], shift: Lps) -> Built {
    let g = grid();
    let mut mask = Mask::filled(g.clone(), 0);
    let mut arterial = CtVolume::filled(g.clone(), -1000);
    let mut portal = CtVolume::filled(g.clone(), -1000);
    let mut counts = [0usize; 3];
    let [nz, ny, nx] = g.shape;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = g.index_to_world([i as f64, j as f64, k as f64]);
                let q = [p[0] - shift[0], p[1] - shift[1], p[2] - shift[2]];
                let liver = (q[0] / 48.0).powi(2) + (q[1] / 46.0).powi(2) + (q[2] / 45.0).powi(2) <= 1.0;
                if !liver {
                    continue;
                }
                let (mut m, mut a, mut v) = (1u8, 80i16, 100i16);
                for l in lesions {
                    let r =
                        ((q[0] - l.centre[0]).powi(2) + (q[1] - l.centre[1]).powi(2) + (q[2] - l.centre[2]).powi(2))
                            .sqrt();
                    if r <= l.radius {
                        m = 2;
                        if r < l.lipiodol_r {
                            (a, v) = (500, 480);
                            counts[2] += 1;
                        } else if r < l.necrotic_r {
                            (a, v) = (20, 25);
                            counts[1] += 1;
                        } else {
                            (a, v) = (160, 90);
                            counts[0] += 1;
                        }
                    }
                }
                mask.data[[k, j, i]] = m;
                arterial.data[[k, j, i]] = a;
                portal.data[[k, j, i]] = v;
            }
        }
    }
    Built { mask, arterial, portal, counts }
}

fn visit<'a>(b: &'a Built, label: &str) -> Visit<'a> {
    Visit {
        label: label.into(),
        mask: &b.mask,
        phases: vec![(Phase::Arterial, &b.arterial), (Phase::PortalVenous, &b.portal)],
    }
}

const A: Lesion = Lesion { centre: [-18.0, -10.0, 5.0], radius: 12.0, lipiodol_r: 0.0, necrotic_r: 0.0 };
const B: Lesion = Lesion { centre: [20.0, 12.0, -10.0], radius: 8.0, lipiodol_r: 0.0, necrotic_r: 0.0 };
const C: Lesion = Lesion { centre: [15.0, -20.0, 20.0], radius: 4.0, lipiodol_r: 0.0, necrotic_r: 0.0 };
/// A after TACE: smaller, a lipiodol core, necrosis, a viable rim.
// (the necrotic shell is thicker than a voxel diagonal: viable voxels next to lipiodol
// are counted as treated by design)
const A_AFTER: Lesion = Lesion { centre: A.centre, radius: 9.0, lipiodol_r: 3.0, necrotic_r: 6.0 };
const D_NEW: Lesion = Lesion { centre: [-10.0, 22.0, -15.0], radius: 5.0, lipiodol_r: 0.0, necrotic_r: 0.0 };

#[test]
fn parts_match_lesions_and_categories_come_out_as_built() {
    let opts = ResponseOptions::default();
    let shift = [7.0, -4.0, 5.0];
    let base = build(&[A, B, C], [0.0; 3]);
    let follow = build(&[A_AFTER, C, D_NEW], shift);
    let bm = measure_visit(&visit(&base, "2026-01-10"), &opts).unwrap();
    let fm = measure_visit(&visit(&follow, "2026-03-12"), &opts).unwrap();
    assert_eq!(bm.report.lesions.len(), 3);
    assert_eq!(fm.report.lesions.len(), 3);

    // parts: exact voxel counts of the truth, and the parts volume carries them
    let voxel_ml = 2.5e-3;
    let total = |f: fn(&hepaview::response::Parts) -> f64| fm.parts.iter().map(|p| f(p.as_ref().unwrap())).sum::<f64>();
    assert!((total(|p| p.viable_ml) - follow.counts[0] as f64 * voxel_ml).abs() < 1e-9);
    assert!((total(|p| p.necrotic_ml) - follow.counts[1] as f64 * voxel_ml).abs() < 1e-9);
    assert!((total(|p| p.lipiodol_ml) - follow.counts[2] as f64 * voxel_ml).abs() < 1e-9);
    assert!(follow.counts.iter().all(|&c| c > 20), "every part is present: {:?}", follow.counts);
    let count = |l: u8| fm.parts_mask.data.iter().filter(|&&v| v == l).count();
    assert_eq!([count(VIABLE), count(NECROTIC), count(LIPIODOL)], follow.counts);

    // matching through the known shift: A and C paired, B gone, D new
    let to_follow = |p: Lps| [p[0] + shift[0], p[1] + shift[1], p[2] + shift[2]];
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &to_follow, &opts);
    let id_b = |l: &Lesion| bm.report.lesions.iter().find(|x| (x.centroid_mm[0] - l.centre[0]).abs() < 1.0).unwrap().id;
    let id_f = |l: &Lesion| {
        fm.report.lesions.iter().find(|x| (x.centroid_mm[0] - l.centre[0] - shift[0]).abs() < 1.0).unwrap().id
    };
    let partner = |b: usize| pairs.iter().find(|p| p.baseline == Some(b)).unwrap().followup;
    assert_eq!(partner(id_b(&A)), Some(id_f(&A_AFTER)));
    assert_eq!(partner(id_b(&C)), Some(id_f(&C)));
    assert_eq!(partner(id_b(&B)), None, "B disappeared");
    let new: Vec<_> = pairs.iter().filter(|p| p.baseline.is_none()).map(|p| p.followup).collect();
    assert_eq!(new, vec![Some(id_f(&D_NEW))]);

    // a new lesion is progression, whatever the diameters did
    let r = assess("2026-01-10", &bm, "2026-03-12", &fm, &pairs, &opts);
    assert_eq!(r.recist.category, Category::PD);
    assert_eq!(r.recist.new_lesions, 1);
    // targets: A (24 mm) and B (16 mm); C (8 mm) is not measurable. Diameters run from
    // voxel edge to voxel edge, so each is one 1 mm voxel longer than the sphere.
    assert_eq!(r.recist.targets.len(), 2);
    assert!((r.recist.baseline_sum_mm - 42.0).abs() < 1.0, "{}", r.recist.baseline_sum_mm);
    assert!((r.recist.followup_sum_mm - 19.0).abs() < 1.0, "{}", r.recist.followup_sum_mm);
    assert!(r.viable_followup_ml.unwrap() < r.viable_baseline_ml.unwrap());
}

#[test]
fn without_new_lesions_recist_is_partial_and_mrecist_complete_when_nothing_enhances() {
    let opts = ResponseOptions::default();
    let base = build(&[A, B], [0.0; 3]);
    // A shrinks to 18 mm and is entirely necrotic + lipiodol; B is gone
    let dead_a = Lesion { centre: A.centre, radius: 9.0, lipiodol_r: 4.0, necrotic_r: 9.5 };
    let follow = build(&[dead_a], [0.0; 3]);
    let bm = measure_visit(&visit(&base, "before"), &opts).unwrap();
    let fm = measure_visit(&visit(&follow, "after"), &opts).unwrap();
    let same = |p: Lps| p;
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    let r = assess("before", &bm, "after", &fm, &pairs, &opts);
    assert_eq!(r.recist.category, Category::PR, "{}", r.recist.reason);
    let m = r.mrecist.expect("both visits have an arterial phase");
    assert_eq!(m.category, Category::CR, "{}", m.reason);

    // the same lesion still fully viable and a little larger: stable by both
    let grown = Lesion { radius: 13.0, ..A };
    let follow = build(&[grown, B], [0.0; 3]);
    let fm = measure_visit(&visit(&follow, "after"), &opts).unwrap();
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    let r = assess("before", &bm, "after", &fm, &pairs, &opts);
    assert_eq!(r.recist.category, Category::SD, "{}", r.recist.reason);
    // much larger: progression (≥ 20 % and ≥ 5 mm)
    let follow = build(&[Lesion { radius: 18.0, ..A }, Lesion { radius: 11.0, ..B }], [0.0; 3]);
    let fm = measure_visit(&visit(&follow, "after"), &opts).unwrap();
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    assert_eq!(assess("before", &bm, "after", &fm, &pairs, &opts).recist.category, Category::PD);
}

#[test]
fn a_follow_up_without_arterial_phase_still_gets_recist() {
    let opts = ResponseOptions::default();
    let base = build(&[A, B], [0.0; 3]);
    let follow = build(&[Lesion { radius: 8.0, ..A }, B], [0.0; 3]);
    let bm = measure_visit(&visit(&base, "before"), &opts).unwrap();
    let pv_only =
        Visit { label: "after".into(), mask: &follow.mask, phases: vec![(Phase::PortalVenous, &follow.portal)] };
    let fm = measure_visit(&pv_only, &opts).unwrap();
    assert!(fm.parts.iter().all(|p| p.is_none()));
    let same = |p: Lps| p;
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    let r = assess("before", &bm, "after", &fm, &pairs, &opts);
    assert!(r.mrecist.is_none(), "no mRECIST without an arterial phase");
    assert!(r.viable_followup_ml.is_none());
    assert_eq!(r.recist.category, Category::SD, "{}", r.recist.reason);
}

#[test]
fn lipiodol_is_measured_without_an_arterial_phase() {
    let opts = ResponseOptions::default();
    let base = build(&[A], [0.0; 3]);
    let follow = build(&[A_AFTER], [0.0; 3]);
    let bm = measure_visit(&visit(&base, "before"), &opts).unwrap();
    let with_art = measure_visit(&visit(&follow, "after"), &opts).unwrap();
    let pv_only =
        Visit { label: "after".into(), mask: &follow.mask, phases: vec![(Phase::PortalVenous, &follow.portal)] };
    let fm = measure_visit(&pv_only, &opts).unwrap();
    assert!(fm.parts.iter().all(|p| p.is_none()), "viable and necrotic need the arterial phase");
    // the dense core: the truth's voxel count, and what the full measurement finds
    let voxel_ml = 2.5e-3;
    assert!(
        (fm.lipiodol_ml[0] - follow.counts[2] as f64 * voxel_ml).abs() < 1e-9,
        "{} vs {}",
        fm.lipiodol_ml[0],
        follow.counts[2] as f64 * voxel_ml
    );
    assert!((fm.lipiodol_ml[0] - with_art.parts[0].as_ref().unwrap().lipiodol_ml).abs() < 1e-9);
    assert_eq!(fm.parts_mask.data.iter().filter(|&&l| l == hepaview::response::LIPIODOL).count(), follow.counts[2]);
    let same = |p: Lps| p;
    let pairs = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    let r = assess("before", &bm, "after", &fm, &pairs, &opts);
    assert_eq!(r.lesions[0].followup_lipiodol_ml, Some(fm.lipiodol_ml[0]));
    assert!(r.mrecist.is_none());
}

/// The full-size phantom pair end to end in memory: the treated HCC's parts against the
/// phantom's truth (the demo's default grid: 1.5 × 1.5 × 2.5 mm).
#[test]
fn treated_hcc_parts_on_the_phantom_pair_are_within_five_percent() {
    use hepaview::phantom::{make_phantom, PhantomOptions};
    use hepaview::study::analysis::{align_phases, compare_visits, Alignment};
    use hepaview::study::Study;
    let opts = PhantomOptions::default();
    let truth = make_phantom(&opts.follow_up());
    let treated = truth.lesions.iter().find(|l| l.parts_ml.is_some()).unwrap().parts_ml.unwrap();
    let base = Study::demo(&opts);
    let follow = Study::demo(&opts.follow_up());
    let aligned = |s: &Study| {
        let mask = s.labels.as_ref().unwrap().mask.clone();
        let phases = align_phases(
            s,
            &mask.geometry,
            &Alignment::Register(hepaview::register::Params::default()),
            None,
            &|_, _| true,
        )
        .unwrap();
        (mask, phases)
    };
    let (bm, bp) = aligned(&base);
    let (fm, fp) = aligned(&follow);
    let c =
        compare_visits("baseline", &bp, &bm, "follow-up", &fp, &fm, &ResponseOptions::default(), &|_, _| true).unwrap();
    // after the affine, Demons on the liver refines the mapping without folding it
    let d = c.liver_demons.as_ref().expect("Demons on the liver ran");
    assert!(d.folding.min_jacobian > 0.0 && d.rmsd_after_hu <= d.rmsd_before_hu, "{d:?}");
    let hcc = c.response.lesions.iter().find(|l| l.pairing.baseline == Some(1)).unwrap();
    assert_eq!(hcc.pairing.followup, Some(1));
    let p = hcc.followup_parts.as_ref().unwrap();
    let got = [p.viable_ml, p.necrotic_ml, p.lipiodol_ml];
    eprintln!("treated HCC parts (viable, necrotic, lipiodol) mL: measured {got:?}, truth {treated:?}");
    for (g, t) in got.iter().zip(&treated) {
        assert!((g / t - 1.0).abs() <= 0.05, "measured {got:?} vs truth {treated:?}");
    }
    assert_eq!(c.response.recist.category, Category::PD);
    // alignment of the visits against the pose truth, over the lesion centres
    let want = hepaview::phantom::follow_up_pose().inverse().unwrap();
    for l in &make_phantom(&opts).lesions {
        let (a, b) = (c.transform.apply(l.centre_mm), want.apply(l.centre_mm));
        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        assert!(d < 1.5, "{:?} centre off by {d:.2} mm", l.kind);
    }
}

/// The follow-up added to the viewer's study lands on the baseline's anatomy: the cyst,
/// unchanged between the visits, reads as water at its baseline position in the aligned
/// follow-up, and each follow-up phase sits next to its baseline phase.
#[test]
fn a_follow_up_added_for_reading_is_aligned_to_the_baseline() {
    use hepaview::phantom::{make_phantom, LesionKind, PhantomOptions};
    use hepaview::study::Study;
    use hepaview::volume::Interp;
    let opts = PhantomOptions::small();
    let mut base = Study::demo(&opts);
    let follow = Study::demo(&opts.follow_up());
    hepaview::study::analysis::add_follow_up(&mut base, &follow, "20260316", &|_, _| true).unwrap();
    let names: Vec<String> = base.phases.iter().map(|p| p.description.clone()).collect();
    assert_eq!(base.phases.len(), 6, "{names:?}");
    assert!(names[1].starts_with("FOLLOW-UP 20260316 · arterial"), "{names:?}");
    assert!(names[3].starts_with("FOLLOW-UP 20260316 · portal venous"), "{names:?}");
    assert_eq!(
        base.phases[base.fixed_index()].description,
        names[2],
        "the baseline portal venous phase stays the fixed one"
    );
    let truth = make_phantom(&opts);
    let cyst = truth.lesions.iter().find(|l| l.kind == LesionKind::Cyst).unwrap();
    let fu_pv = &base.phases[3].volume;
    let hu = fu_pv.sample_world(cyst.centre_mm, Interp::Linear).unwrap();
    assert!(hu.abs() < 40.0, "the cyst's centre reads {hu} HU in the aligned follow-up");
    // and without alignment it would not: the patient moved by centimetres
    let raw =
        follow.phases[follow.fixed_index()].volume.sample_world(cyst.centre_mm, Interp::Linear).unwrap_or(-1000.0);
    assert!(raw.abs() > 40.0, "the unaligned follow-up has something else there ({raw} HU)");
}

#[test]
fn a_lesion_split_by_hand_adds_its_fragments() {
    let opts = ResponseOptions::default();
    let base = build(&[A], [0.0; 3]);
    // after treatment A broke into two parts, 7 mm either side of its old centre
    let left = Lesion { centre: [A.centre[0] - 7.0, A.centre[1], A.centre[2]], radius: 4.5, ..A };
    let right = Lesion { centre: [A.centre[0] + 7.0, A.centre[1], A.centre[2]], radius: 4.5, ..A };
    let follow = build(&[left, right], [0.0; 3]);
    let bm = measure_visit(&visit(&base, "before"), &opts).unwrap();
    let fm = measure_visit(&visit(&follow, "after"), &opts).unwrap();
    assert_eq!(fm.report.lesions.len(), 2);
    let same = |p: Lps| p;
    let auto = match_lesions(&bm, &base.mask.geometry, &fm, &follow.mask.geometry, &same, &opts);
    let r = assess("before", &bm, "after", &fm, &auto, &opts);
    assert_eq!(r.recist.category, Category::PD, "one matched, the other counted new: {}", r.recist.reason);

    let split = hepaview::response::split_lesion(&auto, 1, &[1, 2], 1, 2);
    assert_eq!(split.len(), 2);
    assert!(split.iter().all(|p| p.baseline == Some(1)));
    let r = assess("before", &bm, "after", &fm, &split, &opts);
    let t = &r.recist.targets[0];
    assert_eq!(t.followup_fragments, vec![1, 2]);
    let sum: f64 = fm.report.lesions.iter().map(|l| l.recist.long_axis_mm).sum();
    assert!((t.followup_mm - sum).abs() < 1e-9, "RECIST adds the fragments' diameters: {} vs {sum}", t.followup_mm);
    assert_eq!(r.recist.new_lesions, 0);
    assert_ne!(r.recist.category, Category::PD, "{}", r.recist.reason);
    // each row's change is that of both fragments together
    let both: f64 = fm.report.lesions.iter().map(|l| l.volume_ml).sum();
    let want = 100.0 * (both - r.lesions[0].baseline_ml) / r.lesions[0].baseline_ml;
    assert!(r.lesions.iter().all(|l| (l.change_percent.unwrap() - want).abs() < 1e-9));
    // splitting back into one part restores a one-to-one pairing, the other part new
    let one = hepaview::response::split_lesion(&split, 1, &[1], 1, 2);
    assert_eq!(assess("before", &bm, "after", &fm, &one, &opts).recist.new_lesions, 1);
}
