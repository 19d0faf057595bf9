//! A baseline lesion carried to a follow-up visit (issue 24, item 4): the baseline's outline
//! is mapped onto the follow-up's grid through the visits' alignment, and the mapped
//! lesion's centre and box become the prompt of the one-click outline
//! ([`crate::outline::outline_lesion`]) on the follow-up's own phases, so the follow-up
//! outline follows what the lesion looks like now (shrunk, necrotic, grown), not what it was.
//!
//! Three outcomes ([`Carried`]):
//! - the outline at the carried position succeeded: that is the starting outline;
//! - the carried position holds only liver parenchyma (or a vessel): the lesion is not found
//!   there (gone after treatment, or the alignment is off), which is said as such; nothing
//!   is offered as lesion and nothing grows, so a vanished lesion never floods the liver;
//! - the outline was refused for another reason (the click landed on a dense lipiodol core,
//!   off the liver's edge, or the region would not stop growing): the mapped baseline
//!   outline itself is the starting outline, said so, for the reader to correct.
//!
//! The transform is the visit alignment of `analysis` (`baseline point → follow-up point`,
//! as `study::analysis::visit_transform` finds it). The viewer, whose follow-up phases
//! are already resampled onto the baseline's grid through that alignment (and any nudge by
//! hand), passes the identity. A residual deformation of the liver between visits (what
//! `compare`'s Demons on the liver finds) is not applied: the outline grows from the carried
//! centre, so a few millimetres of residual motion do not matter, and the box has a margin.

use crate::io::phase::Phase;
use crate::outline::{self, Found, Outline, OutlineError, OutlineOptions, Prompts};
use crate::register::affine::resample_mask_affine;
use crate::register::affine::AffineTransform;
use crate::volume::region::{connected_components, squared_distance_mm2, voxel_volume_ml};
use crate::volume::{CtVolume, Lps, Mask, Volume};

/// Settings of a carry; distances in mm.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CarryOptions {
    /// The box the follow-up outline must stay in: the carried lesion's box grown by this
    /// much on every side…
    pub margin_mm: f64,
    /// …plus this share of the lesion's half-size (a lesion may have grown).
    pub margin_share: f64,
    pub outline: OutlineOptions,
}

impl Default for CarryOptions {
    fn default() -> Self {
        CarryOptions { margin_mm: 8.0, margin_share: 0.5, outline: OutlineOptions::default() }
    }
}

/// What the carry found at the follow-up.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Carried {
    /// Outlined on the follow-up's phases from the carried prompt.
    Outlined,
    /// Not found at the carried position: the outline found `found` there (liver
    /// parenchyma, a vessel) and nothing is offered as lesion.
    NotFound { found: Found, message: String },
    /// The outline was refused (`found`, `message`); the baseline outline mapped through
    /// the alignment is offered instead.
    Mapped { found: Found, message: String },
}

impl Carried {
    /// One sentence for the viewer and the CLI.
    pub fn words(&self) -> String {
        match self {
            Carried::Outlined => "outlined on the follow-up from the carried position".into(),
            Carried::NotFound { found, message } => format!(
                "not found at the carried position: {} there ({message}); the lesion may have gone, or the visits are misaligned there",
                found.as_str()
            ),
            Carried::Mapped { found, message } => format!(
                "the outline at the carried position was refused ({} there: {message}); the baseline outline carried through the alignment is offered instead: check it",
                found.as_str()
            ),
        }
    }
}

/// A baseline lesion carried to the follow-up.
#[derive(Clone, Debug)]
pub struct Carry {
    pub carried: Carried,
    /// The starting outline on the follow-up's grid (0/1): the outline, or the mapped
    /// baseline outline; `None` when the lesion was not found.
    pub mask: Option<Mask>,
    /// The baseline outline mapped onto the follow-up's grid (0/1).
    pub mapped: Mask,
    pub mapped_ml: f64,
    /// The prompt the outline was given: the carried centre and the box it must stay in.
    pub prompts: Prompts,
    /// The outline itself, when it succeeded.
    pub outline: Option<Outline>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error("the baseline lesion mask is empty: outline the lesion on the baseline first")]
    EmptyLesion,
    #[error("the visit transform cannot be inverted (its matrix is singular); align the visits again")]
    Singular,
    #[error("no phase of the follow-up given")]
    NoPhases,
    #[error("the baseline lesion, carried through the visits' alignment, lies outside the follow-up scan (its centre at ({:.1}, {:.1}, {:.1}) mm, LPS); the follow-up does not cover it, or the alignment is wrong", at_mm[0], at_mm[1], at_mm[2])]
    OutsideFollowUp { at_mm: Lps },
    #[error(transparent)]
    Outline(#[from] OutlineError),
}

