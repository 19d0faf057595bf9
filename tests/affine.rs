//! Rigid and affine registration recover known transforms between generated studies, the
//! kind of misplacement two visits on different days give (centimetres, degrees).

use hepaview::phantom::{make_phantom, PhantomOptions};
use hepaview::register::affine::{register_affine, resample_affine, AffineParams, AffineTransform, Model};
use hepaview::register::no_progress;
use hepaview::volume::{mat_mul, CtVolume, Geometry};

fn pv() -> CtVolume {
    let opts = PhantomOptions {
        portal_venous_grid: Geometry::axis_aligned([56, 128, 128], [4.0, 3.0, 3.0], [-190.5, -190.5, -310.0]),
        arterial_grid: Geometry::axis_aligned([8, 16, 16], [8.0, 24.0, 24.0], [-180.0, -180.0, -300.0]),
        delayed_grid: Geometry::axis_aligned([8, 16, 16], [8.0, 24.0, 24.0], [-180.0, -180.0, -300.0]),
        supersample: [2, 2, 2],
        noise_sigma_hu: 0.0,
        ..PhantomOptions::small()
    };
    let p = make_phantom(&opts);
    p.phases.into_iter().find(|p| p.name == hepaview::io::phase::Phase::PortalVenous).unwrap().volume
}

/// The middle of `v` (a margin of `m` voxels per side, `[z, y, x]`): the fixed image, so
/// every body point of it still lands on real data of a moved copy of the whole volume
/// (a moved copy has no data beyond the original's edges, unlike a real second scan).
fn crop(v: &CtVolume, m: [usize; 3]) -> CtVolume {
    let [nz, ny, nx] = v.geometry.shape;
    let data = v.data.slice(ndarray::s![m[0]..nz - m[0], m[1]..ny - m[1], m[2]..nx - m[2]]).to_owned();
    let mut g = v.geometry.clone();
    g.origin_mm = v.geometry.index_to_world([m[2] as f64, m[1] as f64, m[0] as f64]);
    g.shape = [nz - 2 * m[0], ny - 2 * m[1], nx - 2 * m[2]];
    CtVolume::new(data, g)
}

/// Mean and max distance (mm) between where two transforms send the fixed body voxels.
fn disagreement(a: &AffineTransform, b: &AffineTransform, fixed: &CtVolume) -> (f64, f64) {
    let [nz, ny, nx] = fixed.geometry.shape;
    let (mut sum, mut max, mut n) = (0.0, 0.0f64, 0usize);
    for k in (0..nz).step_by(2) {
        for j in (0..ny).step_by(4) {
            for i in (0..nx).step_by(4) {
                if fixed.data[[k, j, i]] > -500 {
                    let x = fixed.geometry.index_to_world([i as f64, j as f64, k as f64]);
                    let (p, q) = (a.apply(x), b.apply(x));
                    let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
                    sum += d;
                    max = max.max(d);
                    n += 1;
                }
            }
        }
    }
    (sum / n as f64, max)
}

fn rotation_between_deg(a: &AffineTransform, b: &AffineTransform) -> f64 {
    let bt = [0, 1, 2].map(|r| [0, 1, 2].map(|c| b.matrix[c][r]));
    AffineTransform { matrix: mat_mul(&a.matrix, &bt), ..*a }.rotation_deg()
}

#[test]
fn rigid_recovers_a_known_shift_and_rotation() {
    let whole = pv();
    let fixed = crop(&whole, [8, 16, 16]);
    let centre = fixed.geometry.centre_mm();
    let truth =
        AffineTransform::rigid([3f64.to_radians(), -2f64.to_radians(), 4f64.to_radians()], [25.0, -15.0, 12.0], centre);
    // the second visit: the whole volume seen through the inverse, on a grid of its own
    let moving_grid = Geometry::axis_aligned([60, 124, 124], [4.0, 3.2, 3.2], [-200.0, -210.0, -310.0]);
    let moving = resample_affine(&whole, &moving_grid, &truth.inverse().unwrap());
    let start = AffineTransform::identity(centre);
    let (before, _) = disagreement(&start, &truth, &fixed);
    assert!(before > 20.0, "the test must start far off ({before:.1} mm)");

    let r = register_affine(&fixed, &moving, &AffineParams::default(), None, &no_progress).unwrap();
    let (mean, max) = disagreement(&r.transform, &truth, &fixed);
    let angle = rotation_between_deg(&r.transform, &truth);
    // the optimum found is at least as good as the truth by the metric itself
    let at = |t| hepaview::register::affine::ncc_at(&fixed, &moving, t, 0.0, -500.0).unwrap();
    assert!(at(&r.transform) >= at(&truth) - 1e-4);
    eprintln!("rigid: mean {mean:.3} mm, max {max:.3} mm, rotation error {angle:.3} deg, NCC {:.3} -> {:.3}, iterations {:?}, {:.1} s", r.ncc_before, r.ncc_after, r.iterations, r.seconds);
    assert!(mean < 0.5 && max < 1.0, "mean {mean:.3} mm, max {max:.3} mm");
    assert!(angle < 0.5, "rotation off by {angle:.3} deg");
    assert!(r.ncc_after > r.ncc_before);
}

