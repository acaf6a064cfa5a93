//! The parameter-free layers (ReLU, 2x2 max-pool, dropout, global average pool) and the linear layer.

use super::gemm::{row_major, sgemm, transposed};
use super::params::{Init, Layout, Slot};
use super::Tensor;
use rand::Rng;
use rayon::prelude::*;

pub fn relu_in_place(x: &mut Tensor) {
    x.data.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
}

/// Zeroes `dy` where the ReLU's output was not positive.
pub fn relu_backward(relu_out: &Tensor, dy: &mut Tensor) {
    dy.data.par_chunks_mut(4096).zip(relu_out.data.par_chunks(4096)).for_each(|(d, y)| {
        // A select, not a branch: the sign of a ReLU's output is a coin toss for the predictor
        // (the branch cost 15x this, a sixth of a training step).
        d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 })
    });
}

/// 2x2 max-pooling with stride 2 (odd trailing rows/columns are dropped).
/// Returns the pooled tensor and, per output, which of the four inputs won (0..4).
pub fn max_pool_2x2(x: &Tensor) -> (Tensor, Vec<u8>) {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Tensor::zeros([n, c, oh, ow]);
    let mut argmax = vec![0u8; out.len()];
    out.data
        .par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .zip(x.data.par_chunks(h * w))
        .for_each(|((o, a), plane)| {
            for y in 0..oh {
                for xx in 0..ow {
                    let base = 2 * y * w + 2 * xx;
                    let cand = [plane[base], plane[base + 1], plane[base + w], plane[base + w + 1]];
                    let (mut best, mut arg) = (cand[0], 0u8);
                    for (i, &v) in cand.iter().enumerate().skip(1) {
                        if v > best {
                            best = v;
                            arg = i as u8;
                        }
                    }
                    o[y * ow + xx] = best;
                    a[y * ow + xx] = arg;
                }
            }
        });
    (out, argmax)
}

pub fn max_pool_2x2_backward(input_shape: [usize; 4], argmax: &[u8], dy: &Tensor) -> Tensor {
    let [_, _, h, w] = input_shape;
    let (oh, ow) = (dy.shape[2], dy.shape[3]);
    let mut dx = Tensor::zeros(input_shape);
    dx.data
        .par_chunks_mut(h * w)
        .zip(dy.data.par_chunks(oh * ow))
        .zip(argmax.par_chunks(oh * ow))
        .for_each(|((d, g), a)| {
            for y in 0..oh {
                for xx in 0..ow {
                    let i = y * ow + xx;
                    let (dy_off, dx_off) = ((a[i] / 2) as usize, (a[i] % 2) as usize);
                    d[(2 * y + dy_off) * w + 2 * xx + dx_off] = g[i];
                }
            }
        });
    dx
}

/// Inverted dropout: zeroes each value with probability `p` and scales survivors by `1/(1-p)`.
/// Returns the mask (0 or the scale) for the backward pass.
pub fn dropout_in_place(x: &mut Tensor, p: f32, rng: &mut impl Rng) -> Vec<f32> {
    let keep = 1.0 / (1.0 - p);
    // The generator's words in one bulk fill (its stream is sequential), turned into uniforms on
    // all threads exactly as `rng.random::<f32>()` turns each word (tested below): the same mask,
    // without one thread drawing ~2M values per step while the others wait.
    let mut words = vec![0u32; x.len()];
    rng.fill(&mut words[..]);
    let mask: Vec<f32> = words.par_iter().map(|&word| if unit_f32(word) < p { 0.0 } else { keep }).collect();
    dropout_backward(&mask, x);
    mask
}

