use anyhow::Result;
use ferlite::annotate::annotate_to_file;
use ferlite::data::folder::{face_pixels, is_image_file, open_image};
use ferlite::emotion::EMOTIONS;
use ferlite::faces::{crop_face, FaceBox, FaceDetector, CROP_MARGIN};
use ferlite::predict::{Prediction, Predictor, Tta};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How to find faces in an input image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaceMode {
    /// Images up to 96 px on both sides are taken as one face crop; larger ones go through the detector.
    Auto,
    /// Always run the face detector.
    Detect,
    /// The whole image is one face (already cropped, like FER2013).
    Whole,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// Images (any size, colour, format; EXIF orientation respected) or folders of them (recursive).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Tta::None)]
    tta: Tta,
    #[arg(long, value_enum, default_value_t = FaceMode::Auto)]
    faces: FaceMode,
    /// One JSON object per image and line: file, faces (box, emotion, confidence, probabilities) or error.
    #[arg(long)]
    json: bool,
    /// Write each photo with boxes, labels and probability bars drawn on it: to this file for a
    /// single input, or into this folder (as `<name>.annotated.png`) for several.
    #[arg(long, value_name = "PATH")]
    annotate: Option<PathBuf>,
}

/// Largest side of an image taken as a face crop in `auto` mode.
const CROP_MAX_SIDE: u32 = 96;

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(args.model.as_deref())?;
    let mut detector = None;
    let mut files = Vec::new();
    for input in &args.inputs {
        collect_images(input, &mut files);
    }
    let mut failures = 0;
    let single = files.len() == 1;
    for file in files {
        let photo = match open_image(&file) {
            Ok(img) => img,
            Err(e) => {
                failures += 1;
                if args.json {
                    println!("{}", json!({ "file": file.display().to_string(), "error": e.to_string() }));
                }
                eprintln!("error: {e}");
                continue;
            }
        };
        let whole = match args.faces {
            FaceMode::Whole => true,
            FaceMode::Detect => false,
            FaceMode::Auto => photo.width() <= CROP_MAX_SIDE && photo.height() <= CROP_MAX_SIDE,
        };
        let (boxes, crops): (Vec<FaceBox>, Vec<u8>) = if whole {
            (vec![FaceBox { x: 0, y: 0, width: photo.width(), height: photo.height(), score: None }], face_pixels(&photo))
        } else {
            let gray = photo.to_luma8();
            let detector = match &mut detector {
                Some(d) => d,
                None => detector.insert(FaceDetector::new()?),
            };
            let boxes = detector.detect(&gray);
            let crops = boxes.iter().flat_map(|b| crop_face(&gray, b, CROP_MARGIN)).collect();
            (boxes, crops)
        };
        let predictions = predictor.predict(&crops, args.tta);
        report(&file, &boxes, &predictions, args.json);
        if let Some(target) = &args.annotate {
            let out = if single { target.clone() } else { target.join(format!("{}.annotated.png", file.file_stem().unwrap_or_default().to_string_lossy())) };
            if !single {
                std::fs::create_dir_all(target)?;
            }
            let faces: Vec<_> = boxes.into_iter().zip(predictions).collect();
            annotate_to_file(&photo.to_rgb8(), &faces, &out)?;
        }
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report(file: &Path, boxes: &[FaceBox], predictions: &[Prediction], json: bool) {
    if json {
        let faces: Vec<serde_json::Value> = boxes
            .iter()
            .zip(predictions)
            .map(|(b, p)| {
                let probs: serde_json::Map<String, serde_json::Value> = EMOTIONS.iter().zip(p.probabilities).map(|(e, v)| (e.to_string(), json!(v))).collect();
                json!({ "box": b, "emotion": p.emotion, "confidence": p.confidence, "probabilities": probs })
            })
            .collect();
        println!("{}", json!({ "file": file.display().to_string(), "faces": faces }));
        return;
    }
    if boxes.is_empty() {
        println!("{}: no face found", file.display());
    }
    for (i, (b, p)) in boxes.iter().zip(predictions).enumerate() {
        let all: Vec<String> = EMOTIONS.iter().zip(p.probabilities).map(|(e, v)| format!("{e} {:.1}%", v * 100.0)).collect();
        let place = if boxes.len() == 1 && b.score.is_none() { String::new() } else { format!(" face {} at {},{} {}x{}", i + 1, b.x, b.y, b.width, b.height) };
        println!("{}{place}: {} ({:.1}%)  [{}]", file.display(), p.emotion, p.confidence * 100.0, all.join(", "));
    }
}

/// A file as given (so a bad one gets its error), or a folder's image files, recursively.
fn collect_images(path: &Path, out: &mut Vec<PathBuf>) {
    if !path.is_dir() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        out.push(path.to_path_buf());
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_images(&p, out);
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
}