#[test]
fn affine_recovers_a_known_scale_and_shear() {
    let whole = pv();
    let fixed = crop(&whole, [8, 16, 16]);
    let centre = fixed.geometry.centre_mm();
    let mut truth = AffineTransform::rigid([0.0, 0.0, 3f64.to_radians()], [-12.0, 8.0, 6.0], centre);
    // 4 % larger left-right, 3 % smaller front-back, a little shear
    let s = [[1.04, 0.02, 0.0], [0.0, 0.97, 0.0], [0.0, 0.0, 1.0]];
    truth.matrix = mat_mul(&truth.matrix, &s);
    let moving = resample_affine(&whole, &whole.geometry, &truth.inverse().unwrap());
    let rigid = register_affine(&fixed, &moving, &AffineParams::default(), None, &no_progress).unwrap();
    let params = AffineParams { model: Model::Affine, ..AffineParams::default() };
    let r = register_affine(&fixed, &moving, &params, Some(rigid.transform), &no_progress).unwrap();
    let (rigid_mean, _) = disagreement(&rigid.transform, &truth, &fixed);
    let (mean, max) = disagreement(&r.transform, &truth, &fixed);
    eprintln!("affine: rigid alone {rigid_mean:.3} mm; affine mean {mean:.3} mm, max {max:.3} mm, NCC {:.3} -> {:.3}, iterations {:?}, {:.1} s", r.ncc_before, r.ncc_after, r.iterations, r.seconds);
    assert!(mean < 0.5 && max < 1.5, "mean {mean:.3} mm, max {max:.3} mm");
    assert!(mean < rigid_mean / 2.0, "affine must beat rigid on a scaled study");
    // the same inputs give the same bits: the normal equations are summed over fixed
    // chunks in order (rayon's fold split where work stealing happened to, and the
    // follow-up alignment in compare.json changed in its last digits from run to run)
    for _ in 0..3 {
        let again = register_affine(&fixed, &moving, &params, Some(rigid.transform), &no_progress).unwrap();
        assert_eq!(again.transform, r.transform, "a second run gave other bits");
    }
}

#[test]
fn a_study_without_body_is_a_clear_error() {
    let fixed = pv();
    let air = CtVolume::filled(fixed.geometry.clone(), -1000);
    let e = register_affine(&fixed, &air, &AffineParams::default(), None, &no_progress).unwrap_err().to_string();
    assert!(e.contains("moving study has no voxels above"), "{e}");
}

/// A nudge by hand (turn about the head-foot axis through a pivot, then shift) composes
/// with the visit transform so that the point the turned-and-shifted image shows at
/// `R(x - p) + p + s` is the one the old image showed at `x` (R: a positive turn takes the
/// patient's left towards posterior).
#[test]
fn a_nudge_turns_then_shifts_the_follow_up_image() {
    let t = AffineTransform::rigid([0.03, -0.02, 0.08], [12.0, -7.0, 4.0], [5.0, -3.0, -200.0]);
    let (pivot, shift, deg) = ([20.0, -10.0, -180.0], [3.0, -2.0, 1.5], 7.0f64);
    let n = hepaview::study::analysis::nudge_visit_transform(&t, shift, deg, pivot);
    let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
    for x in [[0.0, 0.0, -200.0], [40.0, -25.0, -150.0], [-60.0, 30.0, -260.0]] {
        let d = [x[0] - pivot[0], x[1] - pivot[1], x[2] - pivot[2]];
        let y = [
            c * d[0] - s * d[1] + pivot[0] + shift[0],
            s * d[0] + c * d[1] + pivot[1] + shift[1],
            d[2] + pivot[2] + shift[2],
        ];
        let (a, b) = (n.apply(y), t.apply(x));
        let err = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        assert!(err < 1e-9, "{x:?}: {a:?} vs {b:?}");
    }
    // a pure shift leaves the matrix alone and moves the image by the shift
    let m = hepaview::study::analysis::nudge_visit_transform(&t, shift, 0.0, pivot);
    assert_eq!(m.matrix, t.matrix);
    let x = [10.0, 20.0, -190.0];
    let (a, b) = (m.apply([x[0] + shift[0], x[1] + shift[1], x[2] + shift[2]]), t.apply(x));
    assert!((0..3).all(|i| (a[i] - b[i]).abs() < 1e-9));
}
