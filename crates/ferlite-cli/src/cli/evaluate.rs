use super::DataArgs;
use anyhow::Result;
use ferlite::data;
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
    /// Test-time augmentation: average the predictions over flipped or shifted views.
    #[arg(long, value_enum, default_value_t = Tta::default())]
    tta: Tta,
    #[command(flatten)]
    data_args: DataArgs,
}

pub fn run(args: EvaluateArgs) -> Result<ExitCode> {
    let predictor = args.model.load()?;
    let split = args.data_args.split();
    let set = data::load(&args.data, split, args.data_args.bad_input())?;
    if split.is_none() && args.data.is_file() {
        tracing::warn!("{}: no --usage given, evaluating every row of the CSV", args.data.display());
    }
    let evaluation = Evaluation::run(&predictor, &set, args.tta);
    let context = json!({
        "data": args.data.display().to_string(),
        "split": split.map(|s| s.usage()),
        "model": args.model.model.as_ref().map_or("embedded".to_string(), |m| m.display().to_string()),
        "precision": predictor.precision(),
        "tta": args.tta,
        "skipped_bad_inputs": set.skipped,
        "ferlite_version": env!("CARGO_PKG_VERSION"),
    });
    let title = args.data.file_name().map_or("data".into(), |n| n.to_string_lossy().to_string());
    evaluation.write(&args.out, context, &title)?;
    print!("{}", evaluation.table());
    println!("wrote {}/report.json, confusion_matrix.png, roc_curves.png, calibration.png", args.out.display());
    Ok(ExitCode::SUCCESS)
}
