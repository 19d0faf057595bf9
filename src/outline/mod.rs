//! One click on a lesion outlines it in 3-D from every phase given (issue 24).
//!
//! [`outline_lesion`] takes the phases on one grid (registered onto the portal venous phase
//! first), an optional liver mask and the user's prompts (include points, exclude points,
//! LPS mm), and returns a 0/1 mask of the lesion on the phases' grid, or a refusal that
//! says what the click found (a vessel, fat outside the liver, the liver's edge, plain
//! parenchyma, a region that would not stop growing). [`measure::measure_outline`] gives
//! the lesion's row (volume, RECIST axes, pattern hint, depth below the liver surface)
//! through `lesion`, which owns those measurements.
//!
//! How: in a box around the clicks (default ±40 mm) every phase is smoothed along the axes
//! whose spacing is fine enough (not across 5 mm slices: there a neighbour is other anatomy,
//! and mixing it in halves a small lesion's contrast); the liver's own median and robust SD
//! per phase come from the liver mask in the box (or, without one, from the most common
//! soft-tissue value there); the lesion's signature is the median of a small ball at the
//! click; a voxel joins when it is an outlier from the liver (chi-square 0.999 over the
//! phases) and nearer the lesion's signature than the liver's, connected to the click
//! ([`grow`]). Rims and capsules join layer by layer when the shell outside differs from the
//! liver in a way no partial-volume mixture explains. A region that reaches the box's inside
//! faces has leaked: the outlier threshold is raised and it is grown again, and after
//! `leak_retries` tries the click is refused. The region found is then grown once more
//! against the parenchyma 5–20 mm around it, as a reader compares a lesion with the liver
//! next to it: on real CT the liver's HU drifts across the 8 cm box by about as much as its
//! noise, so the box's spread is wider than the local one and a faint lesion's edge is
//! missed (kept only when it holds the clicks and does not leak). Holes are filled
//! (haemangioma fill-in, necrotic centres) and the result closed by a few mm.
//!
//! Files: `region` (the box, flood fill, holes, closing), `stats` (features, robust
//! statistics, distances), `checks` (what a click landed on), `grow` (the competition),
//! `measure` (the lesion's row). A plain function of its inputs, cheap enough (well under
//! a second for a 5 cm lesion) to call from a worker thread without progress or cancel.

pub mod checks;
pub mod grow;
pub mod measure;
pub mod region;
pub mod stats;

use ndarray::Array3;

use crate::io::phase::Phase;
use crate::volume::region::VoxelBox;
use crate::volume::{CtVolume, Lps, Mask, Volume};
use grow::{grow, Classes};
use region::{close_mm, erode_mm, fill_holes, flood, WorkBox};
use stats::{
    ball, chi2_999, parenchyma_around, parenchyma_voxels_by_mode, signature_of, Features, Signature, DENSE_HU, FAT_HU,
};

pub use measure::{measure_outline, LesionRow};

/// What the user clicked (LPS mm).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prompts {
    /// On the lesion: each grows a part; the outline is their union.
    pub include: Vec<Lps>,
    /// Not lesion (shift-click): their signature competes with the lesion's, and the part of
    /// the outline holding one is removed.
    pub exclude: Vec<Lps>,
    /// Half-size of the working box in mm, instead of [`OutlineOptions::box_half_mm`].
    pub box_half_mm: Option<f64>,
    /// A box drawn around the lesion on one slice: two opposite corners (LPS mm). Its centre
    /// is the click when no include point is given, and the outline stays inside it (across
    /// the slice, as far as the box's larger half-side).
    #[serde(default)]
    pub box_mm: Option<[Lps; 2]>,
}

/// Around a drawn box the work reaches this much further, so a lesion the box hugs is not
/// taken for a region that leaks out of the working box.
const BOX_MARGIN_MM: f64 = 10.0;
/// Within this squared distance (voxels²) of a mask's edge a dense voxel is bone the mask
/// took in, not lesion: two voxels.
const EDGE_VOXELS2: f32 = 4.0;

