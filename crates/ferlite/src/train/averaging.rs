//! The moving average of a run's weights, see [`WeightAveraging`](super::config::WeightAveraging).

use crate::model::Network;

/// An exponential moving average of a network's parameters and batch-norm statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct AveragedWeights {
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
}

impl AveragedWeights {
    /// An average that starts as `network`'s weights.
    pub fn of(network: &Network) -> Self {
        AveragedWeights { params: network.params.clone(), buffers: network.buffers.clone() }
    }

    /// Moves the average towards `network`'s weights: `average = decay * average + (1 - decay) * weights`.
    pub fn update(&mut self, network: &Network, decay: f32) {
        let pairs = self.params.iter_mut().zip(&network.params).chain(self.buffers.iter_mut().zip(&network.buffers));
        for (average, &value) in pairs {
            *average = decay * *average + (1.0 - decay) * value;
        }
    }

    /// `network` with the averaged weights in place of its own.
    pub fn apply_to(&self, network: &Network) -> Network {
        let mut averaged = network.clone();
        averaged.params.clone_from(&self.params);
        averaged.buffers.clone_from(&self.buffers);
        averaged
    }
}
