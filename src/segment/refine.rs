//! Edge refinement at the study's own resolution. The network sees 4 mm pixels, so its
//! edges are uncertain by about one; on a finer study grid (0.7–1.5 mm pixels) the last
//! millimetres are decided by the study's own parenchyma. The liver grows, within axial
//! slices and by at most `reach_mm`, into neighbouring voxels that look like it; tumours
//! lose edge voxels that look like parenchyma and gain ones that contrast as they do.
//! Statistics come from the study itself (median and MAD of the mask's interior), so no
//! scanner's HU are built in. It only grows: on `dcmqi-liver` the network's edge lay
//! about 2.5 mm inside the drawn outline all round, and peeling edge voxels below the
//! band took partial-volume voxels that outlines include (worse Dice on `ts-abdomen`).

use ndarray::{s, Array3};

use crate::register::{resample_field, warp_volume};
use crate::volume::region::{connected_components, squared_distance_mm2, VoxelBox};
use crate::volume::{CtVolume, Field, Geometry, Interp, Mask};

/// How far and how strictly edges move.
#[derive(Clone, Copy, Debug)]
pub struct RefineOptions {
    /// Largest move of the edge, mm (half a model pixel: a study with pixels coarser than
    /// that is left as it is).
    pub reach_mm: f64,
    /// Parenchyma: within this many robust standard deviations of the liver's median.
    pub band_sigmas: f32,
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions { reach_mm: 2.0, band_sigmas: 2.5 }
    }
}

/// What moved, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RefineReport {
    pub median_hu: f32,
    pub sigma_hu: f32,
    pub grown: usize,
}

const N4: [(isize, isize); 4] = [(0, 1), (0, -1), (1, 0), (-1, 0)];

/// Refines label 1 (liver) of `mask` against `ct` on the same grid; tumour (2) is left as
/// it is. Returns `None` (and changes nothing) when the grids differ, the study's pixels
/// are coarser than `reach_mm`, or the liver is too small to measure.
pub fn refine_liver_edge(mask: &mut Mask, ct: &CtVolume, opts: &RefineOptions) -> Option<RefineReport> {
    let steps = steps_within(ct, opts.reach_mm);
    if mask.data.dim() != ct.data.dim() || steps == 0 {
        return None;
    }
    let lab = &mask.data;
    let hu = &ct.data;
    let band = Parenchyma::measure(lab, hu, opts.band_sigmas)?;
    // grow: background beside the liver that looks like its parenchyma, from the inside out
    let mut out: Array3<u8> = lab.clone();
    let mut report = RefineReport { median_hu: band.median_hu, sigma_hu: band.sigma_hu, ..Default::default() };
    let mut frontier: Vec<Voxel> = Vec::new();
    for ((k, j, i), &v) in lab.indexed_iter() {
        if v == 0 && neighbours(lab, (k, j, i)).any(|p| lab[p] == 1) {
            frontier.push((k, j, i));
        }
    }
    for _ in 0..steps {
        frontier.sort_unstable();
        frontier.dedup();
        let grow: Vec<_> = frontier
            .iter()
            .copied()
            .filter(|&p| out[p] == 0 && lab[p] == 0 && smooth3(hu, p).is_some_and(|v| band.contains(v)))
            .collect();
        if grow.is_empty() {
            break;
        }
        for &p in &grow {
            out[p] = 1;
        }
        report.grown += grow.len();
        frontier = grow.iter().flat_map(|&p| neighbours(lab, p)).filter(|&p| out[p] == 0 && lab[p] == 0).collect();
    }
    mask.data = out;
    Some(report)
}

/// How far tumour edges move.
#[derive(Clone, Copy, Debug)]
pub struct TumourRefineOptions {
    /// Deepest peel of parenchyma-like voxels off a tumour's edge, mm (one model pixel: the
    /// network's probabilities, upsampled from 4 mm pixels, spread a tumour by up to that).
    pub peel_mm: f64,
    /// Largest growth of a tumour into voxels that contrast with the liver as it does, mm
    /// (half a model pixel, as the liver's edge).
    pub grow_mm: f64,
    /// Parenchyma: within this many robust standard deviations of the liver's median.
    pub band_sigmas: f32,
}

impl Default for TumourRefineOptions {
    fn default() -> Self {
        TumourRefineOptions { peel_mm: 4.0, grow_mm: 2.0, band_sigmas: 2.5 }
    }
}

