//! ferlite: facial emotion recognition with a small residual CNN that trains and runs on a plain CPU.

pub mod emotion;
pub mod model;
pub mod nn;
