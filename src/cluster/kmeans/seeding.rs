//! k-means++ seeding, greedy as in scikit-learn (2 + ⌊ln k⌋ candidates per centre sampled
//! ∝ D², the one lowering the summed D² most is kept), one pass over the data per centre,
//! with its seeded generator.

use super::*;
use crate::volume::random::SplitMix64;

/// The crate's SplitMix64 started at the seed itself (the only randomness here), with the
/// draws seeding needs.
pub(super) struct Rng(SplitMix64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(SplitMix64::from_state(seed))
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Per chunk: first applies the centre chosen last (`pending`) to `closest`, then sums
/// min(closest, d²(x, candidate)) for each candidate. One candidate at a time per chunk
/// (the chunk stays in cache), which keeps the kernel vectorised over points; one pass
/// over memory per k-means++ step.
fn candidate_pots<const D: usize>(
    cols: &[&[f32]; D],
    cands: &[[f32; D]],
    pending: Option<&[f32; D]>,
    closest: &mut [f32],
    pots: &mut [f64],
) {
    let t = cands.len();
    closest.par_chunks_mut(CHUNK).zip(pots.par_chunks_mut(t)).enumerate().for_each(|(ci, (cl, pot))| {
        if let Some(p) = pending {
            closest_chunk::<D, false>(cols, p, ci * CHUNK, cl);
        }
        for (p, cand) in pot.iter_mut().zip(cands) {
            *p = candidate_chunk::<D>(cols, cand, ci * CHUNK, cl);
        }
    });
}

simd_dispatch! {
    fn candidate_chunk<const D: usize>(cols: &[&[f32]; D], cand: &[f32; D], base: usize, cl: &[f32]) -> f64 => candidate_chunk_impl
}

#[inline(always)]
fn candidate_chunk_impl<const D: usize>(cols: &[&[f32]; D], cand: &[f32; D], base: usize, cl: &[f32]) -> f64 {
    #[inline(always)]
    fn step<const D: usize>(
        xb: &[[f32; LANES]; D],
        cand: &[f32; D],
        old: &[f32; LANES],
        m: usize,
        acc: &mut [f32; LANES],
    ) {
        let dist = block_dist(xb, cand);
        for l in 0..LANES {
            let v = if dist[l] < old[l] { dist[l] } else { old[l] };
            acc[l] += if l < m { v } else { 0.0 };
        }
    }
    let mut acc = [0f64; LANES];
    let len = cl.len();
    let mut s = 0;
    while s < len {
        // f32 lane sums over a group of blocks, then into f64
        let mut group = [0f32; LANES];
        let end = (s + GROUP * LANES).min(len);
        while s + LANES <= end {
            let xb = load_block(cols, base + s, LANES);
            step(&xb, cand, block_ref(&cl[s..s + LANES]), LANES, &mut group);
            s += LANES;
        }
        if s < end {
            let m = end - s;
            let xb = load_block(cols, base + s, m);
            let mut old = [0f32; LANES];
            old[..m].copy_from_slice(&cl[s..end]);
            step(&xb, cand, &old, m, &mut group);
            s = end;
        }
        for l in 0..LANES {
            acc[l] += group[l] as f64;
        }
    }
    acc.iter().sum::<f64>()
}

/// min(closest, d²(x_i, pending)) as the vector kernels compute it (same operations in
/// the same order, so the same bits).
#[inline(always)]
fn weight<const D: usize>(cols: &[&[f32]; D], closest: &[f32], pending: Option<&[f32; D]>, i: usize) -> f32 {
    match pending {
        None => closest[i],
        Some(p) => {
            let t = cols[0][i] - p[0];
            let mut dist = t * t;
            for d in 1..D {
                let t = cols[d][i] - p[d];
                dist += t * t;
            }
            if dist < closest[i] {
                dist
            } else {
                closest[i]
            }
        }
    }
}

/// The point where the running sum of the weights first exceeds `r` (sampling ∝ D²).
fn sample_point<const D: usize>(
    cols: &[&[f32]; D],
    closest: &[f32],
    pending: Option<&[f32; D]>,
    chunk_pot: &[f64],
    r: f64,
) -> usize {
    let mut cum = 0.0;
    let mut last_positive_chunk = 0;
    for (ci, &p) in chunk_pot.iter().enumerate() {
        if p > 0.0 {
            last_positive_chunk = ci;
            if cum + p > r {
                return sample_in_chunk(cols, closest, pending, ci, r - cum);
            }
        }
        cum += p;
    }
    // r reached the total through rounding: the last point with weight
    sample_in_chunk(cols, closest, pending, last_positive_chunk, f64::INFINITY)
}

fn sample_in_chunk<const D: usize>(
    cols: &[&[f32]; D],
    closest: &[f32],
    pending: Option<&[f32; D]>,
    ci: usize,
    rem: f64,
) -> usize {
    let base = ci * CHUNK;
    let end = (base + CHUNK).min(closest.len());
    let mut acc = 0.0;
    let mut last = base;
    for i in base..end {
        let v = weight(cols, closest, pending, i);
        if v > 0.0 {
            acc += v as f64;
            last = i;
            if acc > rem {
                return i;
            }
        }
    }
    last
}

/// Greedy k-means++ (scikit-learn's `_kmeans_plusplus`): `k` centres. Each step samples
/// 2 + ⌊ln k⌋ candidates with probability ∝ D² (squared distance to the nearest centre so
/// far) and keeps the one that lowers the summed D² most. The D² update for a chosen
/// centre is folded into the next step's pass, so there is one pass over the data per
/// centre.
pub(super) fn kmeanspp<const D: usize>(cols: &[&[f32]; D], n: usize, k: usize, seed: u64) -> Vec<[f32; D]> {
    let mut rng = Rng::new(seed);
    let trials = (2 + (k as f64).ln().floor() as usize).min(MAX_TRIALS);
    let n_chunks = n.div_ceil(CHUNK);
    let mut closest = vec![0f32; n];
    let mut chunk_pot = vec![0f64; n_chunks];
    let mut pots = vec![0f64; n_chunks * trials];
    let point = |i: usize| -> [f32; D] { std::array::from_fn(|d| cols[d][i]) };
    let mut centres = Vec::with_capacity(k);
    let first = point(rng.below(n));
    centres.push(first);
    update_closest(cols, &first, &mut closest, &mut chunk_pot, true);
    // the centre chosen last, not yet folded into `closest`
    let mut pending: Option<[f32; D]> = None;
    for _ in 1..k {
        let total: f64 = chunk_pot.iter().sum();
        let mut cands = [[0f32; D]; MAX_TRIALS];
        for c in cands.iter_mut().take(trials) {
            let i = if total > 0.0 {
                sample_point(cols, &closest, pending.as_ref(), &chunk_pot, rng.unit() * total)
            } else {
                rng.below(n)
            };
            *c = point(i);
        }
        candidate_pots(cols, &cands[..trials], pending.as_ref(), &mut closest, &mut pots);
        let mut best = 0;
        let mut best_pot = f64::INFINITY;
        for t in 0..trials {
            let p: f64 = pots.chunks(trials).map(|c| c[t]).sum();
            if p < best_pot {
                best_pot = p;
                best = t;
            }
        }
        // the chunk sums of D² once the best candidate is a centre
        for (cp, p) in chunk_pot.iter_mut().zip(pots.chunks(trials)) {
            *cp = p[best];
        }
        centres.push(cands[best]);
        pending = Some(cands[best]);
    }
    centres
}
