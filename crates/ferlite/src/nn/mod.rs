//! A small CPU training engine for convolutional networks built from 3x3/1x1 convolutions, batch
//! norm, ReLU, 2x2 max-pooling, dropout, global average pooling and linear layers.
//!
//! Every layer has a `forward` and a hand-written `backward`; parameters live in one flat `f32`
//! vector (see [`params`]) so optimisers, checkpoints and gradient checks work on plain slices.
//! Work is split across images with rayon; matrix products go through [`gemm::sgemm`].
//! Why not a framework: see `docs/decisions.md` (training speed measured on this network).

pub mod bf16;
pub mod conv;
pub mod direct_conv;
pub mod gemm;
pub mod layers;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod params;
pub mod precision;
pub mod qgemm;
pub mod schedule;
pub mod tensor;
pub mod winograd;

pub use precision::Precision;
pub use tensor::Tensor;
