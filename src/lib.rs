//! ferlite: facial emotion recognition with a small residual CNN that trains and runs on a plain CPU.
//!
//! Layout: [`data`] reads FER2013 (CSV or folders) and augments it; [`model`] is the network;
//! [`nn`] the layers and optimisers it is built from; [`train`] the training loop and checkpoints;
//! [`eval`] metrics and plots; [`predict`] turns face images into emotions; [`image_io`],
//! [`faces`] and [`analyze`] take whole photos to per-face emotions; [`serve`] is the HTTP service.

pub mod analyze;
pub mod annotate;
pub mod data;
pub mod emotion;
pub mod eval;
pub mod export;
pub mod faces;
pub mod image_io;
pub mod infer;
pub mod model;
pub mod nn;
pub mod predict;
pub mod rng;
pub mod serve;
pub mod train;
pub mod weights;
