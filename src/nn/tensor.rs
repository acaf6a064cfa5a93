//! A dense NCHW `f32` tensor: the activations that flow between layers.

/// Activations of a batch: `shape = [batch, channels, height, width]`, row-major.
/// Fully connected activations use `height = width = 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: [usize; 4]) -> Self {
        Tensor { shape, data: vec![0.0; shape.iter().product()] }
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
