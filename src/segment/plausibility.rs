//! Is this a liver? Checks a finished segmentation against what every adult liver is, so
//! that a failure is said instead of written as a result: an empty mask, a liver far too
//! small or too large, or a mask lying mostly on the patient's left. The CLI prints these
//! and exits non-zero; the viewer shows them beside the result.
//!
//! The bounds are anatomy, not figures fitted to a study: adult livers are about
//! 1.0–2.5 L, so under 600 mL (when the whole liver is in the scan) or over 4 L means the
//! network took too little or took other organs; the liver lies in the right upper
//! quadrant, its left lobe crossing the midline by a minority of its volume.

use crate::volume::{CtVolume, Mask};

/// Below this a liver wholly inside the scan is too small to be the whole organ.
pub const MIN_LIVER_ML: f64 = 600.0;
/// Above this the mask holds more than a liver (or a liver far beyond the usual).
pub const MAX_LIVER_ML: f64 = 4000.0;
/// More than this share of the liver on the patient's left of the body's midline: the
/// mask is probably spleen, stomach or bowel.
pub const MAX_LEFT_SHARE: f64 = 0.5;
/// Air, outside the body.
const BODY_HU: i16 = -300;

/// One thing wrong with a segmentation, said in words a reader acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Concern {
    /// No liver voxel at all.
    NoLiver,
    /// The liver is wholly inside the scan and smaller than [`MIN_LIVER_ML`].
    TooSmall { liver_ml: f64 },
    /// Larger than [`MAX_LIVER_ML`].
    TooLarge { liver_ml: f64 },
    /// Most of the mask lies on the patient's left of the body's midline.
    OnTheLeft { left_share: f64 },
}

impl std::fmt::Display for Concern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Concern::NoLiver => write!(
                f,
                "no liver found: the network labelled nothing as liver (is the liver in this scan? is it CT in HU?)"
            ),
            Concern::TooSmall { liver_ml } => write!(
                f,
                "the liver is {liver_ml:.0} mL, under the {MIN_LIVER_ML:.0} mL of any adult liver, though the scan \
                 covers it whole: part of it is probably missed"
            ),
            Concern::TooLarge { liver_ml } => write!(
                f,
                "the liver is {liver_ml:.0} mL, over {MAX_LIVER_ML:.0} mL: the mask probably takes in other organs"
            ),
            Concern::OnTheLeft { left_share } => write!(
                f,
                "{:.0} % of the mask lies on the patient's left of the body's midline; a liver lies mostly on the \
                 right: the mask is probably another organ",
                100.0 * left_share
            ),
        }
    }
}

/// What [`check_liver`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct LiverCheck {
    /// Liver and tumour together, mL.
    pub liver_ml: f64,
    /// The mask reaches the scan's first or last slice: the scan cuts the liver, so its
    /// volume is not judged against [`MIN_LIVER_ML`].
    pub cut_by_scan: bool,
    /// Empty when the segmentation looks like a liver.
    pub concerns: Vec<Concern>,
}

impl LiverCheck {
    pub fn is_plausible(&self) -> bool {
        self.concerns.is_empty()
    }
}

/// Checks `mask` (0 background, 1 liver, 2 tumour) against anatomy; `ct` is the phase the
/// mask lies on (same grid), used to find the body's midline. A `ct` on another grid is
/// not used and the side is not judged.
pub fn check_liver(mask: &Mask, ct: &CtVolume) -> LiverCheck {
    let g = &mask.geometry;
    let voxel_ml = g.spacing_mm.iter().product::<f64>() / 1000.0;
    let nz = g.shape[0];
    let mut voxels = 0usize;
    let mut cut_by_scan = false;
    for ((k, _, _), &v) in mask.data.indexed_iter() {
        if v > 0 {
            voxels += 1;
            cut_by_scan |= k == 0 || k + 1 == nz;
        }
    }
    let liver_ml = voxels as f64 * voxel_ml;
    let mut concerns = Vec::new();
    if voxels == 0 {
        concerns.push(Concern::NoLiver);
        return LiverCheck { liver_ml, cut_by_scan, concerns };
    }
    if liver_ml < MIN_LIVER_ML && !cut_by_scan {
        concerns.push(Concern::TooSmall { liver_ml });
    }
    if liver_ml > MAX_LIVER_ML {
        concerns.push(Concern::TooLarge { liver_ml });
    }
    if ct.geometry.shape == g.shape {
        if let Some(left_share) = share_left_of_midline(mask, ct) {
            if left_share > MAX_LEFT_SHARE {
                concerns.push(Concern::OnTheLeft { left_share });
            }
        }
    }
    LiverCheck { liver_ml, cut_by_scan, concerns }
}

