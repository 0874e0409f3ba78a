//! The simulator's random numbers: one seeded stream, the same on every machine and version.

use std::time::Duration;

/// SplitMix64: a tiny generator whose stream depends on the seed alone (not on a crate's
/// version), so a seed names one run forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::mix::finalize(self.0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        crate::mix::unit(self.bits())
    }

    /// Uniform in [0, d].
    pub fn upto(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.unit())
    }
}
