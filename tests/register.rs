//! Registration end to end on generated volumes with a known answer: a rigid shift, the
//! phantom's breathing warp, symmetry, a mask, and inputs that must be refused.

use hepaview::io::phase::Phase;
use hepaview::phantom::{make_phantom, PhantomOptions};
use hepaview::register::{self, metrics, no_progress, Params, RegisterError, Variant};
use hepaview::volume::{CtVolume, Field, Geometry, Interp, Mask, Volume};
use ndarray::Array3;

/// A body-like analytic image: an ellipse of soft tissue with a few bright and dark blobs.
fn body(x: [f64; 3]) -> f64 {
    let r = (x[0] / 80.0).powi(2) + (x[1] / 60.0).powi(2);
    if r > 1.0 {
        return -1000.0;
    }
    let blob = |c: [f64; 3], s: f64, a: f64| {
        a * (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2) + (x[2] - c[2]).powi(2)) / (2.0 * s * s)).exp()
    };
    40.0 + blob([20.0, -10.0, 0.0], 12.0, 120.0)
        + blob([-30.0, 15.0, 10.0], 8.0, 200.0)
        + blob([5.0, 25.0, -15.0], 10.0, -90.0)
        + blob([-10.0, -25.0, 20.0], 6.0, 300.0)
        + 30.0 * (x[0] / 9.0).sin() * (x[1] / 11.0).cos()
        + 25.0 * (x[2] / 8.0 + x[0] / 15.0).sin()
}

fn render(g: &Geometry, f: impl Fn([f64; 3]) -> f64 + Sync) -> CtVolume {
    let data =
        Array3::from_shape_fn(g.shape, |(k, j, i)| f(g.index_to_world([i as f64, j as f64, k as f64])).round() as i16);
    Volume::new(data, g.clone())
}

fn small_params() -> Params {
    Params {
        levels: vec![
            register::LevelPlan { factor: 2.0, iterations: 40 },
            register::LevelPlan { factor: 1.0, iterations: 20 },
        ],
        ..Params::default()
    }
}

fn body_mask(v: &CtVolume) -> Mask {
    Volume::new(v.data.mapv(|h| (h > -400) as u8), v.geometry.clone())
}

#[test]
fn a_known_shift_is_recovered() {
    let g = Geometry::axis_aligned([24, 56, 64], [4.0, 3.0, 3.0], [-96.0, -84.0, -46.0]);
    let t = [2.4, -1.8, 3.0]; // mm, moving(x + t) = fixed(x)
    let fixed = render(&g, body);
    let moving = render(&g, |x| body([x[0] - t[0], x[1] - t[1], x[2] - t[2]]));
    let reg = register::register_ct(&fixed, &moving, None, &small_params(), &no_progress).expect("registers");
    let mut truth = Field::zeros(g.clone());
    for (c, &tc) in t.iter().enumerate() {
        truth.data.index_axis_mut(ndarray::Axis(3), c).fill(tc as f32);
    }
    // judged inside the body, away from the top and bottom slices where the shift leaves no data
    let mut inner = body_mask(&fixed);
    for k in [0, 1, 22, 23] {
        inner.data.index_axis_mut(ndarray::Axis(0), k).fill(0);
    }
    let before = metrics::endpoint_error(&Field::zeros(g.clone()), &truth, Some(&inner));
    let after = metrics::endpoint_error(&reg.field, &truth, Some(&inner));
    assert!(before.median > 4.0);
    assert!(
        after.median < 0.5,
        "median error {:.3} mm after, {:.3} before; {:?}",
        after.median,
        before.median,
        reg.report
    );
    assert!(
        reg.report.rmsd_after_hu < 0.5 * reg.report.rmsd_before_hu,
        "{:?}",
        (reg.report.rmsd_before_hu, reg.report.rmsd_after_hu)
    );
    assert!(reg.report.folding.min_jacobian > 0.0);
    // the global step found the shift on its own (to within a coarse voxel)
    let pre = reg.report.prealign_mm.expect("phase correlation trusted here");
    for c in 0..3 {
        assert!((pre[c] - t[c]).abs() < 2.0, "prealign {pre:?} vs {t:?}");
    }
}

