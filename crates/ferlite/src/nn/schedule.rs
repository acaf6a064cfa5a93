//! Learning-rate schedules: cosine with warm-up, one-cycle, reduce-on-plateau, constant.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Linear warm-up, then cosine decay to `min_lr_ratio * lr` at the last epoch (per step).
    Cosine,
    /// One-cycle: rise from lr/25 to lr over the first 30% of steps, then cosine down to lr/1e4.
    OneCycle,
    /// Keep lr until validation accuracy stops improving for `patience` epochs, then multiply by `factor`.
    Plateau,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    pub warmup_epochs: f32,
    pub min_lr_ratio: f32,
    pub plateau_factor: f32,
    pub plateau_patience: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig { kind: ScheduleKind::Cosine, warmup_epochs: 2.0, min_lr_ratio: 1e-3, plateau_factor: 0.5, plateau_patience: 5 }
    }
}

/// The part of a schedule that depends on history (reduce-on-plateau); saved in checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub scale: f32,
    pub best: f32,
    pub bad_epochs: usize,
}

impl Default for ScheduleState {
    fn default() -> Self {
        ScheduleState { scale: 1.0, best: f32::NEG_INFINITY, bad_epochs: 0 }
    }
}

impl ScheduleConfig {
    /// Learning rate at `step` of `total_steps` (steps counted from the start of training).
    pub fn lr_at(&self, base_lr: f32, step: usize, total_steps: usize, steps_per_epoch: usize, state: &ScheduleState) -> f32 {
        let t = step as f32;
        let total = total_steps.max(1) as f32;
        let cosine = |from: f32, to: f32, frac: f32| to + 0.5 * (from - to) * (1.0 + (std::f32::consts::PI * frac.clamp(0.0, 1.0)).cos());
        match self.kind {
            ScheduleKind::Constant => base_lr,
            ScheduleKind::Plateau => base_lr * state.scale,
            ScheduleKind::Cosine => {
                let warmup = self.warmup_epochs * steps_per_epoch as f32;
                if t < warmup {
                    base_lr * (t + 1.0) / warmup
                } else {
                    cosine(base_lr, base_lr * self.min_lr_ratio, (t - warmup) / (total - warmup).max(1.0))
                }
            }
            ScheduleKind::OneCycle => {
                let peak = 0.3 * total;
                if t < peak {
                    cosine(base_lr, base_lr / 25.0, 1.0 - t / peak)
                } else {
                    cosine(base_lr, base_lr / 25.0 / 1e4, (t - peak) / (total - peak))
                }
            }
        }
    }

    /// Called once per epoch with the validation accuracy.
    pub fn end_epoch(&self, val_accuracy: f32, state: &mut ScheduleState) {
        if val_accuracy > state.best {
            state.best = val_accuracy;
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
            if self.kind == ScheduleKind::Plateau && state.bad_epochs > self.plateau_patience {
                state.scale *= self.plateau_factor;
                state.bad_epochs = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_floor() {
        let s = ScheduleConfig { warmup_epochs: 1.0, ..Default::default() };
        let st = ScheduleState::default();
        assert!((s.lr_at(0.1, 9, 100, 10, &st) - 0.1).abs() < 1e-6);
        assert!(s.lr_at(0.1, 50, 100, 10, &st) < 0.1);
        assert!((s.lr_at(0.1, 100, 100, 10, &st) - 1e-4).abs() < 1e-6);
    }

    #[test]
    fn plateau_halves_after_patience_runs_out() {
        let s = ScheduleConfig { kind: ScheduleKind::Plateau, plateau_patience: 1, ..Default::default() };
        let mut st = ScheduleState::default();
        for acc in [0.5, 0.4, 0.4] {
            s.end_epoch(acc, &mut st);
        }
        assert_eq!(st.scale, 0.5);
    }
}
