//! Seeded damage for the mutation tests: valid bytes changed in a few places, read many times
//! over; a failure names the seed and the case that reproduces it. `FERLITE_MUTATIONS=N` runs N
//! damaged copies per input instead of the default 300 (the long search, see the README).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn mutations_per_input() -> usize {
    std::env::var("FERLITE_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// `valid` damaged in one to four places: a byte changed, a run of bytes deleted or inserted, or
/// the end cut off.
pub fn mutate(valid: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let run: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(at..at, run);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Runs `read` on `mutations_per_input()` damaged copies of `valid`; fails on the first panic,
/// naming the case. `read` says whether the copy was accepted; returns how many were refused, to
/// show that the test bites.
pub fn survives_damage(what: &str, valid: &[u8], seed: u64, read: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut refused = 0;
    for case in 0..mutations_per_input() {
        let damaged = mutate(valid, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| read(&damaged))) {
            Ok(accepted) => refused += usize::from(!accepted),
            Err(_) => panic!("{what}: damaged copy {case} (seed {seed}, {} bytes) panicked", damaged.len()),
        }
    }
    eprintln!("{what} (seed {seed}): {refused} of {} damaged copies refused, the others read", mutations_per_input());
    refused
}