/// What moved at the tumours' edges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TumourRefineReport {
    pub median_hu: f32,
    pub sigma_hu: f32,
    /// Tumour voxels that looked like the liver's parenchyma, now liver.
    pub peeled: usize,
    /// Liver voxels beside a tumour with its contrast, now tumour.
    pub grown: usize,
    /// Voxels of fragments too small to be a call of the network's, now liver.
    pub dropped: usize,
}

/// Refines label 2 (tumour) of `mask` within axial slices, against `reference` (portal
/// venous, on the mask's grid) and the `others` phases, registered to it: a phase that
/// lies millimetres off moves the edges wrongly. From the edge inwards, tumour voxels that look
/// like the liver's parenchyma in every phase become liver; then liver voxels beside a
/// tumour voxel that differ from the parenchyma on the same side as it in some phase
/// (darker beside a dark lesion, brighter beside a bright one, by at least half its core's
/// contrast) become tumour. So growth never takes in a vessel beside a dark lesion, a
/// capsule or rim that stands out in one phase only is kept, and a tumour's interior is
/// never peeled unless its whole rim was. (A vessel the network's call already covers
/// stands out against a dark core as a rim does, so it stays.) Last, fragments smaller
/// than one model pixel by one slice, left where a call was peeled away, become liver.
/// Returns `None` (changing nothing) when the grids differ, the pixels are coarser than
/// the reach, or the liver is too small to measure.
pub fn refine_tumour_edges(
    mask: &mut Mask,
    reference: &CtVolume,
    others: &[OtherPhase],
    opts: &TumourRefineOptions,
) -> Option<TumourRefineReport> {
    let peel_steps = steps_within(reference, opts.peel_mm);
    let grow_steps = steps_within(reference, opts.grow_mm);
    if mask.data.dim() != reference.data.dim() || peel_steps + grow_steps == 0 {
        return None;
    }
    // work inside the liver's box: other phases are resampled there only
    let (lo, hi) = liver_box(mask, peel_steps.max(grow_steps) + 1)?;
    let region = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let local_grid = local_grid(&mask.geometry, lo, hi);
    let mut lab = mask.data.slice(region).to_owned();
    let reference = reference.data.slice(region).to_owned();
    let mut bands = vec![Parenchyma::measure(&lab, &reference, opts.band_sigmas)?];
    let mut values = vec![reference];
    // another phase that does not cover enough of the liver to measure is left out
    for v in others.iter().map(|p| p.onto(&local_grid)) {
        if let Some(b) = Parenchyma::measure(&lab, &v, opts.band_sigmas) {
            bands.push(b);
            values.push(v);
        }
    }
    let mut report =
        TumourRefineReport { median_hu: bands[0].median_hu, sigma_hu: bands[0].sigma_hu, ..Default::default() };
    // each lesion (as the lesion report counts them) with its core's contrast per phase:
    // the median deviation of its voxels from the parenchyma
    let (lesions, _) = connected_components(&Mask::new(lab.clone(), local_grid.clone()), 2, 1);
    if lesions.is_empty() {
        return Some(report);
    }
    let (_, ly, lx) = lab.dim();
    let at = |v: usize| (v / (ly * lx), (v / lx) % ly, v % lx);
    let deviation = |p: Voxel, ph: usize| smooth3(&values[ph], p).map(|hu| hu - bands[ph].median_hu);
    let mut lesion_of = Array3::<u32>::zeros(lab.dim());
    let mut contrast: Vec<Vec<f32>> = vec![Vec::new()];
    for (n, c) in lesions.iter().enumerate() {
        let mut per_phase = Vec::new();
        for ph in 0..values.len() {
            let mut d: Vec<f32> = c.voxels.iter().filter_map(|&v| deviation(at(v), ph)).collect();
            per_phase.push(if d.is_empty() { 0.0 } else { quantile(&mut d, 0.5) });
        }
        contrast.push(per_phase);
        for &v in &c.voxels {
            lesion_of[at(v)] = n as u32 + 1;
        }
    }
    let half_band: Vec<f32> = bands.iter().map(|b| b.hi - b.median_hu).collect();
    // a voxel belongs to its lesion when in some phase it stands out of the parenchyma and
    // either has at least half its lesion's contrast (past the edge's midpoint) or stands
    // out the other way (a rim or capsule), or the lesion's core does not stand out there
    let keeps = |p: Voxel, lesion: u32| {
        (0..values.len()).any(|ph| {
            let (Some(d), c, h) = (deviation(p, ph), contrast[lesion as usize][ph], half_band[ph]) else {
                return false;
            };
            d.abs() > h && (c.abs() <= h || d.signum() != c.signum() || d.abs() >= 0.5 * c.abs())
        })
    };
    // a liver voxel joins a lesion only with its core's sign of contrast, at half of it
    let joins = |p: Voxel, lesion: u32| {
        (0..values.len()).any(|ph| {
            let (Some(d), c, h) = (deviation(p, ph), contrast[lesion as usize][ph], half_band[ph]) else {
                return false;
            };
            d.abs() > h && c.abs() > h && d.signum() == c.signum() && d.abs() >= 0.5 * c.abs()
        })
    };
    let edge = |lab: &Array3<u8>, p: Voxel| lab[p] == 2 && neighbours(lab, p).any(|q| lab[q] != 2);
    let mut frontier: Vec<Voxel> = lab.indexed_iter().filter(|&(p, _)| edge(&lab, p)).map(|(p, _)| p).collect();
    for _ in 0..peel_steps {
        let peel: Vec<Voxel> = frontier.iter().copied().filter(|&p| lab[p] == 2 && !keeps(p, lesion_of[p])).collect();
        if peel.is_empty() {
            break;
        }
        for &p in &peel {
            lab[p] = 1;
        }
        report.peeled += peel.len();
        frontier = peel.iter().flat_map(|&p| neighbours(&lab, p)).filter(|&q| lab[q] == 2).collect();
        frontier.sort_unstable();
        frontier.dedup();
    }
    let mut frontier: Vec<Voxel> = lab.indexed_iter().filter(|&(p, _)| edge(&lab, p)).map(|(p, _)| p).collect();
    for _ in 0..grow_steps {
        let now = &lab;
        let mut grow: Vec<(Voxel, u32)> = frontier
            .iter()
            .flat_map(|&t| {
                let lesion = lesion_of[t];
                neighbours(now, t)
                    .filter(move |&q| now[q] == 1 && joins(q, lesion))
                    .map(move |q| (q, lesion))
                    .collect::<Vec<_>>()
            })
            .collect();
        grow.sort_unstable();
        grow.dedup_by_key(|g| g.0);
        if grow.is_empty() {
            break;
        }
        for &(p, lesion) in &grow {
            lab[p] = 2;
            lesion_of[p] = lesion;
        }
        report.grown += grow.len();
        frontier = grow.into_iter().map(|g| g.0).collect();
    }
    let voxel_mm3: f64 = local_grid.spacing_mm.iter().product();
    let least_mm3 = opts.peel_mm * opts.peel_mm * local_grid.spacing_mm[0];
    let (kept, fragments) =
        connected_components(&Mask::new(lab.clone(), local_grid), 2, (least_mm3 / voxel_mm3).ceil() as usize);
    if fragments > 0 {
        let mut keep = Array3::<bool>::from_elem(lab.dim(), false);
        for c in &kept {
            for &v in &c.voxels {
                keep[at(v)] = true;
            }
        }
        for (v, &k) in lab.iter_mut().zip(keep.iter()) {
            if *v == 2 && !k {
                *v = 1;
                report.dropped += 1;
            }
        }
    }
    mask.data.slice_mut(region).assign(&lab);
    Some(report)
}