impl Prompts {
    /// The prompts the grower sees for a drawn box: its centre as the click (if none was
    /// given) and a working box that holds the drawn one with a margin.
    fn with_box(&self) -> Prompts {
        let Some([a, b]) = self.box_mm else { return self.clone() };
        let centre: Lps = std::array::from_fn(|i| 0.5 * (a[i] + b[i]));
        let half = (0..3).map(|i| 0.5 * (a[i] - b[i]).abs()).fold(0.0, f64::max);
        let mut p = self.clone();
        if p.include.is_empty() {
            p.include.push(centre);
        }
        p.box_half_mm = Some(p.box_half_mm.unwrap_or(0.0).max(half + BOX_MARGIN_MM));
        p
    }

    /// Whether world point `x` lies in the drawn box: within its corners along the axes it
    /// spans, and within its larger half-side of the slice along the one it does not.
    fn box_holds(&self, x: Lps, tolerance_mm: f64) -> bool {
        let Some([a, b]) = self.box_mm else { return true };
        let half = (0..3).map(|i| 0.5 * (a[i] - b[i]).abs()).fold(0.0, f64::max);
        (0..3).all(|i| {
            let (lo, hi) = (a[i].min(b[i]), a[i].max(b[i]));
            if hi - lo > tolerance_mm {
                x[i] >= lo - tolerance_mm && x[i] <= hi + tolerance_mm
            } else {
                (x[i] - 0.5 * (lo + hi)).abs() <= half + tolerance_mm
            }
        })
    }
}

/// Settings; the defaults are what the CLI and viewer use. Distances in mm.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutlineOptions {
    /// The working box reaches this far from the clicks (8 cm box by default).
    pub box_half_mm: f64,
    /// The lesion's signature: the median of this ball at the click.
    pub seed_radius_mm: f64,
    /// Voxels are smoothed with their neighbours along every axis whose spacing is at most
    /// this (the seed ball's radius: a neighbour further away is other anatomy, not noise).
    #[serde(default = "default_smooth_reach_mm")]
    pub smooth_reach_mm: f64,
    /// A click whose ball of this radius is more than `edge_fraction` non-liver is on the edge.
    pub edge_radius_mm: f64,
    pub edge_fraction: f64,
    /// Bright structure around a bright click, looked at within this radius…
    pub vessel_radius_mm: f64,
    /// …is a vessel when its second principal spread is under this share of the first.
    pub tubular_ratio: f64,
    /// Beyond the core the region grows by at most this much per step…
    pub rim_step_mm: f64,
    /// …for at most this many steps (rims, capsules, a periphery that differs from the centre).
    pub max_rims: usize,
    /// Closing radius of the final outline.
    pub close_mm: f64,
    /// Parts joined by necks thinner than about twice this are parted for exclude points.
    pub neck_mm: f64,
    /// Times the outlier threshold is doubled after a leak before the click is refused.
    pub leak_retries: usize,
    /// Once grown, the lesion is grown again against the parenchyma lying this far (from,
    /// to) outside it, when at least [`LOCAL_MIN_VOXELS`] parenchyma voxels lie there.
    #[serde(default = "default_local_shell_mm")]
    pub local_shell_mm: [f64; 2],
}

/// Fewer parenchyma voxels than this around a grown region give no local statistics (the
/// box's are kept): a robust SD from 100 values is within about 10 %.
pub const LOCAL_MIN_VOXELS: usize = 100;

fn default_local_shell_mm() -> [f64; 2] {
    [5.0, 20.0]
}

impl Default for OutlineOptions {
    fn default() -> Self {
        OutlineOptions {
            box_half_mm: 40.0,
            seed_radius_mm: 3.0,
            smooth_reach_mm: default_smooth_reach_mm(),
            edge_radius_mm: 5.0,
            edge_fraction: 0.25,
            vessel_radius_mm: 15.0,
            tubular_ratio: 0.25,
            rim_step_mm: 3.0,
            max_rims: 10,
            close_mm: 2.0,
            neck_mm: 2.0,
            leak_retries: 3,
            local_shell_mm: default_local_shell_mm(),
        }
    }
}

fn default_smooth_reach_mm() -> f64 {
    3.0
}

