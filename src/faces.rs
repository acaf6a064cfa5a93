//! Faces in photos: detection with the SeetaFace frontal cascade (the `rustface` crate; its model
//! is compiled into the binary, see `assets/README.md`) and the crop that turns a detected face
//! into a FER2013-like 48x48 input.

use crate::emotion::FACE_SIZE;
use anyhow::{Context, Result};
use image::imageops::FilterType;
use image::GrayImage;
use serde::Serialize;

const SEETA_MODEL: &[u8] = include_bytes!("../assets/seeta_fd_frontal_v1.0.bin");

/// Photos are downscaled so their longer side is at most this before detection (boxes are mapped
/// back): bounded time and memory on huge photos, and faces below ~2% of the side are not sought.
pub const DETECTION_MAX_SIDE: u32 = 1280;

/// Where a face is, in the original photo's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Detector confidence (SeetaFace score; higher is surer). `None` when the whole image was taken as the face.
    pub score: Option<f64>,
}

pub struct FaceDetector {
    inner: Box<dyn rustface::Detector>,
}

impl FaceDetector {
    pub fn new() -> Result<Self> {
        let model = rustface::read_model(SEETA_MODEL).context("embedded face detector model is unreadable")?;
        let mut inner = rustface::create_detector_with_model(model);
        inner.set_min_face_size(20);
        inner.set_score_thresh(2.0);
        inner.set_pyramid_scale_factor(0.8);
        inner.set_slide_window_step(4, 4);
        Ok(FaceDetector { inner })
    }

    /// Faces in `photo`, largest first.
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
        let mut faces: Vec<FaceBox> = self
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
                }
            })
            .collect();
        faces.sort_by_key(|f| std::cmp::Reverse(f.width * f.height));
        faces
    }
}

thread_local! {
    // rustface's detector is neither `Send` nor shareable, and building one parses its 1.2 MB model:
    // each thread (CLI main thread, server worker) keeps its own.
    static THREAD_DETECTOR: std::cell::RefCell<Option<FaceDetector>> = const { std::cell::RefCell::new(None) };
}

/// Faces in `photo`, largest first, using this thread's detector (built on first use).
pub fn detect_faces(photo: &GrayImage) -> Result<Vec<FaceBox>> {
    THREAD_DETECTOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let detector = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(FaceDetector::new()?),
        };
        Ok(detector.detect(photo))
    })
}

/// The 48x48 gray face for `face`: a square centred on the detector's box, enlarged by `margin`
/// of its side on every side (SeetaFace boxes run brow to chin; FER2013 crops show a little more),
/// edges extended where the square leaves the photo.
pub fn crop_face(photo: &GrayImage, face: &FaceBox, margin: f32) -> Vec<u8> {
    let side = face.width.max(face.height) as f32 * (1.0 + 2.0 * margin);
    let cx = face.x as f32 + face.width as f32 / 2.0;
    let cy = face.y as f32 + face.height as f32 / 2.0;
    let (x0, y0) = (cx - side / 2.0, cy - side / 2.0);
    let step = side / FACE_SIZE as f32;
    let (w, h) = (photo.width() as i64, photo.height() as i64);
    // Area-averaging: each output pixel is the mean of the photo pixels it covers.
    let samples = (step.ceil() as usize).clamp(1, 8);
    let mut out = vec![0u8; FACE_SIZE * FACE_SIZE];
    for oy in 0..FACE_SIZE {
        for ox in 0..FACE_SIZE {
            let mut acc = 0u32;
            for sy in 0..samples {
                for sx in 0..samples {
                    let px = (x0 + (ox as f32 + (sx as f32 + 0.5) / samples as f32) * step) as i64;
                    let py = (y0 + (oy as f32 + (sy as f32 + 0.5) / samples as f32) * step) as i64;
                    acc += photo.get_pixel(px.clamp(0, w - 1) as u32, py.clamp(0, h - 1) as u32)[0] as u32;
                }
            }
            out[oy * FACE_SIZE + ox] = (acc as f32 / (samples * samples) as f32).round() as u8;
        }
    }
    out
}

/// Margin around detector boxes used by `predict` and `serve`. Measured on val/ faces pasted into
/// photos (`cargo run --release --example detection_recall`): SeetaFace's box is 0.908 of the
/// FER2013 crop's side and centred on it, so 5% a side reproduces the FER2013 framing.
pub const CROP_MARGIN: f32 = 0.05;

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_photo() -> GrayImage {
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/astronaut.jpg")).unwrap().to_luma8()
    }

    #[test]
    fn finds_the_astronauts_face() {
        let faces = FaceDetector::new().unwrap().detect(&demo_photo());
        assert_eq!(faces.len(), 1, "{faces:?}");
        let f = faces[0];
        // Her face spans about x 170-270, y 60-180 in the 512x512 photo.
        let (cx, cy) = (f.x + f.width / 2, f.y + f.height / 2);
        assert!((190..250).contains(&cx) && (90..150).contains(&cy) && (60..160).contains(&f.width), "{f:?}");
    }

    #[test]
    fn boxes_are_in_original_pixels_when_the_photo_is_downscaled() {
        let photo = demo_photo();
        let big = image::imageops::resize(&photo, 2048, 2048, FilterType::Triangle);
        let mut detector = FaceDetector::new().unwrap();
        let (a, b) = (detector.detect(&photo)[0], detector.detect(&big)[0]);
        let close = |p: u32, q: u32| (p as i64 * 4 - q as i64).abs() < 40;
        assert!(close(a.x, b.x) && close(a.y, b.y) && close(a.width, b.width), "{a:?} vs {b:?}");
    }

    #[test]
    fn crop_of_a_whole_48px_box_is_the_image_itself() {
        let face: Vec<u8> = (0..FACE_SIZE * FACE_SIZE).map(|i| (i % 251) as u8).collect();
        let photo = GrayImage::from_raw(48, 48, face.clone()).unwrap();
        let crop = crop_face(&photo, &FaceBox { x: 0, y: 0, width: 48, height: 48, score: None }, 0.0);
        assert_eq!(crop, face);
    }

    #[test]
    fn no_faces_in_a_blank_image() {
        assert!(FaceDetector::new().unwrap().detect(&GrayImage::new(300, 200)).is_empty());
    }
}
