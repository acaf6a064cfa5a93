//! Batch normalisation over `[batch, channels, h, w]`, per channel, PyTorch conventions
//! (eps 1e-5, running statistics updated with momentum 0.1 and the unbiased variance).

use super::params::{Init, Layout, Slot};
use super::Tensor;
use rayon::prelude::*;

pub const BN_EPS: f32 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    pub channels: usize,
    pub gamma: Slot,
    pub beta: Slot,
    /// Running statistics live in the model's buffer vector, not in its parameters.
    pub running_mean: Slot,
    pub running_var: Slot,
}

/// What the backward pass needs from a training-mode forward pass.
pub struct BatchNormTape {
    pub x_hat: Tensor,
    pub inv_std: Vec<f32>,
}

impl BatchNorm2d {
    pub fn new(params: &mut Layout, buffers: &mut Layout, name: &str, channels: usize) -> Self {
        BatchNorm2d {
            channels,
            gamma: params.alloc(format!("{name}.weight"), &[channels], Init::Constant(1.0), false),
            beta: params.alloc(format!("{name}.bias"), &[channels], Init::Constant(0.0), false),
            running_mean: buffers.alloc(format!("{name}.running_mean"), &[channels], Init::Constant(0.0), false),
            running_var: buffers.alloc(format!("{name}.running_var"), &[channels], Init::Constant(1.0), false),
        }
    }

    /// Inference: normalise with the running statistics, in place.
    pub fn forward_eval(&self, params: &[f32], buffers: &[f32], x: &mut Tensor) {
        let (scale, shift) = self.folded(params, buffers);
        let (hw, image_len) = (x.plane(), x.image_len());
        x.data.par_chunks_mut(image_len).for_each(|img| {
            for (c, plane) in img.chunks_mut(hw).enumerate() {
                plane.iter_mut().for_each(|v| *v = *v * scale[c] + shift[c]);
            }
        });
    }

    /// The per-channel affine map `y = scale * x + shift` that inference applies.
    pub fn folded(&self, params: &[f32], buffers: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (gamma, beta) = (self.gamma.of(params), self.beta.of(params));
        let (mean, var) = (self.running_mean.of(buffers), self.running_var.of(buffers));
        let scale: Vec<f32> = (0..self.channels).map(|c| gamma[c] / (var[c] + BN_EPS).sqrt()).collect();
        let shift = (0..self.channels).map(|c| beta[c] - mean[c] * scale[c]).collect();
        (scale, shift)
    }

    /// Training: normalise with the batch statistics in place, update the running statistics.
    pub fn forward_train(&self, params: &[f32], buffers: &mut [f32], x: &mut Tensor) -> BatchNormTape {
        let c = self.channels;
        let hw = x.plane();
        let count = (x.batch() * hw) as f64;
        let sums = per_channel_moments(x);
        let mean: Vec<f32> = sums.iter().map(|s| (s.0 / count) as f32).collect();
        let var: Vec<f64> = sums.iter().map(|s| (s.1 / count - (s.0 / count).powi(2)).max(0.0)).collect();
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (*v as f32 + BN_EPS).sqrt()).collect();

        let unbiased = count / (count - 1.0).max(1.0);
        for ch in 0..c {
            let rm = &mut buffers[self.running_mean.offset + ch];
            *rm = (1.0 - BN_MOMENTUM) * *rm + BN_MOMENTUM * mean[ch];
            let rv = &mut buffers[self.running_var.offset + ch];
            *rv = (1.0 - BN_MOMENTUM) * *rv + BN_MOMENTUM * (var[ch] * unbiased) as f32;
        }

        let (gamma, beta) = (self.gamma.of(params), self.beta.of(params));
        let mut x_hat = Tensor::zeros(x.shape);
        x.data.par_chunks_mut(c * hw).zip(x_hat.data.par_chunks_mut(c * hw)).for_each(|(img, hat)| {
            for ch in 0..c {
                for i in ch * hw..(ch + 1) * hw {
                    let h = (img[i] - mean[ch]) * inv_std[ch];
                    hat[i] = h;
                    img[i] = gamma[ch] * h + beta[ch];
                }
            }
        });
        BatchNormTape { x_hat, inv_std }
    }

    /// Turns `dy` into the input gradient in place; adds the gamma and beta gradients into `grads`.
    pub fn backward(&self, params: &[f32], tape: &BatchNormTape, dy: &mut Tensor, grads: &mut [f32]) {
        let hw = dy.plane();
        let count = (dy.batch() * hw) as f32;
        let x_hat = &tape.x_hat;
        // d_beta = sum(dy); d_gamma = sum(dy * x_hat)
        let dbeta: Vec<f32> = per_channel_moments(dy).iter().map(|s| s.0 as f32).collect();
        let dgamma = per_channel_dot(dy, x_hat);
        let gamma = self.gamma.of(params);
        {
            let g = self.gamma.of_mut(grads);
            g.iter_mut().zip(&dgamma).for_each(|(g, d)| *g += d);
        }
        {
            let b = self.beta.of_mut(grads);
            b.iter_mut().zip(&dbeta).for_each(|(g, d)| *g += d);
        }
        let c = self.channels;
        let inv_std = &tape.inv_std;
        dy.data.par_chunks_mut(c * hw).zip(x_hat.data.par_chunks(c * hw)).for_each(|(d, hat)| {
            for ch in 0..c {
                let k = gamma[ch] * inv_std[ch] / count;
                for i in ch * hw..(ch + 1) * hw {
                    d[i] = k * (count * d[i] - dbeta[ch] - hat[i] * dgamma[ch]);
                }
            }
        });
    }
}

/// Per-channel sum and sum of squares over batch and positions: per-image partial sums in
/// parallel, added in image order in f64, so the result is the same on any number of threads.
fn per_channel_moments(x: &Tensor) -> Vec<(f64, f64)> {
    let c = x.channels();
    let hw = x.plane();
    let per_image: Vec<Vec<(f32, f32)>> = x
        .data
        .par_chunks(x.image_len())
        .map(|img| img.chunks(hw).map(|plane| plane.iter().fold((0.0f32, 0.0f32), |(s, q), &v| (s + v, q + v * v))).collect())
        .collect();
    let mut sums = vec![(0.0f64, 0.0f64); c];
    for img in per_image {
        sums.iter_mut().zip(img).for_each(|(a, (s, q))| {
            a.0 += s as f64;
            a.1 += q as f64;
        });
    }
    sums
}

/// Per-channel `sum(a * b)` over batch and positions (deterministic as above).
fn per_channel_dot(a: &Tensor, b: &Tensor) -> Vec<f32> {
    let c = a.channels();
    let hw = a.plane();
    let per_image: Vec<Vec<f32>> = a
        .data
        .par_chunks(a.image_len())
        .zip(b.data.par_chunks(b.image_len()))
        .map(|(ia, ib)| ia.chunks(hw).zip(ib.chunks(hw)).map(|(pa, pb)| pa.iter().zip(pb).map(|(x, y)| x * y).sum()).collect())
        .collect();
    let mut sums = vec![0.0f64; c];
    for img in per_image {
        sums.iter_mut().zip(img).for_each(|(s, v): (&mut f64, f32)| *s += v as f64);
    }
    sums.into_iter().map(|v| v as f32).collect()
}