/// Another phase for the tumour refinement, brought onto the refinement's grid as needed.
pub enum OtherPhase<'a> {
    /// Already registered to the reference, on any grid (resampled in world coordinates).
    Registered(&'a CtVolume),
    /// A phase as acquired and the displacement field (LPS mm, on any grid) that maps the
    /// reference's points into it, as `register::register_ct` finds.
    Warped(&'a CtVolume, &'a Field),
}

impl OtherPhase<'_> {
    /// Its HU on `grid`, `NO_DATA` outside its coverage.
    pub(super) fn onto(&self, grid: &Geometry) -> Array3<i16> {
        match self {
            OtherPhase::Registered(v) => v.resample_to(grid, Interp::Linear, NO_DATA).data,
            OtherPhase::Warped(v, field) => warp_volume(v, &resample_field(field, grid), Interp::Linear, NO_DATA).data,
        }
    }
}

/// Outside a resampled phase's own coverage.
const NO_DATA: i16 = i16::MIN;

type Voxel = (usize, usize, usize);

/// The liver's parenchyma in one phase: median and robust SD of the 3 × 3-smoothed HU of
/// the liver's interior (label 1 with every in-plane neighbour labelled too), and the band
/// around the median that counts as parenchyma.
#[derive(Clone, Copy, Debug)]
pub(super) struct Parenchyma {
    pub(super) median_hu: f32,
    pub(super) sigma_hu: f32,
    lo: f32,
    hi: f32,
}