/// What a click found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    Lesion,
    Vessel,
    OutsideLiver,
    LiverEdge,
    Parenchyma,
    /// The region reached the working box however strict the threshold.
    Leak,
    /// Fluid on the liver's surface, not in it: the gallbladder, or bowel (the tumour
    /// stage's check says this of an outline; a click never does).
    SurfaceFluid,
}

impl Found {
    pub fn as_str(self) -> &'static str {
        match self {
            Found::Lesion => "a lesion",
            Found::Vessel => "a vessel",
            Found::OutsideLiver => "a point outside the liver",
            Found::LiverEdge => "the liver's edge",
            Found::Parenchyma => "liver parenchyma",
            Found::Leak => "a region without a boundary",
            Found::SurfaceFluid => "fluid on the liver's surface (the gallbladder, or bowel)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutlineError {
    #[error("no phase given; give at least the portal venous phase")]
    NoPhases,
    #[error("no include point: click on the lesion at least once")]
    NoInclude,
    #[error("phase {index} is on a different grid from phase 0 ({detail}); register or resample the phases onto one grid first")]
    GridMismatch { index: usize, detail: String },
    #[error("the liver mask is on a different grid from the phases ({detail}); resample it onto the phases' grid")]
    MaskGrid { detail: String },
    #[error("the point {at_mm:?} (LPS mm) lies outside the scan")]
    OutsideScan { at_mm: Lps },
    #[error("the grid is not usable: {0}")]
    BadGeometry(String),
    #[error("the click at ({:.1}, {:.1}, {:.1}) mm (LPS) is refused: it found {}: {message}", at_mm[0], at_mm[1], at_mm[2], found.as_str())]
    Refused { found: Found, at_mm: Lps, message: String },
    #[error(transparent)]
    Lesion(#[from] crate::lesion::LesionError),
}

impl OutlineError {
    /// What a refused click found (`None` for other errors).
    pub fn found(&self) -> Option<Found> {
        match self {
            OutlineError::Refused { found, .. } => Some(*found),
            _ => None,
        }
    }
}

/// A lesion outlined.
#[derive(Clone, Debug)]
pub struct Outline {
    /// 1 on the lesion, 0 elsewhere, on the phases' grid.
    pub mask: Mask,
    pub found: Found,
    pub voxel_count: usize,
    pub volume_ml: f64,
    /// The working box (`[z, y, x]`): nothing outside it changed (for partial re-uploads).
    pub dirty: VoxelBox,
    /// Phases in the order given.
    pub phases: Vec<Phase>,
    /// The liver's median and robust SD per phase (smoothed values) the outline was grown
    /// against: the parenchyma around the lesion, or the box's when too little lies there.
    pub parenchyma: Signature,
    /// Whether `parenchyma` is the liver around the lesion (true) or the whole box's.
    pub local_parenchyma: bool,
    /// Each include point's signature.
    pub seeds: Vec<Signature>,
    /// Rim/capsule layers added, per include point.
    pub rims: Vec<usize>,
    /// How many times a leak made the threshold stricter (0: none).
    pub tightened: usize,
    /// Things the user should know (an exclude point that removed nothing, …).
    pub warnings: Vec<String>,
}

/// Index of the phase whose brightness marks vessels: portal venous, else delayed, else the first.
pub fn reference_phase(names: &[Phase]) -> usize {
    names
        .iter()
        .position(|&p| p == Phase::PortalVenous)
        .or_else(|| names.iter().position(|&p| p == Phase::Delayed))
        .unwrap_or(0)
}

fn voxel_of(g: &crate::volume::Geometry, p: Lps) -> Result<[usize; 3], OutlineError> {
    let ijk = g.world_to_index(p);
    if !g.contains_index(ijk) {
        return Err(OutlineError::OutsideScan { at_mm: p });
    }
    let [nz, ny, nx] = g.shape;
    let r = |x: f64, n: usize| (x.round().max(0.0) as usize).min(n - 1);
    Ok([r(ijk[2], nz), r(ijk[1], ny), r(ijk[0], nx)])
}

fn check_grids(phases: &[(Phase, &CtVolume)], liver: Option<&Mask>) -> Result<(), OutlineError> {
    let g0 = &phases.first().ok_or(OutlineError::NoPhases)?.1.geometry;
    g0.validate().map_err(OutlineError::BadGeometry)?;
    let same = |g: &crate::volume::Geometry| g.same_grid(g0);
    for (n, (_, v)) in phases.iter().enumerate() {
        if !same(&v.geometry) || v.data.dim() != (g0.shape[0], g0.shape[1], g0.shape[2]) {
            return Err(OutlineError::GridMismatch {
                index: n,
                detail: format!(
                    "shape {:?} vs {:?}, corners {:.2} mm apart",
                    v.geometry.shape,
                    g0.shape,
                    v.geometry.max_corner_distance_mm(g0)
                ),
            });
        }
    }
    if let Some(m) = liver {
        if !same(&m.geometry) || m.data.dim() != (g0.shape[0], g0.shape[1], g0.shape[2]) {
            return Err(OutlineError::MaskGrid { detail: format!("shape {:?} vs {:?}", m.geometry.shape, g0.shape) });
        }
    }
    Ok(())
}

/// Outlines the lesion under `prompts.include` from all of `phases` (one grid). `liver`: a
/// label mask on that grid (any non-zero label is liver; label 1, when present, is the
/// parenchyma its statistics come from). See the module doc for the method.
pub fn outline_lesion(
    phases: &[(Phase, &CtVolume)],
    liver: Option<&Mask>,
    prompts: &Prompts,
    opts: &OutlineOptions,
) -> Result<Outline, OutlineError> {
    check_grids(phases, liver)?;
    if prompts.box_mm.is_some() {
        let boxed = prompts.with_box();
        let mut o = outline_lesion(phases, liver, &Prompts { box_mm: None, ..boxed }, opts)?;
        // nothing outside the drawn box (half a voxel of slack for the box's own edge)
        let g = o.mask.geometry.clone();
        let tol = 0.5 * g.spacing_mm.iter().cloned().fold(0.0, f64::max);
        let mut dropped = 0usize;
        for ((k, j, i), v) in o.mask.data.indexed_iter_mut() {
            if *v != 0 && !prompts.box_holds(g.index_to_world([i as f64, j as f64, k as f64]), tol) {
                *v = 0;
                dropped += 1;
            }
        }
        if dropped > 0 {
            o.voxel_count -= dropped;
            o.volume_ml = o.voxel_count as f64 * g.spacing_mm.iter().product::<f64>() / 1000.0;
            o.warnings.push(format!("{dropped} voxel(s) outside the drawn box were left out"));
        }
        return Ok(o);
    }
    if prompts.include.is_empty() {
        return Err(OutlineError::NoInclude);
    }
    let g = &phases[0].1.geometry;
    let sp = g.spacing_mm;
    let names: Vec<Phase> = phases.iter().map(|(p, _)| *p).collect();
    let r = reference_phase(&names);
    let ref_name = names[r].as_str();
    let inc: Vec<[usize; 3]> = prompts.include.iter().map(|&p| voxel_of(g, p)).collect::<Result<_, _>>()?;
    let exc: Vec<[usize; 3]> = prompts.exclude.iter().map(|&p| voxel_of(g, p)).collect::<Result<_, _>>()?;
    let b = WorkBox::around(&inc, prompts.box_half_mm.unwrap_or(opts.box_half_mm), sp, g.shape);
    let vols: Vec<&CtVolume> = phases.iter().map(|(_, v)| *v).collect();
    let f = Features::build(&vols, r, &b, opts.smooth_reach_mm);
    let lo = b.vox.lo;

    // where the lesion may be, and the parenchyma's statistics
    let (domain, par_vox) = match liver {
        Some(m) => {
            let sub = m.data.slice(ndarray::s![lo[0]..b.vox.hi[0], lo[1]..b.vox.hi[1], lo[2]..b.vox.hi[2]]);
            // a mask's edge may take in fat, lung or bone by a voxel or two: not lesion
            // either; dense voxels deeper inside are lipiodol or calcification in a lesion,
            // which it holds (a treated lesion's lipiodol is most of what shows of it)
            // (the distance transform only when the box holds a dense voxel: most do not)
            let near_edge = if f.ref_raw.iter().any(|&v| v > DENSE_HU) {
                crate::volume::region::squared_distance_mm2(&sub.mapv(|l| l == 0), [1.0; 3]).mapv(|d| d <= EDGE_VOXELS2)
            } else {
                Array3::from_elem(sub.dim(), true)
            };
            let domain = ndarray::Zip::from(&sub)
                .and(&f.covered)
                .and(&f.ref_raw)
                .and(&near_edge)
                .map_collect(|&l, &c, &v, &edge| l != 0 && c && v >= FAT_HU && (v <= DENSE_HU || !edge));
            let has_one = sub.iter().any(|&l| l == 1);
            let par_vox: Vec<[usize; 3]> = sub
                .indexed_iter()
                .filter(|&((k, j, i), &l)| f.covered[[k, j, i]] && if has_one { l == 1 } else { l != 0 })
                .map(|((k, j, i), _)| [k, j, i])
                .collect();
            (domain, par_vox)
        }
        None => {
            let domain = ndarray::Zip::from(&f.ref_raw)
                .and(&f.covered)
                .map_collect(|&v, &c| c && (FAT_HU..=DENSE_HU).contains(&v));
            let par_vox = parenchyma_voxels_by_mode(&f, r, &domain);
            (domain, par_vox)
        }
    };
    let par = signature_of(&f, &par_vox);
    let mut is_par = Array3::from_elem(b.shape(), false);
    for &v in &par_vox {
        is_par[v] = true;
    }
    let at = |n: usize| prompts.include[n];
    for (n, &v) in inc.iter().enumerate() {
        let c = b.local(v).expect("clicks lie in their own box");
        if !domain[c] {
            return Err(OutlineError::Refused {
                found: Found::OutsideLiver,
                at_mm: at(n),
                message: checks::outside_words(f.ref_raw[c], ref_name, liver.is_some()),
            });
        }
    }
    let Some(par) = par else {
        return Err(OutlineError::Refused {
            found: Found::OutsideLiver,
            at_mm: at(0),
            message: "no liver within the working box to compare the lesion with".into(),
        });
    };
    let local = |v: [usize; 3]| b.local(v).expect("clicks lie in their own box");
    let seed_ball = |c: [usize; 3]| ball(&b, sp, c, opts.seed_radius_mm, |v| domain[v]);

    // the clicks: what they landed on, and their signatures
    let mut seeds = Vec::new();
    let mut seed_balls = Vec::new();
    for (n, &v) in inc.iter().enumerate() {
        let c = local(v);
        let balls = seed_ball(c);
        let refuse = |(found, message): (Found, String)| OutlineError::Refused { found, at_mm: at(n), message };
        let sig = signature_of(&f, &balls);
        let sig = match sig {
            Some(s) => s,
            None => {
                return Err(refuse((
                    Found::OutsideLiver,
                    format!("{:.0} HU in the {ref_name} phase ({})", f.ref_raw[c], checks::tissue_words(f.ref_raw[c])),
                )))
            }
        };
        checks::check_click(&f, &b, &domain, liver.is_some(), (r, ref_name), &par, &sig, c, sp, opts)
            .map_err(refuse)?;
        seeds.push(sig);
        seed_balls.push(balls);
    }
    let background: Vec<Vec<f32>> = exc
        .iter()
        .filter_map(|&v| b.local(v))
        .filter_map(|c| signature_of(&f, &ball(&b, sp, c, opts.seed_radius_mm, |v| domain[v])))
        .map(|s| s.median_hu)
        .collect();

    // grow, tightening after a leak
    let base2 = chi2_999(f.dims());
    let grow_all = |par: &Signature, tightened: usize| {
        let classes =
            Classes { parenchyma: par, background: background.clone(), outlier2: base2 * 2f32.powi(tightened as i32) };
        let mut region = Array3::from_elem(b.shape(), false);
        let mut rims = Vec::new();
        for (s, balls) in seeds.iter().zip(&seed_balls) {
            let g = grow(&f, &domain, &classes, s, balls, sp, opts);
            ndarray::Zip::from(&mut region).and(&g.region).for_each(|a, &x| *a |= x);
            rims.push(g.rims);
        }
        (region, rims)
    };
    let mut tightened = 0;
    let (mut region, mut rims) = loop {
        let (region, rims) = grow_all(&par, tightened);
        if !b.touches_inner_face(&region) {
            break (region, rims);
        }
        if tightened >= opts.leak_retries {
            return Err(OutlineError::Refused {
                found: Found::Leak,
                at_mm: at(0),
                message: format!(
                    "the region reached the edge of the {:.0} mm working box even with the threshold raised {tightened} times; click nearer the lesion's centre, shift-click what it leaks into{}, or give a larger box for a larger lesion",
                    2.0 * prompts.box_half_mm.unwrap_or(opts.box_half_mm),
                    if liver.is_some() { "" } else { ", give a liver mask" }
                ),
            });
        }
        tightened += 1;
    };

    // Grown again against the liver around it: a reader compares a lesion with the
    // parenchyma next to it, not with the box's, whose spread a slow drift of the liver's HU
    // across 8 cm widens (on real CT more than the noise). Kept only when it still stops
    // inside the box and holds the click.
    let mut parenchyma = par;
    let mut local_parenchyma = false;
    if region.iter().any(|&x| x) {
        if let Some(local) = parenchyma_around(&f, &is_par, &region, sp, opts.local_shell_mm, LOCAL_MIN_VOXELS) {
            let (again, again_rims) = grow_all(&local, tightened);
            let holds_clicks = seed_balls.iter().all(|balls| balls.iter().any(|&v| again[v]));
            if holds_clicks && !b.touches_inner_face(&again) {
                region = again;
                rims = again_rims;
                parenchyma = local;
                local_parenchyma = true;
            }
        }
    }

    // rims, capsules and fill-in: holes filled, small gaps closed, then inside the liver
    region = fill_holes(&region);
    region = close_mm(&region, sp, opts.close_mm);
    ndarray::Zip::from(&mut region).and(&domain).for_each(|a, &d| *a &= d);
    region = fill_holes(&region);
    ndarray::Zip::from(&mut region).and(&domain).for_each(|a, &d| *a &= d);
    let inc_local: Vec<[usize; 3]> = inc.iter().map(|&v| local(v)).collect();
    let mut warnings = Vec::new();
    if tightened > 0 {
        warnings.push(format!(
            "the region leaked to the edge of the working box at the liver's own threshold; it was grown again with the threshold doubled {tightened} time(s), so faint edges may be left out: check the outline"
        ));
    }
    remove_excluded(&mut region, &inc_local, &exc, &b, sp, opts, &mut warnings);
    let keep_seeds: Vec<[usize; 3]> = seed_balls.iter().flatten().copied().collect();
    let cur = region.clone();
    region = flood(b.shape(), &keep_seeds, |v| cur[v]);

    // each click's own part (two clicks on two lesions make two round parts, whose union
    // is long but no tube)
    for (n, balls) in seed_balls.iter().enumerate() {
        let part = flood(b.shape(), balls, |v| region[v]);
        if let Some(message) = checks::bright_tube(&f, r, ref_name, &parenchyma, &part, sp) {
            return Err(OutlineError::Refused { found: Found::Vessel, at_mm: at(n), message });
        }
    }

    let mut mask = Volume::filled(g.clone(), 0u8);
    let mut count = 0usize;
    for ((k, j, i), &x) in region.indexed_iter() {
        if x {
            mask.data[[k + lo[0], j + lo[1], i + lo[2]]] = 1;
            count += 1;
        }
    }
    if count == 0 {
        return Err(OutlineError::Refused {
            found: Found::Parenchyma,
            at_mm: at(0),
            message: "no voxel near the click differs enough from the liver to outline".into(),
        });
    }
    Ok(Outline {
        volume_ml: count as f64 * crate::volume::region::voxel_volume_ml(g),
        voxel_count: count,
        mask,
        found: Found::Lesion,
        dirty: b.vox,
        phases: names,
        parenchyma,
        local_parenchyma,
        seeds,
        rims,
        tightened,
        warnings,
    })
}

/// Removes the part of `region` holding each exclude point: the region eroded by
/// `neck_mm` splits at thin necks; the piece under the point (grown back by `neck_mm`,
/// within the region) goes, with any include point on it, unless it holds every include
/// point (then the exclude point only competes as a background signature).
fn remove_excluded(
    region: &mut Array3<bool>,
    include: &[[usize; 3]],
    exclude: &[[usize; 3]],
    b: &WorkBox,
    sp: [f64; 3],
    opts: &OutlineOptions,
    warnings: &mut Vec<String>,
) {
    for &e in exclude {
        let Some(c) = b.local(e) else {
            warnings.push(format!(
                "the exclude point at voxel ({}, {}, {}) lies outside the working box around the include points: ignored",
                e[2], e[1], e[0]
            ));
            continue;
        };
        if !region[c] {
            continue;
        }
        let core = erode_mm(region, sp, opts.neck_mm);
        // the eroded piece nearest the point (it may sit in the eroded-away margin)
        let near = ball(b, sp, c, opts.neck_mm + sp.iter().cloned().fold(0.0, f64::max), |v| core[v]);
        let piece = flood(b.shape(), &near, |v| core[v]);
        if include.iter().all(|&i| piece[i]) || !piece.iter().any(|&x| x) {
            warnings.push(format!(
                "the exclude point at voxel ({}, {}, {}) lies on the same part as every include point: nothing removed; its HU still count against the lesion",
                e[2], e[1], e[0]
            ));
            continue;
        }
        if include.iter().any(|&i| piece[i]) {
            warnings.push(format!(
                "the exclude point at voxel ({}, {}, {}) removed a part an include point grew",
                e[2], e[1], e[0]
            ));
        }
        let grown = crate::volume::region::dilate_mm(&piece, sp, opts.neck_mm);
        ndarray::Zip::from(&mut *region).and(&grown).for_each(|r, &g| *r &= !g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// Liver (100 HU, ± 6 HU texture) in a 60 mm cube of 1.5 mm voxels whose outer 6 mm are
    /// not liver (by the mask), with a lipiodol-dense (900 HU) 5 mm ball deep inside in a
    /// 9 mm non-enhancing (30 HU) lesion, and dense bone (900 HU) along one face of the
    /// mask, inside its edge by a voxel (a mask that took in a rib).
    fn scene() -> (CtVolume, Mask, Lps, Lps) {
        let n = 40;
        let g = Geometry::axis_aligned([n, n, n], [1.5; 3], [0.0; 3]);
        let centre = [30.0, 30.0, 30.0];
        let liver = |p: usize| (4..n - 4).contains(&p);
        let ct = Array3::from_shape_fn((n, n, n), |(k, j, i)| {
            let d2: f64 = [k, j, i].iter().zip(centre).map(|(&x, c)| (x as f64 * 1.5 - c).powi(2)).sum();
            let tex = ((k * 7 + j * 13 + i * 29) % 13) as i16 - 6;
            if d2 <= 25.0 || (i == 4 && liver(k) && liver(j)) {
                900
            } else if d2 <= 81.0 {
                30 + tex
            } else {
                100 + tex
            }
        });
        let mask = Array3::from_shape_fn((n, n, n), |(k, j, i)| (liver(k) && liver(j) && liver(i)) as u8);
        (Volume::new(ct, g.clone()), Volume::new(mask, g), centre, [6.0, 30.0, 30.0])
    }

    #[test]
    fn lipiodol_deep_in_the_liver_is_lesion_and_bone_at_its_edge_is_not() {
        let (ct, mask, lesion, bone) = scene();
        let phases = [(Phase::PortalVenous, &ct)];
        let at = |p: Lps| Prompts { include: vec![p], ..Prompts::default() };
        let o = outline_lesion(&phases, Some(&mask), &at(lesion), &OutlineOptions::default())
            .expect("a click on the lipiodol outlines the treated lesion");
        // the 9 mm lesion is 3.05 mL
        assert!((2.0..4.5).contains(&o.volume_ml), "{:.2} mL", o.volume_ml);
        match outline_lesion(&phases, Some(&mask), &at(bone), &OutlineOptions::default()) {
            Err(e) => assert_eq!(e.found(), Some(Found::OutsideLiver), "{e}"),
            Ok(o) => panic!("a click on the bone at the mask's edge outlined {:.2} mL", o.volume_ml),
        }
    }
}
