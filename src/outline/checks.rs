//! What a click landed on, before anything grows from it: outside the liver, on the liver's
//! edge, on a vessel (bright in the reference phase and tube-shaped), or on plain
//! parenchyma. Each refusal says what was found there, with its numbers.

use ndarray::Array3;

use super::region::{flood, WorkBox};
use super::stats::{ball, chi2_999, dist2, Features, Signature, DENSE_HU, FAT_HU};
use super::{Found, OutlineOptions};

/// Plain words for a HU value seen outside the liver.
pub fn tissue_words(hu: f32) -> &'static str {
    if hu < -500.0 {
        "air or lung"
    } else if hu < FAT_HU {
        "fat"
    } else if hu > DENSE_HU {
        "bone or dense material"
    } else {
        "soft tissue"
    }
}

/// What a click outside the liver is on.
pub fn outside_words(raw_hu: f32, ref_name: &str, has_mask: bool) -> String {
    format!(
        "{raw_hu:.0} HU in the {ref_name} phase ({}), {}; click inside the liver",
        tissue_words(raw_hu),
        if has_mask { "outside the liver mask" } else { "not liver tissue by its HU" }
    )
}

/// The checks of one include point; `Err((found, message))` refuses it.
#[allow(clippy::too_many_arguments)]
pub fn check_click(
    f: &Features,
    b: &WorkBox,
    domain: &Array3<bool>,
    has_mask: bool,
    reference: (usize, &str),
    par: &Signature,
    seed: &Signature,
    click: [usize; 3],
    spacing_mm: [f64; 3],
    opts: &OutlineOptions,
) -> Result<(), (Found, String)> {
    let (r, ref_name) = reference;
    if !domain[click] {
        return Err((Found::OutsideLiver, outside_words(f.ref_raw[click], ref_name, has_mask)));
    }
    let near = ball(b, spacing_mm, click, opts.edge_radius_mm, |_| true);
    let outside = near.iter().filter(|&&v| !domain[v]).count();
    let frac = outside as f64 / near.len().max(1) as f64;
    if frac > opts.edge_fraction {
        return Err((
            Found::LiverEdge,
            format!(
                "{:.0} % of the voxels within {} mm are not liver{}; click on the lesion's inside, away from the liver's surface",
                100.0 * frac,
                opts.edge_radius_mm,
                if has_mask { " (by the mask)" } else { " (fat, air or dense by HU)" }
            ),
        ));
    }
    if let Some(msg) = vessel(f, r, ref_name, par, seed, click, spacing_mm, opts) {
        return Err((Found::Vessel, msg));
    }
    let n = f.dims();
    let d2 = dist2(&seed.median_hu, &par.median_hu, &par.sd_hu);
    if d2 < chi2_999(n) {
        let per: Vec<String> = (0..n)
            .map(|p| {
                format!("{:.0} HU vs the liver's {:.0} ± {:.1}", seed.median_hu[p], par.median_hu[p], par.sd_hu[p])
            })
            .collect();
        return Err((
            Found::Parenchyma,
            format!(
                "the click's surroundings do not differ from the liver ({}; distance {:.1} SD, a lesion needs {:.1}); nothing to outline",
                per.join(", "),
                d2.sqrt(),
                chi2_999(n).sqrt()
            ),
        ));
    }
    Ok(())
}

