//! `ferlite train`: the training loop. One epoch = shuffled, augmented mini-batches with SGD or
//! AdamW, then a validation pass; after each epoch the run folder gets:
//!
//! - `checkpoint.safetensors`: everything to resume (see [`checkpoint`]), written atomically;
//! - `best.safetensors`: the weights with the best validation accuracy so far;
//! - `last.safetensors`: the latest weights (with weight averaging, in both files, their moving
//!   average, see [`averaging`]);
//! - `metrics.jsonl`: one JSON row per epoch (losses, accuracies, lr, seconds, img/s);
//! - `config.json`: the run's [`TrainConfig`].
//!
//! When the last epoch is done, `best` and `last` get their int8 activation ranges
//! ([`crate::int8::calibrate_file`]) from training faces.
//!
//! A killed run loses at most the epoch in progress: `--resume` reloads the checkpoint, and since
//! every random draw is seeded by (seed, epoch, step), continues exactly as if never stopped.

pub mod averaging;
pub mod checkpoint;
pub mod config;

use crate::data::loader::{epoch_order, for_each_batch, Augmentation};
use crate::data::FaceSet;
use crate::emotion::NUM_CLASSES;
use crate::eval::Evaluation;
use crate::model::Network;
use crate::nn::loss::{cross_entropy, LossOutput, SoftTargets};
use crate::nn::optim::Optimizer;
use crate::nn::Tensor;
use crate::predict::{Predictor, Tta};
use crate::rng::{derive_seed, rng_for, site};
use anyhow::{Context, Result};
use rand::Rng;
use averaging::AveragedWeights;
use checkpoint::{Checkpoint, TrainState};
use config::{Distillation, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const BEST_FILE: &str = "best.safetensors";
pub const LAST_FILE: &str = "last.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// One row of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    /// With weight averaging: the validation accuracy of the weights themselves (the `val_*`
    /// fields are the average's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_val_accuracy: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    pub seconds: f64,
    pub train_images_per_second: f64,
}

/// A training run bound to its folder.
pub struct Trainer {
    pub dir: PathBuf,
    pub network: Network,
    pub optimizer: Optimizer,
    /// The moving average of the weights (from the config's `weight_averaging.start_epoch` on).
    pub averaged: Option<AveragedWeights>,
    pub state: TrainState,
    /// Show a progress bar (when the terminal is interactive).
    pub progress: bool,
}

impl Trainer {
    /// A new run in `dir` (created; an existing checkpoint there is refused, use `resume`).
    pub fn start(dir: &Path, config: TrainConfig) -> Result<Self> {
        if dir.join(checkpoint::CHECKPOINT_FILE).exists() {
            anyhow::bail!("{}: a run already exists here; continue it with `ferlite train --resume {0}` or choose another --out", dir.display());
        }
        config.check().map_err(|problem| anyhow::anyhow!("training config: {problem}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create run folder", dir.display()))?;
        std::fs::write(dir.join(CONFIG_FILE), serde_json::to_string_pretty(&config)?)?;
        let mut network = match &config.init_weights {
            Some(path) => Network::warm_start(Path::new(path), config.network.clone())?,
            None => Network::new(config.network.clone(), derive_seed(&[config.seed, site::INIT])),
        };
        network.set_conv_algorithm(config.conv_algorithm);
        let optimizer = Optimizer::new(config.optimizer.clone(), network.param_layout.decay_mask());
        let state = TrainState { config, epochs_done: 0, steps_done: 0, schedule: Default::default(), best_val_accuracy: f64::NEG_INFINITY, best_epoch: None };
        // Start a fresh metrics log.
        std::fs::write(dir.join(METRICS_FILE), "")?;
        Ok(Trainer { dir: dir.to_path_buf(), network, optimizer, averaged: None, state, progress: true })
    }

    /// Continues the run in `dir` from its last checkpoint.
    pub fn resume(dir: &Path) -> Result<Self> {
        let Checkpoint { mut network, optimizer, averaged, state } = Checkpoint::load(dir)?;
        state.config.check().map_err(|problem| anyhow::anyhow!("{}: training config: {problem}", dir.display()))?;
        network.set_conv_algorithm(state.config.conv_algorithm);
        truncate_metrics(&dir.join(METRICS_FILE), state.epochs_done)?;
        tracing::info!("resuming {} after epoch {} of {}", dir.display(), state.epochs_done, state.config.epochs);
        Ok(Trainer { dir: dir.to_path_buf(), network, optimizer, averaged, state, progress: true })
    }

