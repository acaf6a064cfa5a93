//! Face-detector recall on FER2013 faces: each face of a split is pasted (at 3x, 144 px) into a
//! grid photo on mid-gray, and a face counts as found when a detection's centre lies within a
//! fifth of the face side of where it was pasted. Prints recall overall and per class, where the
//! detector's boxes sit relative to the FER2013 framing (what `faces::crop_face` must undo), and,
//! given a model, how often the label from the photo equals the label of the original 48x48 face
//! and how often each is right (flip TTA, `predict`'s default).
//!
//! cargo run --release --example detection_recall -- ../shared/data/fer2013 [val|train] [model.safetensors|-] [yunet|accurate|ssd|seeta|mmod][:bf16][@MIN_SCORE] [DUMP_DIR]
//!
//! `:bf16` runs the SSD detector (and the model) with `--precision bf16`'s products.
//!
//! With DUMP_DIR, each grid photo is also written there as raw RGB (`grid_NNNN_WxH.rgb`) with a
//! `placed.jsonl` of where each face went, for running other detectors (face-api) on the same photos.

use ferlite::data::{load, BadInput, Split};
use ferlite::analyze::classify_detected;
use ferlite::emotion::EMOTIONS;
use ferlite::faces::{crop_face, Detector, FaceBox};
use ferlite::nn::Precision;
use ferlite::predict::{Predictor, Tta};

mod common;
use common::{box_at, paste_grid, PER_ROW, SIDE};

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let split = match std::env::args().nth(2).as_deref() {
        Some("train") => Split::Train,
        _ => Split::Val,
    };
    // DETECTOR[:bf16][@MIN_SCORE], e.g. yunet@0.8
    let detector_arg = std::env::args().nth(4).unwrap_or_default();
    let (detector_arg, min_score) = match detector_arg.split_once('@') {
        Some((name, score)) => (name.to_string(), Some(score.parse::<f32>()?)),
        None => (detector_arg, None),
    };
    let (detector_name, precision) = match detector_arg.strip_suffix(":bf16") {
        Some(name) => (name, Precision::Bf16),
        None => (detector_arg.as_str(), Precision::F32),
    };
    let detector = <Detector as clap::ValueEnum>::from_str(detector_name, true).unwrap_or_default();
    let predictor = std::env::args().nth(3).filter(|m| m != "-").map(|m| Predictor::load(Some(std::path::Path::new(&m)))?.with_precision(precision)).transpose()?;
    let dump = std::env::args().nth(5).map(std::path::PathBuf::from);
    let mut placed_log = match &dump {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Some(std::fs::File::create(dir.join("placed.jsonl"))?)
        }
        None => None,
    };
    // Label agreement with the 48x48 original: through the detector's box, and through the exact
    // place the face was pasted (what resampling alone costs).
    let (mut agree, mut agree_exact, mut compared) = (0usize, 0usize, 0usize);
    // How often each of the three is the true label.
    let (mut right_original, mut right_photo, mut right_exact) = (0usize, 0usize, 0usize);
    // Sums of box side / face side and box centre offset / face side (x, y), and of their squares.
    let (mut geometry, mut geometry_sq) = ([0f64; 3], [0f64; 3]);
    let set = load(std::path::Path::new(&root), Some(split), BadInput::Abort)?;
    let (mut found, mut total) = ([0usize; 7], [0usize; 7]);
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks((PER_ROW * PER_ROW) as usize) {
        let (photo, placed) = paste_grid(&set, chunk);
        if let (Some(dir), Some(log)) = (&dump, placed_log.as_mut()) {
            use std::io::Write;
            let name = format!("grid_{:04}_{}x{}.rgb", chunk[0] / (PER_ROW * PER_ROW) as usize, photo.width(), photo.height());
            std::fs::write(dir.join(&name), image::DynamicImage::ImageLuma8(photo.clone()).to_rgb8().as_raw())?;
            let faces: Vec<_> = placed.iter().map(|&(i, cx, cy)| serde_json::json!({"source": set.sources[i], "label": set.labels[i], "cx": cx, "cy": cy, "side": SIDE})).collect();
            writeln!(log, "{}", serde_json::json!({"file": name, "width": photo.width(), "height": photo.height(), "faces": faces}))?;
        }
        let dynamic = image::DynamicImage::ImageLuma8(photo.clone());
        let boxes = detector.detect_with(&dynamic, min_score, precision)?;
        for (i, cx, cy) in placed {
            let class = set.labels[i] as usize;
            total[class] += 1;
            let Some(b) = box_at(&boxes, cx, cy) else { continue };
            found[class] += 1;
            let measures = [b.width.max(b.height) as f64 / SIDE as f64, (b.x as f64 + b.width as f64 / 2.0 - cx as f64) / SIDE as f64, (b.y as f64 + b.height as f64 / 2.0 - cy as f64) / SIDE as f64];
            for k in 0..3 {
                geometry[k] += measures[k];
                geometry_sq[k] += measures[k] * measures[k];
            }
            if let Some(p) = &predictor {
                let original = p.predict(set.face(i), Tta::Flip)[0].class_index;
                let from_photo = classify_detected(p, &dynamic, std::slice::from_ref(b), Tta::Flip)[0].class_index;
                let exact = FaceBox { x: cx - SIDE / 2, y: cy - SIDE / 2, ..FaceBox::whole(SIDE, SIDE) };
                let from_exact = p.predict(&crop_face(&photo, &exact, 0.0), Tta::Flip)[0].class_index;
                compared += 1;
                agree += usize::from(from_photo == original);
                agree_exact += usize::from(from_exact == original);
                right_original += usize::from(original == class);
                right_photo += usize::from(from_photo == class);
                right_exact += usize::from(from_exact == class);
            }
        }
    }
    let all: usize = found.iter().sum();
    println!("{detector:?} detector: recall {:.1}% ({all} of {})", 100.0 * all as f64 / set.len() as f64, set.len());
    let n = all.max(1) as f64;
    let [side, dx, dy] = [0, 1, 2].map(|k| (geometry[k] / n, (geometry_sq[k] / n - (geometry[k] / n).powi(2)).max(0.0).sqrt()));
    println!("box side (longer) / FER face side {:.3} (sd {:.3}); box centre offset x {:+.3} (sd {:.3}), y {:+.3} (sd {:.3}) (of the face side)", side.0, side.1, dx.0, dx.1, dy.0, dy.1);
    if compared > 0 {
        let percent = |k: usize| 100.0 * k as f64 / compared as f64;
        println!("label from photo == label of the 48x48 original: {:.1}% ({agree} of {compared}); cropped at the exact paste place: {:.1}%", percent(agree), percent(agree_exact));
        println!("accuracy on these faces: 48x48 original {:.2}%, through the detector's box {:.2}%, at the exact paste place {:.2}%", percent(right_original), percent(right_photo), percent(right_exact));
    }
    for c in 0..7 {
        println!("  {:<9} {:.1}% ({} of {})", EMOTIONS[c], 100.0 * found[c] as f64 / total[c].max(1) as f64, found[c], total[c]);
    }
    Ok(())
}
