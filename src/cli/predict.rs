use anyhow::Result;
use ferlite::data::folder::{is_image_file, load_face};
use ferlite::emotion::EMOTIONS;
use ferlite::predict::{Predictor, Tta};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// Face images (any size or colour; converted to 48x48 gray) or folders of them (recursive).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Tta::None)]
    tta: Tta,
    /// One JSON object per line: file, emotion, confidence, probabilities (or error).
    #[arg(long)]
    json: bool,
}

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(args.model.as_deref())?;
    let mut files = Vec::new();
    for input in &args.inputs {
        collect_images(input, &mut files);
    }
    let mut failures = 0;
    for file in files {
        match load_face(&file) {
            Ok(face) => {
                let p = &predictor.predict(&face, args.tta)[0];
                if args.json {
                    let probs: serde_json::Map<String, serde_json::Value> = EMOTIONS.iter().zip(p.probabilities).map(|(e, v)| (e.to_string(), json!(v))).collect();
                    println!("{}", json!({ "file": file.display().to_string(), "emotion": p.emotion, "confidence": p.confidence, "probabilities": probs }));
                } else {
                    let all: Vec<String> = EMOTIONS.iter().zip(p.probabilities).map(|(e, v)| format!("{e} {:.1}%", v * 100.0)).collect();
                    println!("{}: {} ({:.1}%)  [{}]", file.display(), p.emotion, p.confidence * 100.0, all.join(", "));
                }
            }
            Err(e) => {
                failures += 1;
                if args.json {
                    println!("{}", json!({ "file": file.display().to_string(), "error": e.to_string() }));
                }
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
