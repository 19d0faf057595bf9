//! The phantom's breathing: each moving phase (arterial, delayed) shows the anatomy
//! displaced by a smooth analytic field `v`, and the ground-truth field in the ITK
//! convention is the solution of `u(x) = −v(x + u(x))`.

use super::anatomy::sq;
use crate::io::phase::Phase;
use crate::volume::Lps;

/// A Gaussian bump of displacement: `amp · exp(−|q − centre|² / 2σ²)`.
struct Bump {
    centre: Lps,
    sigma: f64,
    amp: Lps,
}

/// Mostly cranio-caudal, centred near the liver dome; peak |v| ≈ 7 mm (arterial) and
/// 6.5 mm (delayed). Broad bumps keep |∇v| < 0.1, so `x ↦ x + v(x)` is invertible.
const ARTERIAL_BUMPS: [Bump; 2] = [
    Bump { centre: [-60.0, 0.0, -130.0], sigma: 70.0, amp: [0.5, 1.5, 6.5] },
    Bump { centre: [50.0, 20.0, -170.0], sigma: 80.0, amp: [0.0, 0.5, 2.0] },
];
const DELAYED_BUMPS: [Bump; 2] = [
    Bump { centre: [-70.0, 5.0, -140.0], sigma: 60.0, amp: [-0.5, -1.0, -5.5] },
    Bump { centre: [0.0, 0.0, -210.0], sigma: 90.0, amp: [0.0, 0.8, -1.5] },
];

/// The analytic displacement `v` of a phase: `moving(y) = anatomy(y + v(y))`. Zero for the
/// portal venous (fixed) phase, and for phases the phantom does not render (non-contrast,
/// unknown), which have no breathing model.
pub fn breathing_v(phase: Phase, scale: f64, y: Lps) -> Lps {
    let bumps: &[Bump] = match phase {
        Phase::Arterial => &ARTERIAL_BUMPS,
        Phase::PortalVenous | Phase::NonContrast | Phase::Unknown => return [0.0; 3],
        Phase::Delayed => &DELAYED_BUMPS,
    };
    let mut v = [0.0; 3];
    for b in bumps {
        let r2 = sq(y[0] - b.centre[0]) + sq(y[1] - b.centre[1]) + sq(y[2] - b.centre[2]);
        let w = scale * (-r2 / (2.0 * b.sigma * b.sigma)).exp();
        for (vc, ac) in v.iter_mut().zip(b.amp) {
            *vc += w * ac;
        }
    }
    v
}

/// The ITK-convention displacement `u(x)` (fixed → moving) at a fixed-frame point: the
/// solution of `u = −v(x + u)`. Fixed-point iteration converges because `v` is a
/// contraction (Lipschitz constant < 0.1), gaining about one decimal per step.
pub fn true_u(phase: Phase, scale: f64, x: Lps) -> Lps {
    let mut u = [0.0; 3];
    for _ in 0..40 {
        let v = breathing_v(phase, scale, [x[0] + u[0], x[1] + u[1], x[2] + u[2]]);
        let next = [-v[0], -v[1], -v[2]];
        let change = (0..3).map(|c| (next[c] - u[c]).abs()).fold(0.0, f64::max);
        u = next;
        // 1e-7 mm is below f32 resolution at these magnitudes
        if change < 1e-7 {
            break;
        }
    }
    u
}
