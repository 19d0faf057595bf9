//! Images that show how well two phases on one grid line up: a 3-D checkerboard, the
//! difference, an alpha blend, and the displacement length. The viewer shows them as
//! ordinary volumes, so they get window/level, MPR and the HU readout for free.

use crate::volume::{CtVolume, Field, Volume};
use ndarray::{Array3, Zip};

fn same_grid(a: &CtVolume, b: &CtVolume) -> Result<(), String> {
    if a.geometry != b.geometry {
        return Err("the two images must be on the same grid (register first: the registered phase lies on the fixed grid)".into());
    }
    Ok(())
}

/// Squares of `square_mm` alternating between `a` and `b` in all three directions, so an
/// edge that continues across square borders shows the alignment is right.
pub fn checkerboard(a: &CtVolume, b: &CtVolume, square_mm: f64) -> Result<CtVolume, String> {
    same_grid(a, b)?;
    let s = a.geometry.spacing_mm;
    let sq = square_mm.max(1e-3);
    let mut out = a.data.clone();
    Zip::indexed(&mut out).and(&b.data).par_for_each(|(k, j, i), o, &bv| {
        let cell = (k as f64 * s[0] / sq).floor() as i64 + (j as f64 * s[1] / sq).floor() as i64 + (i as f64 * s[2] / sq).floor() as i64;
        if cell % 2 != 0 {
            *o = bv;
        }
    });
    Ok(Volume::new(out, a.geometry.clone()))
}

/// `b − a` in HU (saturating): grey where they agree, bright or dark where not.
pub fn difference(a: &CtVolume, b: &CtVolume) -> Result<CtVolume, String> {
    same_grid(a, b)?;
    let mut out = Array3::<i16>::zeros(a.data.raw_dim());
    Zip::from(&mut out).and(&a.data).and(&b.data).par_for_each(|o, &x, &y| *o = y.saturating_sub(x));
    Ok(Volume::new(out, a.geometry.clone()))
}

/// `(1 − alpha)·a + alpha·b`.
pub fn blend(a: &CtVolume, b: &CtVolume, alpha: f32) -> Result<CtVolume, String> {
    same_grid(a, b)?;
    let t = alpha.clamp(0.0, 1.0);
    let mut out = Array3::<i16>::zeros(a.data.raw_dim());
    Zip::from(&mut out).and(&a.data).and(&b.data).par_for_each(|o, &x, &y| *o = ((1.0 - t) * x as f32 + t * y as f32).round() as i16);
    Ok(Volume::new(out, a.geometry.clone()))
}

/// |u| in tenths of a millimetre (so a CT window of 0–100 spans 0–10 mm).
pub fn displacement_tenths_mm(field: &Field) -> CtVolume {
    let [nz, ny, nx] = field.geometry.shape;
    let mut out = Array3::<i16>::zeros([nz, ny, nx]);
    Zip::indexed(&mut out).par_for_each(|(k, j, i), o| {
        let u = [field.data[[k, j, i, 0]], field.data[[k, j, i, 1]], field.data[[k, j, i, 2]]];
        *o = ((u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt() * 10.0).round().min(i16::MAX as f32) as i16;
    });
    Volume::new(out, field.geometry.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    fn vols() -> (CtVolume, CtVolume) {
        let g = Geometry::axis_aligned([4, 4, 4], [2.0, 1.0, 1.0], [0.0; 3]);
        (Volume::filled(g.clone(), 100), Volume::filled(g, -50))
    }

    #[test]
    fn checkerboard_alternates_by_square() {
        let (a, b) = vols();
        let c = checkerboard(&a, &b, 2.0).unwrap();
        assert_eq!(c.data[[0, 0, 0]], 100);
        assert_eq!(c.data[[0, 0, 2]], -50); // 2 mm along x: next square
        assert_eq!(c.data[[1, 0, 0]], -50); // 2 mm along z
        assert_eq!(c.data[[1, 0, 2]], 100);
    }

    #[test]
    fn difference_blend_and_grid_check() {
        let (a, b) = vols();
        assert!(difference(&a, &b).unwrap().data.iter().all(|&v| v == -150));
        assert!(blend(&a, &b, 0.5).unwrap().data.iter().all(|&v| v == 25));
        let other = Volume::filled(Geometry::axis_aligned([4, 4, 5], [2.0, 1.0, 1.0], [0.0; 3]), 0i16);
        assert!(difference(&a, &other).is_err());
    }
}
