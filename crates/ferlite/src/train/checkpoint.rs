//! The resumable state of a run, written atomically after every epoch to `checkpoint.safetensors`:
//! the model, the optimiser's moment buffers, the moving average of the weights when the run keeps
//! one, and (as JSON metadata) the config, the epoch reached,
//! the schedule's state and the best validation accuracy so far. Randomness needs no state here:
//! every draw is seeded from (seed, epoch, step) (see `rng`).

use super::averaging::AveragedWeights;
use super::config::TrainConfig;
use crate::model::Network;
use crate::nn::optim::Optimizer;
use crate::nn::schedule::ScheduleState;
use crate::weights::TensorFile;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const STATE_KEY: &str = "ferlite.train_state";
const AVERAGE_PARAMS: &str = "average.params.";
const AVERAGE_BUFFERS: &str = "average.buffers.";
const HAS_AVERAGE_KEY: &str = "ferlite.averaged_weights";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    pub config: TrainConfig,
    /// Epochs completed (the next epoch to run has this index).
    pub epochs_done: usize,
    pub steps_done: usize,
    pub schedule: ScheduleState,
    pub best_val_accuracy: f64,
    pub best_epoch: Option<usize>,
}

pub struct Checkpoint {
    pub network: Network,
    pub optimizer: Optimizer,
    /// The moving average of the weights, once the run has started one.
    pub averaged: Option<AveragedWeights>,
    pub state: TrainState,
}

impl Checkpoint {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut file = self.network.to_tensor_file();
        let layout = &self.network.param_layout;
        file.push_layout("optimizer.first.", layout, &self.optimizer.first);
        if !self.optimizer.second.is_empty() {
            file.push_layout("optimizer.second.", layout, &self.optimizer.second);
        }
        if let Some(average) = &self.averaged {
            file.push_layout(AVERAGE_PARAMS, layout, &average.params);
            file.push_layout(AVERAGE_BUFFERS, &self.network.buffer_layout, &average.buffers);
            file.metadata.insert(HAS_AVERAGE_KEY.into(), "true".into());
        }
        file.metadata.insert(STATE_KEY.into(), serde_json::to_string(&self.state)?);
        file.metadata.insert("ferlite.optimizer_steps".into(), self.optimizer.steps.to_string());
        file.write_atomic(&dir.join(CHECKPOINT_FILE))
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        if !path.exists() {
            bail!("{}: no checkpoint to resume from (has `ferlite train --out {}` completed an epoch?)", path.display(), dir.display());
        }
        let file = TensorFile::read(&path)?;
        let ctx = || format!("{}: not a usable checkpoint", path.display());
        let network = Network::from_tensor_file(&file).with_context(ctx)?;
        let Some(state) = file.metadata.get(STATE_KEY) else {
            bail!(
                "{}: not a checkpoint but a model's weights (it has no training state: epoch, optimiser moments, schedule); \
                 resume from the run folder's {CHECKPOINT_FILE} as `ferlite train` wrote it, or start a run on these weights with --init",
                path.display()
            );
        };
        let state: TrainState = serde_json::from_str(state).with_context(ctx)?;
        let mut optimizer = Optimizer::new(state.config.optimizer.clone(), network.param_layout.decay_mask());
        optimizer.steps = file.metadata.get("ferlite.optimizer_steps").and_then(|s| s.parse().ok()).unwrap_or(0);
        file.read_layout("optimizer.first.", &network.param_layout, &mut optimizer.first).with_context(ctx)?;
        if !optimizer.second.is_empty() {
            file.read_layout("optimizer.second.", &network.param_layout, &mut optimizer.second).with_context(ctx)?;
        }
        let averaged = match file.metadata.contains_key(HAS_AVERAGE_KEY) {
            true => {
                let mut average = AveragedWeights::of(&network);
                file.read_layout(AVERAGE_PARAMS, &network.param_layout, &mut average.params).with_context(ctx)?;
                file.read_layout(AVERAGE_BUFFERS, &network.buffer_layout, &mut average.buffers).with_context(ctx)?;
                Some(average)
            }
            false => None,
        };
        Ok(Checkpoint { network, optimizer, averaged, state })
    }
}
