//! Parameters as one flat vector with named, shaped slots.
//!
//! Layers keep a [`Slot`] (offset + length) instead of owning their weights, so the whole model's
//! parameters, gradients and optimiser state are three vectors of equal length, and saving a
//! checkpoint is writing each named slot.

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::ops::Range;

/// Where one named tensor lives in the flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub offset: usize,
    pub len: usize,
}

impl Slot {
    pub fn range(self) -> Range<usize> {
        self.offset..self.offset + self.len
    }

    pub fn of(self, flat: &[f32]) -> &[f32] {
        &flat[self.range()]
    }

    pub fn of_mut(self, flat: &mut [f32]) -> &mut [f32] {
        &mut flat[self.range()]
    }
}

/// How a tensor starts before training.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// He/Kaiming normal with the given fan-in (for weights followed by ReLU).
    HeNormal { fan_in: usize },
    /// Uniform in ±1/sqrt(fan_in), PyTorch's default for linear layers.
    UniformFanIn { fan_in: usize },
    Constant(f32),
}

/// Name, shape and place of one tensor, and whether weight decay applies to it.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub slot: Slot,
    pub decay: bool,
}

/// The layout of a flat vector: filled in by the model's constructor, one `alloc` per tensor.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub specs: Vec<TensorSpec>,
    inits: Vec<Init>,
    len: usize,
}

impl Layout {
    pub fn alloc(&mut self, name: impl Into<String>, shape: &[usize], init: Init, decay: bool) -> Slot {
        let len = shape.iter().product();
        let slot = Slot { offset: self.len, len };
        self.len += len;
        self.specs.push(TensorSpec { name: name.into(), shape: shape.to_vec(), slot, decay });
        self.inits.push(init);
        slot
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A fresh vector with every tensor initialised as declared.
    pub fn initial_values(&self, rng: &mut impl Rng) -> Vec<f32> {
        let mut values = vec![0.0; self.len];
        for (spec, init) in self.specs.iter().zip(&self.inits) {
            let dst = spec.slot.of_mut(&mut values);
            match *init {
                Init::HeNormal { fan_in } => {
                    let normal = Normal::new(0.0, (2.0 / fan_in as f32).sqrt()).expect("valid std");
                    dst.iter_mut().for_each(|v| *v = normal.sample(rng));
                }
                Init::UniformFanIn { fan_in } => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    let uniform = Uniform::new_inclusive(-bound, bound).expect("valid bounds");
                    dst.iter_mut().for_each(|v| *v = uniform.sample(rng));
                }
                Init::Constant(c) => dst.fill(c),
            }
        }
        values
    }

    /// A 0/1 mask with 1 where weight decay applies (conv and linear weights, not norms or biases).
    pub fn decay_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.len];
        for spec in &self.specs {
            mask[spec.slot.range()].fill(spec.decay);
        }
        mask
    }
}
