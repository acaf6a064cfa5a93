//! Batches for training and evaluation: shuffled per epoch from the seed, augmented in parallel,
//! prepared on a background thread while the previous batch trains.

use super::augment::AugmentConfig;
use super::FaceSet;
use crate::emotion::{normalize_pixels, FACE_PIXELS, FACE_SIZE};
use crate::nn::Tensor;
use crate::rng::{rng_for, site};
use rand::seq::SliceRandom;
use rayon::prelude::*;

pub struct Batch {
    /// `[n, 1, 48, 48]`, normalised.
    pub input: Tensor,
    pub labels: Vec<usize>,
    /// Positions of these faces in the set.
    pub indices: Vec<usize>,
}

/// The order of faces in `epoch`: a permutation drawn from `(seed, epoch)` alone.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng_for(&[seed, epoch as u64, site::SHUFFLE]));
    order
}

/// How to augment a batch: the config and the `(seed, epoch)` its draws derive from.
#[derive(Clone, Copy)]
pub struct Augmentation<'a> {
    pub config: &'a AugmentConfig,
    pub seed: u64,
    pub epoch: usize,
}

/// Builds one batch; with augmentation, face `i` of the set is warped by a generator seeded from
/// `(seed, epoch, i)`, so the result does not depend on batch boundaries or thread scheduling.
pub fn make_batch(set: &FaceSet, indices: &[usize], augmentation: Option<Augmentation>) -> Batch {
    let mut input = Tensor::zeros([indices.len(), 1, FACE_SIZE, FACE_SIZE]);
    input.data.par_chunks_mut(FACE_PIXELS).zip(indices).for_each(|(out, &i)| match augmentation {
        Some(a) => a.config.apply(set.face(i), &mut rng_for(&[a.seed, a.epoch as u64, i as u64, site::AUGMENT]), out),
        None => normalize_pixels(set.face(i), out),
    });
    let labels = indices.iter().map(|&i| set.labels[i] as usize).collect();
    Batch { input, labels, indices: indices.to_vec() }
}

/// Calls `f` on each batch of `order` in turn while the next batch is built on another thread.
/// `f` returns `false` to stop early.
pub fn for_each_batch(set: &FaceSet, order: &[usize], batch_size: usize, augmentation: Option<Augmentation>, mut f: impl FnMut(Batch) -> bool) {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            for chunk in order.chunks(batch_size) {
                if tx.send(make_batch(set, chunk, augmentation)).is_err() {
                    break; // the consumer stopped early
                }
            }
        });
        for batch in rx {
            if !f(batch) {
                break;
            }
        }
    });
}