    /// Trains until `config.epochs`, checkpointing after each epoch.
    pub fn run(&mut self, train: &FaceSet, val: &FaceSet) -> Result<()> {
        let config = self.state.config.clone();
        let limited;
        let train = match config.limit_per_class {
            Some(n) => {
                limited = train.limit_per_class(n);
                &limited
            }
            None => train,
        };
        let class_weights = config.class_weights(&train.class_counts());
        let teacher = config.distillation.as_ref().map(|d| teacher_probabilities(d, train)).transpose()?;
        tracing::info!(
            "training on {} faces, validating on {}; {} parameters; epochs {}..{}",
            train.len(),
            val.len(),
            self.network.num_params(),
            self.state.epochs_done + 1,
            config.epochs
        );
        while self.state.epochs_done < config.epochs {
            let metrics = self.train_epoch(train, val, class_weights.as_deref(), teacher.as_deref())?;
            tracing::info!(
                "epoch {}/{}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% macro-F1 {:.3}{} | lr {:.5} | {:.0}s, {:.1} img/s",
                metrics.epoch,
                config.epochs,
                metrics.train_loss,
                metrics.train_accuracy * 100.0,
                metrics.val_loss,
                metrics.val_accuracy * 100.0,
                metrics.val_macro_f1,
                metrics.raw_val_accuracy.map_or(String::new(), |raw| format!(" (averaged; the weights themselves {:.2}%)", raw * 100.0)),
                metrics.lr,
                metrics.seconds,
                metrics.train_images_per_second
            );
        }
        // The finished run's weights, ready for `--precision int8` (a run stopped early:
        // `ferlite calibrate`).
        let faces = crate::int8::sample_faces(train, crate::int8::CALIBRATION_FACES);
        for file in [BEST_FILE, LAST_FILE] {
            let path = self.dir.join(file);
            if path.exists() {
                crate::int8::calibrate_file(&path, &faces, None)?;
            }
        }
        Ok(())
    }

    /// One epoch; `teacher` holds the teacher's probabilities for every training face when distilling.
    fn train_epoch(&mut self, train: &FaceSet, val: &FaceSet, class_weights: Option<&[f32]>, teacher: Option<&[f32]>) -> Result<EpochMetrics> {
        let config = self.state.config.clone();
        let epoch = self.state.epochs_done;
        let steps_per_epoch = train.len().div_ceil(config.batch_size);
        let total_steps = steps_per_epoch * config.epochs;
        let order = epoch_order(train.len(), config.seed, epoch);
        let augmentation = Augmentation { config: &config.augment, seed: config.seed, epoch };
        let bar = self.progress_bar(train.len() as u64, epoch + 1, config.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut grads = vec![0.0f32; self.network.num_params()];
        let mut lr = 0.0;
        let mut step_in_epoch = 0usize;
        let mut diverged = None;
        let averaging = config.weight_averaging.as_ref().filter(|w| epoch + 1 >= w.start_epoch);
        if averaging.is_some() && self.averaged.is_none() {
            self.averaged = Some(AveragedWeights::of(&self.network));
        }

        for_each_batch(train, &order, config.batch_size, Some(augmentation), |batch| {
            let step = self.state.steps_done;
            lr = config.schedule.lr_at(config.lr, step, total_steps, steps_per_epoch, &self.state.schedule);
            let mut dropout_rng = rng_for(&[config.seed, epoch as u64, step_in_epoch as u64, site::DROPOUT]);
            let batch_teacher: Option<Vec<f32>> = teacher.map(|t| batch.indices.iter().flat_map(|&i| &t[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]).copied().collect());
            let soft = batch_teacher.as_deref().zip(config.distillation.as_ref()).map(|(probs, d)| SoftTargets { probs, weight: d.weight });
            let out = train_step(&mut self.network, &mut self.optimizer, &mut grads, batch.input, &batch.labels, config.label_smoothing, class_weights, soft, lr, &mut dropout_rng);
            if !out.loss.is_finite() {
                diverged = Some((step_in_epoch + 1, out.loss));
                return false;
            }
            if let (Some(average), Some(w)) = (&mut self.averaged, averaging) {
                average.update(&self.network, w.decay);
            }

            let n = batch.labels.len();
            let predicted = crate::eval::metrics::argmax_rows(&out.probs, NUM_CLASSES);
            correct += predicted.iter().zip(&batch.labels).filter(|(p, l)| p == l).count();
            loss_sum += out.loss as f64 * n as f64;
            seen += n;
            self.state.steps_done += 1;
            step_in_epoch += 1;
            bar.inc(n as u64);
            bar.set_message(format!("loss {:.4} acc {:.1}% {:.0} img/s", loss_sum / seen as f64, 100.0 * correct as f64 / seen as f64, seen as f64 / started.elapsed().as_secs_f64()));
            true
        });
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if let Some((step, loss)) = diverged {
            // The weights are ruined; nothing of this epoch is saved, the last checkpoint stands.
            anyhow::bail!(
                "epoch {}, step {step}: the training loss is {loss}: the run diverged (learning rate {lr:e}; try a lower --lr). Nothing of this epoch was saved{}",
                epoch + 1,
                if epoch > 0 { format!("; the checkpoint after epoch {epoch} is intact") } else { String::new() }
            );
        }

        let model = match &self.averaged {
            Some(average) => average.apply_to(&self.network),
            None => self.network.clone(),
        };
        let raw_val_accuracy = self.averaged.is_some().then(|| Evaluation::run(&Predictor::new(self.network.clone()), val, Tta::None).accuracy);
        let validation = Evaluation::run(&Predictor::new(model.clone()), val, Tta::None);
        config.schedule.end_epoch(validation.accuracy as f32, &mut self.state.schedule);
        self.state.epochs_done += 1;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: validation.loss,
            val_accuracy: validation.accuracy,
            val_macro_f1: validation.macro_f1,
            raw_val_accuracy,
            lr,
            seconds: started.elapsed().as_secs_f64(),
            train_images_per_second: seen as f64 / train_seconds,
        };
        self.save_epoch(&model, &metrics)?;
        Ok(metrics)
    }

