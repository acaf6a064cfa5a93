//! Faces in photos: the detectors (YuNet by default; with face-api's SSD MobileNet v1, dlib's CNN
//! face detector (MMOD) and the SeetaFace frontal cascade, merged, for `accurate`; all compiled
//! into the binary, see `assets/README.md`) and the crop that turns a detected face into a
//! FER2013-like 48x48 input.

pub mod mmod;
pub mod seeta;
pub mod ssd;
pub mod yunet;

use crate::nn::Precision;
use crate::emotion::FACE_SIZE;
use anyhow::Result;
use image::{DynamicImage, GrayImage};
use serde::Serialize;

/// Five points of a face, `[x, y]` in the photo's pixels: the right eye, the left eye (the
/// person's own; the right eye is on the viewer's left), the nose tip, the right and the left
/// corner of the mouth.
pub type Landmarks = [[f32; 2]; 5];

/// Where a face is, in the original photo's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The detector's confidence, 0-1, that this is a face: YuNet's and the SSD's own
    /// probability; SeetaFace's and MMOD's raw score through [`ScoreCalibration`]. `None` when
    /// the whole image was taken as the face.
    pub score: Option<f64>,
    /// Which detector found it (`None`: the whole image was taken as the face).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<Detector>,
    /// The face's eyes, nose and mouth corners, from detectors that find them (YuNet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Landmarks>,
}

impl FaceBox {
    /// The box of a whole image taken as one face.
    pub fn whole(width: u32, height: u32) -> Self {
        FaceBox { x: 0, y: 0, width, height, score: None, detector: None, landmarks: None }
    }

    /// Margin (fraction of the box side, each side) that turns this box into a FER2013-like
    /// framing: each detector frames faces its own way. Chosen on val/ faces pasted into photos,
    /// for the accuracy of the label through the box (`cargo run --release --example
    /// detection_recall`; docs/experiments.md, 2026-11-26): tighter than the margins that match
    /// the box side to the FER2013 crop's side on average (SSD -0.035, SeetaFace 0.05).
    pub fn crop_margin(&self) -> f32 {
        // YuNet's box is 0.98 of the FER2013 crop's side, 0.03 of it low (detection_recall,
        // 2026-12-04): framed as it is. The framing sweep (2026-12-07) puts margins from -0.045
        // to +0.03 within 0.2 points of each other with one crop, and 0 with the three framings
        // at 69.77% (the originals: 70.59%).
        const YUNET_MARGIN: f32 = 0.0;
        match self.detector {
            Some(Detector::Yunet) => YUNET_MARGIN,
            // SeetaFace's box is 0.908 of the FER2013 crop's side, centred.
            Some(Detector::Seeta) => 0.017,
            // SSD's box is taller than wide, its longer side 1.079 of the FER2013 crop's side.
            Some(Detector::Ssd) => -0.063,
            // MMOD's box is 0.858 of the FER2013 crop's side, centred (0.083 would match it).
            Some(Detector::Mmod) => 0.053,
            Some(Detector::Accurate) | None => 0.0,
        }
    }

    /// The slope of the line from the face's right eye to its left (radians, positive when the
    /// left eye is lower in the photo); 0 when the detector gives no landmarks.
    pub fn eye_angle(&self) -> f32 {
        self.landmarks.map_or(0.0, |[right_eye, left_eye, ..]| (left_eye[1] - right_eye[1]).atan2(left_eye[0] - right_eye[0]))
    }

    /// The 48x48 crops of this face at each of [`FRAMING_SCALES`], one after another, turned to
    /// level its eyes when they slope past [`LEVEL_EYES_PAST_DEGREES`].
    pub fn framed_crops(&self, photo: &GrayImage) -> Vec<u8> {
        self.framed_crops_from(&|x, y| edge_extended(photo, x, y))
    }

    /// [`FaceBox::framed_crops`] reading the photo's gray pixels through `pixel` (x, y in the
    /// photo, edges extended).
    fn framed_crops_from(&self, pixel: &impl Fn(i64, i64) -> u8) -> Vec<u8> {
        let side = 1.0 + 2.0 * self.crop_margin();
        let angle = self.leveling_angle();
        FRAMING_SCALES.iter().flat_map(|scale| sample_crop(pixel, self, (side * scale - 1.0) / 2.0, angle)).collect()
    }