fn phantom_case() -> (hepaview::phantom::Phantom, PhantomOptions) {
    // a 3 mm version of the clinical phantom keeps the test quick but the warp several voxels
    let o = PhantomOptions {
        portal_venous_grid: Geometry::axis_aligned([40, 96, 96], [5.0, 4.0, 4.0], [-190.0, -190.0, -300.0]),
        arterial_grid: Geometry::axis_aligned([38, 96, 96], [5.0, 4.0, 4.0], [-190.0, -190.0, -295.0]),
        delayed_grid: Geometry::axis_aligned([40, 90, 90], [5.0, 4.2, 4.2], [-189.0, -189.0, -300.0]),
        supersample: [2, 2, 2],
        ..PhantomOptions::default()
    };
    (make_phantom(&o), o)
}

#[test]
fn the_phantom_breathing_warp_is_recovered_without_folding() {
    let (ph, _) = phantom_case();
    let fixed = &ph.phase(Phase::PortalVenous).unwrap().volume;
    let liver = Volume::new(ph.labels.data.mapv(|l| (l > 0) as u8), ph.labels.geometry.clone());
    for phase in [Phase::Arterial, Phase::Delayed] {
        let moving = &ph.phase(phase).unwrap().volume;
        for variant in [Variant::Symmetric, Variant::Diffeomorphic] {
            let params = Params { variant, ..small_params() };
            let reg = register::register_ct(fixed, moving, None, &params, &no_progress).expect("registers");
            let truth = ph.true_field(phase).unwrap();
            let before = metrics::endpoint_error(&Field::zeros(truth.geometry.clone()), truth, Some(&liver));
            let after = metrics::endpoint_error(&reg.field, truth, Some(&liver));
            assert!(
                // 4–5 mm voxels: a third of a voxel is the floor the test asks for
                after.median < 0.35 * before.median && after.median < 1.5,
                "{phase:?} {variant:?}: liver median error {:.2} mm after, {:.2} before",
                after.median,
                before.median
            );
            assert!(reg.report.folding.folded_voxels == 0, "{phase:?} {variant:?} folds: {:?}", reg.report.folding);
            assert!(reg.report.ncc_after > reg.report.ncc_before);
            // the liver carried into the moving frame by our field overlaps the one carried by
            // the true field (warping labels through the inverse of each)
            let ours = register::warp_volume(&ph.labels, &register::invert(&reg.field, 30).0, Interp::Nearest, 0);
            let true_labels = register::warp_volume(&ph.labels, &register::invert(truth, 30).0, Interp::Nearest, 0);
            let stay = metrics::dice(&ph.labels, &true_labels, 1);
            let dice = metrics::dice(&ours, &true_labels, 1);
            assert!(dice > 0.93 && dice > stay, "{phase:?} {variant:?}: liver Dice {dice:.3} (unregistered {stay:.3})");
        }
    }
}

#[test]
fn forward_and_backward_registrations_are_inverse_consistent() {
    let (ph, _) = phantom_case();
    let pv = &ph.phase(Phase::PortalVenous).unwrap().volume;
    // the delayed phase resampled onto the PV grid, so both directions share one grid
    let del = ph.phase(Phase::Delayed).unwrap().volume.resample_to(&pv.geometry, Interp::Linear, -1024);
    let p = small_params();
    let ab = register::register_ct(pv, &del, None, &p, &no_progress).unwrap().field;
    let ba = register::register_ct(&del, pv, None, &p, &no_progress).unwrap().field;
    // φ_ab ∘ φ_ba should be the identity where there is anatomy
    let round = register::compose(&ab, &ba);
    let liver = Volume::new(ph.labels.data.mapv(|l| (l > 0) as u8), ph.labels.geometry.clone());
    let err = metrics::endpoint_error(&round, &Field::zeros(round.geometry.clone()), Some(&liver));
    let size = metrics::endpoint_error(&ab, &Field::zeros(ab.geometry.clone()), Some(&liver));
    assert!(err.median < 0.25 * size.median, "round trip {:.2} mm vs displacement {:.2} mm", err.median, size.median);
}

