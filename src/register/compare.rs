//! Images that show how well two phases on one grid line up: a 3-D checkerboard, the
//! difference, an alpha blend, the displacement length and a deformation grid. The viewer
//! shows the first three as ordinary volumes, so they get window/level, MPR and the HU
//! readout for free; the last two are drawn over the registered phase (heat map, lines).

use crate::volume::{CtVolume, Field, Volume};
use ndarray::{Array3, Zip};

fn same_grid(a: &CtVolume, b: &CtVolume) -> Result<(), String> {
    if a.geometry != b.geometry {
        return Err(
            "the two images must be on the same grid (register first: the registered phase lies on the fixed grid)"
                .into(),
        );
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
        let cell = (k as f64 * s[0] / sq).floor() as i64
            + (j as f64 * s[1] / sq).floor() as i64
            + (i as f64 * s[2] / sq).floor() as i64;
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
    Zip::from(&mut out)
        .and(&a.data)
        .and(&b.data)
        .par_for_each(|o, &x, &y| *o = ((1.0 - t) * x as f32 + t * y as f32).round() as i16);
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

/// Bits of [`deformation_grid`]: the voxel lies on a grid plane of constant LPS x, y, z.
pub const GRID_X: i16 = 1;
pub const GRID_Y: i16 = 2;
pub const GRID_Z: i16 = 4;

/// A regular grid of planes every `spacing_mm` in the *moving* image's space, carried onto
/// the fixed grid by the field: voxel `x` gets bit [`GRID_X`] when a plane of constant
/// `(x + u(x))_x` passes between it and its next neighbour along any index axis (likewise
/// y and z). The surfaces are one voxel thick however the field stretches, and a view shows
/// the planes of its two in-plane axes as the bent grid lines users know from ITK-SNAP.
pub fn deformation_grid(field: &Field, spacing_mm: f64) -> CtVolume {
    let g = &field.geometry;
    let [nz, ny, nx] = g.shape;
    let step = spacing_mm.max(1e-3);
    let m = g.index_to_world_matrix();
    let origin = g.origin_mm;
    // the cell of every voxel's warped position, per component
    let mut cell = ndarray::Array4::<i32>::zeros([nz, ny, nx, 3]);
    Zip::indexed(cell.outer_iter_mut()).par_for_each(|k, mut plane| {
        for j in 0..ny {
            for i in 0..nx {
                let (fi, fj, fk) = (i as f64, j as f64, k as f64);
                for c in 0..3 {
                    let x = origin[c] + m[c][0] * fi + m[c][1] * fj + m[c][2] * fk + field.data[[k, j, i, c]] as f64;
                    plane[[j, i, c]] = (x / step).floor() as i32;
                }
            }
        }
    });
    let mut out = Array3::<i16>::zeros([nz, ny, nx]);
    Zip::indexed(&mut out).par_for_each(|(k, j, i), o| {
        let mut bits = 0i16;
        for (c, bit) in [GRID_X, GRID_Y, GRID_Z].into_iter().enumerate() {
            let here = cell[[k, j, i, c]];
            let crosses = (i + 1 < nx && cell[[k, j, i + 1, c]] != here)
                || (j + 1 < ny && cell[[k, j + 1, i, c]] != here)
                || (k + 1 < nz && cell[[k + 1, j, i, c]] != here);
            if crosses {
                bits |= bit;
            }
        }
        *o = bits;
    });
    Volume::new(out, g.clone())
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

    #[test]
    fn deformation_grid_marks_planes_and_follows_the_field() {
        let g = Geometry::axis_aligned([3, 10, 40], [2.0, 1.0, 1.0], [0.0; 3]);
        let mut f = Field::zeros(g.clone());
        // identity: planes x = 10, 20, 30 mm cross between voxels 9|10, 19|20, 29|30
        let grid = deformation_grid(&f, 10.0);
        let xs: Vec<usize> = (0..40).filter(|&i| grid.data[[1, 5, i]] & GRID_X != 0).collect();
        assert_eq!(xs, vec![9, 19, 29]);
        // y planes: y = 0 is at the first voxel's edge only if it is crossed; none within 0..9 mm
        assert!((0..10).all(|j| grid.data[[1, j, 3]] & GRID_Y == 0));
        // a uniform shift of +3 mm in x moves the moving space's planes 3 voxels the other way
        f.data.index_axis_mut(ndarray::Axis(3), 0).fill(3.0);
        let shifted = deformation_grid(&f, 10.0);
        let xs: Vec<usize> = (0..40).filter(|&i| shifted.data[[1, 5, i]] & GRID_X != 0).collect();
        assert_eq!(xs, vec![6, 16, 26, 36]);
        // a stretch (u = 0.5 x) keeps lines one voxel thick and spaces them 10 / 1.5 mm apart
        for i in 0..40 {
            f.data.slice_mut(ndarray::s![.., .., i, 0]).fill(0.5 * i as f32);
        }
        let stretched = deformation_grid(&f, 10.0);
        let xs: Vec<usize> = (0..40).filter(|&i| stretched.data[[1, 5, i]] & GRID_X != 0).collect();
        assert_eq!(xs, vec![6, 13, 19, 26, 33]);
    }
}