    /// The angle the crops are turned by: the eye line's slope past [`LEVEL_EYES_PAST_DEGREES`], else 0.
    fn leveling_angle(&self) -> f32 {
        let angle = self.eye_angle();
        if angle.abs().to_degrees() > LEVEL_EYES_PAST_DEGREES { angle } else { 0.0 }
    }

    /// The photo pixels, `[x0, y0, x1, y1)`, that [`FaceBox::framed_crops`] can read (before the
    /// photo's edges limit them): the widest framing's square, turned any way, and a pixel more.
    fn crop_reach(&self) -> [i64; 4] {
        let widest = FRAMING_SCALES.iter().fold(0f32, |a, &b| a.max(b));
        let side = self.width.max(self.height) as f32 * (1.0 + 2.0 * self.crop_margin()) * widest;
        let reach = side * std::f32::consts::FRAC_1_SQRT_2 + 2.0;
        let (cx, cy) = (self.x as f32 + self.width as f32 / 2.0, self.y as f32 + self.height as f32 / 2.0);
        [(cx - reach).floor() as i64, (cy - reach).floor() as i64, (cx + reach).ceil() as i64, (cy + reach).ceil() as i64]
    }

    fn centre(&self) -> (u32, u32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    pub(crate) fn contains(&self, (x, y): (u32, u32)) -> bool {
        (self.x..self.x + self.width).contains(&x) && (self.y..self.y + self.height).contains(&y)
    }

    /// Whether two detectors' boxes frame the same face: one holds the other's centre, or they
    /// share over half of the smaller box (SeetaFace sometimes adds a box around a face and the
    /// body below it, whose centre falls just outside SSD's box of that face).
    fn same_face(&self, other: &FaceBox) -> bool {
        let overlap = |a0: u32, a1: u32, b0: u32, b1: u32| a1.min(b1).saturating_sub(a0.max(b0)) as u64;
        let shared = overlap(self.x, self.x + self.width, other.x, other.x + other.width)
            * overlap(self.y, self.y + self.height, other.y, other.y + other.height);
        let smaller = (self.width as u64 * self.height as u64).min(other.width as u64 * other.height as u64);
        self.contains(other.centre()) || other.contains(self.centre()) || 2 * shared > smaller
    }
}

/// Which face detector finds the faces in photos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// YuNet-n (libfacedetection): a few milliseconds a photo on one core, faces with five
    /// landmarks, from ~10 px of a copy of the photo 640 px on its longer side.
    #[default]
    Yunet,
    /// The four detectors merged: every SSD face, plus each MMOD face, then each SeetaFace face,
    /// then each YuNet face, that frames no face already found (SSD finds small, turned and
    /// partly hidden faces, MMOD turned and tightly cropped ones of 80 px and up, SeetaFace
    /// frontal ones). The most faces, at ~0.4 s a photo on one core.
    Accurate,
    /// face-api's SSD MobileNet v1 (from `@vladmandic/face-api`), ~115 ms a photo on one core.
    Ssd,
    /// The SeetaFace frontal cascade, ~55 ms a photo on one core, frontal faces only.
    Seeta,
    /// dlib's CNN face detector (MMOD), faces of 80 px and up (after shrinking the photo to 1280 px).
    Mmod,
}

impl Detector {
    /// Faces in `photo`, largest first, in its pixels.
    pub fn detect(self, photo: &DynamicImage) -> Result<Vec<FaceBox>> {
        self.detect_with(photo, None, Precision::F32)
    }

    /// [`Detector::detect`] keeping the faces that score at least `min_score` (0-1; `None`: each
    /// detector's own threshold, [`yunet::MIN_SCORE`], [`ssd::MIN_CONFIDENCE`],
    /// [`seeta::MIN_RAW_SCORE`], MMOD's 0 raw; below those last two, no lower `min_score` finds
    /// more faces). The SSD's products are in
    /// `precision` (bfloat16 needs [`crate::nn::bf16::available`]).
    pub fn detect_with(self, photo: &DynamicImage, min_score: Option<f32>, precision: Precision) -> Result<Vec<FaceBox>> {
        precision.check()?;
        let mut faces = self.detect_unordered(photo, min_score, precision)?;
        faces.sort_by_key(|f| std::cmp::Reverse(f.width * f.height));
        Ok(faces)
    }

