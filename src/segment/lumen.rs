//! Hollow organs the network took for liver. At 4 mm pixels a stomach full of food and
//! oral contrast, or a loop of bowel, can look enough like liver to be labelled so (on
//! `hcc048-pv` about 300 mL of stomach). A liver holds no gas; a lumen does. So gas inside
//! the mask, and the tissue unlike the liver's parenchyma that reaches it, come out; then
//! the mask is tidied again (largest component, holes filled), so anything enclosed by
//! liver (gas in bile ducts, in a treated tumour) goes back in.

use ndarray::{s, Array3};

use super::postprocess::{flood6, take_out_of_liver};
use super::refine::{liver_box, smooth3, Parenchyma};
use crate::volume::region::squared_distance_mm2;
use crate::volume::{CtVolume, Mask};

/// Below this a voxel is gas, not fat (about −100 HU) or fluid.
const GAS_HU: i16 = -300;
/// In-plane opening radius: vessels, ducts and the partial-volume sliver where the dome
/// meets the lung, all thinner than twice this, do not carry the removal into the liver.
const OPENING_MM: f64 = 3.0;
/// Parenchyma band, robust standard deviations (as the edge refinement's).
const BAND_SIGMAS: f32 = 2.5;

/// Removes from `mask` (on `ct`'s grid) the liver-labelled lumen of gas-filled organs:
/// voxels unlike the parenchyma or gas, in a region at least `2 × OPENING_MM` thick, that
/// lies within `2 × OPENING_MM` of gas inside the mask. Tumour labels are never removed.
/// Returns how many voxels left the liver (0 when the grids differ or there is no gas).
pub fn remove_gas_lumens(mask: &mut Mask, ct: &CtVolume) -> usize {
    if mask.data.dim() != ct.data.dim() {
        return 0;
    }
    let sp = ct.geometry.spacing_mm;
    let margin = (2.0 * OPENING_MM / sp[1].min(sp[2]).max(1e-3)).ceil() as usize + 1;
    let Some((lo, hi)) = liver_box(mask, margin) else { return 0 };
    let region = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let lab = mask.data.slice(region).to_owned();
    let hu = ct.data.slice(region).to_owned();
    let gas = ndarray::Zip::from(&lab).and(&hu).map_collect(|&l, &h| l > 0 && h < GAS_HU);
    if !gas.iter().any(|&g| g) {
        return 0;
    }
    let Some(band) = Parenchyma::measure(&lab, &hu, BAND_SIGMAS) else { return 0 };
    let unlike: Array3<bool> = Array3::from_shape_fn(lab.dim(), |p| {
        gas[p] || (lab[p] == 1 && smooth3(&hu, p).is_some_and(|v| !band.contains(v)))
    });
    // within slices only: a huge slice spacing keeps the distances in-plane
    let in_plane = [1e9, sp[1], sp[2]];
    let r2 = (OPENING_MM * OPENING_MM) as f32;
    let core = squared_distance_mm2(&unlike.mapv(|u| !u), in_plane).mapv(|d| d > r2);
    let opened =
        ndarray::Zip::from(&squared_distance_mm2(&core, in_plane)).and(&unlike).map_collect(|&d, &u| u && d <= r2);
    let near_gas = squared_distance_mm2(&gas, in_plane).mapv(|d| d <= 4.0 * r2);
    // the opened region (6-connected, in 3-D) from where it comes near gas
    let lumen = flood6(&opened, |p| near_gas[p]);
    let lumen = lumen.as_slice().expect("an owned array is in standard layout");
    take_out_of_liver(mask, region, lab, |i| lumen[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// A liver disc (100 HU) with a thin bright vessel, lung beside it, and a stomach full
    /// of oral contrast (250 HU) with a gas bubble, touching the liver; 0.8 mm pixels.
    fn scene() -> (CtVolume, Array3<bool>, Array3<bool>) {
        let (nz, n) = (4, 140);
        let g = Geometry {
            shape: [nz, n, n],
            spacing_mm: [2.5, 0.8, 0.8],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut rng = super::super::Rng::new(3);
        let mut liver = Array3::from_elem((nz, n, n), false);
        let mut stomach = Array3::from_elem((nz, n, n), false);
        let hu = Array3::from_shape_fn((nz, n, n), |(k, j, i)| {
            let (y, x) = (j as f32, i as f32);
            let in_liver = (y - 70.0).powi(2) + (x - 55.0).powi(2) <= 38.0f32.powi(2);
            let in_stomach = (y - 70.0).powi(2) + (x - 110.0).powi(2) <= 20.0f32.powi(2);
            let base = if in_liver {
                liver[[k, j, i]] = true;
                if (y - 60.0).abs() <= 1.0 && x > 30.0 && x < 85.0 {
                    180.0
                } else {
                    100.0
                }
            } else if in_stomach {
                stomach[[k, j, i]] = true;
                if (y - 56.0).powi(2) + (x - 110.0).powi(2) <= 25.0 {
                    -900.0
                } else {
                    250.0
                }
            } else if x < 16.0 {
                -800.0 // lung
            } else {
                -100.0
            };
            (base + 10.0 * rng.normal()).round() as i16
        });
        (CtVolume::new(hu, g), liver, stomach)
    }

    #[test]
    fn a_stomach_with_gas_labelled_liver_comes_out_and_the_liver_stays() {
        let (ct, liver, stomach) = scene();
        // the network's mask: liver and stomach, and a sliver of the lung beside the liver
        let data = Array3::from_shape_fn(liver.dim(), |(k, j, i)| {
            (liver[[k, j, i]] || stomach[[k, j, i]] || ((16..18).contains(&i) && (60..80).contains(&j))) as u8
        });
        let mut mask = Mask::new(data, ct.geometry.clone());
        let removed = remove_gas_lumens(&mut mask, &ct);
        let kept = |region: &Array3<bool>| {
            let total = region.iter().filter(|&&r| r).count();
            mask.data.iter().zip(region.iter()).filter(|&(&m, &r)| r && m > 0).count() as f64 / total as f64
        };
        assert!(removed > 0);
        assert!(kept(&liver) > 0.995, "liver kept: {:.3}", kept(&liver));
        assert!(kept(&stomach) < 0.1, "stomach left as liver: {:.3}", kept(&stomach));
        assert_eq!(mask.data[[1, 60, 50]], 1, "the vessel stays liver");
    }

    #[test]
    fn gas_enclosed_by_liver_and_studies_without_gas_are_left_alone() {
        let (mut ct, liver, _) = scene();
        // gas in a dilated duct inside the liver (pneumobilia), no stomach in the mask
        for ((_, j, i), v) in ct.data.indexed_iter_mut() {
            let d2 = (j as f32 - 80.0).powi(2) + (i as f32 - 50.0).powi(2);
            if d2 <= 9.0 {
                *v = -900;
            } else if d2 <= 64.0 {
                *v = 10;
            }
        }
        let data = liver.mapv(|l| l as u8);
        let mut mask = Mask::new(data.clone(), ct.geometry.clone());
        remove_gas_lumens(&mut mask, &ct);
        assert_eq!(mask.data, data, "enclosed by liver: put back");
        let (plain, liver, _) = scene();
        let mut mask = Mask::new(liver.mapv(|l| l as u8), plain.geometry.clone());
        assert_eq!(remove_gas_lumens(&mut mask, &plain), 0);
    }
}