/// The share of the mask's voxels on the patient's left (LPS +x) of the body's midline,
/// the midline taken slice by slice as the mean x of the body (tissue above −300 HU) in
/// that slice, so a patient lying off the table's centre is judged rightly. `None` when no
/// slice with mask has body in it.
fn share_left_of_midline(mask: &Mask, ct: &CtVolume) -> Option<f64> {
    let g = &mask.geometry;
    let (mut left, mut counted) = (0usize, 0usize);
    for (k, (labels, hu)) in mask.data.outer_iter().zip(ct.data.outer_iter()).enumerate() {
        if !labels.iter().any(|&v| v > 0) {
            continue;
        }
        let x_of = |j: usize, i: usize| g.index_to_world([i as f64, j as f64, k as f64])[0];
        let (mut sum_x, mut n_body) = (0.0, 0usize);
        for ((j, i), &h) in hu.indexed_iter() {
            if h > BODY_HU {
                sum_x += x_of(j, i);
                n_body += 1;
            }
        }
        if n_body == 0 {
            continue;
        }
        let midline = sum_x / n_body as f64;
        for ((j, i), &v) in labels.indexed_iter() {
            if v > 0 {
                counted += 1;
                left += (x_of(j, i) > midline) as usize;
            }
        }
    }
    (counted > 0).then(|| left as f64 / counted as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Volume};

    /// A 200 × 200 mm body of soft tissue, 20 slices of 5 mm, 2 mm pixels; x from −200 to
    /// +198 mm so the body (x −100…+100) is centred at 0.
    fn body() -> CtVolume {
        let g = Geometry::axis_aligned([20, 100, 200], [5.0, 2.0, 2.0], [-200.0, -100.0, 0.0]);
        let mut ct = Volume::filled(g, -1000i16);
        for ((_, _, i), v) in ct.data.indexed_iter_mut() {
            if (50..150).contains(&i) {
                *v = 40;
            }
        }
        ct
    }

    /// A box of liver between the given x (mm) and slices.
    fn mask_box(ct: &CtVolume, x_mm: (f64, f64), slices: std::ops::Range<usize>) -> Mask {
        let mut m = Volume::filled(ct.geometry.clone(), 0u8);
        for ((k, j, i), v) in m.data.indexed_iter_mut() {
            let x = -200.0 + 2.0 * i as f64;
            if slices.contains(&k) && (20..80).contains(&j) && x >= x_mm.0 && x < x_mm.1 {
                *v = 1;
            }
        }
        m
    }

    #[test]
    fn an_empty_mask_is_no_liver() {
        let ct = body();
        let m = Volume::filled(ct.geometry.clone(), 0u8);
        assert_eq!(check_liver(&m, &ct).concerns, vec![Concern::NoLiver]);
    }

    #[test]
    fn a_right_sided_liver_of_usual_size_passes() {
        let ct = body();
        // x −100…0 (patient's right), 120 mm in y, 16 slices of 5 mm: 100·120·80 mm³ = 960 mL
        let m = mask_box(&ct, (-100.0, 0.0), 2..18);
        let c = check_liver(&m, &ct);
        assert!((c.liver_ml - 960.0).abs() < 1.0, "{}", c.liver_ml);
        assert!(c.is_plausible(), "{:?}", c.concerns);
    }

    #[test]
    fn a_small_liver_inside_the_scan_is_said_but_not_one_the_scan_cuts() {
        let ct = body();
        let inside = mask_box(&ct, (-60.0, 0.0), 5..10); // 60·120·25 = 180 mL
        assert!(matches!(check_liver(&inside, &ct).concerns[..], [Concern::TooSmall { .. }]));
        let cut = mask_box(&ct, (-60.0, 0.0), 0..5); // reaches the first slice
        let c = check_liver(&cut, &ct);
        assert!(c.cut_by_scan && c.is_plausible(), "{c:?}");
    }

    #[test]
    fn a_mask_mostly_on_the_left_is_said() {
        let ct = body();
        let m = mask_box(&ct, (-20.0, 100.0), 2..18);
        let c = check_liver(&m, &ct);
        assert!(matches!(c.concerns[..], [Concern::OnTheLeft { left_share }] if left_share > 0.8), "{:?}", c.concerns);
    }

    #[test]
    fn a_huge_mask_is_said_even_when_cut_by_the_scan() {
        let g = Geometry::axis_aligned([40, 100, 200], [5.0, 2.0, 2.0], [-200.0, -100.0, 0.0]);
        let ct = Volume::filled(g.clone(), 40i16);
        let mut m = Volume::filled(g, 0u8);
        m.data.slice_mut(ndarray::s![.., 0..90, 0..100]).fill(1); // 200·180·200 mm³ = 7.2 L
        let c = check_liver(&m, &ct);
        assert!(c.cut_by_scan);
        assert!(matches!(c.concerns[..], [Concern::TooLarge { .. }]), "{:?}", c.concerns);
    }
}