    /// The faces this detector finds, in no particular order (`detect_with` orders them, once).
    fn detect_unordered(self, photo: &DynamicImage, min_score: Option<f32>, precision: Precision) -> Result<Vec<FaceBox>> {
        let min_ssd_score = min_score.unwrap_or(ssd::MIN_CONFIDENCE);
        Ok(match self {
            Detector::Yunet => yunet_detector()?.detect(&rgb(photo), min_score.unwrap_or(yunet::MIN_SCORE))?,
            Detector::Ssd => ssd_detector(precision)?.detect(&rgb(photo), min_ssd_score),
            Detector::Seeta => at_least(seeta::CALIBRATION.apply(seeta::detect_faces_seeta(&photo.to_luma8())?), min_score),
            Detector::Mmod => mmod_faces(&rgb(photo), min_score)?,
            Detector::Accurate => {
                // SSD, MMOD and YuNet read the same RGB pixels.
                let rgb = rgb(photo);
                let ssd = || ssd_detector(precision).map(|d| d.detect(&rgb, min_ssd_score));
                let mmod = || mmod_faces(&rgb, min_score);
                let yunet = || yunet_detector().and_then(|d| d.detect(&rgb, min_score.unwrap_or(yunet::MIN_SCORE)));
                let ((ssd, mmod), (seeta, yunet)) =
                    rayon::join(|| rayon::join(ssd, mmod), || rayon::join(|| Detector::Seeta.detect_unordered(photo, min_score, precision), yunet));
                let mut faces = ssd?;
                for more in [mmod?, seeta?, yunet?] {
                    let extra: Vec<FaceBox> = more.into_iter().filter(|s| !faces.iter().any(|f| f.same_face(s))).collect();
                    faces.extend(extra);
                }
                faces
            }
        })
    }
}

/// MMOD's faces in `rgb` above its own threshold (0 raw), their scores calibrated, then those
/// scoring at least `min_score`.
fn mmod_faces(rgb: &image::RgbImage, min_score: Option<f32>) -> Result<Vec<FaceBox>> {
    Ok(at_least(mmod::CALIBRATION.apply(mmod_detector()?.detect(rgb, 0.0)), min_score))
}

/// `faces` scoring at least `min_score` (all of them when `None`).
fn at_least(mut faces: Vec<FaceBox>, min_score: Option<f32>) -> Vec<FaceBox> {
    if let Some(min) = min_score {
        faces.retain(|f| f.score.is_some_and(|s| s >= min as f64));
    }
    faces
}

/// A detector's raw score turned into a 0-1 confidence that its box is a face: a logistic map
/// (Platt scaling) fitted by `examples/detector_calibration.rs` on boxes whose truth is known,
/// found below and above the detector's threshold in photos of pasted FER2013 faces and in
/// pictures without people. Monotone: the order of faces by score is the raw order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreCalibration {
    pub slope: f64,
    pub offset: f64,
}

impl ScoreCalibration {
    pub fn confidence(self, raw: f64) -> f64 {
        1.0 / (1.0 + (-(self.slope * raw + self.offset)).exp())
    }

    /// `faces` with their raw scores replaced by confidences.
    pub fn apply(self, mut faces: Vec<FaceBox>) -> Vec<FaceBox> {
        for face in &mut faces {
            face.score = face.score.map(|raw| self.confidence(raw));
        }
        faces
    }
}

/// `photo`'s RGB pixels: borrowed when it is RGB already (a video or camera frame: no copy of it
/// per frame), converted otherwise.
fn rgb(photo: &DynamicImage) -> std::borrow::Cow<'_, image::RgbImage> {
    match photo.as_rgb8() {
        Some(rgb) => std::borrow::Cow::Borrowed(rgb),
        None => std::borrow::Cow::Owned(photo.to_rgb8()),
    }
}