impl Parenchyma {
    /// `None` when the liver has too few interior voxels to measure.
    pub(super) fn measure(lab: &Array3<u8>, hu: &Array3<i16>, band_sigmas: f32) -> Option<Self> {
        let (nz, ny, nx) = lab.dim();
        // sampled for speed: a couple of million voxels are plenty for a median
        let stride = ((nz * ny * nx) / 2_000_000).max(1);
        let mut values: Vec<f32> = Vec::new();
        for (n, (p, &v)) in lab.indexed_iter().enumerate() {
            if v == 1 && n % stride == 0 && neighbours(lab, p).all(|q| lab[q] > 0) {
                values.extend(smooth3(hu, p));
            }
        }
        if values.len() < 200 {
            return None;
        }
        Self::of_values(&mut values, band_sigmas)
    }

    /// The band of `values` (smoothed HU of a region taken as parenchyma): median ± `band_sigmas`
    /// robust SDs (at least 5 HU each). `None` when there are no values.
    pub(super) fn of_values(values: &mut [f32], band_sigmas: f32) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let median = quantile(values, 0.5);
        let mut dev: Vec<f32> = values.iter().map(|v| (v - median).abs()).collect();
        let sigma = (1.4826 * quantile(&mut dev, 0.5)).max(5.0);
        Some(Parenchyma {
            median_hu: median,
            sigma_hu: sigma,
            lo: median - band_sigmas * sigma,
            hi: median + band_sigmas * sigma,
        })
    }

    pub(super) fn contains(&self, hu: f32) -> bool {
        hu >= self.lo && hu <= self.hi
    }
}

/// The box `[lo, hi)` (`[z, y, x]`) of the mask's labelled voxels, grown by `margin` pixels
/// within slices (clipped to the grid): where the refinements, the lumen removal, the
/// thin-bridge cut and the lesion search work.
pub(super) fn liver_box(mask: &Mask, margin: usize) -> Option<([usize; 3], [usize; 3])> {
    let (_, ny, nx) = mask.data.dim();
    let b = VoxelBox::enclosing(mask.data.view(), |v| v > 0)?;
    Some((
        [b.lo[0], b.lo[1].saturating_sub(margin), b.lo[2].saturating_sub(margin)],
        [b.hi[0], (b.hi[1] + margin).min(ny), (b.hi[2] + margin).min(nx)],
    ))
}

/// Squared depth (mm²) of each voxel of a box below the surface of the labelled region:
/// to the nearest unlabelled voxel, or to just beyond the box's faces (what lies past them
/// is not known to be labelled: the scan's first and last slices count as outside).
pub(super) fn depth_mm2(lab: &Array3<u8>, spacing_mm: [f64; 3]) -> Array3<f32> {
    let dims = lab.dim();
    let dims = [dims.0, dims.1, dims.2];
    let mut d = squared_distance_mm2(&lab.mapv(|l| l == 0), spacing_mm);
    for ((k, j, i), v) in d.indexed_iter_mut() {
        let at = [k, j, i];
        for a in 0..3 {
            let face = (at[a].min(dims[a] - 1 - at[a]) + 1) as f64 * spacing_mm[a];
            *v = v.min((face * face) as f32);
        }
    }
    d
}

/// The sub-grid `[lo, hi)` (`[z, y, x]`) of `geometry`, same spacing and axes.
pub(super) fn local_grid(geometry: &Geometry, lo: [usize; 3], hi: [usize; 3]) -> Geometry {
    Geometry {
        shape: [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]],
        origin_mm: geometry.index_to_world([lo[2] as f64, lo[1] as f64, lo[0] as f64]),
        ..geometry.clone()
    }
}

/// How many in-plane pixel steps fit in `reach_mm` (0: the pixels are coarser than that).
fn steps_within(ct: &CtVolume, reach_mm: f64) -> usize {
    let sp = ct.geometry.spacing_mm;
    (reach_mm / sp[1].min(sp[2]).max(1e-3)).floor() as usize
}

