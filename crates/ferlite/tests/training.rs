//! Training end to end through the library: learning, checkpoints, exact resume.

use ferlite_testkit as common;

use ferlite::data::augment::AugmentConfig;
use ferlite::model::{Network, NetworkConfig};
use ferlite::data::FaceSet;
use ferlite::predict::{Predictor, Tta};
use ferlite::train::config::{Distillation, TrainConfig, WeightAveraging};
use ferlite::train::{read_metrics, Trainer, BEST_FILE, LAST_FILE};

fn small_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        // A narrow network keeps the test fast; the paper preset is pinned elsewhere.
        network: NetworkConfig { stem_channels: 8, stage_channels: vec![8, 16, 16], hidden_units: 32, ..NetworkConfig::paper() },
        epochs,
        batch_size: 16,
        lr: 0.05,
        // A few hundred steps: an average over ~2,000 would still be the first epoch's weights.
        weight_averaging: None,
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
    assert_resume_is_exact(small_config(2));
}

#[test]
fn resumed_distillation_run_matches_uninterrupted_run_exactly() {
    // The teacher's targets are recomputed at resume; they must come out the same.
    let teacher = tempfile::tempdir().unwrap();
    let teacher_path = teacher.path().join("teacher.safetensors");
    common::untrained_model(&teacher_path);
    let mut config = small_config(2);
    config.distillation = Some(Distillation { teacher: teacher_path.display().to_string(), weight: 0.5 });
    assert_resume_is_exact(config);
}

#[test]
fn resumed_run_with_weight_averaging_matches_uninterrupted_run_exactly() {
    // The average starts in the first epoch, so the checkpoint between the two must carry it.
    let mut config = small_config(2);
    config.weight_averaging = Some(WeightAveraging { decay: 0.9, start_epoch: 1 });
    assert_resume_is_exact(config);
}

#[test]
fn weight_averaging_saves_and_validates_the_average() {
    let (train, val) = (common::synthetic_set(6, 3), common::synthetic_set(2, 4));
    let mut config = small_config(3);
    config.weight_averaging = Some(WeightAveraging { decay: 0.9, start_epoch: 2 });
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Trainer::start(tmp.path(), config).unwrap();
    t.progress = false;
    t.run(&train, &val).unwrap();
    let average = t.averaged.as_ref().expect("the run keeps an average from epoch 2");
    let saved = Network::load(&tmp.path().join(LAST_FILE)).unwrap();
    assert!(saved.params == average.params && saved.buffers == average.buffers, "last.safetensors is not the average");
    assert!(average.params != t.network.params, "the average is the weights themselves");
    let metrics = read_metrics(&tmp.path().join("metrics.jsonl")).unwrap();
    let raw: Vec<bool> = metrics.iter().map(|m| m.raw_val_accuracy.is_some()).collect();
    assert_eq!(raw, [false, true, true], "the weights' own accuracy is logged from the averaging epochs on");
}

fn assert_resume_is_exact(config: TrainConfig) {
    let (train, val) = (common::synthetic_set(6, 3), common::synthetic_set(2, 4));
    let straight = tempfile::tempdir().unwrap();
    let mut a = Trainer::start(straight.path(), config.clone()).unwrap();
    a.progress = false;
    a.run(&train, &val).unwrap();

    let interrupted = tempfile::tempdir().unwrap();
    let mut b = Trainer::start(interrupted.path(), config.clone()).unwrap();
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
    assert_eq!(resumed.averaged, a.averaged);
    let (saved_a, saved_b) = (Network::load(&straight.path().join(LAST_FILE)).unwrap(), Network::load(&interrupted.path().join(LAST_FILE)).unwrap());
    assert!(saved_a.params == saved_b.params, "saved weights differ after resume");
    assert_eq!(read_metrics(&interrupted.path().join("metrics.jsonl")).unwrap().len(), 2);
}