/// `score` if it can be a lowest face score (strictly between 0 and 1: every detector's score is
/// a 0-1 confidence), else why not (`predict --min-face-score`, the service's `min_face_score`).
pub fn check_min_score(score: f32) -> Result<f32, String> {
    if score > 0.0 && score < 1.0 {
        Ok(score)
    } else {
        Err(format!("a face score is strictly between 0 and 1, not {score}"))
    }
}

/// The SSD detector for `precision`, built once per process from the embedded weights (it is
/// read-only, so threads share it).
fn ssd_detector(precision: Precision) -> Result<&'static ssd::SsdDetector> {
    // The SSD has bfloat16 kernels but no int8 ones: int8 runs its f32 form.
    let precision = if precision == Precision::Bf16 { Precision::Bf16 } else { Precision::F32 };
    static SSD: [std::sync::OnceLock<Result<ssd::SsdDetector, String>>; 2] = [const { std::sync::OnceLock::new() }; 2];
    SSD[usize::from(precision == Precision::Bf16)].get_or_init(|| ssd::SsdDetector::new(precision).map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The YuNet network, optimised once per process from the embedded ONNX file.
fn yunet_detector() -> Result<&'static yunet::YuNet> {
    static YUNET: std::sync::OnceLock<Result<yunet::YuNet, String>> = std::sync::OnceLock::new();
    YUNET.get_or_init(|| yunet::YuNet::new().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The MMOD detector, built once per process from the embedded weights.
fn mmod_detector() -> Result<&'static mmod::MmodDetector> {
    static MMOD: std::sync::OnceLock<Result<mmod::MmodDetector, String>> = std::sync::OnceLock::new();
    MMOD.get_or_init(|| mmod::MmodDetector::new().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Eye lines sloping more than this are levelled before classifying ([`FaceBox::framed_crops`]).
/// On val/ faces pasted into photos (`examples/framing_sweep.rs … level`, docs/experiments.md
/// 2026-12-07), faces tilted within ±20° gain 0.4 points and upright ones lose none (levelling
/// every face: +0.8 and -0.2; FER2013's own faces carry small tilts the network learnt, and
/// small landmark slopes are mostly noise).
pub const LEVEL_EYES_PAST_DEGREES: f32 = 5.0;

/// Crop sides, relative to [`FaceBox::crop_margin`]'s, at which a detected face is classified,
/// the probabilities averaged: a detector's box side varies by sd 0.13 of the face around the
/// FER2013 framing, and the label moves with it. On val/ faces found in photos, averaging these
/// three recovers 1.0 point of accuracy and 2.7 of agreement with the 48x48 original over one
/// crop; seven framings (adding shifts) only 0.15 more (docs/experiments.md, 2026-11-26).
pub const FRAMING_SCALES: [f32; 3] = [0.9, 1.0, 1.1];

/// The 48x48 gray face for `face`: a square centred on the detector's box, its longer side
/// enlarged by `margin` of it on every side (see [`FaceBox::crop_margin`]), edges extended where
/// the square leaves the photo.
pub fn crop_face(photo: &GrayImage, face: &FaceBox, margin: f32) -> Vec<u8> {
    crop_face_turned(photo, face, margin, 0.0)
}

/// [`crop_face`] with the crop's axes turned by `angle` radians about the box's centre (clockwise
/// in the photo, whose y axis points down): a face whose eye line slopes by `angle`
/// ([`FaceBox::eye_angle`]) comes out with its eyes level.
pub fn crop_face_turned(photo: &GrayImage, face: &FaceBox, margin: f32, angle: f32) -> Vec<u8> {
    sample_crop(&|x, y| edge_extended(photo, x, y), face, margin, angle)
}

/// The crops of every face in `faces` at each of [`FRAMING_SCALES`] ([`FaceBox::framed_crops`]),
/// one face after another: the same pixels as `framed_crops` of the whole photo turned gray,
/// but only the part of the photo around the faces is turned gray (the whole of a 640x480 colour
/// frame took ~1 ms, a tenth of the frame job; 2026-12-07).
pub fn framed_crops_of_faces(photo: &DynamicImage, faces: &[FaceBox]) -> Vec<u8> {
    if let Some(gray) = photo.as_luma8() {
        return faces.iter().flat_map(|f| f.framed_crops(gray)).collect();
    }
    let (width, height) = (photo.width() as i64, photo.height() as i64);
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let Some([x0, y0, x1, y1]) = faces.iter().map(FaceBox::crop_reach).reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]) else {
        return Vec::new();
    };
    // Within the photo and at least one pixel: every pixel a crop reads, its edges extended,
    // lies in this part.
    let (x0, y0) = (x0.clamp(0, width - 1), y0.clamp(0, height - 1));
    let (x1, y1) = (x1.clamp(x0 + 1, width), y1.clamp(y0 + 1, height));
    let part = photo.crop_imm(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32).to_luma8();
    let pixel = |x: i64, y: i64| part.get_pixel((x.clamp(0, width - 1) - x0) as u32, (y.clamp(0, height - 1) - y0) as u32)[0];
    faces.iter().flat_map(|f| f.framed_crops_from(&pixel)).collect()
}

/// `photo`'s pixel at (`x`, `y`), or at the nearest edge pixel when that is outside it.
fn edge_extended(photo: &GrayImage, x: i64, y: i64) -> u8 {
    photo.get_pixel(x.clamp(0, photo.width() as i64 - 1) as u32, y.clamp(0, photo.height() as i64 - 1) as u32)[0]
}

/// [`crop_face_turned`] reading the photo's gray pixels through `pixel` (x, y in the photo,
/// edges extended).
fn sample_crop(pixel: &impl Fn(i64, i64) -> u8, face: &FaceBox, margin: f32, angle: f32) -> Vec<u8> {
    let side = face.width.max(face.height) as f32 * (1.0 + 2.0 * margin);
    let cx = face.x as f32 + face.width as f32 / 2.0;
    let cy = face.y as f32 + face.height as f32 / 2.0;
    let (x0, y0) = (cx - side / 2.0, cy - side / 2.0);
    let step = side / FACE_SIZE as f32;
    let (sin, cos) = angle.sin_cos();
    // Area-averaging: each output pixel is the mean of the photo pixels it covers.
    let samples = (step.ceil() as usize).clamp(1, 8);
    let mut out = vec![0u8; FACE_SIZE * FACE_SIZE];
    for oy in 0..FACE_SIZE {
        for ox in 0..FACE_SIZE {
            let mut acc = 0u32;
            for sy in 0..samples {
                for sx in 0..samples {
                    let (u, v) = ((ox as f32 + (sx as f32 + 0.5) / samples as f32) * step, (oy as f32 + (sy as f32 + 0.5) / samples as f32) * step);
                    let (px, py) = if angle == 0.0 {
                        ((x0 + u) as i64, (y0 + v) as i64)
                    } else {
                        let (du, dv) = (u - side / 2.0, v - side / 2.0);
                        ((cx + du * cos - dv * sin) as i64, (cy + du * sin + dv * cos) as i64)
                    };
                    acc += pixel(px, py) as u32;
                }
            }
            out[oy * FACE_SIZE + ox] = (acc as f32 / (samples * samples) as f32).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use image::imageops::FilterType;

    fn demo_photo() -> DynamicImage {
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap()
    }

    /// The detectors have no int8 kernels; asking for int8 (the classifier's precision) runs
    /// their f32 form rather than failing.
    #[test]
    fn every_detector_runs_at_every_precision_this_cpu_has() {
        let photo = demo_photo();
        for precision in [Precision::F32, Precision::Bf16, Precision::Int8].into_iter().filter(|p| p.check().is_ok()) {
            for detector in [Detector::Ssd, Detector::Accurate] {
                assert_eq!(detector.detect_with(&photo, None, precision).unwrap().len(), 1, "{detector:?} {precision:?}");
            }
        }
    }

    #[test]
    fn each_detector_finds_the_astronauts_face() {
        for detector in [Detector::Yunet, Detector::Ssd, Detector::Seeta, Detector::Mmod, Detector::Accurate] {
            let faces = detector.detect(&demo_photo()).unwrap();
            assert_eq!(faces.len(), 1, "{detector:?}: {faces:?}");
            let f = faces[0];
            // Her face spans about x 170-270, y 60-180 in the 512x512 photo.
            let (cx, cy) = (f.x + f.width / 2, f.y + f.height / 2);
            assert!((190..250).contains(&cx) && (90..150).contains(&cy) && (60..160).contains(&f.width), "{detector:?}: {f:?}");
            let score = f.score.unwrap();
            assert!(score > 0.5 && score < 1.0, "{detector:?}: a face's confidence is 0-1, not {score}");
        }
    }

    /// SeetaFace's and MMOD's raw scores are on their own scales (the astronaut: ~20 and ~1.06);
    /// what is reported is their calibrated confidence, which `min_score` applies to.
    #[test]
    fn seeta_and_mmod_report_calibrated_confidences_that_min_score_filters() {
        let photo = demo_photo();
        let raw = seeta::SeetaDetector::new().unwrap().detect(&photo.to_luma8())[0].score.unwrap();
        let [reported] = Detector::Seeta.detect(&photo).unwrap()[..] else { panic!("one face") };
        assert!(raw > 1.0 && reported.score == Some(seeta::CALIBRATION.confidence(raw)), "raw {raw}, reported {reported:?}");
        let above = reported.score.unwrap() as f32 + 1e-4;
        assert!(Detector::Seeta.detect_with(&photo, Some(above), Precision::F32).unwrap().is_empty());
        let raw = mmod_detector().unwrap().detect(&photo.to_rgb8(), 0.0)[0].score.unwrap();
        let [reported] = Detector::Mmod.detect(&photo).unwrap()[..] else { panic!("one face") };
        assert_eq!(reported.score, Some(mmod::CALIBRATION.confidence(raw)));
        for calibration in [seeta::CALIBRATION, mmod::CALIBRATION] {
            assert!(calibration.confidence(-100.0) < calibration.confidence(0.0) && calibration.confidence(0.0) < calibration.confidence(100.0));
        }
    }

    /// face-api 1.7.15 itself (`@vladmandic/face-api`, tfjs CPU backend) on the demo photo gives
    /// x 180.99, y 71.12, 83.73 x 104.54, score 0.97306: the re-implementation must agree.
    #[test]
    fn ssd_matches_face_api_on_the_demo_photo() {
        let faces = Detector::Ssd.detect(&demo_photo()).unwrap();
        let f = faces[0];
        assert_eq!((f.x, f.y, f.width, f.height), (181, 71, 84, 105), "{f:?}");
        assert!((f.score.unwrap() - 0.97306).abs() < 1e-3, "{f:?}");
    }

    #[test]
    fn boxes_are_in_original_pixels_when_the_photo_is_downscaled() {
        let photo = demo_photo();
        let big = DynamicImage::ImageRgb8(image::imageops::resize(&photo.to_rgb8(), 2048, 2048, FilterType::Triangle));
        for detector in [Detector::Yunet, Detector::Ssd, Detector::Seeta, Detector::Mmod, Detector::Accurate] {
            let (a, b) = (detector.detect(&photo).unwrap()[0], detector.detect(&big).unwrap()[0]);
            let close = |p: u32, q: u32| (p as i64 * 4 - q as i64).abs() < 40;
            assert!(close(a.x, b.x) && close(a.y, b.y) && close(a.width, b.width), "{detector:?}: {a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_box_around_a_face_and_its_body_is_the_same_face_but_a_neighbour_is_not() {
        let face = |x, y, width, height| FaceBox { x, y, width, height, ..FaceBox::whole(1, 1) };
        // face-api's sample1.jpg: SSD's box of the left face, and SeetaFace's box over its lower
        // half and the body (centre just outside SSD's box; 70% of SSD's box inside it).
        let ssd = face(411, 354, 181, 238);
        assert!(ssd.same_face(&face(408, 425, 372, 372)));
        assert!(ssd.same_face(&face(392, 378, 221, 221)), "SeetaFace's own box of that face");
        // The face next to it (same photo), and a neighbour overlapping by a third.
        assert!(!ssd.same_face(&face(803, 417, 239, 239)));
        assert!(!ssd.same_face(&face(531, 354, 181, 238)));
    }

    #[test]
    fn crop_of_a_whole_48px_box_is_the_image_itself() {
        let face: Vec<u8> = (0..FACE_SIZE * FACE_SIZE).map(|i| (i % 251) as u8).collect();
        let photo = GrayImage::from_raw(48, 48, face.clone()).unwrap();
        let crop = crop_face(&photo, &FaceBox::whole(48, 48), 0.0);
        assert_eq!(crop, face);
    }

    #[test]
    fn framed_crops_widen_around_the_detectors_own_crop() {
        let photo = demo_photo().to_luma8();
        let face = Detector::Ssd.detect(&DynamicImage::ImageLuma8(photo.clone())).unwrap()[0];
        let crops = face.framed_crops(&photo);
        assert_eq!(crops.len(), FRAMING_SCALES.len() * FACE_SIZE * FACE_SIZE);
        // In FRAMING_SCALES order: 10% tighter, the detector's calibrated crop, 10% wider.
        let views: Vec<&[u8]> = crops.chunks(FACE_SIZE * FACE_SIZE).collect();
        assert_eq!(views[1], crop_face(&photo, &face, face.crop_margin()).as_slice());
        let wider = crop_face(&photo, &face, (1.1 * (1.0 + 2.0 * face.crop_margin()) - 1.0) / 2.0);
        assert_eq!(views[2], wider.as_slice());
        assert_ne!(views[0], views[2]);
    }

    #[test]
    fn framed_crops_level_eyes_sloping_past_the_threshold_only() {
        let photo = demo_photo().to_luma8();
        let face = Detector::Yunet.detect(&DynamicImage::ImageLuma8(photo.clone())).unwrap()[0];
        // Eyes 40 px apart, the left one lower by 40 * tan(slope).
        let sloped = |degrees: f32| {
            let mut landmarks = face.landmarks.unwrap();
            landmarks[1] = [landmarks[0][0] + 40.0, landmarks[0][1] + 40.0 * degrees.to_radians().tan()];
            FaceBox { landmarks: Some(landmarks), ..face }
        };
        let upright = FaceBox { landmarks: None, ..face }.framed_crops(&photo);
        assert_eq!(sloped(LEVEL_EYES_PAST_DEGREES - 1.0).framed_crops(&photo), upright);
        let tilted = sloped(20.0);
        let turned = crop_face_turned(&photo, &tilted, tilted.crop_margin(), 20f32.to_radians());
        assert_eq!(&tilted.framed_crops(&photo)[FACE_SIZE * FACE_SIZE..2 * FACE_SIZE * FACE_SIZE], turned.as_slice());
    }

    /// Turning only the faces' surroundings gray reads the pixels the whole gray photo gives:
    /// faces inside, over the edges, tilted (crops turned), far apart.
    #[test]
    fn crops_from_the_faces_surroundings_are_those_of_the_whole_gray_photo() {
        let photo = demo_photo();
        let face = Detector::Yunet.detect(&photo).unwrap()[0];
        let mut tilted = face;
        let [right_eye, ..] = face.landmarks.unwrap();
        tilted.landmarks.as_mut().unwrap()[1] = [right_eye[0] + 40.0, right_eye[1] + 15.0];
        let corner = FaceBox { x: 0, y: 430, width: 90, height: 82, landmarks: None, ..face };
        let right_edge = FaceBox { x: 480, y: 200, width: 32, height: 40, detector: Some(Detector::Ssd), ..corner };
        let gray = photo.to_luma8();
        for faces in [vec![face], vec![tilted], vec![corner], vec![right_edge, face], vec![corner, tilted, right_edge]] {
            let whole: Vec<u8> = faces.iter().flat_map(|f| f.framed_crops(&gray)).collect();
            assert_eq!(framed_crops_of_faces(&photo, &faces), whole, "{faces:?}");
        }
        assert!(tilted.leveling_angle() != 0.0);
        assert!(framed_crops_of_faces(&photo, &[]).is_empty());
        assert!(framed_crops_of_faces(&DynamicImage::new_rgb8(0, 0), &[face]).is_empty());
    }

    #[test]
    fn no_faces_in_a_blank_image() {
        for detector in [Detector::Yunet, Detector::Ssd, Detector::Seeta, Detector::Mmod, Detector::Accurate] {
            assert!(detector.detect(&DynamicImage::ImageLuma8(GrayImage::new(300, 200))).unwrap().is_empty(), "{detector:?}");
        }
    }
}
