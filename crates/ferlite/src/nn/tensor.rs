//! A dense NCHW `f32` tensor: the activations that flow between layers.

use rayon::prelude::*;

/// Tensors at least this long are zeroed, copied and added on all threads: a training batch's
/// activations are up to 19 MB, and one thread filling them while the others wait was most of
/// what kept a step from scaling past a few threads.
const PARALLEL_LEN: usize = 1 << 15;

/// Activations of a batch: `shape = [batch, channels, height, width]`, row-major.
/// Fully connected activations use `height = width = 1`.
#[derive(Debug, PartialEq)]
pub struct Tensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        let data = if self.data.len() < PARALLEL_LEN {
            self.data.clone()
        } else {
            let mut data = Vec::with_capacity(self.data.len());
            data.par_extend(self.data.par_iter().copied());
            data
        };
        Tensor { shape: self.shape, data }
    }
}

impl Tensor {
    pub fn zeros(shape: [usize; 4]) -> Self {
        let len = shape.iter().product();
        let data = if len < PARALLEL_LEN {
            vec![0.0; len]
        } else {
            let mut data = Vec::with_capacity(len);
            data.par_extend(rayon::iter::repeat_n(0.0f32, len));
            data
        };
        Tensor { shape, data }
    }

    /// `self += other`, element by element (a residual connection).
    pub fn add_assign(&mut self, other: &Tensor) {
        assert_eq!(self.shape, other.shape, "adding tensors of different shapes");
        add_in_place(&mut self.data, &other.data);
    }

    pub fn from_vec(shape: [usize; 4], data: Vec<f32>) -> Self {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor data does not match shape {shape:?}");
        Tensor { shape, data }
    }

    pub fn batch(&self) -> usize {
        self.shape[0]
    }

    pub fn channels(&self) -> usize {
        self.shape[1]
    }

    /// Height x width: the number of positions in one channel plane.
    pub fn plane(&self) -> usize {
        self.shape[2] * self.shape[3]
    }

    /// Values of one image (all channels).
    pub fn image_len(&self) -> usize {
        self.shape[1] * self.plane()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// `dst += src`, element by element over their common length; on all threads when long (each
/// value's sum is the same).
pub fn add_in_place(dst: &mut [f32], src: &[f32]) {
    let add = |(a, b): (&mut [f32], &[f32])| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    if dst.len() < PARALLEL_LEN {
        add((dst, src));
    } else {
        dst.par_chunks_mut(4096).zip(src.par_chunks(4096)).for_each(add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors long enough to be filled, copied and added on all threads give what the plain
    /// one-thread loops give.
    #[test]
    fn long_tensors_are_zeroed_copied_and_added_as_short_ones() {
        for len in [PARALLEL_LEN - 1, PARALLEL_LEN * 3 + 5] {
            let shape = [1, 1, 1, len];
            assert!(Tensor::zeros(shape).data.iter().all(|&v| v == 0.0) && Tensor::zeros(shape).len() == len);
            let a = Tensor::from_vec(shape, (0..len).map(|i| (i as f32).sin()).collect());
            let b = Tensor::from_vec(shape, (0..len).map(|i| (i as f32 * 0.37).cos()).collect());
            assert_eq!(a.clone(), a);
            let mut sum = a.clone();
            sum.add_assign(&b);
            let expected: Vec<f32> = a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect();
            assert_eq!(sum.data, expected, "length {len}");
        }
    }
}
