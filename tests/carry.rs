//! A baseline lesion carried to the follow-up (issue 24, item 4), end to end on the
//! full-size phantom pair: the baseline lesion is outlined from a click at its centre, the
//! visits are aligned as the viewer and `compare` align them (`analysis::visit_transform`),
//! and the carried outline is scored against the follow-up's own lesion truth. The
//! hemangioma, gone at the follow-up, must be said not found, not flooded.
//!
//! Both visits are made without breathing and their phases resampled onto their portal
//! venous grids (what registration within a visit gives), as in `tests/outline.rs`; the
//! liver masks are binary (liver and lesions alike 1).

use std::sync::OnceLock;

use hepaview::follow_up::carry::{carry_lesion, measure_carry, Carried, Carry, CarryOptions};
use hepaview::io::phase::Phase;
use hepaview::outline::{outline_lesion, Found, OutlineOptions, Prompts};
use hepaview::phantom::{follow_up_pose, make_phantom, LesionKind, LesionTruth, Phantom, PhantomOptions};
use hepaview::register::affine::AffineTransform;
use hepaview::volume::{CtVolume, Interp, Lps, Mask};

struct Visit {
    ph: Phantom,
    phases: Vec<(Phase, CtVolume)>,
    liver: Mask,
}

struct Pair {
    base: Visit,
    follow: Visit,
    /// Baseline point → follow-up point, as the visit alignment found it.
    found: AffineTransform,
}

fn visit(opts: &PhantomOptions) -> Visit {
    let ph = make_phantom(opts);
    let grid = ph.labels.geometry.clone();
    let phases = ph.phases.iter().map(|p| (p.name, p.volume.resample_to(&grid, Interp::Linear, -1024))).collect();
    let liver = Mask::new(ph.labels.data.mapv(|l| (l != 0) as u8), grid);
    Visit { ph, phases, liver }
}

fn pv(v: &Visit) -> &CtVolume {
    &v.phases.iter().find(|(p, _)| *p == Phase::PortalVenous).expect("a portal venous phase").1
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let t = std::time::Instant::now();
        let opts = PhantomOptions { breathing_scale: 0.0, ..PhantomOptions::default() };
        let base = visit(&opts);
        let follow = visit(&opts.follow_up());
        eprintln!("phantom pair made in {:.1} s", t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let found = hepaview::study::analysis::visit_transform(pv(&base), pv(&follow), "follow-up", &|_, _| true)
            .expect("the visits align");
        let truth = follow_up_pose().inverse().expect("a rigid pose inverts");
        for l in &base.ph.lesions {
            let (a, b) = (found.apply(l.centre_mm), truth.apply(l.centre_mm));
            let err = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
            eprintln!("{:?}: the alignment puts its centre {err:.1} mm from the truth", l.kind);
        }
        eprintln!("visits aligned in {:.1} s", t.elapsed().as_secs_f64());
        Pair { base, follow, found }
    })
}

fn phases(v: &Visit) -> Vec<(Phase, &CtVolume)> {
    v.phases.iter().map(|(p, v)| (*p, v)).collect()
}

fn lesion(ph: &Phantom, kind: LesionKind) -> &LesionTruth {
    ph.lesions.iter().find(|l| l.kind == kind).unwrap_or_else(|| panic!("a {kind:?}"))
}

