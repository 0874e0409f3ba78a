//! SplitMix64's finaliser: a well-spread 64-bit hash of a 64-bit value, for the relay's jitter
//! and the simulator's generator (pure, and the same whatever the crate versions).

/// Mixes `z` into 64 well-spread bits.
pub fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from 64 bits.
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
