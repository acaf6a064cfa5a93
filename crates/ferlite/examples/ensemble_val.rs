//! Accuracy of model files alone and averaged (their flip-TTA probabilities summed in order) on
//! FER2013's `val/` or `train/`: is an ensemble of our own models a stronger distillation teacher,
//! and how closely does a teacher agree with the training labels (docs/experiments.md, 2026-12-08).
//!
//! cargo run --release --example ensemble_val -- ../shared/data/fer2013 val|train MODEL.safetensors...

use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::EMOTIONS;
use ferlite::eval::metrics::argmax_rows;
use ferlite::predict::{Predictor, Tta};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() >= 3, "usage: ensemble_val DATA val|train MODEL...");
    let split = if args[1] == "train" { Split::Train } else { Split::Val };
    let set = load(Path::new(&args[0]), Some(split), BadInput::Abort)?;
    let classes = EMOTIONS.len();
    let accuracy = |probs: &[f32]| {
        let right = argmax_rows(probs, classes).iter().zip(&set.labels).filter(|(k, &label)| **k == label as usize).count();
        100.0 * right as f64 / set.len() as f64
    };
    let mut sum = vec![0f32; set.len() * classes];
    for (k, model) in args[2..].iter().enumerate() {
        let probs = Predictor::load(Some(Path::new(model)))?.probabilities(&set.pixels, Tta::Flip);
        sum.iter_mut().zip(&probs).for_each(|(s, p)| *s += p);
        println!("{model}: {:.2}%; the first {} averaged: {:.2}%", accuracy(&probs), k + 1, accuracy(&sum));
    }
    Ok(())
}