/// 3 × 3 in-plane mean (thin-slice CT is noisy voxel by voxel); `None` where a sample
/// lies outside a resampled phase's coverage.
pub(super) fn smooth3(hu: &Array3<i16>, (k, j, i): Voxel) -> Option<f32> {
    let (_, ny, nx) = hu.dim();
    let (j0, j1, i0, i1) = (j.saturating_sub(1), (j + 1).min(ny - 1), i.saturating_sub(1), (i + 1).min(nx - 1));
    let mut s = 0f32;
    for jj in j0..=j1 {
        for ii in i0..=i1 {
            let v = hu[[k, jj, ii]];
            if v == NO_DATA {
                return None;
            }
            s += v as f32;
        }
    }
    Some(s / ((j1 - j0 + 1) * (i1 - i0 + 1)) as f32)
}

/// The 4 in-plane neighbours of a voxel inside the grid.
fn neighbours<T>(grid: &Array3<T>, (k, j, i): Voxel) -> impl Iterator<Item = Voxel> {
    let (_, ny, nx) = grid.dim();
    N4.iter().filter_map(move |&(dj, di)| {
        let (q, r) = (j as isize + dj, i as isize + di);
        (q >= 0 && r >= 0 && (q as usize) < ny && (r as usize) < nx).then_some((k, q as usize, r as usize))
    })
}

