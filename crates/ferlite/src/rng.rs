//! Reproducible randomness: every random draw in training (shuffling, augmentation, dropout) comes
//! from a generator seeded by the run's seed and *where* it is used (epoch, step, sample), never
//! from a generator whose state carries over. A resumed run therefore draws exactly what the
//! uninterrupted run would have, with no generator state in the checkpoint.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Mixes the parts into one well-spread 64-bit seed (SplitMix64 finaliser per part).
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9E37_79B9_7F4A_7C15u64, |acc, &p| {
        let mut z = acc ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(acc << 6).wrapping_add(acc >> 2);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A generator for one use site, e.g. `rng_for(&[seed, epoch, step, DROPOUT])`.
pub fn rng_for(parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(parts))
}

/// Labels for the use sites, so two uses with the same epoch and step draw different numbers.
pub mod site {
    pub const SHUFFLE: u64 = 1;
    pub const AUGMENT: u64 = 2;
    pub const DROPOUT: u64 = 3;
    pub const INIT: u64 = 4;
}
