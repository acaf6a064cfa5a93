use anyhow::{Context, Result};
use ferlite::export::to_onnx;
use ferlite::predict::Predictor;
use ferlite::weights::write_atomic;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).multiple(true).args(["onnx", "weights"])))]
#[command(after_help = "The ONNX model takes preprocessed faces: [batch, 1, 48, 48] float, Gaussian-blurred up to the \
model's input_blur_sigma (edges mirrored; a face already blurred gets only the rest: ferlite::data::blur::blur_to) \
and standardised per face (mean 0, std 1); it returns logits [batch, 7] in the order \
angry, disgust, fear, happy, sad, surprise, neutral. Batch norms are folded into the convolutions.

--weights writes a ferlite weights file, e.g. the embedded model with the input blur chosen on val:
  for s in 3.0 3.1 3.2 3.3; do ferlite evaluate data/val --input-blur $s --out eval/blur-$s; done
  ferlite export --weights tuned.safetensors --input-blur 3.2")]
pub struct ExportArgs {
    /// Write the network as an ONNX model.
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    /// Write the model as a ferlite weights file (for `--model`, or to embed).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Store this input blur (Gaussian σ in pixels applied to every face before the network)
    /// instead of the model's.
    #[arg(long, value_name = "SIGMA", value_parser = super::blur_sigma)]
    input_blur: Option<f32>,
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let mut predictor = Predictor::load(args.model.as_deref())?;
    // The accuracy `train` recorded was measured with the model's blur: another blur voids it.
    let blur_changed = args.input_blur.is_some_and(|sigma| sigma != predictor.network.config.input_blur_sigma);
    if let Some(sigma) = args.input_blur {
        predictor.network.config.input_blur_sigma = sigma;
    }
    if let Some(path) = &args.onnx {
        let bytes = to_onnx(&predictor.network);
        write_atomic(path, &bytes).with_context(|| format!("{}: cannot write the ONNX model", path.display()))?;
        println!("wrote {} ({:.1} MB, opset 13, input `face` [batch,1,48,48], output `logits` [batch,7])", path.display(), bytes.len() as f64 / 1e6);
    }
    if let Some(path) = &args.weights {
        let val_accuracy = if blur_changed { None } else { predictor.val_accuracy };
        predictor.network.save_with_val_accuracy(path, val_accuracy).with_context(|| format!("{}: cannot write the weights file", path.display()))?;
        println!("wrote {} (input blur σ {} px)", path.display(), predictor.network.config.input_blur_sigma);
    }
    Ok(ExitCode::SUCCESS)
}
