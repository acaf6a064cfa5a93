use super::DataArgs;
use anyhow::{bail, Context, Result};
use ferlite::data::augment::AugmentConfig;
use ferlite::data::{self, Split};
use ferlite::nn::conv::ConvAlgorithm;
use ferlite::nn::optim::OptimizerKind;
use ferlite::nn::schedule::ScheduleKind;
use ferlite::train::config::{ClassWeighting, Distillation, TrainConfig, WeightAveraging};
use ferlite::train::Trainer;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags override the config file (`--config`), which overrides the defaults.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// FER2013 as `fer2013.csv` or an image-folder root holding `train/` and `val/`.
    #[arg(long, required_unless_present_any = ["resume", "print_config"])]
    data: Option<PathBuf>,
    /// Validation data when it is not the `val` split of --data (a CSV or a class-folder tree).
    #[arg(long)]
    val_data: Option<PathBuf>,
    /// Run folder for checkpoints, weights and the metrics log.
    #[arg(long, default_value = "runs/paper", conflicts_with = "resume")]
    out: PathBuf,
    /// Continue the run in this folder from its last checkpoint (its config is reused).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// JSON file with a TrainConfig (see `ferlite train --print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective config as JSON and exit.
    #[arg(long)]
    print_config: bool,
    /// Epochs to train (default 150); with --resume, a new total to go on to.
    #[arg(long)]
    epochs: Option<usize>,
    /// Faces per optimiser step (default 64).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f32>,
    /// Optimiser (default adamw).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule (default cosine, with 2 warm-up epochs).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Weight decay (AdamW: decoupled, default 0.05; SGD: L2); biases and norms are not decayed.
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Label smoothing, 0 to under 1 (default 0.1): the target puts this much mass on the other classes.
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Class weights in the loss (default none).
    #[arg(long, value_enum)]
    class_weighting: Option<ClassWeighting>,
    /// Seeds initialisation, shuffling, augmentation and dropout.
    #[arg(long)]
    seed: Option<u64>,
    /// Use at most N training faces per class (quick runs).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Train on the faces as they are (no flips, warps or erasing).
    #[arg(long)]
    no_augment: bool,
    /// Start from this model's weights instead of a fresh initialisation (the run's own
    /// architecture settings must match it; dropout comes from this run's config).
    #[arg(long, value_name = "MODEL", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// How the 3x3 convolutions are computed: winograd-full (default: Winograd F(4x4,3x3) for the
    /// output and both gradients, with AVX2+FMA; ~1.3x faster steps than winograd), winograd (output
    /// and input gradient only; runs made before 2026-11-27) or im2col (the reference; runs made
    /// before the setting existed).
    #[arg(long, value_enum)]
    conv_algorithm: Option<ConvAlgorithm>,
    /// Knowledge distillation: also learn from this model's probabilities (any ferlite model file,
    /// e.g. a wider network trained first); see --distill-weight.
    #[arg(long, value_name = "MODEL", conflicts_with = "resume")]
    teacher: Option<PathBuf>,
    /// Share of the teacher's probabilities in each face's target (the rest is the smoothed label).
    #[arg(long, value_name = "W", default_value_t = 0.5, requires = "teacher")]
    distill_weight: f32,
    /// Validate and save a moving average of the weights, updated after every step with this
    /// decay (default 0.9995: about the last 2,000 steps); 0 turns the average off.
    #[arg(long, value_name = "DECAY")]
    ema: Option<f32>,
    /// The first epoch whose steps the moving average takes in (default 1).
    #[arg(long, value_name = "EPOCH")]
    ema_from: Option<usize>,
    #[command(flatten)]
    data_args: DataArgs,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read config", p.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{}: not a valid training config", p.display()))?
            }
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($field:ident).+ = $value:expr) => {
                if let Some(v) = $value {
                    c.$($field).+ = v;
                }
            };
        }
        set!(epochs = self.epochs);
        set!(batch_size = self.batch_size);
        set!(lr = self.lr);
        set!(optimizer.kind = self.optimizer);
        set!(schedule.kind = self.schedule);
        set!(optimizer.weight_decay = self.weight_decay);
        set!(label_smoothing = self.label_smoothing);
        set!(class_weighting = self.class_weighting);
        set!(seed = self.seed);
        set!(conv_algorithm = self.conv_algorithm);
        if self.limit.is_some() {
            c.limit_per_class = self.limit;
        }
        if self.no_augment {
            c.augment = AugmentConfig::none();
        }
        if let Some(d) = &self.data {
            c.train_data = Some(d.display().to_string());
        }
        if let Some(m) = &self.init {
            c.init_weights = Some(m.display().to_string());
        }
        if let Some(v) = &self.val_data {
            c.val_data = Some(v.display().to_string());
        }
        if let Some(t) = &self.teacher {
            c.distillation = Some(Distillation { teacher: t.display().to_string(), weight: self.distill_weight });
        }
        match self.ema {
            Some(0.0) => c.weight_averaging = None,
            Some(decay) => c.weight_averaging = Some(WeightAveraging { decay, start_epoch: 1 }),
            None => {}
        }
        if let Some(epoch) = self.ema_from {
            let averaging = c.weight_averaging.as_mut().context("--ema-from needs a moving average (--ema 0 turns it off)")?;
            averaging.start_epoch = epoch;
        }
        // Before --print-config shows it (Trainer::start checks again, for library callers).
        c.check().map_err(|problem| anyhow::anyhow!("training config: {problem}"))?;
        Ok(c)
    }
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    ferlite::train::retain_freed_memory();
    let mut trainer = match &args.resume {
        Some(dir) => {
            let mut t = Trainer::resume(dir)?;
            // A resumed run may be given more epochs; everything else comes from the checkpoint.
            if let Some(e) = args.epochs {
                t.state.config.epochs = e;
            }
            t
        }
        None => {
            let config = args.config()?;
            if args.print_config {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(ExitCode::SUCCESS);
            }
            Trainer::start(&args.out, config)?
        }
    };
    trainer.progress = std::io::stderr().is_terminal();
    let config = &trainer.state.config;
    let train_path = args.data.clone().or(config.train_data.as_ref().map(PathBuf::from)).context("no --data given and the run records none")?;
    let val_path = args.val_data.clone().or(config.val_data.as_ref().map(PathBuf::from));
    let bad = args.data_args.bad_input();

    if val_path.is_none() && train_path.is_dir() && data::folder::holds_class_folders(&train_path) {
        bail!("{}: holds class folders, not train/ and val/ splits; pass the validation faces with --val-data", train_path.display());
    }
    let train = load(&train_path, Some(Split::Train), bad)?;
    let val = match &val_path {
        Some(p) => load(p, Some(Split::Val), bad)?,
        None => load(&train_path, Some(Split::Val), bad).context("no validation split found beside the training data; pass --val-data")?,
    };
    trainer.run(&train, &val)?;
    let s = &trainer.state;
    println!(
        "done: {} epochs; best val accuracy {:.2}% at epoch {}; weights in {}",
        s.epochs_done,
        s.best_val_accuracy * 100.0,
        s.best_epoch.map_or("-".into(), |e| e.to_string()),
        trainer.dir.join(ferlite::train::BEST_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path, split: Option<Split>, bad: data::BadInput) -> Result<data::FaceSet> {
    let set = data::load(path, split, bad)?;
    let counts = set.class_counts();
    tracing::info!("{}: {} faces {:?}{}", path.display(), set.len(), counts, if set.skipped > 0 { format!(", {} bad skipped", set.skipped) } else { String::new() });
    Ok(set)
}
