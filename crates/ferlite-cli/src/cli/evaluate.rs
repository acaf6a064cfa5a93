use super::DataArgs;
use anyhow::Result;
use ferlite::data::{self, blur};
use ferlite::eval::Evaluation;
use ferlite::predict::Tta;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// Labelled faces: `fer2013.csv` (pick rows with --usage/--split), a folder of class folders,
    /// or a root holding `train/`, `val/`, `test/` (pick one with --split; default test).
    data: PathBuf,
    /// Folder for report.json, confusion_matrix.png, roc_curves.png and calibration.png.
    #[arg(long, default_value = "eval")]
    out: PathBuf,
    #[command(flatten)]
    model: super::ModelArgs,
    /// Test-time augmentation: average the predictions over flipped, shifted or re-blurred views.
    #[arg(long, value_enum, default_value_t = Tta::default())]
    tta: Tta,
    /// Override the model's input blur (Gaussian σ in pixels; 0 for none), e.g. to choose it on val.
    #[arg(long, value_name = "SIGMA", value_parser = super::blur_sigma)]
    input_blur: Option<f32>,
    #[command(flatten)]
    data_args: DataArgs,
}

pub fn run(args: EvaluateArgs) -> Result<ExitCode> {
    let mut predictor = args.model.load()?;
    if let Some(sigma) = args.input_blur {
        predictor.network.config.input_blur_sigma = sigma;
    }
    let split = args.data_args.split();
    let set = data::load(&args.data, split, args.data_args.bad_input())?;
    if split.is_none() && args.data.is_file() {
        tracing::warn!("{}: no --usage given, evaluating every row of the CSV", args.data.display());
    }
    let evaluation = Evaluation::run(&predictor, &set, args.tta);
    // Whether the faces were sharp like FER2013's test faces or soft like its training faces.
    let present_blur = blur::estimated_sigma_percentiles(&set.pixels);
    let context = json!({
        "data": args.data.display().to_string(),
        "split": split.map(|s| s.usage()),
        "model": args.model.model.as_ref().map_or("embedded".to_string(), |m| m.display().to_string()),
        "precision": predictor.precision(),
        "tta": args.tta,
        "input_blur_sigma": predictor.network.config.input_blur_sigma,
        "present_blur_sigma": {"p10": present_blur[0], "median": present_blur[1], "p90": present_blur[2]},
        "skipped_bad_inputs": set.skipped,
        "ferlite_version": env!("CARGO_PKG_VERSION"),
    });
    let title = args.data.file_name().map_or("data".into(), |n| n.to_string_lossy().to_string());
    evaluation.write(&args.out, context, &title)?;
    print!("{}", evaluation.table());
    let target = predictor.network.config.input_blur_sigma;
    println!(
        "the faces' own blur: median σ {:.2} (10-90%: {:.2}-{:.2}); each blurred up to σ {target}",
        present_blur[1], present_blur[0], present_blur[2]
    );
    if target > 0.0 && present_blur[1] > target + 0.5 {
        tracing::warn!("most faces are blurrier (median σ {:.2}) than the model's training faces (σ {target}): expect lower accuracy", present_blur[1]);
    }
    println!("wrote {}/report.json, confusion_matrix.png, roc_curves.png, calibration.png", args.out.display());
    Ok(ExitCode::SUCCESS)
}
