use anyhow::{Context, Result};
use ferlite::export::to_onnx;
use ferlite::predict::Predictor;
use ferlite::weights::write_atomic;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).multiple(true).args(["onnx", "weights"])))]
#[command(after_help = "The ONNX model takes preprocessed faces: [batch, 1, 48, 48] float, standardised per face \
(mean 0, std 1); it returns logits [batch, 7] in the order angry, disgust, fear, happy, sad, surprise, neutral. \
Batch norms are folded into the convolutions.

--weights writes a ferlite weights file with only the network (no optimiser state), e.g. a run's best
epoch to embed: ferlite export --model runs/paper/best.safetensors --weights models/fer2013/model.safetensors")]
pub struct ExportArgs {
    /// Write the network as an ONNX model.
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    /// Write the model as a ferlite weights file (for `--model`, or to embed).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(args.model.as_deref())?;
    if let Some(path) = &args.onnx {
        let bytes = to_onnx(&predictor.network);
        write_atomic(path, &bytes).with_context(|| format!("{}: cannot write the ONNX model", path.display()))?;
        println!("wrote {} ({:.1} MB, opset 13, input `face` [batch,1,48,48], output `logits` [batch,7])", path.display(), bytes.len() as f64 / 1e6);
    }
    if let Some(path) = &args.weights {
        predictor.network.save_with_val_accuracy(path, predictor.val_accuracy).with_context(|| format!("{}: cannot write the weights file", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
