//! Everything that determines a training run; saved as `config.json` in the run folder and inside
//! every checkpoint, so a model always says how it was trained.

use crate::data::augment::AugmentConfig;
use crate::model::NetworkConfig;
use crate::nn::conv::ConvAlgorithm;
use crate::nn::optim::{OptimizerConfig, OptimizerKind};
use crate::nn::schedule::ScheduleConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// Every face counts the same.
    None,
    /// Each class weighted by 1/sqrt(frequency), normalised to mean 1: helps rare classes (disgust)
    /// without the instability of full inverse-frequency weights.
    InverseSqrt,
}

/// Knowledge distillation: each face's target becomes `(1 - weight)` of its (smoothed) label plus
/// `weight` of a teacher model's probabilities for it. The teacher (any ferlite model file, e.g. a
/// wider network) is run once per run start on the unaugmented training faces, with flip TTA,
/// and those probabilities serve every augmented view of the face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distillation {
    /// The teacher's weights file.
    pub teacher: String,
    /// Share of the teacher's probabilities in each target, in (0, 1].
    pub weight: f32,
}

/// Weight averaging: the run keeps an exponential moving average of the weights (parameters and
/// batch-norm statistics), `average = decay * average + (1 - decay) * weights` after every step
/// from `start_epoch` on; validation, `best` and `last` use the average. It smooths out the noise
/// of the last steps, which noisy labels like FER2013's make large.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightAveraging {
    /// Per-step decay in (0, 1): 0.9998 averages over about 5,000 steps (11 epochs at batch 64).
    pub decay: f32,
    /// The first epoch (1-based) whose steps are averaged; the average starts as that epoch's weights.
    pub start_epoch: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub network: NetworkConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f32,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub label_smoothing: f32,
    pub class_weighting: ClassWeighting,
    pub augment: AugmentConfig,
    /// Seeds initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Use at most this many training faces per class (quick runs).
    pub limit_per_class: Option<usize>,
    /// Where the training faces came from (CSV or folder) and which split; recorded for `--resume`.
    pub train_data: Option<String>,
    /// Where the validation faces came from, when not the same source as training.
    pub val_data: Option<String>,
    /// Start from these weights (a ferlite model file) instead of a fresh initialisation: a
    /// second run that continues an earlier one with a new schedule or regularisation.
    pub init_weights: Option<String>,
    /// Learn also from a teacher model's probabilities (knowledge distillation), see [`Distillation`].
    pub distillation: Option<Distillation>,
    /// Validate and save a moving average of the weights, see [`WeightAveraging`]. A config
    /// without this field (written before it existed) means none, so earlier runs resume as they were.
    #[serde(default)]
    pub weight_averaging: Option<WeightAveraging>,
    /// How the 3x3 convolutions are computed. A config without this field (written before it
    /// existed) means `im2col`, so earlier runs resume and reproduce as they were trained.
    #[serde(default)]
    pub conv_algorithm: ConvAlgorithm,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            network: NetworkConfig::paper(),
            // The embedded model's run (docs/experiments.md, run long150): with 150 epochs and the
            // weights' average, 70.58% on val without TTA (epoch 118); 80 epochs without it, 69.02%.
            epochs: 150,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerConfig { kind: OptimizerKind::Adamw, weight_decay: 0.05, ..OptimizerConfig::default() },
            schedule: ScheduleConfig::default(),
            label_smoothing: 0.1,
            class_weighting: ClassWeighting::None,
            augment: AugmentConfig::default(),
            seed: 42,
            limit_per_class: None,
            train_data: None,
            val_data: None,
            init_weights: None,
            conv_algorithm: ConvAlgorithm::WinogradFull,
            distillation: None,
            weight_averaging: Some(WeightAveraging { decay: 0.9995, start_epoch: 1 }),
        }
    }
}

impl TrainConfig {
    /// Why this config cannot train a network, if it cannot (a NaN or negative learning rate, a
    /// probability above 1, ...). Configs come from files and flags; `Trainer` checks before it
    /// starts or resumes a run.
    pub fn check(&self) -> Result<(), String> {
        self.network.check().map_err(|problem| format!("network: {problem}"))?;
        if self.epochs == 0 || self.batch_size == 0 {
            return Err("epochs and batch_size must be at least 1".into());
        }
        self.augment.check()?;
        let (o, s) = (&self.optimizer, &self.schedule);
        // Each check is written so that NaN fails it.
        let over_zero = [
            ("lr", self.lr, 10.0),
            ("optimizer.eps", o.eps, 1.0),
            ("schedule.plateau_factor", s.plateau_factor, 1.0),
            ("distillation.weight", self.distillation.as_ref().map_or(1.0, |d| d.weight), 1.0),
        ];
        for (name, value, max) in over_zero {
            if !(value > 0.0 && value <= max) {
                return Err(format!("{name} {value} is outside (0, {max}]"));
            }
        }
        let from_zero = [
            ("optimizer.weight_decay", o.weight_decay, 1.0),
            ("schedule.warmup_epochs", s.warmup_epochs, 1000.0),
            ("schedule.min_lr_ratio", s.min_lr_ratio, 1.0),
            ("label_smoothing", self.label_smoothing, 1.0),
        ];
        for (name, value, max) in from_zero {
            if !(0.0..=max).contains(&value) {
                return Err(format!("{name} {value} is outside [0, {max}]"));
            }
        }
        // A momentum, beta or decay of 1 never forgets (and Adam's bias correction divides by zero).
        let decay = self.weight_averaging.as_ref().map_or(0.5, |w| w.decay);
        for (name, value) in [("optimizer.momentum", o.momentum), ("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2), ("weight_averaging.decay", decay)] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("{name} {value} is outside [0, 1)"));
            }
        }
        Ok(())
    }

    /// Per-class loss weights for these class counts (`None` when unweighted).
    pub fn class_weights(&self, counts: &[usize]) -> Option<Vec<f32>> {
        match self.class_weighting {
            ClassWeighting::None => None,
            ClassWeighting::InverseSqrt => {
                let raw: Vec<f32> = counts.iter().map(|&c| 1.0 / (c.max(1) as f32).sqrt()).collect();
                let mean = raw.iter().sum::<f32>() / raw.len() as f32;
                Some(raw.iter().map(|w| w / mean).collect())
            }
        }
    }
}
