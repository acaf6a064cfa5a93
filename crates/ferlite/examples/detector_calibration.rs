//! Fits the maps from SeetaFace's and MMOD's raw scores to a 0-1 face confidence
//! (`faces::seeta::CALIBRATION`, `faces::mmod::CALIBRATION`): logistic regression (Platt scaling)
//! of "this box is a face" on the raw score, over boxes found below the detectors' own thresholds
//! in photos whose faces are known: FER2013 faces pasted into grid photos (a box at a pasted face
//! is a face, any other box is not) and scikit-image's pictures without people, the cat's too
//! (every box is false). Prints the fit and a reliability table (per raw-score bin: boxes, share that are faces,
//! mean fitted confidence).
//!
//! cargo run --release --example detector_calibration -- ../shared/data/fer2013 [FACES] [SKIMAGE_DATA]
//!
//! FACES: how many val/ faces to paste (default 1080, 30 grid photos); SKIMAGE_DATA: the folder
//! of scikit-image's pictures (default `target/skimage/skimage/data`, made by `.ci/run`).

use ferlite::data::{load, BadInput, Split};
use ferlite::faces::{mmod::MmodDetector, seeta::SeetaDetector, FaceBox};
use image::DynamicImage;

mod common;
use common::{is_at, paste_grid, PER_ROW};

/// Lowest raw scores collected: well below each detector's threshold (SeetaFace 2.0, MMOD 0), so
/// that the fit sees the false boxes the thresholds keep out.
const SEETA_FLOOR: f64 = 0.5;
const MMOD_FLOOR: f32 = -1.0;

/// A detector under calibration: its raw-scored boxes in a photo.
type DetectFn = dyn FnMut(&DynamicImage) -> Vec<FaceBox>;

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let faces: usize = std::env::args().nth(2).map_or(Ok(1080), |n| n.parse())?;
    let skimage = std::path::PathBuf::from(std::env::args().nth(3).unwrap_or_else(|| "target/skimage/skimage/data".into()));
    let set = load(std::path::Path::new(&root), Some(Split::Val), BadInput::Abort)?;
    let mut seeta = SeetaDetector::with_min_raw_score(SEETA_FLOOR)?;
    let mmod = MmodDetector::new()?;
    let mut detectors: [(&str, Box<DetectFn>); 2] = [
        ("seeta", Box::new(move |photo| seeta.detect(&photo.to_luma8()))),
        ("mmod", Box::new(move |photo| mmod.detect(&photo.to_rgb8(), MMOD_FLOOR))),
    ];
    for (name, detect) in &mut detectors {
        // (raw score, is a face)
        let mut samples: Vec<(f64, bool)> = Vec::new();
        let indices: Vec<usize> = (0..faces.min(set.len())).collect();
        for chunk in indices.chunks((PER_ROW * PER_ROW) as usize) {
            let (photo, placed) = paste_grid(&set, chunk);
            for b in detect(&DynamicImage::ImageLuma8(photo)) {
                samples.push((b.score.expect("detectors score their boxes"), placed.iter().any(|&(_, cx, cy)| is_at(&b, cx, cy))));
            }
        }
        for file in ferlite_testkit::WITHOUT_PEOPLE.into_iter().chain(["chelsea.png"]) {
            let photo = image::open(skimage.join(file))?;
            samples.extend(detect(&photo).into_iter().map(|b| (b.score.expect("scored"), false)));
        }
        let [slope, offset] = fit_logistic(&samples);
        let positives = samples.iter().filter(|s| s.1).count();
        println!("{name}: {} boxes, {positives} faces; confidence = 1 / (1 + exp(-({slope:.4} * raw {offset:+.4})))", samples.len());
        reliability(&samples, |raw| 1.0 / (1.0 + (-(slope * raw + offset)).exp()));
    }
    Ok(())
}

/// Maximum-likelihood logistic regression of the label on the raw score (Newton's method, the
/// score standardised for conditioning), as `[slope, offset]` on the raw score.
fn fit_logistic(samples: &[(f64, bool)]) -> [f64; 2] {
    let n = samples.len() as f64;
    let mean = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let sd = (samples.iter().map(|s| (s.0 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-9);
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for _ in 0..50 {
        // Gradient and Hessian of the log-likelihood in (a, b) for z = (raw - mean) / sd, plus a
        // tiny ridge so that separable data stays finite.
        let (mut g, mut h) = ([0.0f64; 2], [[1e-6f64, 0.0], [0.0, 1e-6]]);
        for &(raw, face) in samples {
            let z = (raw - mean) / sd;
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let e = f64::from(u8::from(face)) - p;
            let w = p * (1.0 - p);
            g[0] += e * z;
            g[1] += e;
            h[0][0] += w * z * z;
            h[0][1] += w * z;
            h[1][1] += w;
        }
        g[0] -= 1e-6 * a;
        g[1] -= 1e-6 * b;
        let det = h[0][0] * h[1][1] - h[0][1] * h[0][1];
        let (da, db) = ((h[1][1] * g[0] - h[0][1] * g[1]) / det, (h[0][0] * g[1] - h[0][1] * g[0]) / det);
        a += da;
        b += db;
        if da.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    [a / sd, b - a * mean / sd]
}

/// Per bin of raw score (deciles of the boxes): count, share that are faces, mean confidence.
fn reliability(samples: &[(f64, bool)], confidence: impl Fn(f64) -> f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    println!("  {:>17}  {:>5}  {:>6}  {:>10}", "raw score", "boxes", "faces", "confidence");
    for bin in sorted.chunks(sorted.len().div_ceil(10).max(1)) {
        let faces = bin.iter().filter(|s| s.1).count() as f64 / bin.len() as f64;
        let mean = bin.iter().map(|s| confidence(s.0)).sum::<f64>() / bin.len() as f64;
        println!("  {:>7.2} .. {:>7.2}  {:>5}  {:>5.1}%  {:>9.1}%", bin[0].0, bin[bin.len() - 1].0, bin.len(), 100.0 * faces, 100.0 * mean);
    }
}
