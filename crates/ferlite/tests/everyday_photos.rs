//! Everyday photos nobody here made: the six group photos in the `demo/` folder of face-api's npm
//! package (`@vladmandic/face-api` 1.7.15, 22 faces; `.ci/run` installs it into `tests/face-api`,
//! the photos are not redistributed here). ferlite's default detector must find what face-api
//! itself finds there, no more and no fewer, with boxes that overlap face-api's, also with the
//! photos at half size (faces 72-154 px instead of 145-307) and a fifth (29-61 px, the small faces
//! of issue #29; at 0.13x, 19-40 px, all 22 are still found, with one extra box). Skips, saying so,
//! when the package is not installed. Also scikit-image's sample pictures: no face where there is
//! none (the detector's precision).

use ferlite_testkit as common;

use ferlite::faces::{Detector, FaceBox};
use std::path::PathBuf;

/// A box as `(x, y, width, height)`.
type Rect = (u32, u32, u32, u32);
type Boxes = &'static [Rect];

/// face-api 1.7.15's own SSD MobileNet v1 on each photo (`tests/face-api/detect.js`, tfjs CPU
/// backend, minConfidence 0.5): `(x, y, width, height)` in the photo's pixels, rounded.
const FACE_API_BOXES: [(&str, Boxes); 6] = [
    ("sample1.jpg", &[(414, 355, 177, 240), (838, 421, 186, 228), (1476, 199, 203, 241)]),
    ("sample2.jpg", &[(1447, 153, 194, 242), (902, 220, 151, 233), (361, 126, 153, 259)]),
    ("sample3.jpg", &[(585, 329, 199, 271), (1514, 292, 170, 280), (1075, 215, 220, 299)]),
    ("sample4.jpg", &[(664, 53, 187, 258), (257, 185, 162, 245), (989, 180, 169, 227), (1277, 144, 145, 244)]),
    ("sample5.jpg", &[(787, 109, 156, 212), (1113, 198, 158, 236), (1406, 390, 165, 271), (598, 415, 166, 249), (377, 859, 172, 301)]),
    ("sample6.jpg", &[(681, 321, 160, 307), (1180, 305, 188, 280), (1487, 263, 212, 296), (250, 468, 210, 291)]),
];

fn face_api_demo() -> Option<PathBuf> {
    common::outside_data("crates/ferlite/tests/face-api/node_modules/@vladmandic/face-api/demo", "sample1.jpg", "npm ci --prefix crates/ferlite/tests/face-api", common::Provided::ByCi)
}

fn iou(a: &FaceBox, (x, y, w, h): Rect) -> f64 {
    let overlap = |a0: u32, a1: u32, b0: u32, b1: u32| a1.min(b1).saturating_sub(a0.max(b0)) as f64;
    let shared = overlap(a.x, a.x + a.width, x, x + w) * overlap(a.y, a.y + a.height, y, y + h);
    shared / ((a.width * a.height + w * h) as f64 - shared)
}

/// face-api's boxes scaled by `scale`, and the default detector's faces in the photo resized by it.
fn faces_at_scale(demo: &std::path::Path, file: &str, expected: Boxes, scale: f64) -> (Vec<FaceBox>, Vec<Rect>) {
    let photo = image::open(demo.join(file)).unwrap();
    let photo = if scale == 1.0 {
        photo
    } else {
        let (w, h) = ((photo.width() as f64 * scale).round() as u32, (photo.height() as f64 * scale).round() as u32);
        photo.resize_exact(w, h, image::imageops::FilterType::Triangle)
    };
    let s = |v: u32| (v as f64 * scale).round() as u32;
    (Detector::default().detect(&photo).unwrap(), expected.iter().map(|&(x, y, w, h)| (s(x), s(y), s(w), s(h))).collect())
}

/// YuNet frames a face a little differently from face-api's SSD (its box of a turned face reaches
/// further down the cheek): the lowest IoU between the two on these photos was 0.66 on 2026-12-04
/// (sample2.jpg's left face, in profile).
const MIN_IOU: f64 = 0.6;

