//! Training end to end through the library: learning, checkpoints, exact resume.

mod common;

use ferlite::data::augment::AugmentConfig;
use ferlite::model::{Network, NetworkConfig};
use ferlite::train::config::TrainConfig;
use ferlite::train::{read_metrics, Trainer, LAST_FILE};

fn small_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        // A narrow network keeps the test fast; the paper preset is pinned elsewhere.
        network: NetworkConfig { stem_channels: 8, stage_channels: vec![8, 16, 16], hidden_units: 32, ..NetworkConfig::paper() },
        epochs,
        batch_size: 16,
        lr: 0.05,
        ..TrainConfig::default()
    }
}

#[test]
fn training_learns_synthetic_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = (common::synthetic_set(30, 1), common::synthetic_set(10, 2));
    let mut config = small_config(10);
    config.augment = AugmentConfig::none();
    config.network.head_dropout = 0.0;
    let mut trainer = Trainer::start(tmp.path(), config).unwrap();
    trainer.progress = false;
    trainer.run(&train, &val).unwrap();
    let metrics = read_metrics(&tmp.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 10);
    assert!(metrics[9].train_loss < metrics[0].train_loss, "loss did not fall: {metrics:?}");
    // Chance is 1/7 = 14%.
    assert!(trainer.state.best_val_accuracy > 0.5, "val accuracy {:.3}", trainer.state.best_val_accuracy);
}

#[test]
fn resumed_run_matches_uninterrupted_run_exactly() {
    let (train, val) = (common::synthetic_set(6, 3), common::synthetic_set(2, 4));
    let straight = tempfile::tempdir().unwrap();
    let mut a = Trainer::start(straight.path(), small_config(2)).unwrap();
    a.progress = false;
    a.run(&train, &val).unwrap();

    let interrupted = tempfile::tempdir().unwrap();
    let mut b = Trainer::start(interrupted.path(), small_config(2)).unwrap();
    b.progress = false;
    b.state.config.epochs = 1; // stop after one epoch, as if killed during the second
    b.run(&train, &val).unwrap();
    drop(b);
    let mut resumed = Trainer::resume(interrupted.path()).unwrap();
    assert_eq!(resumed.state.epochs_done, 1);
    resumed.state.config.epochs = 2;
    resumed.progress = false;
    resumed.run(&train, &val).unwrap();

    assert_eq!(resumed.network.params, a.network.params, "parameters differ after resume");
    assert_eq!(resumed.network.buffers, a.network.buffers);
    assert_eq!(resumed.optimizer.first, a.optimizer.first);
    let (saved_a, saved_b) = (Network::load(&straight.path().join(LAST_FILE)).unwrap(), Network::load(&interrupted.path().join(LAST_FILE)).unwrap());
    assert!(saved_a.params == saved_b.params, "saved weights differ after resume");
    assert_eq!(read_metrics(&interrupted.path().join("metrics.jsonl")).unwrap().len(), 2);
}

#[test]
fn start_refuses_to_overwrite_an_existing_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Trainer::start(tmp.path(), small_config(1)).unwrap();
    t.progress = false;
    t.run(&common::synthetic_set(2, 1), &common::synthetic_set(1, 2)).unwrap();
    let err = Trainer::start(tmp.path(), small_config(1)).err().unwrap().to_string();
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn resume_without_checkpoint_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Trainer::resume(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("no checkpoint"), "{err}");
}
