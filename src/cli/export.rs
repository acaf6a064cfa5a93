use anyhow::{Context, Result};
use ferlite::export::to_onnx;
use ferlite::predict::Predictor;
use ferlite::weights::write_atomic;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "The ONNX model takes preprocessed faces: [batch, 1, 48, 48] float, Gaussian-blurred with the \
model's input_blur_sigma and standardised per face (mean 0, std 1); it returns logits [batch, 7] in the order \
angry, disgust, fear, happy, sad, surprise, neutral. Batch norms are folded into the convolutions.")]
pub struct ExportArgs {
    /// Where to write the ONNX model.
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(args.model.as_deref())?;
    let bytes = to_onnx(&predictor.network);
    write_atomic(&args.onnx, &bytes).with_context(|| format!("{}: cannot write the ONNX model", args.onnx.display()))?;
    println!("wrote {} ({:.1} MB, opset 13, input `face` [batch,1,48,48], output `logits` [batch,7])", args.onnx.display(), bytes.len() as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}
