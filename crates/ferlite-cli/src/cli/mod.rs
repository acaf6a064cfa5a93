//! One module per subcommand: its arguments and how it calls the library.

pub mod bench;
pub mod calibrate;
pub mod evaluate;
pub mod export;
pub mod predict;
pub mod serve;
pub mod summary;
pub mod train;

use anyhow::Result;
use ferlite::data::{BadInput, Split};
use ferlite::nn::Precision;
use ferlite::predict::Predictor;
use std::path::PathBuf;

/// `--model` and `--precision`, shared by the commands that classify faces (predict, evaluate, serve).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Weights file (default: the model embedded in this binary).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number format of the networks' matrix products (the emotion network; `bf16` the SSD face
    /// detector too). `int8` needs a calibrated model (the
    /// embedded one is; others: `ferlite calibrate`) and AVX2; it is fast with AVX-512 VNNI (an
    /// Intel Xeon: about 2.5x f32's speed a face) or AVX-VNNI (1.5x), half f32's speed with AVX2
    /// alone; val/ accuracy within 0.15 points, 0.7% of labels changed. `bf16` needs AVX-512
    /// BF16: faster on AMD Zen 4+, slower than f32 on the Xeon, val/ within 0.3 points.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

impl ModelArgs {
    pub fn load(&self) -> Result<Predictor> {
        Predictor::load(self.model.as_deref())?.with_precision(self.precision)
    }
}

/// `--split` / `--usage`, shared by the commands that read labelled data.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// Which split to read: a CSV's Usage (train=Training, val=PublicTest, test=PrivateTest) or a
    /// folder's `train/`, `val/`, `test/`. Ignored for a folder that directly holds class folders.
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// The CSV `Usage` to read (Training, PublicTest, PrivateTest); same as --split.
    #[arg(long, value_parser = ["Training", "PublicTest", "PrivateTest"], conflicts_with = "split")]
    pub usage: Option<String>,
    /// Leave out bad CSV rows and unreadable images (each logged, then counted) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
}

impl DataArgs {
    pub fn split(&self) -> Option<Split> {
        self.split.or(match self.usage.as_deref() {
            Some("Training") => Some(Split::Train),
            Some("PublicTest") => Some(Split::Val),
            Some("PrivateTest") => Some(Split::Test),
            _ => None,
        })
    }

    pub fn bad_input(&self) -> BadInput {
        if self.skip_bad {
            BadInput::Skip
        } else {
            BadInput::Abort
        }
    }
}
