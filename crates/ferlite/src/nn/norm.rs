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
        // Plane by plane with iterators, not indices: the bounds checks kept the loop scalar.
        x.data.par_chunks_mut(hw).zip(x_hat.data.par_chunks_mut(hw)).enumerate().for_each(|(plane, (values, hat))| {
            let ch = plane % c;
            let (mean, inv_std, gamma, beta) = (mean[ch], inv_std[ch], gamma[ch], beta[ch]);
            for (v, h) in values.iter_mut().zip(hat) {
                *h = (*v - mean) * inv_std;
                *v = gamma * *h + beta;
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
        dy.data.par_chunks_mut(hw).zip(x_hat.data.par_chunks(hw)).enumerate().for_each(|(plane, (d, hat))| {
            let ch = plane % c;
            let (k, dbeta, dgamma) = (gamma[ch] * inv_std[ch] / count, dbeta[ch], dgamma[ch]);
            for (d, h) in d.iter_mut().zip(hat) {
                *d = k * (count * *d - dbeta - h * dgamma);
            }
        });
    }
}

/// Per-channel sum and sum of squares over batch and positions: per-image partial sums in
/// parallel, added in image order in f64, so the result is the same on any number of threads.
fn per_channel_moments(x: &Tensor) -> Vec<(f64, f64)> {
    let c = x.channels();
    let hw = x.plane();
    let per_image: Vec<Vec<(f32, f32)>> = x.data.par_chunks(x.image_len()).map(|img| plane_sums(img, None, hw)).collect();
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
    let per_image: Vec<Vec<(f32, f32)>> = a.data.par_chunks(a.image_len()).zip(b.data.par_chunks(b.image_len())).map(|(ia, ib)| plane_sums(ia, Some(ib), hw)).collect();
    let mut sums = vec![0.0f64; c];
    for img in per_image {
        sums.iter_mut().zip(img).for_each(|(s, (v, _))| *s += v as f64);
    }
    sums.into_iter().map(|v| v as f32).collect()
}

/// For each plane (`hw` values) of one image `a`: `(Σ v, Σ v²)`, or with `b`, `(Σ a·b, 0)`; f32
/// sums in position order. Eight planes at a time, one to a vector lane, where the CPU has AVX2
/// and plane count and size are multiples of 8: the same additions in the same order, so the
/// same bits as one plane at a time, without waiting on one sum's chain of additions (a plain
/// fold per plane was a twentieth of a training step).
fn plane_sums(a: &[f32], b: Option<&[f32]>, hw: usize) -> Vec<(f32, f32)> {
    let planes = a.len() / hw;
    let mut sums = vec![(0.0f32, 0.0f32); planes];
    if super::direct_conv::available() && planes.is_multiple_of(8) && hw.is_multiple_of(8) {
        // SAFETY: AVX2 and FMA are present (checked above); reads stay inside `a` and `b` (whole
        // blocks of 8 planes by 8 positions, both multiples of 8 as checked).
        unsafe {
            match b {
                Some(b) => plane_sums_avx2::<true>(a, b, hw, &mut sums),
                None => plane_sums_avx2::<false>(a, a, hw, &mut sums),
            }
        }
        return sums;
    }
    for (p, sum) in sums.iter_mut().enumerate() {
        let plane = &a[p * hw..][..hw];
        *sum = match b {
            Some(b) => (plane.iter().zip(&b[p * hw..][..hw]).fold(0.0, |s, (x, y)| s + x * y), 0.0),
            None => plane.iter().fold((0.0, 0.0), |(s, q), &v| (s + v, q + v * v)),
        };
    }
    sums
}

/// [`plane_sums`] eight planes at a time: an 8x8 transpose turns eight planes' next eight values
/// into eight vectors of one position each, added in position order. `DOT`: `Σ a·b`, else
/// `Σ a` and `Σ a²`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_sums_avx2<const DOT: bool>(a: &[f32], b: &[f32], hw: usize, sums: &mut [(f32, f32)]) {
    use super::winograd::transpose_8x8;
    use std::arch::x86_64::*;
    let load = |x: &[f32], p0: usize, i: usize| {
        let mut rows = [_mm256_setzero_ps(); 8];
        for (k, row) in rows.iter_mut().enumerate() {
            *row = _mm256_loadu_ps(x[(p0 + k) * hw + i..][..8].as_ptr());
        }
        transpose_8x8(rows)
    };
    for p0 in (0..sums.len()).step_by(8) {
        let (mut s, mut q) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in (0..hw).step_by(8) {
            let va = load(a, p0, i);
            if DOT {
                let vb = load(b, p0, i);
                for (x, y) in va.iter().zip(&vb) {
                    s = _mm256_add_ps(s, _mm256_mul_ps(*x, *y));
                }
            } else {
                for x in &va {
                    s = _mm256_add_ps(s, *x);
                    q = _mm256_add_ps(q, _mm256_mul_ps(*x, *x));
                }
            }
        }
        let (mut s_lanes, mut q_lanes) = ([0.0f32; 8], [0.0f32; 8]);
        _mm256_storeu_ps(s_lanes.as_mut_ptr(), s);
        _mm256_storeu_ps(q_lanes.as_mut_ptr(), q);
        for (k, sum) in sums[p0..p0 + 8].iter_mut().enumerate() {
            *sum = (s_lanes[k], q_lanes[k]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn plane_sums_avx2<const DOT: bool>(_: &[f32], _: &[f32], _: usize, _: &mut [(f32, f32)]) {
    unreachable!("direct_conv::available is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn vector_plane_sums_are_the_scalar_folds_to_the_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (planes, hw) in [(32, 2304), (64, 144), (16, 8), (12, 16), (8, 36)] {
            let a: Vec<f32> = (0..planes * hw).map(|_| rng.random_range(-3.0..3.0)).collect();
            let b: Vec<f32> = (0..planes * hw).map(|_| rng.random_range(-3.0..3.0)).collect();
            let moments: Vec<(f32, f32)> = a.chunks(hw).map(|p| p.iter().fold((0.0, 0.0), |(s, q), &v| (s + v, q + v * v))).collect();
            let dots: Vec<(f32, f32)> = a.chunks(hw).zip(b.chunks(hw)).map(|(p, r)| (p.iter().zip(r).fold(0.0, |s, (x, y)| s + x * y), 0.0)).collect();
            assert_eq!(plane_sums(&a, None, hw), moments, "{planes} planes of {hw}: moments");
            assert_eq!(plane_sums(&a, Some(&b), hw), dots, "{planes} planes of {hw}: dot products");
        }
    }
}