#[test]
fn default_detector_finds_the_faces_face_api_finds_in_its_demo_photos_at_full_half_and_a_fifth_size() {
    let Some(demo) = face_api_demo() else { return };
    for scale in [1.0, 0.5, 0.2] {
        let mut worst = 1.0f64;
        for (file, expected) in FACE_API_BOXES {
            let (found, expected) = faces_at_scale(&demo, file, expected, scale);
            assert_eq!(found.len(), expected.len(), "{file} at {scale}x: found {found:?}, face-api {expected:?}");
            for &face in &expected {
                let best = found.iter().map(|f| iou(f, face)).fold(0.0, f64::max);
                assert!(best > MIN_IOU, "{file} at {scale}x: face-api's face {face:?} best matched with IoU {best:.2} among {found:?}");
                worst = worst.min(best);
            }
        }
        eprintln!("at {scale}x: 22 of 22 faces, no extra; lowest IoU with face-api's box {worst:.3}");
    }
}

/// scikit-image's sample pictures (its PyPI wheel, `skimage/data/`; `.ci/run` unpacks it into
/// `target/skimage`, nothing is redistributed here).
fn scikit_image_data() -> Option<PathBuf> {
    common::outside_data("target/skimage/skimage/data", "coins.png", "the scikit-image step of .ci/run", common::Provided::ByCi)
}

/// The precision side of the default detector's score threshold (`faces::yunet::MIN_SCORE`,
/// 0.6): the highest scores of false faces among these were motorcycle_left's 0.45 and the
/// Hubble deep field's 0.44 on 2026-12-04. The cat's face (`chelsea.png`, which face-api's SSD
/// takes for a person's) too: YuNet scores it 0.43 (the held-out set has a photo of dogs).
#[test]
fn default_detector_finds_no_face_where_there_is_none_and_the_one_where_there_is() {
    let Some(data) = scikit_image_data() else { return };
    for file in common::WITHOUT_PEOPLE.into_iter().chain(["chelsea.png"]) {
        let found = Detector::default().detect(&image::open(data.join(file)).unwrap()).unwrap();
        assert!(found.is_empty(), "{file}: no face in it, found {found:?}");
    }
    for file in ["astronaut.png", "camera.png"] {
        let found = Detector::default().detect(&image::open(data.join(file)).unwrap()).unwrap();
        assert_eq!(found.len(), 1, "{file}: one face in it, found {found:?}");
    }
}

/// face-api's six group photos in one 2000x1300 collage (22 faces of 35-75 px, some touching):
/// the annotated drawing puts no label or panel over another face or outside the picture, and every
/// face gets its panel (beside it, or in the legend). `target/annotated-collage.png` is left to look at.
#[test]
fn annotating_a_crowded_collage_covers_no_face_and_keeps_every_panel() {
    let Some(demo) = face_api_demo() else { return };
    let (w, h) = (2000, 1300);
    let mut collage = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (i, (file, _)) in FACE_API_BOXES.iter().enumerate() {
        let photo = image::open(demo.join(file)).unwrap().thumbnail(w / 3, h / 2).to_rgb8();
        image::imageops::replace(&mut collage, &photo, (i as u32 % 3 * (w / 3)) as i64, (i as u32 / 3 * (h / 2)) as i64);
    }
    let predictor = ferlite::predict::Predictor::load(None).unwrap();
    let photo = image::DynamicImage::ImageRgb8(collage);
    let faces = ferlite::analyze::analyze(&predictor, &photo, ferlite::analyze::FaceSearch::default(), ferlite::predict::Tta::None).unwrap();
    assert!(faces.len() >= 20, "{} faces", faces.len());
    let plan = ferlite::annotate::layout(w, h, &faces, false);
    assert_eq!(plan.problems(), Vec::<String>::new(), "{:#?}", plan.faces);
    assert!(plan.faces.iter().all(|f| f.panel.is_some()));
    let drawn = ferlite::annotate::annotate(photo.as_rgb8().unwrap(), &faces).unwrap();
    assert_eq!((drawn.width() as i32, drawn.height() as i32), (plan.width, plan.height));
    drawn.save(common::repo_root().join("target/annotated-collage.png")).unwrap();
}