/// The follow-up's true voxels of the lesion centred at `centre` (radius `r`).
fn truth(v: &Visit, centre: Lps, r: f64) -> Vec<bool> {
    let g = &v.ph.labels.geometry;
    v.ph.labels
        .data
        .indexed_iter()
        .map(|((k, j, i), &l)| {
            let p = g.index_to_world([i as f64, j as f64, k as f64]);
            l == 2 && (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum::<f64>().sqrt() <= r + 3.0
        })
        .collect()
}

fn dice(m: &Mask, t: &[bool]) -> f64 {
    let (mut both, mut a, mut b) = (0usize, 0usize, 0usize);
    for (&x, &y) in m.data.iter().zip(t) {
        let x = x != 0;
        both += (x && y) as usize;
        a += x as usize;
        b += y as usize;
    }
    2.0 * both as f64 / (a + b).max(1) as f64
}

/// The baseline lesion outlined from a click at its centre, carried through `t`.
fn carry(p: &Pair, l: &LesionTruth, t: &AffineTransform) -> Carry {
    let prompts = Prompts { include: vec![l.centre_mm], ..Prompts::default() };
    let base = outline_lesion(&phases(&p.base), Some(&p.base.liver), &prompts, &OutlineOptions::default())
        .unwrap_or_else(|e| panic!("{:?} on the baseline: {e}", l.kind));
    let t0 = std::time::Instant::now();
    let c = carry_lesion(&base.mask, t, &phases(&p.follow), Some(&p.follow.liver), &CarryOptions::default())
        .unwrap_or_else(|e| panic!("{:?}: {e}", l.kind));
    eprintln!(
        "{:?}: baseline {:.2} mL, carried {:.2} mL: {} ({:.2} s)",
        l.kind,
        base.volume_ml,
        c.mapped_ml,
        c.carried.words(),
        t0.elapsed().as_secs_f64()
    );
    c
}

/// The follow-up's lesion of `kind`: where it lies now and its true voxels.
fn now(p: &Pair, kind: LesionKind) -> (&LesionTruth, Vec<bool>) {
    let l = lesion(&p.follow.ph, kind);
    (l, truth(&p.follow, l.centre_mm, l.radius_mm))
}

#[test]
fn unchanged_lesions_carried_to_the_follow_up_are_outlined_there() {
    let p = pair();
    let mut failures = Vec::new();
    for kind in [LesionKind::Cyst, LesionKind::Metastasis] {
        let c = carry(p, lesion(&p.base.ph, kind), &p.found);
        let (l, t) = now(p, kind);
        assert_eq!(c.carried, Carried::Outlined, "{kind:?}: {}", c.carried.words());
        let d = dice(c.mask.as_ref().expect("an outline"), &t);
        let d_mapped = dice(&c.mapped, &t);
        eprintln!("  Dice against the follow-up's truth: outline {d:.3}, mapped baseline outline {d_mapped:.3}");
        if d < 0.85 {
            failures.push(format!("{kind:?}: Dice {d:.3}"));
        }
        let row = measure_carry(&c, &phases(&p.follow), Some(&p.follow.liver)).expect("measured").expect("a row");
        assert!(
            (row.volume_ml - l.volume_ml).abs() < 0.3 * l.volume_ml,
            "{kind:?}: {} vs {} mL",
            row.volume_ml,
            l.volume_ml
        );
    }
    assert!(failures.is_empty(), "under 0.85: {failures:?}");
}

/// The same carry without the alignment (the identity, as if the visits lay alike) misses:
/// the patient moved 2-3 cm between visits, so the test above rests on the alignment.
#[test]
fn without_the_alignment_the_carry_misses() {
    let p = pair();
    let l = lesion(&p.base.ph, LesionKind::Cyst);
    let c = carry(p, l, &AffineTransform::identity(l.centre_mm));
    let (_, t) = now(p, LesionKind::Cyst);
    let d = c.mask.as_ref().map_or(0.0, |m| dice(m, &t));
    eprintln!("  Dice without the alignment: {d:.3}");
    assert!(d < 0.5, "Dice {d:.3} without the alignment: the test cannot tell a broken carry");
}

/// The HCC after TACE (12 mm, lipiodol core, necrosis, viable rim) is outlined as it is now,
/// not as it was at the baseline (17 mm).
#[test]
fn a_treated_lesion_is_outlined_as_it_is_now() {
    let p = pair();
    let c = carry(p, lesion(&p.base.ph, LesionKind::Hcc), &p.found);
    let (l, t) = now(p, LesionKind::TreatedHcc);
    let m = c.mask.as_ref().unwrap_or_else(|| panic!("{}", c.carried.words()));
    let (d, d_mapped) = (dice(m, &t), dice(&c.mapped, &t));
    eprintln!("  treated HCC ({:.2} mL now): Dice {d:.3}, the mapped baseline outline's {d_mapped:.3}", l.volume_ml);
    assert_eq!(c.carried, Carried::Outlined, "{}", c.carried.words());
    assert!(d > 0.8 && d > d_mapped + 0.1, "Dice {d:.3} (mapped {d_mapped:.3})");
}

/// The hemangioma is gone at the follow-up: the carry says not found at the carried position
/// (liver parenchyma there) and offers nothing, rather than growing into the liver.
#[test]
fn a_lesion_gone_at_the_follow_up_is_not_found() {
    let p = pair();
    let c = carry(p, lesion(&p.base.ph, LesionKind::Hemangioma), &p.found);
    match &c.carried {
        Carried::NotFound { found, .. } => assert_eq!(*found, Found::Parenchyma),
        other => panic!("the gone hemangioma gave {other:?}"),
    }
    assert!(c.mask.is_none(), "nothing is offered as lesion");
    assert!(c.carried.words().contains("not found at the carried position"), "{}", c.carried.words());
    assert!(measure_carry(&c, &phases(&p.follow), Some(&p.follow.liver)).expect("no error").is_none());
}