/// `rand`'s `StandardUniform` f32 from one 32-bit word: its high 24 bits over 2^24.
fn unit_f32(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

pub fn dropout_backward(mask: &[f32], dy: &mut Tensor) {
    dy.data.par_chunks_mut(4096).zip(mask.par_chunks(4096)).for_each(|(d, m)| d.iter_mut().zip(m).for_each(|(d, m)| *d *= m));
}

/// `[n, c, h, w] -> [n, c, 1, 1]`, the mean of each channel plane.
pub fn global_avg_pool(x: &Tensor) -> Tensor {
    let hw = x.plane() as f32;
    let data = x.data.chunks(x.plane()).map(|p| p.iter().sum::<f32>() / hw).collect();
    Tensor::from_vec([x.batch(), x.channels(), 1, 1], data)
}

pub fn global_avg_pool_backward(input_shape: [usize; 4], dy: &Tensor) -> Tensor {
    let hw = input_shape[2] * input_shape[3];
    let mut dx = Tensor::zeros(input_shape);
    dx.data.chunks_mut(hw).zip(&dy.data).for_each(|(plane, &g)| plane.fill(g / hw as f32));
    dx
}

/// Fully connected layer: `y = x · W^T + b`, `W: [out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Slot,
    pub bias: Slot,
}

impl Linear {
    pub fn new(layout: &mut Layout, name: &str, inputs: usize, outputs: usize) -> Self {
        let init = Init::UniformFanIn { fan_in: inputs };
        Linear {
            inputs,
            outputs,
            weight: layout.alloc(format!("{name}.weight"), &[outputs, inputs], init, true),
            bias: layout.alloc(format!("{name}.bias"), &[outputs], init, false),
        }
    }

    /// `x: [n, inputs, 1, 1] -> [n, outputs, 1, 1]`.
    pub fn forward(&self, params: &[f32], x: &Tensor) -> Tensor {
        let n = x.batch();
        assert_eq!(x.image_len(), self.inputs, "linear layer expects {} inputs", self.inputs);
        let mut out = Tensor::zeros([n, self.outputs, 1, 1]);
        let bias = self.bias.of(params);
        out.data.chunks_mut(self.outputs).for_each(|row| row.copy_from_slice(bias));
        sgemm(n, self.inputs, self.outputs, &x.data, row_major(self.inputs), self.weight.of(params), transposed(self.inputs), 1.0, &mut out.data, row_major(self.outputs));
        out
    }

    pub fn backward(&self, params: &[f32], x: &Tensor, dy: &Tensor, grads: &mut [f32]) -> Tensor {
        let n = x.batch();
        // dW[out, in] += dY^T[out, n] · X[n, in]
        sgemm(self.outputs, n, self.inputs, &dy.data, transposed(self.outputs), &x.data, row_major(self.inputs), 1.0, self.weight.of_mut(grads), row_major(self.inputs));
        let db = self.bias.of_mut(grads);
        dy.data.chunks(self.outputs).for_each(|row| db.iter_mut().zip(row).for_each(|(b, g)| *b += g));
        // dX[n, in] = dY[n, out] · W[out, in]
        let mut dx = Tensor::zeros(x.shape);
        sgemm(n, self.outputs, self.inputs, &dy.data, row_major(self.outputs), self.weight.of(params), row_major(self.inputs), 0.0, &mut dx.data, row_major(self.inputs));
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The bulk-drawn mask is the mask of one `random::<f32>()` per value, and leaves the
    /// generator where those draws would: training runs (and their resumes) keep their dropout.
    #[test]
    fn dropout_mask_is_the_one_by_one_draws_and_leaves_the_generator_where_they_would() {
        let p = 0.1;
        for len in [1, 63, 100, 5000] {
            let (mut bulk, mut single) = (ChaCha8Rng::seed_from_u64(len as u64), ChaCha8Rng::seed_from_u64(len as u64));
            // A draw first, so the bulk fill starts mid-block.
            assert_eq!(bulk.random::<u32>(), single.random::<u32>());
            let mut x = Tensor::from_vec([1, 1, 1, len], (0..len).map(|i| i as f32 - 7.0).collect());
            let original = x.clone();
            let mask = dropout_in_place(&mut x, p, &mut bulk);
            let expected: Vec<f32> = (0..len).map(|_| if single.random::<f32>() < p { 0.0 } else { 1.0 / (1.0 - p) }).collect();
            assert_eq!(mask, expected, "length {len}");
            assert!(x.data.iter().zip(&original.data).zip(&mask).all(|((y, v), m)| *y == v * m));
            assert_eq!(bulk.random::<u64>(), single.random::<u64>(), "length {len}: the generators part");
        }
    }
}