    /// Best and last weights (`model`: the network or its average), then the log row, then the
    /// checkpoint: if killed in between, the checkpoint is the truth, `resume` drops log rows past
    /// it and the epoch runs again (to the same bits), so no epoch's row is ever lost.
    fn save_epoch(&mut self, model: &Network, metrics: &EpochMetrics) -> Result<()> {
        if metrics.val_accuracy > self.state.best_val_accuracy {
            self.state.best_val_accuracy = metrics.val_accuracy;
            self.state.best_epoch = Some(metrics.epoch);
            model.save_with_val_accuracy(&self.dir.join(BEST_FILE), Some(metrics.val_accuracy))?;
        }
        model.save_with_val_accuracy(&self.dir.join(LAST_FILE), Some(metrics.val_accuracy))?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(METRICS_FILE))?;
        writeln!(log, "{}", serde_json::to_string(metrics)?)?;
        log.sync_all()?;
        Checkpoint { network: self.network.clone(), optimizer: self.optimizer.clone(), averaged: self.averaged.clone(), state: self.state.clone() }.save(&self.dir)?;
        Ok(())
    }

    fn progress_bar(&self, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar
    }
}

/// The teacher's probabilities for each face of `train` (`[n, 7]`), with flip TTA.
/// Recomputed at every start and resume; deterministic, so a resumed run gets the same targets.
fn teacher_probabilities(d: &Distillation, train: &FaceSet) -> Result<Vec<f32>> {
    let teacher = Predictor::load(Some(Path::new(&d.teacher))).with_context(|| format!("{}: cannot load the distillation teacher", d.teacher))?;
    let started = Instant::now();
    let probs = teacher.probabilities(&train.pixels, Tta::Flip);
    let agree = crate::eval::metrics::argmax_rows(&probs, NUM_CLASSES).iter().zip(&train.labels).filter(|(p, &l)| **p == l as usize).count();
    tracing::info!(
        "distillation teacher {} ({} parameters): agrees with {:.2}% of the training labels; {:.0}s",
        d.teacher,
        teacher.network.num_params(),
        100.0 * agree as f64 / train.len().max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(probs)
}

/// Lets the allocator keep the memory a training step frees for the next step, instead of giving
/// it back to the system and taking it again as fresh zeroed pages (glibc maps allocations over
/// 128 KB-32 MB on their own and returns them on free; a step's activations are up to 19 MB each
/// at batch 64). Measured: 130-152 → 158-181 img/s at batch 64 on 2 threads (docs/performance.md,
/// 2026-11-27). Process-wide and for training processes: the memory stays with the process until
/// it exits. A no-op off glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// One optimisation step on a batch: training-mode forward pass (dropout from `rng`), loss,
/// backward pass into `grads` (cleared first), optimiser update at `lr`. Returns the loss output
/// (its `grad` consumed: empty). The step `train` runs and `ferlite bench` and the criterion benches time.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    network: &mut Network,
    optimizer: &mut Optimizer,
    grads: &mut [f32],
    input: Tensor,
    labels: &[usize],
    label_smoothing: f32,
    class_weights: Option<&[f32]>,
    soft: Option<SoftTargets>,
    lr: f32,
    rng: &mut impl Rng,
) -> LossOutput {
    let (logits, tape) = network.forward_train(input, rng);
    let mut out = cross_entropy(&logits.data, labels, NUM_CLASSES, label_smoothing, class_weights, soft);
    grads.fill(0.0);
    network.backward(&tape, Tensor::from_vec(logits.shape, std::mem::take(&mut out.grad)), grads);
    optimizer.step(&mut network.params, grads, lr);
    out
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    text.lines().filter(|l| !l.trim().is_empty()).enumerate().map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: bad row", path.display(), i + 1))).collect()
}

/// Keeps the rows of the first `epochs` epochs (rows written after the last checkpoint are dropped).
fn truncate_metrics(path: &Path, epochs: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let rows: Vec<EpochMetrics> = read_metrics(path)?.into_iter().filter(|m| m.epoch <= epochs).collect();
    let text: String = rows.iter().map(|r| serde_json::to_string(r).expect("serialisable") + "\n").collect();
    crate::weights::write_atomic(path, text.as_bytes())
}