/// A vessel: the click is brighter than the parenchyma in the reference phase by more than
/// the outlier distance, and the bright voxels connected to it within
/// `vessel_radius_mm` form a tube (second principal spread under `tubular_ratio` of the
/// first). A bright blob (a hypervascular lesion, a filled-in haemangioma) is not a tube.
#[allow(clippy::too_many_arguments)]
fn vessel(
    f: &Features,
    r: usize,
    ref_name: &str,
    par: &Signature,
    seed: &Signature,
    click: [usize; 3],
    sp: [f64; 3],
    opts: &OutlineOptions,
) -> Option<String> {
    let (m, sd, s) = (par.median_hu[r], par.sd_hu[r], seed.median_hu[r]);
    if s - m <= chi2_999(1).sqrt() * sd {
        return None;
    }
    let thr = 0.5 * (m + s);
    let fr = &f.phases[r];
    let r2 = opts.vessel_radius_mm * opts.vessel_radius_mm;
    let within = |v: [usize; 3]| (0..3).map(|a| ((v[a] as f64 - click[a] as f64) * sp[a]).powi(2)).sum::<f64>() <= r2;
    // the bright structure need not stay inside the liver mask (vessels leave it)
    let comp = flood(fr.dim().into(), &[click], |v| fr[v] > thr && within(v));
    let pts: Vec<[f64; 3]> = comp
        .indexed_iter()
        .filter(|(_, &c)| c)
        .map(|((k, j, i), _)| [k as f64 * sp[0], j as f64 * sp[1], i as f64 * sp[2]])
        .collect();
    let (wide, long) = tube(&pts, opts.tubular_ratio)?;
    Some(format!(
        "{s:.0} HU in the {ref_name} phase, {:.0} HU above the liver's {m:.0}, in a tube about {wide:.0} mm wide and at least {long:.0} mm long; click on the lesion instead",
        s - m
    ))
}

/// Width and length (mm) of points (mm) shaped as a tube: at least 8 of them, their second
/// principal variance under `max_ratio` of their first. The width is the diameter of a
/// disc with that second spread (4 SD), the length that of a uniform rod with the first
/// (√12 SD).
fn tube(pts: &[[f64; 3]], max_ratio: f64) -> Option<(f64, f64)> {
    if pts.len() < 8 {
        return None;
    }
    let ev = principal_variances(pts);
    if ev[0] <= 0.0 || ev[1] / ev[0] >= max_ratio {
        return None;
    }
    Some((4.0 * ev[1].sqrt(), 12f64.sqrt() * ev[0].sqrt()))
}

/// A grown region this many times longer than it is wide (its first principal spread over
/// its second) is a tube, not a lesion, when it is also bright: liver lesions are round to
/// oval (rarely over 2:1), while a vessel branch followed along its length is long and thin.
const TUBE_LENGTH_TO_WIDTH: f64 = 3.0;

/// The check after growing, for what the click's neighbourhood did not show: a vessel
/// followed along its length (a long branch of a hepatic or portal vein, bright in the
/// reference phase) grows into a region shaped as a tube. `Some(message)` when the region's
/// median in the reference phase is brighter than the parenchyma by more than the outlier
/// distance (as in [`check_click`]) and its principal spreads are those of a tube.
pub fn bright_tube(
    f: &Features,
    r: usize,
    ref_name: &str,
    par: &Signature,
    region: &Array3<bool>,
    sp: [f64; 3],
) -> Option<String> {
    let mut hu: Vec<f32> = Vec::new();
    let mut pts: Vec<[f64; 3]> = Vec::new();
    for ((k, j, i), &x) in region.indexed_iter() {
        if x {
            hu.push(f.phases[r][[k, j, i]]);
            pts.push([k as f64 * sp[0], j as f64 * sp[1], i as f64 * sp[2]]);
        }
    }
    if pts.len() < 8 {
        return None;
    }
    hu.sort_by(f32::total_cmp);
    let median = hu[hu.len() / 2];
    let (m, sd) = (par.median_hu[r], par.sd_hu[r]);
    if median - m <= chi2_999(1).sqrt() * sd {
        return None;
    }
    let (wide, long) = tube(&pts, TUBE_LENGTH_TO_WIDTH.powi(-2))?;
    Some(format!(
        "what grew from the click is {median:.0} HU in the {ref_name} phase, {:.0} HU above the liver's {m:.0}, and shaped as a tube about {wide:.0} mm wide and {long:.0} mm long: a vessel, not a lesion; click on the lesion instead",
        median - m
    ))
}

/// The variances of points (mm) along their principal axes, largest first: a tube has one
/// far larger than the other two, a ball three alike.
fn principal_variances(pts: &[[f64; 3]]) -> [f64; 3] {
    sym3_eigenvalues(&crate::volume::covariance3(pts))
}