fn quantile(v: &mut [f32], q: f64) -> f32 {
    let n = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(n, |a, b| a.total_cmp(b));
    *x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// A liver disc (60 HU, noisy) in fat, a kidney-bright disc against it, on 0.8 mm pixels.
    fn scene() -> (CtVolume, Array3<bool>) {
        let (nz, n) = (3, 120);
        let g = Geometry {
            shape: [nz, n, n],
            spacing_mm: [2.0, 0.8, 0.8],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut rng = super::super::Rng::new(5);
        let mut hu = Array3::<i16>::zeros((nz, n, n));
        let mut liver = Array3::<bool>::from_elem((nz, n, n), false);
        for ((k, j, i), v) in hu.indexed_iter_mut() {
            let (y, x) = (j as f32 - 55.0, i as f32 - 55.0);
            let (ky, kx) = (j as f32 - 55.0, i as f32 - 100.0);
            let base = if y * y + x * x <= 35.0 * 35.0 {
                liver[[k, j, i]] = true;
                60.0
            } else if ky * ky + kx * kx <= 12.0 * 12.0 {
                170.0
            } else {
                -100.0
            };
            *v = (base + 12.0 * rng.normal()).round() as i16;
        }
        (CtVolume::new(hu, g), liver)
    }

    #[test]
    fn grows_an_undersegmented_liver_to_its_edge_and_no_further() {
        let (ct, liver) = scene();
        // the network's edge 3 px (2.4 mm) inside the true one, a tumour voxel on it
        let mut data = Array3::<u8>::zeros(liver.dim());
        for ((k, j, i), v) in data.indexed_iter_mut() {
            let (y, x) = (j as f32 - 55.0, i as f32 - 55.0);
            *v = (y * y + x * x <= 32.0 * 32.0) as u8;
            if k == 1 && j == 55 && i == 23 {
                *v = 2;
            }
        }
        let mut mask = Mask::new(data.clone(), ct.geometry.clone());
        let r = refine_liver_edge(&mut mask, &ct, &RefineOptions::default()).expect("refined");
        assert!((r.median_hu - 60.0).abs() < 5.0, "{r:?}");
        assert!(r.grown > 0);
        let mut outside = 0;
        for ((p, &after), &before) in mask.data.indexed_iter().zip(data.iter()) {
            if after != before {
                assert_eq!((before, after), (0, 1), "only background becomes liver, at {p:?}");
                outside += !liver[p] as usize;
            }
        }
        assert_eq!(outside, 0, "grew past the liver's edge into fat or the kidney");
        assert_eq!(mask.data[[1, 55, 23]], 2, "tumour kept");
        let dice = |m: &Array3<u8>| {
            let (mut both, mut a, mut b) = (0, 0, 0);
            for (&v, &t) in m.iter().zip(liver.iter()) {
                both += (v > 0 && t) as usize;
                a += (v > 0) as usize;
                b += t as usize;
            }
            2.0 * both as f64 / (a + b) as f64
        };
        assert!(dice(&mask.data) > dice(&data) + 0.02, "{} → {}", dice(&data), dice(&mask.data));
    }

    #[test]
    fn leaves_coarse_studies_and_other_grids_alone() {
        let (ct, liver) = scene();
        let mut mask = Mask::new(liver.mapv(|l| l as u8), ct.geometry.clone());
        let coarse = RefineOptions { reach_mm: 0.5, ..RefineOptions::default() };
        assert_eq!(refine_liver_edge(&mut mask, &ct, &coarse), None);
        let mut other = Mask::new(Array3::<u8>::ones((2, 4, 4)), ct.geometry.clone());
        assert_eq!(refine_liver_edge(&mut other, &ct, &RefineOptions::default()), None);
        assert!(other.data.iter().all(|&v| v == 1));
    }

    /// Two phases of a liver disc (noisy) with a lesion of radius 14 px: dark in the first
    /// phase with a 2 px rim as bright as the liver there, bright in the second all
    /// through; a vessel (bright in the first phase) touches the lesion.
    fn lesion_scene() -> (CtVolume, CtVolume, Array3<u8>) {
        let (nz, n) = (3, 120);
        let g = Geometry {
            shape: [nz, n, n],
            spacing_mm: [2.0, 0.8, 0.8],
            origin_mm: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mut rng = super::super::Rng::new(9);
        let mut pv = Array3::<i16>::zeros((nz, n, n));
        let mut art = Array3::<i16>::zeros((nz, n, n));
        let mut truth = Array3::<u8>::zeros((nz, n, n));
        for (((k, j, i), v), a) in pv.indexed_iter_mut().zip(art.iter_mut()) {
            let r_liver = ((j as f32 - 60.0).powi(2) + (i as f32 - 60.0).powi(2)).sqrt();
            let r_lesion = ((j as f32 - 60.0).powi(2) + (i as f32 - 50.0).powi(2)).sqrt();
            let vessel = (j as f32 - 60.0).abs() <= 2.0 && i as f32 > 64.0 && i < 90;
            let (p, q) = if r_liver > 45.0 {
                (-100.0, -100.0)
            } else if r_lesion <= 14.0 {
                truth[[k, j, i]] = 2;
                (if r_lesion > 12.0 { 100.0 } else { 50.0 }, 160.0)
            } else if vessel {
                truth[[k, j, i]] = 1;
                (180.0, 100.0)
            } else {
                truth[[k, j, i]] = 1;
                (100.0, 80.0)
            };
            *v = (p + 10.0 * rng.normal()).round() as i16;
            *a = (q + 10.0 * rng.normal()).round() as i16;
        }
        (CtVolume::new(pv, g.clone()), CtVolume::new(art, g), truth)
    }

    fn dice_of(m: &Array3<u8>, t: &Array3<u8>, label: u8) -> f64 {
        let (mut both, mut a, mut b) = (0, 0, 0);
        for (&v, &w) in m.iter().zip(t.iter()) {
            both += (v == label && w == label) as usize;
            a += (v == label) as usize;
            b += (w == label) as usize;
        }
        2.0 * both as f64 / (a + b) as f64
    }

    #[test]
    fn tumour_edges_move_to_the_lesion_and_keep_its_rim() {
        let (pv, art, truth) = lesion_scene();
        // the network's lesion 3 px too large (into the vessel too), then one 2 px too small
        for (radius, grows) in [(17.0, false), (12.0, true)] {
            let mut data = truth.mapv(|t| (t > 0) as u8);
            for ((_, j, i), v) in data.indexed_iter_mut() {
                if *v > 0 && ((j as f32 - 60.0).powi(2) + (i as f32 - 50.0).powi(2)).sqrt() <= radius {
                    *v = 2;
                }
            }
            let mut mask = Mask::new(data.clone(), pv.geometry.clone());
            let r =
                refine_tumour_edges(&mut mask, &pv, &[OtherPhase::Registered(&art)], &TumourRefineOptions::default())
                    .expect("refined");
            let (before, after) = (dice_of(&data, &truth, 2), dice_of(&mask.data, &truth, 2));
            assert!(
                after > before + 0.05 && after > 0.93,
                "radius {radius}: tumour Dice {before:.3} → {after:.3} ({r:?})"
            );
            assert_eq!(r.grown > 0, grows, "{r:?}");
            // the rim (liver-like in the first phase, bright in the second) is tumour
            assert_eq!(mask.data[[1, 60, 37]], 2, "radius {radius}: rim voxel peeled");
            // growth never takes in the vessel beside the lesion (where the network's call
            // covered it, it stands out against the core as a rim would, and stays)
            let from = if grows { 65 } else { 68 };
            assert!((from..90).all(|i| mask.data[[1, 60, i]] != 2), "radius {radius}: vessel taken in");
        }
        // with the first phase alone the rim looks like liver: it is the second phase that keeps it
        let mut mask = Mask::new(truth.clone(), pv.geometry.clone());
        refine_tumour_edges(&mut mask, &pv, &[], &TumourRefineOptions::default()).expect("refined");
        assert_eq!(mask.data[[1, 60, 37]], 1, "single phase: the liver-like rim is peeled");
        assert_eq!(mask.data[[1, 60, 50]], 2, "the dark core stays");
    }

    #[test]
    fn a_tumour_call_in_plain_liver_is_peeled_away() {
        let (pv, art, truth) = lesion_scene();
        let mut data = truth.mapv(|t| (t > 0) as u8);
        // a 5 px false call in normal liver, far from the lesion
        for ((_, j, i), v) in data.indexed_iter_mut() {
            if ((j as f32 - 85.0).powi(2) + (i as f32 - 60.0).powi(2)).sqrt() <= 5.0 {
                *v = 2;
            }
        }
        let mut mask = Mask::new(data, pv.geometry.clone());
        let r = refine_tumour_edges(&mut mask, &pv, &[OtherPhase::Registered(&art)], &TumourRefineOptions::default())
            .expect("refined");
        assert!(r.peeled > 0);
        assert!(
            mask.data.iter().all(|&v| v != 2),
            "{} tumour voxels left",
            mask.data.iter().filter(|&&v| v == 2).count()
        );
    }

    #[test]
    fn a_phase_and_its_field_refine_as_the_registered_phase_does() {
        let (pv, art, truth) = lesion_scene();
        // the arterial phase as acquired: everything 4 px (3.2 mm) further along x; the
        // field maps the reference's points there
        let mut moved = art.clone();
        for ((k, j, i), v) in moved.data.indexed_iter_mut() {
            *v = if i >= 4 { art.data[[k, j, i - 4]] } else { -100 };
        }
        let mut field = Field::zeros(pv.geometry.clone());
        field.data.index_axis_mut(ndarray::Axis(3), 0).fill(3.2);
        let mut start = truth.mapv(|t| (t > 0) as u8);
        for ((_, j, i), v) in start.indexed_iter_mut() {
            if *v > 0 && ((j as f32 - 60.0).powi(2) + (i as f32 - 50.0).powi(2)).sqrt() <= 17.0 {
                *v = 2;
            }
        }
        let refine = |other: OtherPhase| {
            let mut m = Mask::new(start.clone(), pv.geometry.clone());
            refine_tumour_edges(&mut m, &pv, &[other], &TumourRefineOptions::default()).expect("refined");
            m.data
        };
        let registered = refine(OtherPhase::Registered(&art));
        assert_eq!(refine(OtherPhase::Warped(&moved, &field)), registered, "the field brings the phase back");
        assert_ne!(refine(OtherPhase::Registered(&moved)), registered, "the misaligned phase moves the edges");
    }

    #[test]
    fn a_phase_that_misses_the_liver_is_left_out() {
        let (pv, art, truth) = lesion_scene();
        let mut start = truth.mapv(|t| (t > 0) as u8);
        for ((_, j, i), v) in start.indexed_iter_mut() {
            if *v > 0 && ((j as f32 - 60.0).powi(2) + (i as f32 - 50.0).powi(2)).sqrt() <= 17.0 {
                *v = 2;
            }
        }
        // a phase acquired 200 mm away: nothing of it lies on the liver
        let mut far = art.clone();
        far.geometry.origin_mm[2] += 200.0;
        let refine = |others: &[OtherPhase]| {
            let mut m = Mask::new(start.clone(), pv.geometry.clone());
            refine_tumour_edges(&mut m, &pv, others, &TumourRefineOptions::default()).expect("refined without it");
            m.data
        };
        assert_eq!(refine(&[OtherPhase::Registered(&far)]), refine(&[]));
    }
}
