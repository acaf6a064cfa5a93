//! ferlite: facial emotion recognition with a small residual CNN that trains and runs on a plain CPU.
//!
//! Layout: [`data`] reads FER2013 (CSV or folders) and augments it; [`model`] is the network;
//! [`nn`] the layers and optimisers it is built from; [`train`] the training loop and checkpoints;
//! [`eval`] metrics and plots; [`predict`] turns face images into emotions; [`image_io`],
//! [`faces`] and [`analyze`] take whole photos to per-face emotions; [`video`] reads and writes
//! video files (through FFmpeg) and [`track`] follows faces across frames. The front ends (the `ferlite`
//! command line, the HTTP service, the Python package) are thin crates on top of this one.
//!
//! # Quick start: emotions of every face in a photo
//!
//! The trained model is compiled in, so this needs no files but the photo (it is run by `cargo test`):
//!
//! ```
//! use ferlite::analyze::{analyze, FaceSearch};
//! use ferlite::predict::{Predictor, Tta};
//!
//! let predictor = Predictor::load(None)?; // the embedded model; Some(path) for a trained weights file
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).unwrap(); // the repository
//! let photo = ferlite::image_io::open_image("assets/demo/astronaut.jpg".as_ref())?;
//! let faces = analyze(&predictor, &photo, FaceSearch::default(), Tta::default())?; // largest first
//! for face in &faces {
//!     println!("{:?}: {} ({:.0}%)", face.face_box, face.prediction.emotion, 100.0 * face.prediction.confidence);
//! }
//! # assert_eq!((faces.len(), faces[0].prediction.emotion), (1, "happy"));
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Frames from a camera or a video call are images too: wrap the buffer with
//! `image::RgbImage::from_raw(width, height, pixels)` and `image::DynamicImage::ImageRgb8`. Faces
//! already cropped go straight to [`predict::Predictor::predict`] as 48x48 gray pixels
//! ([`image_io::face_pixels`] makes them from any image). A [`predict::Predictor`] is `Sync`: share
//! one across threads. On a CPU with AVX-512 BF16,
//! `Predictor::load(None)?.with_precision(nn::Precision::Bf16)?` runs the network about
//! twice as fast, with labels that differ from f32's for about 1% of faces.

pub mod analyze;
pub mod choice;
pub mod annotate;
pub mod data;
pub mod emotion;
pub mod eval;
pub mod export;
pub mod faces;
pub mod image_io;
pub mod infer;
pub mod int8;
pub mod model;
pub mod nn;
pub mod predict;
pub mod rng;
pub mod track;
pub mod train;
pub mod video;
pub mod weights;