/// `lesion` (non-zero voxels, on the baseline's grid) mapped onto `grid` (the follow-up's)
/// through `baseline_to_followup` (nearest neighbour, 0/1).
pub fn map_lesion(
    lesion: &Mask,
    baseline_to_followup: &AffineTransform,
    grid: &crate::volume::Geometry,
) -> Result<Mask, CarryError> {
    let back = baseline_to_followup.inverse().ok_or(CarryError::Singular)?;
    let binary = Volume::new(lesion.data.mapv(|l| (l != 0) as u8), lesion.geometry.clone());
    Ok(resample_mask_affine(&binary, grid, &back))
}

/// The click and box for a mapped lesion: its centroid when that lies inside it, else its
/// deepest voxel; its box (world corners of its voxels) grown by the margins.
fn prompt_for(mapped: &Mask, opts: &CarryOptions) -> Option<(Lps, [Lps; 2])> {
    let g = &mapped.geometry;
    let inside = mapped.data.mapv(|l| l != 0);
    let mut n = 0usize;
    let mut sum = [0f64; 3];
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for ((k, j, i), &x) in inside.indexed_iter() {
        if x {
            let p = g.index_to_world([i as f64, j as f64, k as f64]);
            for a in 0..3 {
                sum[a] += p[a];
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let centroid = sum.map(|s| s / n as f64);
    let ijk = g.world_to_index(centroid);
    let at = |x: f64, n: usize| (x.round().max(0.0) as usize).min(n - 1);
    let [nz, ny, nx] = g.shape;
    let c = [at(ijk[2], nz), at(ijk[1], ny), at(ijk[0], nx)];
    let centre = if inside[c] {
        centroid
    } else {
        // a lesion that is not convex: its deepest voxel (first of the deepest, in scan order)
        let depth = squared_distance_mm2(&inside.mapv(|x| !x), g.spacing_mm);
        let (mut best, mut best_d) = ([0usize; 3], -1f32);
        for ((k, j, i), &d) in depth.indexed_iter() {
            if inside[[k, j, i]] && d > best_d {
                (best, best_d) = ([k, j, i], d);
            }
        }
        g.index_to_world([best[2] as f64, best[1] as f64, best[0] as f64])
    };
    let grow: [f64; 3] = std::array::from_fn(|a| opts.margin_mm + opts.margin_share * 0.5 * (hi[a] - lo[a]));
    let corners = [std::array::from_fn(|a| lo[a] - grow[a]), std::array::from_fn(|a| hi[a] + grow[a])];
    Some((centre, corners))
}

/// Carries the baseline lesion `lesion` (non-zero voxels on the baseline's grid; the largest
/// connected piece when there are several) to the follow-up whose phases `phases` share one
/// grid (registered onto its portal venous phase), through `baseline_to_followup`, and
/// outlines it there (see the module doc). `liver`: the follow-up's liver mask on that grid,
/// as [`outline::outline_lesion`] takes it.
pub fn carry_lesion(
    lesion: &Mask,
    baseline_to_followup: &AffineTransform,
    phases: &[(Phase, &CtVolume)],
    liver: Option<&Mask>,
    opts: &CarryOptions,
) -> Result<Carry, CarryError> {
    let grid = &phases.first().ok_or(CarryError::NoPhases)?.1.geometry;
    let mut warnings = Vec::new();
    let binary = Volume::new(lesion.data.mapv(|l| (l != 0) as u8), lesion.geometry.clone());
    let (comps, _) = connected_components(&binary, 1, 1);
    let Some(largest) = comps.first() else { return Err(CarryError::EmptyLesion) };
    let one = if comps.len() > 1 {
        warnings.push(format!(
            "the baseline mask holds {} separate pieces: the largest ({} voxels) was carried",
            comps.len(),
            largest.voxels.len()
        ));
        let mut m = Volume::filled(binary.geometry.clone(), 0u8);
        let flat = m.data.as_slice_mut().expect("a new array is contiguous");
        for &v in &largest.voxels {
            flat[v] = 1;
        }
        m
    } else {
        binary
    };
    let mapped = map_lesion(&one, baseline_to_followup, grid)?;
    let mapped_n = mapped.data.iter().filter(|&&l| l != 0).count();
    let Some((centre, corners)) = prompt_for(&mapped, opts) else {
        // nothing of it landed on the follow-up's grid: say where it would have been
        let bg = &one.geometry;
        let c = comps[0].voxels[comps[0].voxels.len() / 2];
        let [_, ny, nx] = bg.shape;
        let p = bg.index_to_world([(c % nx) as f64, ((c / nx) % ny) as f64, (c / (nx * ny)) as f64]);
        return Err(CarryError::OutsideFollowUp { at_mm: baseline_to_followup.apply(p) });
    };
    let prompts = Prompts { include: vec![centre], box_mm: Some(corners), ..Prompts::default() };
    let mapped_ml = mapped_n as f64 * voxel_volume_ml(grid);
    let first = match outline::outline_lesion(phases, liver, &prompts, &opts.outline) {
        Ok(o) => Ok(o),
        Err(OutlineError::Refused { found, message, .. }) => Err((found, message)),
        Err(e) => return Err(e.into()),
    };
    // A centre that is not tissue to judge (a dense lipiodol core after TACE, a hole in the
    // liver mask) or on the liver's edge: points half way out inside the carried lesion are
    // tried instead. Parenchyma or a vessel at the centre is an answer, not retried.
    let mut used = prompts.clone();
    let outcome = match first {
        Err((found @ (Found::OutsideLiver | Found::LiverEdge), message)) => {
            let mut got = Err((found, message));
            for at in off_centre(&mapped, centre) {
                let p = Prompts { include: vec![at], ..prompts.clone() };
                match outline::outline_lesion(phases, liver, &p, &opts.outline) {
                    Ok(o) => {
                        warnings.push(format!(
                            "the carried centre is not tissue to outline from ({}): outlined from ({:.1}, {:.1}, {:.1}) mm, {:.1} mm off it",
                            found.as_str(),
                            at[0],
                            at[1],
                            at[2],
                            crate::volume::norm(crate::volume::sub(at, centre))
                        ));
                        used = p;
                        got = Ok(o);
                        break;
                    }
                    Err(OutlineError::Refused { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            got
        }
        other => other,
    };
    match outcome {
        Ok(mut o) => {
            enclose_cavities(&mut o);
            warnings.extend(o.warnings.iter().cloned());
            Ok(Carry {
                carried: Carried::Outlined,
                mask: Some(o.mask.clone()),
                mapped,
                mapped_ml,
                prompts: used,
                outline: Some(o),
                warnings,
            })
        }
        Err((found, message)) => {
            let carried = match found {
                Found::Parenchyma | Found::Vessel => Carried::NotFound { found, message },
                _ => Carried::Mapped { found, message },
            };
            let mask = matches!(carried, Carried::Mapped { .. }).then(|| mapped.clone());
            Ok(Carry { carried, mask, mapped, mapped_ml, prompts: used, outline: None, warnings })
        }
    }
}

/// Points inside `mapped` half way from `centre` to its edge along ±x, ±y, ±z (in that
/// order), for a centre that cannot be outlined from.
fn off_centre(mapped: &Mask, centre: Lps) -> Vec<Lps> {
    let g = &mapped.geometry;
    let inside = |p: Lps| mapped.sample_world(p, crate::volume::Interp::Nearest).is_some_and(|v| v != 0.0);
    let step = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min).max(0.5);
    let mut out = Vec::new();
    for dir in [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]
    {
        let at = |d: f64| -> Lps { std::array::from_fn(|a| centre[a] + d * dir[a]) };
        let mut reach = 0.0;
        while inside(at(reach + step)) && reach < 500.0 {
            reach += step;
        }
        if reach >= 2.0 * step {
            out.push(at(0.5 * reach));
        }
    }
    out
}

/// Cavities the outline encloses (a dense lipiodol core inside a treated lesion, which the
/// outline leaves out as "not liver tissue") are lesion: filled. They lie inside the
/// outline's box, so its `dirty` box still holds every change.
fn enclose_cavities(o: &mut Outline) {
    let filled = crate::outline::region::fill_holes(&o.mask.data.mapv(|l| l != 0));
    let mut added = 0usize;
    ndarray::Zip::from(&mut o.mask.data).and(&filled).for_each(|l, &f| {
        if f && *l == 0 {
            *l = 1;
            added += 1;
        }
    });
    if added > 0 {
        o.voxel_count += added;
        o.volume_ml = o.voxel_count as f64 * voxel_volume_ml(&o.mask.geometry);
        o.warnings.push(format!("{added} voxel(s) the outline enclosed (e.g. a dense lipiodol core) were added to it"));
    }
}

/// The carried lesion's row (volume, RECIST axes, pattern hint, depth): from the outline
/// when there is one, else from the mapped mask with the liver ring from `liver`; `None`
/// when there is nothing to measure (not found, or a mapped mask without a liver mask).
pub fn measure_carry(
    carry: &Carry,
    phases: &[(Phase, &CtVolume)],
    liver: Option<&Mask>,
) -> Result<Option<outline::LesionRow>, OutlineError> {
    match (&carry.outline, &carry.mask, liver) {
        (Some(o), _, _) => outline::measure_outline(o, phases, liver).map(Some),
        (None, Some(m), Some(l)) => outline::measure::measure_mask(m, phases, l).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// A ball of 1s of radius `r` mm at `c` on `g`.
    fn ball(g: &Geometry, c: Lps, r: f64) -> Mask {
        let mut m = Mask::filled(g.clone(), 0);
        for ((k, j, i), v) in m.data.indexed_iter_mut() {
            let p = g.index_to_world([i as f64, j as f64, k as f64]);
            *v = ((0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>().sqrt() <= r) as u8;
        }
        m
    }

    #[test]
    fn a_lesion_maps_to_where_the_transform_puts_it() {
        let g = Geometry::axis_aligned([30, 40, 40], [2.0, 1.5, 1.5], [-30.0, -30.0, -30.0]);
        let base = ball(&g, [0.0, 0.0, 0.0], 6.0);
        let t = AffineTransform::rigid([0.0, 0.0, 10f64.to_radians()], [8.0, -5.0, 4.0], [0.0; 3]);
        let mapped = map_lesion(&base, &t, &g).unwrap();
        let (centre, corners) = prompt_for(&mapped, &CarryOptions::default()).unwrap();
        let want = t.apply([0.0; 3]);
        assert!((0..3).all(|a| (centre[a] - want[a]).abs() < 1.0), "{centre:?} vs {want:?}");
        assert!((0..3).all(|a| corners[0][a] < want[a] - 6.0 && corners[1][a] > want[a] + 6.0), "{corners:?}");
        let truth = ball(&g, want, 6.0);
        let both = mapped.data.iter().zip(truth.data.iter()).filter(|(&a, &b)| a != 0 && b != 0).count();
        let n = |m: &Mask| m.data.iter().filter(|&&v| v != 0).count();
        let dice = 2.0 * both as f64 / (n(&mapped) + n(&truth)) as f64;
        assert!(dice > 0.9, "Dice {dice:.3}");
    }

    #[test]
    fn a_lesion_carried_off_the_scan_is_said_so() {
        let g = Geometry::axis_aligned([10, 20, 20], [2.0, 2.0, 2.0], [-20.0, -20.0, -10.0]);
        let base = ball(&g, [0.0, 0.0, 0.0], 5.0);
        let far = AffineTransform::rigid([0.0; 3], [200.0, 0.0, 0.0], [0.0; 3]);
        let ct = CtVolume::filled(g.clone(), 60);
        let e = carry_lesion(&base, &far, &[(Phase::PortalVenous, &ct)], None, &CarryOptions::default()).unwrap_err();
        assert!(matches!(e, CarryError::OutsideFollowUp { .. }), "{e}");
        let empty = Mask::filled(g.clone(), 0);
        let e = carry_lesion(&empty, &far, &[(Phase::PortalVenous, &ct)], None, &CarryOptions::default()).unwrap_err();
        assert!(matches!(e, CarryError::EmptyLesion), "{e}");
    }
}