/// Eigenvalues of a symmetric 3 × 3 matrix, largest first (trigonometric closed form).
pub fn sym3_eigenvalues(a: &[[f64; 3]; 3]) -> [f64; 3] {
    let p1 = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    if p1 <= 1e-12 * (1.0 + q.abs()) {
        let mut e = [a[0][0], a[1][1], a[2][2]];
        e.sort_by(|x, y| y.total_cmp(x));
        return e;
    }
    let p2 = (a[0][0] - q).powi(2) + (a[1][1] - q).powi(2) + (a[2][2] - q).powi(2) + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    let b: [[f64; 3]; 3] =
        std::array::from_fn(|i| std::array::from_fn(|j| (a[i][j] - if i == j { q } else { 0.0 }) / p));
    let r = (crate::volume::det3(&b) / 2.0).clamp(-1.0, 1.0);
    let phi = r.acos() / 3.0;
    let e1 = q + 2.0 * p * phi.cos();
    let e3 = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    [e1, 3.0 * q - e1 - e3, e3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Liver at 110 ± 10 HU; `bright` voxels at 170 HU form the region.
    fn features_with(shape: [usize; 3], bright: impl Fn([usize; 3]) -> bool) -> (Features, Array3<bool>, Signature) {
        let region = Array3::from_shape_fn(shape, |(k, j, i)| bright([k, j, i]));
        let hu = region.mapv(|b| if b { 170.0 } else { 110.0 });
        let f = Features { phases: vec![hu.clone()], ref_raw: hu, covered: Array3::from_elem(shape, true) };
        let par = Signature { median_hu: vec![110.0], sd_hu: vec![10.0], voxels: 1000 };
        (f, region, par)
    }

    /// A bright branch 6 mm wide followed 60 mm along the slices is a vessel; a bright ball
    /// (a haemangioma, a hypervascular lesion) and a dark tube are not refused by it.
    #[test]
    fn a_bright_tube_is_a_vessel_and_a_bright_ball_or_dark_tube_is_not() {
        let sp = [5.0, 1.0, 1.0];
        let (f, tube, par) = features_with([14, 40, 40], |[k, j, i]| {
            (1..13).contains(&k) && (j as f64 - 20.0).hypot(i as f64 - 20.0) <= 3.0
        });
        let msg = bright_tube(&f, 0, "portal venous", &par, &tube, sp).expect("a bright tube is a vessel");
        assert!(msg.contains("a vessel"), "{msg}");
        let (f, ball, par) = features_with([14, 40, 40], |[k, j, i]| {
            ((k as f64 - 7.0) * 5.0).hypot((j as f64 - 20.0).hypot(i as f64 - 20.0)) <= 12.0
        });
        assert_eq!(bright_tube(&f, 0, "portal venous", &par, &ball, sp), None);
        let (mut f, tube, par) = features_with([14, 40, 40], |[k, j, i]| {
            (1..13).contains(&k) && (j as f64 - 20.0).hypot(i as f64 - 20.0) <= 3.0
        });
        f.phases[0].mapv_inplace(|v| if v > 150.0 { 50.0 } else { v });
        assert_eq!(bright_tube(&f, 0, "portal venous", &par, &tube, sp), None, "dark: not a vessel by this test");
    }

    #[test]
    fn eigenvalues_of_a_rotated_diagonal() {
        // diag(9, 4, 1) rotated 30° about z
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let a = [
            [9.0 * c * c + 4.0 * s * s, (9.0 - 4.0) * c * s, 0.0],
            [(9.0 - 4.0) * c * s, 9.0 * s * s + 4.0 * c * c, 0.0],
            [0.0, 0.0, 1.0],
        ];
        let e = sym3_eigenvalues(&a);
        for (x, y) in e.iter().zip([9.0, 4.0, 1.0]) {
            assert!((x - y).abs() < 1e-9, "{e:?}");
        }
    }
}
