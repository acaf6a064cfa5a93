//! Optimisers over the flat parameter vector, with PyTorch's update rules.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (Nesterov) momentum and L2 weight decay.
    Sgd,
    /// Adam with decoupled weight decay.
    Adamw,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub momentum: f32,
    pub nesterov: bool,
    /// Applied to convolution and linear weights only (not norms, not biases).
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig { kind: OptimizerKind::Sgd, momentum: 0.9, nesterov: true, weight_decay: 5e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Optimiser state: what a checkpoint must keep to resume exactly.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub steps: u64,
    /// Momentum buffer (SGD) or first moment (AdamW).
    pub first: Vec<f32>,
    /// Second moment (AdamW only; empty for SGD).
    pub second: Vec<f32>,
    decay_mask: Vec<bool>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, decay_mask: Vec<bool>) -> Self {
        let n = decay_mask.len();
        let second = if config.kind == OptimizerKind::Adamw { vec![0.0; n] } else { Vec::new() };
        Optimizer { config, steps: 0, first: vec![0.0; n], second, decay_mask }
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        assert_eq!(params.len(), grads.len());
        self.steps += 1;
        let c = &self.config;
        match c.kind {
            OptimizerKind::Sgd => {
                for i in 0..params.len() {
                    let mut g = grads[i];
                    if self.decay_mask[i] {
                        g += c.weight_decay * params[i];
                    }
                    let buf = c.momentum * self.first[i] + g;
                    self.first[i] = buf;
                    let update = if c.nesterov { g + c.momentum * buf } else { buf };
                    params[i] -= lr * update;
                }
            }
            OptimizerKind::Adamw => {
                let t = self.steps as i32;
                let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
                for i in 0..params.len() {
                    if self.decay_mask[i] {
                        params[i] -= lr * c.weight_decay * params[i];
                    }
                    let g = grads[i];
                    self.first[i] = c.beta1 * self.first[i] + (1.0 - c.beta1) * g;
                    self.second[i] = c.beta2 * self.second[i] + (1.0 - c.beta2) * g * g;
                    let m_hat = self.first[i] / bc1;
                    let v_hat = self.second[i] / bc2;
                    params[i] -= lr * m_hat / (v_hat.sqrt() + c.eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesterov_sgd_matches_pytorch_first_steps() {
        // torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0), p=1, grad=1 twice:
        // step 1: buf=1, update=1+0.9=1.9 -> p=0.81; step 2: buf=1.9, update=1+1.71=2.71 -> p=0.539
        let config = OptimizerConfig { weight_decay: 0.0, ..Default::default() };
        let mut opt = Optimizer::new(config, vec![true]);
        let mut p = [1.0f32];
        opt.step(&mut p, &[1.0], 0.1);
        assert!((p[0] - 0.81).abs() < 1e-6);
        opt.step(&mut p, &[1.0], 0.1);
        assert!((p[0] - 0.539).abs() < 1e-6);
    }

    #[test]
    fn adamw_first_step_moves_by_lr() {
        let config = OptimizerConfig { kind: OptimizerKind::Adamw, weight_decay: 0.0, ..Default::default() };
        let mut opt = Optimizer::new(config, vec![true]);
        let mut p = [0.5f32];
        opt.step(&mut p, &[3.0], 0.01);
        assert!((p[0] - 0.49).abs() < 1e-5);
    }
}
