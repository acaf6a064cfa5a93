use super::DataArgs;
use anyhow::Result;
use ferlite::data::{self, Split};
use ferlite::emotion::NUM_CLASSES;
use ferlite::eval::metrics::argmax_rows;
use ferlite::int8::{self, CALIBRATION_FACES};
use ferlite::nn::Precision;
use std::path::PathBuf;
use std::process::ExitCode;

/// Measure a model's activations on training faces and store their ranges in the model file, so
/// that it runs with `--precision int8`.
#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// The weights file to calibrate (rewritten in place unless --out is given).
    model: PathBuf,
    /// Labelled faces to measure on (a FER2013 folder or CSV): the training split unless --split
    /// says otherwise. Never the split you will evaluate on.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    data_args: DataArgs,
    /// How many faces, spread evenly over the split.
    #[arg(long, default_value_t = CALIBRATION_FACES)]
    faces: usize,
    /// Write the calibrated model here instead of over MODEL.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: CalibrateArgs) -> Result<ExitCode> {
    let set = data::load(&args.data, Some(args.data_args.split().unwrap_or(Split::Train)), args.data_args.bad_input())?;
    anyhow::ensure!(!set.is_empty(), "{}: no faces to calibrate on", args.data.display());
    let faces = int8::sample_faces(&set, args.faces);
    let net = int8::calibrate_file(&args.model, &faces, args.out.as_deref())?;
    let out = args.out.as_ref().unwrap_or(&args.model).display();
    let count = faces.batch();
    if Precision::Int8.check().is_ok() {
        // How far int8 moves this model's labels, on the same faces.
        let fast = net.fold();
        let int8 = fast.clone().with_precision(Precision::Int8)?;
        let (f32_labels, int8_labels) = (argmax_rows(&fast.forward(&faces).data, NUM_CLASSES), argmax_rows(&int8.forward(&faces).data, NUM_CLASSES));
        let same = f32_labels.iter().zip(&int8_labels).filter(|(a, b)| a == b).count();
        println!("{out}: int8 ranges from {count} faces; int8 gives f32's label on {same} of them ({:.2}%)", 100.0 * same as f64 / count as f64);
    } else {
        println!("{out}: int8 ranges from {count} faces (this CPU cannot run int8 to compare)");
    }
    Ok(ExitCode::SUCCESS)
}
