//! The vector kernels of k-means: points taken [`LANES`] at a time so the distances to all
//! centres vectorise, compiled for AVX-512, AVX2 and portable code and picked at run time
//! by [`simd_dispatch`] (the same IEEE operations in the same order on every path, so the
//! same bits).

use rayon::prelude::*;

use super::{CHUNK, GROUP, LANES};

/// Defines `$vis fn $name` that runs `$inner` (an `#[inline(always)]` function) compiled for
/// AVX-512 or AVX2 when the CPU has them, else the portable build of it. The kernels use
/// the same IEEE operations in the same order whatever the vector width (Rust never fuses
/// multiply-adds or reorders float sums), so results are bit-identical on every path.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident<$(const $c:ident: $t:ty),*>($($arg:ident: $aty:ty),* $(,)?) -> $ret:ty => $inner:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$(const $c: $t),*>($($arg: $aty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
                unsafe fn avx512<$(const $c: $t),*>($($arg: $aty),*) -> $ret {
                    $inner::<$($c),*>($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2")]
                unsafe fn avx2<$(const $c: $t),*>($($arg: $aty),*) -> $ret {
                    $inner::<$($c),*>($($arg),*)
                }
                if simd_level() >= 2 {
                    // SAFETY: the CPU supports these features (checked by `simd_level`).
                    return unsafe { avx512::<$($c),*>($($arg),*) };
                }
                if simd_level() == 1 {
                    // SAFETY: as above, AVX2.
                    return unsafe { avx2::<$($c),*>($($arg),*) };
                }
            }
            $inner::<$($c),*>($($arg),*)
        }
    };
}
pub(super) use simd_dispatch;

/// Highest vector path the kernels may take (0 portable, 1 AVX2, 2 AVX-512); tests lower
/// it to check that every path gives the same bits.
pub(super) static SIMD_CAP: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);

/// 0: portable, 1: AVX2, 2: AVX-512 (F, BW, VL, DQ), as the CPU allows and `SIMD_CAP` caps.
#[cfg(target_arch = "x86_64")]
pub(super) fn simd_level() -> u8 {
    static FOUND: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        let avx2 = std::is_x86_feature_detected!("avx2");
        let avx512 = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq");
        match (avx2, avx512) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        }
    });
    found.min(SIMD_CAP.load(std::sync::atomic::Ordering::Relaxed))
}

/// Points `start..start + m` of the columns (m ≤ LANES; zero-padded after m). With
/// `m == LANES` known at compile time the copies are fixed-size moves.
#[inline(always)]
pub(super) fn load_block<const D: usize>(cols: &[&[f32]; D], start: usize, m: usize) -> [[f32; LANES]; D] {
    let mut xb = [[0f32; LANES]; D];
    for d in 0..D {
        if m == LANES {
            xb[d].copy_from_slice(&cols[d][start..start + LANES]);
        } else {
            for (x, &v) in xb[d].iter_mut().zip(&cols[d][start..start + m]) {
                *x = v;
            }
        }
    }
    xb
}

/// Squared distances of a block of points to one centre, summed over features in order.
#[inline(always)]
pub(super) fn block_dist<const D: usize>(xb: &[[f32; LANES]; D], c: &[f32; D]) -> [f32; LANES] {
    let mut dist = [0f32; LANES];
    for l in 0..LANES {
        let t = xb[0][l] - c[0];
        dist[l] = t * t;
    }
    for d in 1..D {
        for l in 0..LANES {
            let t = xb[d][l] - c[d];
            dist[l] += t * t;
        }
    }
    dist
}

/// Nearest centre of each point of a block (ties: the lowest index) and its distance².
#[inline(always)]
pub(super) fn assign_block<const D: usize>(
    xb: &[[f32; LANES]; D],
    centres: &[[f32; D]],
) -> ([f32; LANES], [u32; LANES]) {
    let mut best_d = [f32::INFINITY; LANES];
    let mut best_c = [0u32; LANES];
    for (c, centre) in centres.iter().enumerate() {
        let dist = block_dist(xb, centre);
        for l in 0..LANES {
            let better = dist[l] < best_d[l];
            best_d[l] = if better { dist[l] } else { best_d[l] };
            best_c[l] = if better { c as u32 } else { best_c[l] };
        }
    }
    (best_d, best_c)
}

/// closest[i] = d²(x_i, c) (or its minimum with the old value), and each chunk's sum.
pub(super) fn update_closest<const D: usize>(
    cols: &[&[f32]; D],
    c: &[f32; D],
    closest: &mut [f32],
    chunk_pot: &mut [f64],
    first: bool,
) {
    closest.par_chunks_mut(CHUNK).zip(chunk_pot.par_iter_mut()).enumerate().for_each(|(ci, (cl, pot))| {
        *pot = if first {
            closest_chunk::<D, true>(cols, c, ci * CHUNK, cl)
        } else {
            closest_chunk::<D, false>(cols, c, ci * CHUNK, cl)
        };
    });
}

simd_dispatch! {
    pub(super) fn closest_chunk<const D: usize, const FIRST: bool>(cols: &[&[f32]; D], c: &[f32; D], base: usize, cl: &mut [f32]) -> f64 => closest_chunk_impl
}

#[inline(always)]
fn closest_chunk_impl<const D: usize, const FIRST: bool>(
    cols: &[&[f32]; D],
    c: &[f32; D],
    base: usize,
    cl: &mut [f32],
) -> f64 {
    /// `m` lanes are points; the rest is padding (kept out of the sums).
    #[inline(always)]
    fn step<const D: usize, const FIRST: bool>(
        xb: &[[f32; LANES]; D],
        c: &[f32; D],
        out: &mut [f32; LANES],
        m: usize,
        acc: &mut [f32; LANES],
    ) {
        let dist = block_dist(xb, c);
        for l in 0..LANES {
            let v = if FIRST || dist[l] < out[l] { dist[l] } else { out[l] };
            out[l] = v;
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
            step::<D, FIRST>(&xb, c, block_mut(&mut cl[s..s + LANES]), LANES, &mut group);
            s += LANES;
        }
        if s < end {
            let m = end - s;
            let xb = load_block(cols, base + s, m);
            let mut out = [0f32; LANES];
            out[..m].copy_from_slice(&cl[s..end]);
            step::<D, FIRST>(&xb, c, &mut out, m, &mut group);
            cl[s..end].copy_from_slice(&out[..m]);
            s = end;
        }
        for l in 0..LANES {
            acc[l] += group[l] as f64;
        }
    }
    acc.iter().sum::<f64>()
}

/// A full block of a slice as an array (the callers slice exactly `LANES` items).
#[inline(always)]
pub(super) fn block_mut<T>(s: &mut [T]) -> &mut [T; LANES] {
    s.try_into().expect("a slice of LANES items")
}

#[inline(always)]
pub(super) fn block_ref<T>(s: &[T]) -> &[T; LANES] {
    s.try_into().expect("a slice of LANES items")
}