#[test]
fn a_distilled_student_learns_what_its_teacher_says() {
    // The teacher learns labels shifted by one class; a student distilled from it with weight 1
    // sees the true labels but must learn the teacher's shifted answers, face by face.
    let (train, val) = (common::synthetic_set(30, 1), common::synthetic_set(10, 2));
    let shift = |set: &FaceSet| FaceSet { labels: set.labels.iter().map(|l| (l + 1) % 7).collect(), ..set.clone() };
    let mut config = small_config(10);
    config.augment = AugmentConfig::none();
    config.network.head_dropout = 0.0;
    let teacher_dir = tempfile::tempdir().unwrap();
    let mut teacher = Trainer::start(teacher_dir.path(), config.clone()).unwrap();
    teacher.progress = false;
    teacher.run(&shift(&train), &shift(&val)).unwrap();

    let student_dir = tempfile::tempdir().unwrap();
    config.seed = 7;
    config.distillation = Some(Distillation { teacher: teacher_dir.path().join(BEST_FILE).display().to_string(), weight: 1.0 });
    let mut student = Trainer::start(student_dir.path(), config).unwrap();
    student.progress = false;
    student.run(&train, &val).unwrap();

    let predicted = Predictor::new(student.network.clone()).predict(&val.pixels, Tta::None);
    let agree_with = |labels: &[u8]| predicted.iter().zip(labels).filter(|(p, &l)| p.class_index == l as usize).count() as f64 / val.len() as f64;
    let (teacher_answers, true_labels) = (agree_with(&shift(&val).labels), agree_with(&val.labels));
    assert!(teacher_answers > 0.5 && true_labels < 0.2, "agrees with the teacher's labels {teacher_answers:.2}, with the true ones {true_labels:.2}");
}

#[test]
fn a_missing_teacher_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = small_config(1);
    config.distillation = Some(Distillation { teacher: "no/such/teacher.safetensors".into(), weight: 0.5 });
    let mut t = Trainer::start(tmp.path(), config).unwrap();
    t.progress = false;
    let err = format!("{:#}", t.run(&common::synthetic_set(2, 1), &common::synthetic_set(1, 2)).unwrap_err());
    assert!(err.contains("no/such/teacher.safetensors") && err.contains("teacher"), "{err}");
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
    // A model's weights where the checkpoint should be: named for what they are.
    common::untrained_model(&tmp.path().join("checkpoint.safetensors"));
    let err = Trainer::resume(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("not a checkpoint but a model's weights") && err.contains("--init"), "{err}");
}

/// A run whose loss turns NaN stops at once with an error that says so, and saves nothing of that
/// epoch: the checkpoint of the epoch before is what `resume` finds.
#[test]
fn a_diverged_run_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = (common::synthetic_set(4, 5), common::synthetic_set(2, 6));
    let mut trainer = Trainer::start(tmp.path(), small_config(2)).unwrap();
    trainer.progress = false;
    trainer.state.config.epochs = 1;
    trainer.run(&train, &val).unwrap();
    // Epoch 2 from weights ruined as an lr far too high would leave them.
    trainer.state.config.epochs = 2;
    trainer.network.params.iter_mut().for_each(|p| *p = f32::NAN);
    let err = format!("{:#}", trainer.run(&train, &val).unwrap_err());
    assert!(err.contains("epoch 2, step 1") && err.contains("diverged") && err.contains("checkpoint after epoch 1 is intact"), "{err}");
    assert_eq!(read_metrics(&tmp.path().join("metrics.jsonl")).unwrap().len(), 1);
    let resumed = Trainer::resume(tmp.path()).unwrap();
    assert_eq!(resumed.state.epochs_done, 1);
    assert!(resumed.network.params.iter().all(|p| p.is_finite()));
}

/// Settings that cannot train (NaN, negative, a probability over 1) are refused before the run
/// folder is made.
#[test]
fn start_refuses_settings_that_cannot_train() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nan_lr = small_config(1);
    nan_lr.lr = f32::NAN;
    let mut erase = small_config(1);
    erase.augment.erase_prob = 1.5;
    let mut smoothing = small_config(1);
    smoothing.label_smoothing = -0.1;
    let mut momentum = small_config(1);
    momentum.optimizer.momentum = 1.0;
    for (config, named) in [(nan_lr, "lr NaN"), (erase, "augment.erase_prob 1.5"), (smoothing, "label_smoothing -0.1"), (momentum, "optimizer.momentum 1")] {
        let dir = tmp.path().join("run");
        let err = format!("{:#}", Trainer::start(&dir, config).err().expect(named));
        assert!(err.contains(named), "{err}");
        assert!(!dir.exists());
    }
}

/// The committed config of the embedded model's run is `ferlite train --data ../shared/data/fer2013`
/// with the defaults, as `models/fer2013/README.md` says, and passes the settings check.
#[test]
fn the_embedded_models_run_is_the_default_config() {
    let path = common::repo_root().join("models/fer2013/config.json");
    let config: TrainConfig = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.check().unwrap();
    assert_eq!(config, TrainConfig { train_data: Some("../shared/data/fer2013".into()), ..TrainConfig::default() });
}
