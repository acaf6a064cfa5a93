//! Fixtures shared by ferlite's tests: faces drawn here (never FER2013 images), CSVs and class
//! folders of them, untrained model files, and the repository's own files by path; seeded damage
//! for the mutation tests ([`mutation`]).

pub mod mutation;

use ferlite::data::FaceSet;
use ferlite::emotion::{EMOTIONS, FACE_SIZE};
use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A 48x48 "face" whose class is written in its pattern: an oval of mid-gray with a mouth bar
/// whose height and curvature depend on the class, plus noise. Learnable, not trivially constant.
pub fn synthetic_face(class: usize, rng: &mut impl Rng) -> Vec<u8> {
    let mut px = vec![0u8; FACE_SIZE * FACE_SIZE];
    let mouth_y = 30.0 + class as f32 * 1.5;
    let curve = (class as f32 - 3.0) * 0.1;
    for y in 0..FACE_SIZE {
        for x in 0..FACE_SIZE {
            let (fx, fy) = (x as f32 - 23.5, y as f32 - 23.5);
            let inside = (fx / 18.0).powi(2) + (fy / 22.0).powi(2) < 1.0;
            let mut v: f32 = if inside { 150.0 } else { 40.0 };
            let eye = ((fx.abs() - 8.0).powi(2) + (fy + 6.0).powi(2)).sqrt() < 3.0;
            if eye {
                v = 30.0;
            }
            let mouth_center = mouth_y + curve * fx * fx / 4.0;
            if fx.abs() < 12.0 && (y as f32 - mouth_center).abs() < 2.5 {
                v = class as f32 * 36.0;
            }
            v += rng.random_range(-20.0..20.0);
            px[y * FACE_SIZE + x] = v.clamp(0.0, 255.0) as u8;
        }
    }
    px
}

pub fn synthetic_set(per_class: usize, seed: u64) -> FaceSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut set = FaceSet::default();
    for i in 0..per_class * EMOTIONS.len() {
        let class = i % EMOTIONS.len();
        set.push(&synthetic_face(class, &mut rng), class as u8, format!("synthetic:{i}"));
    }
    set
}

/// A `fer2013.csv`-style file with `train_per_class` Training and `val_per_class` PublicTest rows per class.
pub fn write_csv(path: &Path, train_per_class: usize, val_per_class: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "emotion,pixels,Usage").unwrap();
    for (set, usage) in [(synthetic_set(train_per_class, 1), "Training"), (synthetic_set(val_per_class, 2), "PublicTest")] {
        for i in 0..set.len() {
            let pixels: Vec<String> = set.face(i).iter().map(|p| p.to_string()).collect();
            writeln!(f, "{},{},{usage}", set.labels[i], pixels.join(" ")).unwrap();
        }
    }
}

/// An image-folder tree `<root>/<split>/<class>/*.png`.
pub fn write_folders(root: &Path, split: &str, per_class: usize, seed: u64) {
    let set = synthetic_set(per_class, seed);
    for i in 0..set.len() {
        let dir = root.join(split).join(EMOTIONS[set.labels[i] as usize]);
        std::fs::create_dir_all(&dir).unwrap();
        GrayImage::from_raw(48, 48, set.face(i).to_vec()).unwrap().save(dir.join(format!("face{i}.png"))).unwrap();
    }
}

/// A 48x48 crop around grey level `shade` with a diagonal gradient: taken as a face crop by
/// `predict` (a single-grey image is blank, no face), for tests of plumbing, not of emotions.
pub fn plain_crop(shade: u8) -> GrayImage {
    GrayImage::from_fn(48, 48, |x, y| Luma([(shade as i32 + (x + y) as i32 / 2 - 24).clamp(0, 255) as u8]))
}

/// Weights of an untrained paper network: a valid model file for tests of plumbing, not accuracy.
pub fn untrained_model(path: &Path) {
    ferlite::model::Network::new(ferlite::model::NetworkConfig::paper(), 1).save(path).unwrap();
}

/// The repository's root (where `assets/`, `models/` and `target/` are), from any crate, as a
/// path without `..` (Chromium's fake camera, for one, refuses a file named through `..`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Whether CI installs what a skipping test lacks: then `.ci/run` fails on the skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provided {
    ByCi,
    /// FER2013 beside the checkout: present on the project's machines, not in every clone.
    NotByCi,
}

/// Says that a test skips `what`, and why, where the run's normal output shows it (straight to
/// stderr: the test harness captures only the print macros), and appends it to the file named by
/// `FERLITE_SKIP_LOG`, which `.ci/run` reads after the tests.
pub fn skip(what: &str, why: &str, provided: Provided) {
    use std::io::Write;
    let line = format!("SKIPPED {what}: {why}{}", if provided == Provided::ByCi { " [CI provides it]" } else { "" });
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(log) = std::env::var_os("FERLITE_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// `path` (relative to the checkout) when it holds `marker`: data a test reads from outside the
/// repository. Otherwise says that the test skips and how to get the data ([`skip`]), and gives `None`.
pub fn outside_data(path: &str, marker: &str, how_to_get: &str, provided: Provided) -> Option<PathBuf> {
    let path = repo_root().join(path);
    if path.join(marker).exists() {
        Some(path)
    } else {
        skip(&format!("{} (not present)", path.display()), how_to_get, provided);
        None
    }
}

/// The public-domain demo photo (one face).
pub fn demo_photo_path() -> PathBuf {
    repo_root().join("assets/demo/astronaut.jpg")
}

/// scikit-image's pictures with nobody in them (`target/skimage/skimage/data`, made by
/// `.ci/run`). `chelsea.png`, a cat's face, is left out: face-api's SSD network takes it for a
/// face with score 0.93.
pub const WITHOUT_PEOPLE: [&str; 23] = [
    "brick.png", "cell.png", "chessboard_GRAY.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png", "coins.png",
    "color.png", "grass.png", "gravel.png", "horse.png", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "page.png", "phantom.png", "text.png", "hubble_deep_field.jpg",
    "retina.jpg", "rocket.jpg",
];