#[test]
fn a_mask_confines_the_forces() {
    let g = Geometry::axis_aligned([20, 48, 64], [4.0, 3.0, 3.0], [-96.0, -72.0, -38.0]);
    let t = [0.0, 0.0, 3.0];
    let fixed = render(&g, body);
    let moving = render(&g, |x| body([x[0] - t[0], x[1] - t[1], x[2] - t[2]]));
    // forces only in the patient's right part; the rest moves only through smoothing
    let mask = Volume::new(Array3::from_shape_fn(g.shape, |(_, _, i)| (i < 20) as u8), g.clone());
    // the whole grid, to see how the field behaves away from the mask
    let params = Params { prealign: false, mask_box_margin_mm: None, ..small_params() };
    let reg = register::register_ct(&fixed, &moving, Some(&mask), &params, &no_progress).unwrap();
    let z_at = |i: usize| reg.field.data[[10, 24, i, 2]];
    assert!(z_at(8) > 1.5, "inside the mask the shift is found: {}", z_at(8));
    // outside, the field only spreads by the diffusion smoothing, so it fades with distance
    assert!(z_at(60).abs() < 0.4 * z_at(8), "far outside the mask less moves: {} vs {}", z_at(60), z_at(8));
    assert_eq!(reg.report.evaluation_voxels, mask.data.iter().filter(|&&m| m != 0).count());

    // by default Demons runs on the mask's box only (grown by 3 σ of the coarsest
    // smoothing): inside the mask the answer stays within a tenth of the 3 mm shift (the
    // pyramid's coarse grids fall differently on the smaller box; a box that cut the field
    // off would be wrong by the whole shift)
    let boxed = register::register_ct(
        &fixed,
        &moving,
        Some(&mask),
        &Params { prealign: false, ..small_params() },
        &no_progress,
    )
    .unwrap();
    let mut worst = 0f32;
    for ((k, j, i), &m) in mask.data.indexed_iter() {
        if m != 0 {
            for c in 0..3 {
                worst = worst.max((boxed.field.data[[k, j, i, c]] - reg.field.data[[k, j, i, c]]).abs());
            }
        }
    }
    assert!(worst < 0.3, "inside the mask the boxed field differs by {worst} mm");
}

#[test]
fn bad_inputs_are_refused_with_reasons() {
    let g = Geometry::axis_aligned([10, 32, 32], [4.0, 3.0, 3.0], [0.0; 3]);
    let fixed = render(&g, body);
    let p = small_params();

    let far = Geometry { origin_mm: [500.0, 500.0, 500.0], ..g.clone() };
    let e = register::register_ct(&fixed, &render(&far, body), None, &p, &no_progress).err().expect("no overlap");
    assert!(matches!(e, RegisterError::NoOverlap { .. }), "{e}");
    assert!(e.to_string().contains("do not overlap"));

    let coarse = Geometry::axis_aligned([2, 32, 32], [40.0, 3.0, 3.0], [0.0; 3]);
    let e = register::register_ct(&fixed, &render(&coarse, body), None, &p, &no_progress).err().expect("spacing");
    assert!(matches!(e, RegisterError::SpacingMismatch { .. }), "{e}");

    let flat = Volume::new(Array3::from_elem(g.shape, 40i16), g.clone());
    let e = register::register_ct(&fixed, &flat, None, &p, &no_progress).err().expect("constant");
    assert!(matches!(e, RegisterError::Constant { which: "moving", .. }), "{e}");

    let bad = Params { levels: vec![], ..Params::default() };
    assert!(matches!(
        register::register_ct(&fixed, &fixed, None, &bad, &no_progress),
        Err(RegisterError::BadParams(_))
    ));

    let wrong_mask =
        Volume::new(Array3::from_elem([3, 3, 3], 1u8), Geometry::axis_aligned([3, 3, 3], [1.0; 3], [0.0; 3]));
    assert!(matches!(
        register::register_ct(&fixed, &fixed, Some(&wrong_mask), &p, &no_progress),
        Err(RegisterError::BadParams(_))
    ));

    // cancelling stops with Cancelled, not a half-done field
    let e = register::register_ct(&fixed, &fixed, None, &p, &|_, _| false).err().expect("cancelled");
    assert!(matches!(e, RegisterError::Cancelled));

    // identical images: nothing moves, nothing is NaN
    let same = register::register_ct(&fixed, &fixed, None, &p, &no_progress).unwrap();
    assert!(same.field.data.iter().all(|v| v.is_finite() && v.abs() < 0.05));
}
