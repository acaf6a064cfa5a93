//! The SeetaFace frontal cascade (the `rustface` crate; its model is compiled into the binary, see
//! `assets/README.md`): fast, frontal faces only.

use super::{FaceBox, ScoreCalibration};
use anyhow::{Context, Result};
use image::imageops::FilterType;
use image::GrayImage;

/// Photos are downscaled so their longer side is at most this before detection (boxes are mapped
/// back): bounded time and memory on huge photos, and faces below ~2% of the side are not sought.
pub const DETECTION_MAX_SIDE: u32 = 1280;

const SEETA_MODEL: &[u8] = include_bytes!("../../../../assets/seeta_fd_frontal_v1.0.bin");

pub struct SeetaDetector {
    inner: Box<dyn rustface::Detector>,
}

/// The cascade's lowest raw score of a face (rustface's default).
pub const MIN_RAW_SCORE: f64 = 2.0;

/// Raw cascade score to a 0-1 confidence: fitted on 2026-12-07 on 1,059 boxes scoring above 0.5
/// (1,001 faces; 58 not, most from pictures without people): a box at the threshold, 2.0, is a
/// face at 0.77, at 5 at 0.93 (`cargo run --release --example detector_calibration --
/// ../shared/data/fer2013`; docs/experiments.md).
pub const CALIBRATION: ScoreCalibration = ScoreCalibration { slope: 0.4547, offset: 0.2884 };

impl SeetaDetector {
    pub fn new() -> Result<Self> {
        Self::with_min_raw_score(MIN_RAW_SCORE)
    }

    /// A detector keeping faces of raw cascade score above `min_raw_score` (positive).
    pub fn with_min_raw_score(min_raw_score: f64) -> Result<Self> {
        anyhow::ensure!(min_raw_score > 0.0, "SeetaFace's lowest raw score must be positive, not {min_raw_score}");
        let model = rustface::read_model(SEETA_MODEL).context("embedded face detector model is unreadable")?;
        let mut inner = rustface::create_detector_with_model(model);
        inner.set_min_face_size(20);
        inner.set_score_thresh(min_raw_score);
        inner.set_pyramid_scale_factor(0.8);
        inner.set_slide_window_step(4, 4);
        Ok(SeetaDetector { inner })
    }

    /// Faces in `photo` (unordered: `Detector::detect` orders them), with raw cascade scores.
    pub fn detect(&mut self, photo: &GrayImage) -> Vec<FaceBox> {
        let (w, h) = photo.dimensions();
        if w < 20 || h < 20 {
            return Vec::new();
        }
        let scale = (DETECTION_MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
        let small;
        let input = if scale < 1.0 {
            small = image::imageops::resize(photo, (w as f32 * scale).round() as u32, (h as f32 * scale).round() as u32, FilterType::Triangle);
            &small
        } else {
            photo
        };
        let data = rustface::ImageData::new(input.as_raw(), input.width(), input.height());
        self
            .inner
            .detect(&data)
            .iter()
            .map(|f| {
                let b = f.bbox();
                let to_photo = |v: f32| (v / scale).round().max(0.0);
                let (x, y) = (to_photo(b.x() as f32), to_photo(b.y() as f32));
                FaceBox {
                    x: x.min((w - 1) as f32) as u32,
                    y: y.min((h - 1) as f32) as u32,
                    width: to_photo(b.width() as f32).min(w as f32 - x) as u32,
                    height: to_photo(b.height() as f32).min(h as f32 - y) as u32,
                    score: Some(f.score()),
                    detector: Some(super::Detector::Seeta),
                    landmarks: None,
                }
            })
            .collect()
    }
}

thread_local! {
    // rustface's detector is neither `Send` nor shareable, and building one parses its 1.2 MB model:
    // each thread (CLI main thread, server worker) keeps its own.
    static THREAD_DETECTOR: std::cell::RefCell<Option<SeetaDetector>> = const { std::cell::RefCell::new(None) };
}

/// Faces in `photo` (unordered), using this thread's detector (built on first use).
pub fn detect_faces_seeta(photo: &GrayImage) -> Result<Vec<FaceBox>> {
    THREAD_DETECTOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let detector = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(SeetaDetector::new()?),
        };
        Ok(detector.detect(photo))
    })
}
