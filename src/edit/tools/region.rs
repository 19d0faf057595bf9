//! Paint a region computed elsewhere (a lesion outlined from a click) into the mask as one
//! edit, under the same rules as every other tool (paint over, locks).

use super::super::{EditDiff, EditError, Paint, Recorder, VoxelBox};
use crate::volume::Mask;

/// Sets `paint.value` on every voxel of `within` where `region` is non-zero and the paint
/// rules allow it. `region` must lie on the mask's grid; `within` bounds the work (the
/// region is zero outside it).
pub fn paint_region(mask: &mut Mask, region: &Mask, within: &VoxelBox, paint: &Paint) -> Result<EditDiff, EditError> {
    if region.geometry.shape != mask.geometry.shape {
        return Err(EditError::GridMismatch {
            detail: format!("region {:?} voxels, mask {:?}", region.geometry.shape, mask.geometry.shape),
        });
    }
    let [nz, ny, nx] = mask.geometry.shape;
    let (lo, hi) = (within.lo, [within.hi[0].min(nz), within.hi[1].min(ny), within.hi[2].min(nx)]);
    let table = paint.table();
    let mut rec = Recorder::new(mask);
    for k in lo[0]..hi[0] {
        for j in lo[1]..hi[1] {
            for i in lo[2]..hi[2] {
                if region.data[[k, j, i]] != 0 && table[rec.get(k, j, i) as usize] {
                    rec.set(k, j, i, paint.value);
                }
            }
        }
    }
    Ok(rec.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::PaintOver;
    use crate::volume::{Geometry, Volume};

    #[test]
    fn paints_the_region_as_the_rules_allow_and_undoes_exactly() {
        let g = Geometry::axis_aligned([6, 7, 8], [1.0; 3], [0.0; 3]);
        let mut m: Mask = Volume::filled(g.clone(), 1);
        m.data[[2, 2, 2]] = 3;
        let before = m.data.clone();
        let mut r: Mask = Volume::filled(g, 0);
        for k in 1..4 {
            r.data[[k, 2, 2]] = 1;
            r.data[[k, 3, 3]] = 1;
        }
        let all = VoxelBox { lo: [0, 0, 0], hi: [6, 7, 8] };
        let paint = Paint::new(2, PaintOver::Label(1));
        let diff = paint_region(&mut m, &r, &all, &paint).unwrap();
        assert_eq!(m.data[[2, 2, 2]], 3, "only label 1 is painted over");
        assert_eq!(m.data.iter().filter(|&&v| v == 2).count(), 5);
        diff.undo(&mut m);
        assert_eq!(m.data, before);
        let small = VoxelBox { lo: [1, 0, 0], hi: [2, 7, 8] };
        paint_region(&mut m, &r, &small, &paint).unwrap();
        assert_eq!(m.data.iter().filter(|&&v| v == 2).count(), 2, "nothing outside the box");
    }
}
