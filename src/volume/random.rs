//! SplitMix64 (Steele, Lea and Flood, 2014), the one source of seeded randomness: the
//! stateless mixer [`splitmix64`] (hashes, UIDs, noise that depends only on a voxel) and
//! the generator [`SplitMix64`] (a Weyl sequence fed through the same mixer) that the
//! training, synthesis and k-means draws are built on. Written out here, not taken from a
//! crate, so the same seed gives the same numbers on every build and machine.

/// The golden-ratio increment of the Weyl sequence.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective 64-bit mixer.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator's first output from state `x`: a stateless 64-bit hash of `x`.
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    mix(x.wrapping_add(GAMMA))
}

/// The generator: each draw steps the state by [`GAMMA`] and mixes it.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Starts from `state` as it is (callers that want a seed spread first xor or hash it).
    pub fn from_state(state: u64) -> Self {
        SplitMix64 { state }
    }

    /// `seed ^ GAMMA` as the state: how the segment module has always seeded it.
    pub fn seeded(seed: u64) -> Self {
        SplitMix64 { state: seed ^ GAMMA }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference outputs of SplitMix64 from seed 1234567 (Vigna's C code), and the
    /// mixer is the generator's first draw.
    #[test]
    fn matches_the_reference_sequence() {
        let mut g = SplitMix64::from_state(1234567);
        let want = [6457827717110365317u64, 3203168211198807973, 9817491932198370423];
        for w in want {
            assert_eq!(g.next_u64(), w);
        }
        assert_eq!(splitmix64(1234567), want[0]);
    }
}
