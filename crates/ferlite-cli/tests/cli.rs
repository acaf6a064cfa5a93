//! The `ferlite` binary end to end on generated data: train, evaluate, predict, summary, and a
//! clear one-line error (non-zero exit, no panic) for every kind of bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn ferlite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferlite")).args(args).env("RUST_LOG", "warn").output().expect("ferlite runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed cleanly: non-zero exit, an `error:` line naming `needles`, no panic.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line in: {err}"));
    for n in needles {
        assert!(line.contains(n), "error line `{line}` does not mention `{n}`");
    }
}

/// Limits that cannot work (a server that never takes a request, a timeout that overflows, more
/// threads than the machine can start) are refused by the flag, before anything starts.
#[test]
fn impossible_thread_counts_and_serve_limits_are_refused_by_name() {
    let refused = [
        (&["--threads", "0", "summary"][..], "--threads"),
        (&["--threads", "100000", "summary"], "--threads"),
        (&["serve", "--addr", "127.0.0.1:0", "--concurrency", "0"], "--concurrency"),
        (&["serve", "--addr", "127.0.0.1:0", "--timeout", "NaN"], "--timeout"),
        (&["serve", "--addr", "127.0.0.1:0", "--timeout", "1e300"], "--timeout"),
        (&["serve", "--addr", "127.0.0.1:0", "--timeout=-1"], "--timeout"),
        (&["serve", "--addr", "127.0.0.1:0", "--max-body-mib", "0"], "--max-body-mib"),
        (&["serve", "--addr", "127.0.0.1:0", "--max-megapixels", "NaN"], "--max-megapixels"),
        (&["serve", "--addr", "127.0.0.1:0", "--queue=-3"], "--queue"),
    ];
    for (args, flag) in refused {
        // A server that starts anyway is stopped after 10 s (and the test fails).
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        assert_clean_error(&child.wait_with_output().unwrap(), &[flag]);
    }
}

#[test]
fn min_face_score_leaves_out_the_ssd_faces_under_it() {
    let photo = common::demo_photo_path();
    let photo = photo.to_str().unwrap();
    // The SSD scores the demo face 0.97.
    let kept = ferlite(&["predict", photo, "--detector", "ssd", "--min-face-score", "0.9"]);
    assert!(kept.status.success() && String::from_utf8_lossy(&kept.stdout).contains("face 1 at"), "{}", stderr(&kept));
    let dropped = ferlite(&["predict", photo, "--detector", "ssd", "--min-face-score", "0.99"]);
    assert!(dropped.status.success() && String::from_utf8_lossy(&dropped.stdout).contains("no face found"), "{}", stderr(&dropped));
    for score in ["0", "1", "-0.5", "NaN", "high"] {
        assert_clean_error(&ferlite(&["predict", photo, &format!("--min-face-score={score}")]), &["--min-face-score"]);
    }
}

/// Trains one quick epoch of the paper network on a generated CSV; returns the weights path.
fn train_tiny(dir: &Path) -> std::path::PathBuf {
    let csv = dir.join("fer2013.csv");
    common::write_csv(&csv, 4, 2);
    let run = dir.join("run");
    let o = ferlite(&["train", "--data", csv.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "1", "--batch-size", "8"]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    assert!(stdout(&o).contains("done: 1 epochs"), "{}", stdout(&o));
    for f in ["checkpoint.safetensors", "best.safetensors", "last.safetensors", "metrics.jsonl", "config.json"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    run.join("best.safetensors")
}

/// What a CPU without AVX2 and FMA (or another architecture) runs: the portable kernels, forced
/// with `FERLITE_SIMD=off`, answer as the SIMD kernels do, on a photo and in a training epoch.
#[test]
fn portable_kernels_give_the_simd_kernels_answers() {
    let ferlite_simd = |simd: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(args).env("RUST_LOG", "warn").env("FERLITE_SIMD", simd).output().expect("ferlite runs");
        assert!(o.status.success(), "FERLITE_SIMD={simd} {args:?}: {}", stderr(&o));
        o
    };
    let photo = common::demo_photo_path();
    let face = |simd| {
        let json: serde_json::Value = serde_json::from_str(&stdout(&ferlite_simd(simd, &["predict", "--json", photo.to_str().unwrap()]))).unwrap();
        json["faces"][0].clone()
    };
    let (simd, portable) = (face("on"), face("off"));
    assert_eq!((&simd["box"], &simd["emotion"]), (&portable["box"], &portable["emotion"]));
    for (class, p) in simd["probabilities"].as_object().unwrap() {
        let q = portable["probabilities"][class].as_f64().unwrap();
        assert!((p.as_f64().unwrap() - q).abs() < 1e-4, "{class}: SIMD {p}, portable {q}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("fer2013.csv");
    common::write_csv(&csv, 4, 2);
    let epoch = |simd: &str| {
        let run = tmp.path().join(format!("run-{simd}"));
        ferlite_simd(simd, &["train", "--data", csv.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "1", "--batch-size", "8"]);
        let log: serde_json::Value = serde_json::from_str(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
        log["train_loss"].as_f64().unwrap()
    };
    let (simd, portable) = (epoch("on"), epoch("off"));
    assert!((simd - portable).abs() < 1e-4 * simd.abs(), "train loss: SIMD {simd}, portable {portable}");
}

/// `--precision bf16` (detector and classifier) gives the f32 answer to within its rounding where the CPU has AVX-512 BF16,
/// and a clean error naming the option where it does not (forced here with `FERLITE_SIMD=off`).
#[test]
fn bf16_precision_answers_near_f32_or_is_refused_by_name() {
    let photo = common::demo_photo_path();
    let refused = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(["predict", photo.to_str().unwrap(), "--precision", "bf16"]).env("FERLITE_SIMD", "off").output().unwrap();
    assert_clean_error(&refused, &["--precision bf16", "AVX-512 BF16"]);
    if !ferlite::nn::bf16::available() {
        eprintln!("skipped the bf16 answers: this CPU has no AVX-512 BF16");
        return;
    }
    let face = |precision| {
        let o = ferlite(&["predict", "--json", "--detector", "ssd", "--precision", precision, photo.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["faces"][0].clone()
    };
    let (f32, bf16) = (face("f32"), face("bf16"));
    // The SSD detector runs in bfloat16 too (YuNet stays f32): the same box, its score within 0.02.
    assert_eq!(f32["emotion"], bf16["emotion"]);
    for side in ["x", "y", "width", "height"] {
        assert!(f32["box"][side].as_i64().unwrap().abs_diff(bf16["box"][side].as_i64().unwrap()) <= 2, "{side}: f32 {f32}, bf16 {bf16}");
    }
    assert!((f32["box"]["score"].as_f64().unwrap() - bf16["box"]["score"].as_f64().unwrap()).abs() < 0.02, "f32 {f32}, bf16 {bf16}");
    assert_probabilities_near_f32(&f32, &bf16, "bf16");
}

/// `other`'s seven probabilities (a face of `--precision precision`) each within 0.05 of `f32`'s,
/// and not all equal to them (which would mean the other precision's kernels did not run).
fn assert_probabilities_near_f32(f32: &serde_json::Value, other: &serde_json::Value, precision: &str) {
    let mut moved = false;
    for (class, p) in f32["probabilities"].as_object().unwrap() {
        let (p, q) = (p.as_f64().unwrap(), other["probabilities"][class].as_f64().unwrap());
        assert!((p - q).abs() < 0.05, "{class}: f32 {p}, {precision} {q}");
        moved |= p != q;
    }
    assert!(moved, "{precision} gave f32's probabilities bit for bit: its kernels did not run");
}

/// `--precision int8` is refused by name without AVX2 (forced with `FERLITE_SIMD=off`) and for a
/// model without activation ranges (naming `ferlite calibrate`); `calibrate` adds them, and the
/// embedded model (calibrated) labels the demo photo's face as f32 does, probabilities within 0.05.
#[test]
fn int8_precision_needs_calibration_and_answers_near_f32() {
    let photo = common::demo_photo_path();
    let photo = photo.to_str().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(["predict", photo, "--precision", "int8"]).env("FERLITE_SIMD", "off").output().unwrap();
    assert_clean_error(&refused, &["--precision int8", "AVX2"]);
    if ferlite::nn::Precision::Int8.check().is_err() {
        eprintln!("skipped the int8 answers: this CPU has no AVX2");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (model, csv) = (tmp.path().join("raw.safetensors"), tmp.path().join("fer2013.csv"));
    common::untrained_model(&model);
    common::write_csv(&csv, 3, 1);
    let uncalibrated = ferlite(&["predict", photo, "--model", model.to_str().unwrap(), "--precision", "int8"]);
    assert_clean_error(&uncalibrated, &["int8 activation ranges", "ferlite calibrate"]);
    let o = ferlite(&["calibrate", model.to_str().unwrap(), "--data", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("int8 ranges from 21 faces"), "{}", stdout(&o));
    let o = ferlite(&["predict", photo, "--model", model.to_str().unwrap(), "--precision", "int8"]);
    assert!(o.status.success(), "calibrated model refused: {}", stderr(&o));

    let face = |precision| {
        let o = ferlite(&["predict", "--json", "--precision", precision, photo]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["faces"][0].clone()
    };
    let (f32, int8) = (face("f32"), face("int8"));
    assert_eq!(f32["emotion"], int8["emotion"]);
    assert_eq!(f32["box"], int8["box"], "the detector does not change with --precision int8");
    assert_probabilities_near_f32(&f32, &int8, "int8");
}

#[test]
fn summary_reports_552455_trainable_parameters() {
    let o = ferlite(&["summary"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("trainable parameters: 552,455"), "{}", stdout(&o));
}

#[test]
fn train_then_evaluate_writes_report_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let model = train_tiny(tmp.path());
    let out = tmp.path().join("eval");
    let csv = tmp.path().join("fer2013.csv");
    let o = ferlite(&["evaluate", csv.to_str().unwrap(), "--usage", "PublicTest", "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--tta", "flip"]);
    assert!(o.status.success(), "evaluate failed: {}", stderr(&o));
    assert!(stdout(&o).contains("accuracy"), "{}", stdout(&o));

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert_eq!(report["n_images"], 14);
    assert_eq!(report["per_class"].as_object().unwrap().len(), 7);
    let counts = report["confusion_matrix"]["counts"].as_array().unwrap();
    let total: u64 = counts.iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 14);
    assert!(report["auc"]["micro"].as_f64().is_some());
    // Calibration: every face in one confidence bin, the error between 0 and 1, printed too.
    let calibration = &report["calibration"];
    let faces: u64 = calibration["bins"].as_array().unwrap().iter().map(|b| b["faces"].as_u64().unwrap()).sum();
    assert_eq!((faces, calibration["bins"].as_array().unwrap().len()), (14, 10), "{calibration}");
    assert!((0.0..=1.0).contains(&calibration["ece"].as_f64().unwrap()), "{calibration}");
    assert!(stdout(&o).contains("calibration error (ECE)"), "{}", stdout(&o));
    for png in ["confusion_matrix.png", "roc_curves.png", "calibration.png"] {
        let img = image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(img.width() >= 800 && img.height() >= 700, "{png} is {}x{}", img.width(), img.height());
    }
}

#[test]
fn evaluates_an_image_folder_split_and_predicts_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let model = train_tiny(tmp.path());
    common::write_folders(tmp.path(), "test", 2, 9);
    let out = tmp.path().join("eval");
    let o = ferlite(&["evaluate", tmp.path().to_str().unwrap(), "--split", "test", "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("report.json").exists());

    let o = ferlite(&["predict", tmp.path().join("test").to_str().unwrap(), "--model", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 14);
    let probs = lines[0]["faces"][0]["probabilities"].as_object().unwrap();
    let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
}

#[test]
fn bench_inference_only_prints_the_inference_rows_and_no_training_row() {
    let o = ferlite(&["--threads", "1", "bench", "--inference-only", "--repeats", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // Batch 1 and 256 by the framework and the fast path, and the fast path in bfloat16 and in
    // int8 where the CPU has them.
    use ferlite::nn::Precision;
    let rows = 2 * (2 + [Precision::Bf16, Precision::Int8].iter().filter(|p| p.check().is_ok()).count());
    assert_eq!(out.lines().filter(|l| l.starts_with("infer")).count(), rows, "{out}");
    assert!(!out.lines().any(|l| l.starts_with("train")), "{out}");
}

#[test]
fn missing_data_file_is_a_clean_error() {
    let o = ferlite(&["evaluate", "/nonexistent/fer2013.csv", "--model", "/nonexistent/m.safetensors"]);
    assert_clean_error(&o, &["/nonexistent/m.safetensors"]);
    let tmp = tempfile::tempdir().unwrap();
    let o = ferlite(&["train", "--data", "/nonexistent/fer2013.csv", "--out", tmp.path().join("r").to_str().unwrap(), "--epochs", "1"]);
    assert_clean_error(&o, &["/nonexistent/fer2013.csv", "not found"]);
    let photo = common::demo_photo_path();
    assert_clean_error(&ferlite(&["evaluate", photo.to_str().unwrap()]), &["astronaut.jpg: an image, not a data set", "ferlite predict"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_clean_error(&ferlite(&["predict", empty.to_str().unwrap()]), &["empty: no images or videos in this folder"]);
}

#[test]
fn bad_csv_row_names_file_and_line_and_skip_bad_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("bad.csv");
    common::write_csv(&csv, 2, 1);
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("3,1 2 3,Training\n");
    std::fs::write(&csv, text).unwrap();
    let run = tmp.path().join("run");
    let o = ferlite(&["train", "--data", csv.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "1"]);
    assert_clean_error(&o, &["bad.csv:23:", "expected 2304 pixels"]);
    let o = ferlite(&["train", "--data", csv.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "1", "--skip-bad"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn corrupt_image_in_predict_is_reported_and_others_still_predicted() {
    let tmp = tempfile::tempdir().unwrap();
    let model = train_tiny(tmp.path());
    let good = tmp.path().join("good.png");
    common::plain_crop(120).save(&good).unwrap();
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff garbage").unwrap();
    let o = ferlite(&["predict", good.to_str().unwrap(), bad.to_str().unwrap(), "--model", model.to_str().unwrap()]);
    assert_clean_error(&o, &["broken.jpg", "cannot decode"]);
    assert!(stdout(&o).contains("good.png:"), "good image still predicted: {}", stdout(&o));
}

#[test]
fn missing_file_and_images_too_small_or_blank_for_a_face_in_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here.jpg");
    let o = ferlite(&["predict", missing.to_str().unwrap()]);
    assert_clean_error(&o, &["nothing-here.jpg: not found"]);
    assert!(!stderr(&o).contains("os error"), "the I/O error, once and plainly: {}", stderr(&o));
    let tiny = tmp.path().join("tiny.png");
    image::GrayImage::from_pixel(5, 5, image::Luma([90])).save(&tiny).unwrap();
    // Taken as given, a 5x5 image cannot be a face; left to ferlite, it holds none.
    assert_clean_error(&ferlite(&["predict", "--faces", "whole", tiny.to_str().unwrap()]), &["tiny.png", "5x5", "too small"]);
    // Nor does a blank face-sized image (it used to get a confident emotion), unless it is insisted on.
    let blank = tmp.path().join("blank.png");
    image::GrayImage::from_pixel(48, 48, image::Luma([90])).save(&blank).unwrap();
    let o = ferlite(&["predict", tiny.to_str().unwrap(), blank.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["tiny.png", "blank.png"] {
        assert!(stdout(&o).contains(&format!("{name}: no face found")), "{}", stdout(&o));
    }
    let o = ferlite(&["predict", "--faces", "whole", blank.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("blank.png: "), "{}", stderr(&o));
}

#[test]
fn empty_class_folder_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = train_tiny(tmp.path());
    common::write_folders(tmp.path(), "val", 1, 3);
    std::fs::remove_dir_all(tmp.path().join("val/disgust")).unwrap();
    std::fs::create_dir(tmp.path().join("val/disgust")).unwrap();
    let o = ferlite(&["evaluate", tmp.path().join("val").to_str().unwrap(), "--model", model.to_str().unwrap(), "--out", tmp.path().join("e").to_str().unwrap()]);
    assert_clean_error(&o, &["disgust", "no images"]);
}

#[test]
fn a_file_that_is_not_a_model_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("model.safetensors");
    std::fs::write(&fake, b"not weights").unwrap();
    let face = tmp.path().join("f.png");
    common::plain_crop(1).save(&face).unwrap();
    let o = ferlite(&["predict", face.to_str().unwrap(), "--model", fake.to_str().unwrap()]);
    assert_clean_error(&o, &["model.safetensors"]);
}

/// A weights file is read from its header first: a header asking for an impossible network (here
/// 10^12 stem channels, which would need petabytes) is refused before anything is allocated.
#[test]
fn a_model_whose_header_asks_for_an_impossible_network_is_a_clean_error() {
    use ferlite::model::{Network, NetworkConfig};
    let tmp = tempfile::tempdir().unwrap();
    let face = tmp.path().join("f.png");
    common::plain_crop(1).save(&face).unwrap();
    let paper = NetworkConfig::paper();
    for (config, named) in [
        (NetworkConfig { stem_channels: 1_000_000_000_000, ..paper.clone() }, "stem_channels"),
        (NetworkConfig { hidden_units: 1 << 40, ..paper.clone() }, "hidden_units"),
    ] {
        let mut file = Network::new(paper.clone(), 1).to_tensor_file();
        file.metadata.insert(ferlite::weights::NETWORK_KEY.into(), serde_json::to_string(&config).unwrap());
        let model = tmp.path().join(format!("{named}.safetensors"));
        file.write_atomic(&model).unwrap();
        let o = ferlite(&["predict", face.to_str().unwrap(), "--model", model.to_str().unwrap()]);
        assert_clean_error(&o, &[model.file_name().unwrap().to_str().unwrap(), named]);
    }
    // The same from a training config, before the run folder is made.
    let (csv, config, run) = (tmp.path().join("faces.csv"), tmp.path().join("train.json"), tmp.path().join("run"));
    common::write_csv(&csv, 2, 1);
    let train = ferlite::train::config::TrainConfig { network: NetworkConfig { hidden_units: 10_000_000_000_000, ..paper }, ..Default::default() };
    std::fs::write(&config, serde_json::to_string(&train).unwrap()).unwrap();
    let o = ferlite(&["train", "--config", config.to_str().unwrap(), "--data", csv.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert_clean_error(&o, &["training config", "hidden_units"]);
    assert!(!run.exists(), "a refused config made a run folder");
}

/// Weights holding NaN (what a diverged run would leave) are refused, naming the tensor, rather
/// than printing NaN% for every face.
#[test]
fn a_model_with_nan_weights_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (face, model) = (tmp.path().join("f.png"), tmp.path().join("nan.safetensors"));
    common::plain_crop(1).save(&face).unwrap();
    let mut net = ferlite::model::Network::new(ferlite::model::NetworkConfig::paper(), 1);
    let last = net.params.len() - 1;
    net.params[last] = f32::NAN;
    net.save(&model).unwrap();
    assert_clean_error(&ferlite(&["predict", face.to_str().unwrap(), "--model", model.to_str().unwrap()]), &["nan.safetensors", "head.fc2.bias", "NaN"]);
}

#[test]
fn resume_continues_a_stopped_run() {
    let tmp = tempfile::tempdir().unwrap();
    train_tiny(tmp.path());
    let run = tmp.path().join("run");
    let o = ferlite(&["train", "--resume", run.to_str().unwrap(), "--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("done: 2 epochs"), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 2);
}

#[test]
fn predict_on_a_photo_finds_the_face_and_reports_its_box() {
    let tmp = tempfile::tempdir().unwrap();
    let model = train_tiny(tmp.path());
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg");
    let o = ferlite(&["predict", photo, "--model", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let faces = line["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1, "{line}");
    assert!(faces[0]["box"]["width"].as_u64().unwrap() > 50);
    assert!(EMOTION_NAMES.contains(&faces[0]["emotion"].as_str().unwrap()));

    let annotated = tmp.path().join("annotated.png");
    // At the default log level, as a user runs it: the command says where the drawing went.
    let o = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(["predict", photo, "--model", model.to_str().unwrap(), "--annotate", annotated.to_str().unwrap()]).env_remove("RUST_LOG").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("annotated image written to {}", annotated.display())), "{}", stderr(&o));
    let (original, drawn) = (image::open(photo).unwrap().to_rgb8(), image::open(&annotated).unwrap().to_rgb8());
    assert_eq!(original.dimensions(), drawn.dimensions());
    let changed = original.pixels().zip(drawn.pixels()).filter(|(a, b)| a != b).count();
    assert!(changed > 1000 && changed < 60_000, "{changed} pixels changed by the annotation");

    let blank = tmp.path().join("blank.png");
    image::GrayImage::new(320, 240).save(&blank).unwrap();
    let o = ferlite(&["predict", blank.to_str().unwrap(), "--model", model.to_str().unwrap()]);
    assert!(o.status.success(), "no face is not an error: {}", stderr(&o));
    assert!(stdout(&o).contains("no face found"), "{}", stdout(&o));
}

const EMOTION_NAMES: [&str; 7] = ferlite::emotion::EMOTIONS;

/// No `--model`: the trained model compiled into the binary answers, and calls the smiling
/// astronaut of the demo photo happy (an untrained network would not, but for luck).
#[test]
fn predict_without_model_uses_the_embedded_trained_model() {
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg");
    let o = ferlite(&["predict", photo, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let face = &line["faces"][0];
    assert_eq!(face["emotion"], "happy", "{line}");
    assert!(face["confidence"].as_f64().unwrap() > 0.5, "{line}");
    let total: f64 = EMOTION_NAMES.iter().map(|e| face["probabilities"][e].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {total}");
}

#[test]
fn predict_writes_csv_for_a_folder_tree_with_an_error_row_for_a_bad_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    common::untrained_model(&model);
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(photos.join("day2")).unwrap();
    common::plain_crop(90).save(photos.join("a.png")).unwrap();
    common::plain_crop(160).save(photos.join("day2/b.png")).unwrap();
    std::fs::write(photos.join("day2/broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
    let csv = tmp.path().join("out.csv");
    let o = ferlite(&["predict", photos.to_str().unwrap(), "--model", model.to_str().unwrap(), "--format", "csv", "--output", csv.to_str().unwrap()]);
    assert_clean_error(&o, &["broken.jpg"]);
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..8], ["file", "frame", "time", "image_width", "image_height", "faces", "face", "track_id"]);
    assert_eq!(header.len(), 16 + 7 + 1);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "two faces and one error row");
    assert!(rows[0][0].ends_with("a.png") && EMOTION_NAMES.contains(&&rows[0][14]));
    let error_row = rows.iter().find(|r| r[0].ends_with("broken.jpg")).unwrap();
    assert!(error_row[23].contains("cannot decode"), "{error_row:?}");
    let probabilities: f64 = rows[1].iter().skip(16).take(7).map(|v| v.parse::<f64>().unwrap()).sum();
    assert!((probabilities - 1.0).abs() < 1e-3);
}

/// A link back up the tree (`sub/back -> ..`) is followed once, not round and round: each image
/// gives one record and the run succeeds.
#[cfg(unix)]
#[test]
fn a_folder_with_a_link_loop_gives_each_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    common::plain_crop(90).save(photos.join("a.png")).unwrap();
    common::plain_crop(150).save(photos.join("sub/b.png")).unwrap();
    std::os::unix::fs::symlink(&photos, photos.join("sub/back")).unwrap();
    let o = ferlite(&["predict", photos.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<String> = stdout(&o).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["file"].as_str().unwrap().to_string()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("a.png") && files[1].ends_with("sub/b.png"), "{files:?}");
}

#[test]
fn animated_gif_gives_one_record_per_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    common::untrained_model(&model);
    let gif = tmp.path().join("clip.gif");
    let mut encoder = GifEncoder::new(std::fs::File::create(&gif).unwrap());
    for value in [40u8, 120, 200] {
        let frame = image::DynamicImage::ImageLuma8(common::plain_crop(value)).to_rgba8();
        encoder.encode_frame(Frame::from_parts(frame, 0, 0, Delay::from_numer_denom_ms(100, 1))).unwrap();
    }
    drop(encoder);
    let drawn = tmp.path().join("drawn/clip.png");
    let o = ferlite(&["predict", gif.to_str().unwrap(), "--model", model.to_str().unwrap(), "--json", "--annotate", drawn.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let frames: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.iter().map(|f| f["frame"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(frames.iter().all(|f| f["faces"].as_array().unwrap().len() == 1));
    // --annotate draws each frame into its own file.
    for frame in 0..3 {
        let path = tmp.path().join(format!("drawn/clip.frame{frame:04}.png"));
        // The 48 px frames drawn enlarged (7x), so that the label fits.
        assert!(image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).width() >= 48 * 7);
    }
    // --max-frames leaves the rest, and says so.
    let o = ferlite(&["predict", gif.to_str().unwrap(), "--model", model.to_str().unwrap(), "--json", "--max-frames", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stderr(&o).contains("analysed its first 2 frames") && stderr(&o).contains("--max-frames"), "{}", stderr(&o));
}

/// A PNG whose header says 20000x20000 (400 megapixels) is refused from the header alone: a clear
/// error and no attempt to allocate the pixels. (The file itself is a few bytes.)
#[test]
fn a_20000_by_20000_image_is_refused_before_decoding() {
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        // CRC-32 (IEEE) over type and data, as PNG requires.
        let mut crc = 0xffff_ffffu32;
        for &byte in kind.iter().chain(data) {
            crc ^= byte as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&(!crc).to_be_bytes());
        out
    }
    let mut ihdr = 20000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", b"\x78\x9c\x03\x00\x00\x00\x00\x01")); // a little (far too little) data
    png.extend(chunk(b"IEND", &[]));
    let tmp = tempfile::tempdir().unwrap();
    let huge = tmp.path().join("huge.png");
    std::fs::write(&huge, png).unwrap();
    let model = tmp.path().join("m.safetensors");
    common::untrained_model(&model);
    let o = ferlite(&["predict", huge.to_str().unwrap(), "--model", model.to_str().unwrap()]);
    assert_clean_error(&o, &["huge.png", "20000x20000", "limit"]);
}

/// `export --weights` copies a model's network and the accuracy `train` recorded, nothing else.
#[test]
fn export_weights_keeps_the_parameters_and_the_recorded_accuracy() {
    use ferlite::predict::Predictor;
    let tmp = tempfile::tempdir().unwrap();
    let trained = train_tiny(tmp.path());
    let original = Predictor::load(Some(&trained)).unwrap();
    let copy = tmp.path().join("copy.safetensors");
    let o = ferlite(&["export", "--model", trained.to_str().unwrap(), "--weights", copy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let copy = Predictor::load(Some(&copy)).unwrap();
    assert_eq!(copy.network.config, original.network.config);
    assert_eq!(copy.network.params, original.network.params);
    assert_eq!(copy.network.buffers, original.network.buffers);
    assert!(original.val_accuracy.is_some(), "train records the val accuracy in best.safetensors");
    assert_eq!(copy.val_accuracy, original.val_accuracy);

    let o = ferlite(&["export", "--model", trained.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--onnx <FILE>|--weights <FILE>"), "{}", stderr(&o));
}

#[test]
fn csv_and_jsonl_give_every_image_a_record_with_its_size_and_each_face_its_detector() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    common::untrained_model(&model);
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(common::demo_photo_path(), photos.join("a.jpg")).unwrap();
    image::GrayImage::new(320, 240).save(photos.join("b.png")).unwrap();
    // A PNG without an extension is read by its content; a text file is not an image.
    std::fs::copy(photos.join("b.png"), photos.join("c")).unwrap();
    std::fs::write(photos.join("notes.txt"), "not an image").unwrap();
    let o = ferlite(&["predict", photos.to_str().unwrap(), "--model", model.to_str().unwrap(), "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut rows = csv::Reader::from_reader(out.as_bytes());
    let header = rows.headers().unwrap().clone();
    let column = |row: &csv::StringRecord, name: &str| row[header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"))].to_string();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[2][0].ends_with("/c") && column(&rows[2], "image_width") == "320", "{out}");
    assert_eq!([column(&rows[0], "image_width"), column(&rows[0], "faces"), column(&rows[0], "face"), column(&rows[0], "detector")], ["512", "1", "1", "yunet"], "{out}");
    assert_eq!([column(&rows[1], "image_width"), column(&rows[1], "image_height"), column(&rows[1], "faces"), column(&rows[1], "emotion")], ["320", "240", "0", ""], "{out}");
    let o = ferlite(&["predict", photos.join("b.png").to_str().unwrap(), "--model", model.to_str().unwrap(), "--json"]);
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["image"], serde_json::json!({ "width": 320, "height": 240 }));
    assert_eq!(record["faces"], serde_json::json!([]));
}

/// A clip made here from the demo photo with FFmpeg: 2 s at 10 frames a second, the camera panning
/// right so that the face moves across the frame. `None` (the test skips, saying so) without FFmpeg.
fn panning_clip(dir: &Path) -> Option<std::path::PathBuf> {
    let clip = dir.join("pan.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-loop", "1", "-i", common::demo_photo_path().to_str().unwrap(), "-t", "2", "-r", "10"])
        .args(["-vf", "crop=384:384:x='t*50':y=40", "-c:v", "libx264", "-pix_fmt", "yuv420p", clip.to_str().unwrap()])
        .output();
    match made {
        Ok(o) if o.status.success() => Some(clip),
        Ok(o) => panic!("ffmpeg could not make the test clip: {}", stderr(&o)),
        Err(_) => {
            common::skip("the video tests", "ffmpeg is not installed", common::Provided::ByCi);
            None
        }
    }
}

/// Frames of a video file as ffprobe counts them.
fn frame_count(video: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", video.to_str().unwrap()])
        .output()
        .unwrap();
    stdout(&o).trim().parse().unwrap_or_else(|_| panic!("ffprobe on {}: {}", video.display(), stderr(&o)))
}

#[test]
fn a_video_gives_a_record_per_frame_with_times_track_ids_and_an_annotated_video() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(clip) = panning_clip(tmp.path()) else { return };
    let annotated = tmp.path().join("out/pan.annotated.mp4");
    let o = ferlite(&["predict", clip.to_str().unwrap(), "--json", "--smooth", "0.5", "--annotate", annotated.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let frames: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 20, "2 s at 10 frames a second");
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame["frame"], i, "{frame}");
        assert!((frame["time"].as_f64().unwrap() - i as f64 / 10.0).abs() < 1e-6, "{frame}");
        assert!(frame["timing_ms"]["analysis"].as_f64().unwrap() > 0.0, "{frame}");
        assert_eq!(frame["image"], serde_json::json!({ "width": 384, "height": 384 }));
        let faces = frame["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "frame {i}: {frame}");
        // The same face all along, though it moves 5 px a frame.
        assert_eq!(faces[0]["track_id"], 1, "frame {i}: {frame}");
    }
    let x = |f: &serde_json::Value| f["faces"][0]["box"]["x"].as_i64().unwrap();
    assert!(x(&frames[0]) - x(&frames[19]) > 60, "the face moves left as the camera pans right");
    assert_eq!(frame_count(&annotated), 20);

    // --fps samples the video; CSV rows carry frame, time and track id.
    let o = ferlite(&["predict", clip.to_str().unwrap(), "--fps", "2", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |row: &csv::StringRecord, name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| column(r, "time")).collect::<Vec<_>>(), ["0", "0.5", "1", "1.5"], "{out}");
    assert!(rows.iter().all(|r| column(r, "track_id") == "1"), "{out}");
}

#[test]
fn a_damaged_or_missing_video_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(clip) = panning_clip(tmp.path()) else { return };
    let bytes = std::fs::read(&clip).unwrap();
    let cut = tmp.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = tmp.path().join("garbage.mkv");
    std::fs::write(&garbage, b"not a video at all").unwrap();
    for bad in [&cut, &garbage, &tmp.path().join("missing.mp4")] {
        let o = ferlite(&["predict", bad.to_str().unwrap(), "--json"]);
        assert_clean_error(&o, &[bad.file_name().unwrap().to_str().unwrap()]);
    }
}

/// The `--annotate` rules: one input file → that file (or into that folder); several inputs or a
/// folder → a folder mirroring the inputs, so that same-named files in different folders do not
/// collide; a file name for several inputs is refused; nothing is overwritten without --force;
/// a folder run does not read its own outputs again.
#[test]
fn annotate_writes_one_file_or_a_mirrored_folder_and_never_overwrites_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    for dir in ["day1", "day2"] {
        std::fs::create_dir_all(photos.join(dir)).unwrap();
        common::plain_crop(90).save(photos.join(dir).join("a.png")).unwrap();
    }
    let (a1, a2) = (photos.join("day1/a.png"), photos.join("day2/a.png"));
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let run = |args: &[String]| ferlite(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let predict = |extra: &[String]| [vec!["predict".to_string()], extra.to_vec()].concat();

    // Several inputs and a file name: refused before anything is done.
    let o = run(&predict(&[arg(&a1), arg(&a2), "--annotate".into(), arg(&tmp.path().join("multi.png"))]));
    assert_clean_error(&o, &["multi.png", "give a folder"]);
    assert!(!tmp.path().join("multi.png").exists());

    // Several inputs: a folder each, by the inputs' file names... which collide here: the second is
    // an error naming the clash, not a silent overwrite.
    let out = tmp.path().join("out");
    let o = run(&predict(&[arg(&a1), arg(&a2), "--annotate".into(), arg(&out)]));
    assert_clean_error(&o, &["a.annotated.png", "annotated to this file already"]);
    // A folder: its tree mirrored, so the two a.png do not collide.
    let tree = tmp.path().join("tree");
    let o = run(&predict(&[arg(&photos), "--annotate".into(), arg(&tree)]));
    assert!(o.status.success(), "{}", stderr(&o));
    for dir in ["day1", "day2"] {
        let drawn = image::open(tree.join(dir).join("a.annotated.png")).unwrap();
        assert!(drawn.width() >= 48 * 7 && drawn.height() >= 48 * 7, "a 48 px crop is drawn enlarged");
    }
    // Again: nothing overwritten without --force; with it, the same files.
    let o = run(&predict(&[arg(&photos), "--annotate".into(), arg(&tree)]));
    assert_clean_error(&o, &["exists; --force"]);
    let o = run(&predict(&[arg(&photos), "--annotate".into(), arg(&tree), "--force".into()]));
    assert!(o.status.success(), "{}", stderr(&o));

    // Outputs inside the input folder are not read as inputs on the next run.
    let o = run(&predict(&[arg(&photos), "--annotate".into(), arg(&photos), "--json".into()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&predict(&[arg(&photos), "--annotate".into(), arg(&photos.join("again")), "--json".into()]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "only the two photos, not their annotated copies: {}", stdout(&o));

    // One input file: the file named, or into the folder named.
    let one = tmp.path().join("one.png");
    assert!(run(&predict(&[arg(&a1), "--annotate".into(), arg(&one)])).status.success());
    assert!(one.exists());
    let o = run(&predict(&[arg(&a1), "--annotate".into(), arg(&tree.join("day1"))]));
    assert_clean_error(&o, &["day1/a.annotated.png: exists; --force"]);
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    assert!(run(&predict(&[arg(&a1), "--annotate".into(), arg(&fresh)])).status.success());
    assert!(fresh.join("a.annotated.png").exists());
}

/// Hostile and damaged files, each made here: a clean error naming the file, a peak memory far
/// below what the file claims (measured by `wait4` on the child), and no hang (killed after 60 s).
#[test]
fn hostile_inputs_get_clean_errors_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name);
    // A 46-byte GIF whose screen and frame claim 65535x65535 (17 GB as RGBA).
    let mut gif = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    gif.extend_from_slice(b"\x2c\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x4c\x01\x00\x3b");
    std::fs::write(path("huge.gif"), &gif).unwrap();
    // A small JPEG whose frame header is patched to claim 7000x7000; its data ends long before.
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageLuma8(common::plain_crop(100)).write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x1b, 0x58, 0x1b, 0x58]);
    std::fs::write(path("claims-7000.jpg"), &jpeg).unwrap();
    // A CSV row of 20 MB.
    let mut csv = b"emotion,pixels,Usage\n0,".to_vec();
    csv.extend(b"12 ".repeat(7_000_000));
    csv.extend_from_slice(b",PublicTest\n");
    std::fs::write(path("long-row.csv"), &csv).unwrap();
    // A model with one byte flipped in its tensors.
    common::untrained_model(&path("model.safetensors"));
    let mut model = std::fs::read(path("model.safetensors")).unwrap();
    let middle = model.len() / 2;
    model[middle] ^= 0x40;
    std::fs::write(path("flipped.safetensors"), &model).unwrap();
    let face = path("face.png");
    common::plain_crop(90).save(&face).unwrap();

    let p = |name: &str| path(name).to_str().unwrap().to_string();
    let cases: [(Vec<String>, &str); 5] = [
        (vec!["predict".into(), p("huge.gif")], "huge.gif"),
        (vec!["predict".into(), p("claims-7000.jpg")], "claims-7000.jpg"),
        (vec!["evaluate".into(), p("long-row.csv"), "--out".into(), p("eval")], "long-row.csv"),
        (vec!["predict".into(), face.to_str().unwrap().into(), "--model".into(), p("flipped.safetensors")], "flipped.safetensors"),
        (vec!["predict".into(), face.to_str().unwrap().into(), "--model".into(), "/dev/zero".into()], "/dev/zero"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = common::run_bounded(&args, std::time::Duration::from_secs(60));
        assert!(!run.killed, "{args:?} still running after 60 s");
        assert!(!run.success && !run.stderr.contains("panicked"), "{args:?}: {} {} (peak {} MiB)", run.stdout, run.stderr, run.peak_rss_mib);
        let line = run.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{args:?}: no error line in {}", run.stderr));
        assert!(line.contains(needle), "{args:?}: `{line}` does not name {needle}");
        assert!(run.peak_rss_mib < 200, "{args:?}: peak RSS {} MiB", run.peak_rss_mib);
        eprintln!("{needle}: {line} (peak {} MiB)", run.peak_rss_mib);
    }
}

#[test]
fn log_format_json_writes_one_json_object_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let face = tmp.path().join("face.png");
    common::plain_crop(90).save(&face).unwrap();
    let out = tmp.path().join("drawn.png");
    let o = Command::new(env!("CARGO_BIN_EXE_ferlite"))
        .args(["--log-format", "json", "predict", face.to_str().unwrap(), "--annotate", out.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stderr(&o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l["fields"]["message"].as_str().unwrap().contains("annotated image written")), "{lines:?}");
}

/// The weights' average is on by default (the embedded model's recipe); `--ema 0` turns it off,
/// `--ema-from` moves its start, and asking for a start with no average is an error.
#[test]
fn train_averages_the_weights_unless_told_ema_0() {
    let config = |extra: &[&str]| -> serde_json::Value {
        let o = ferlite(&[&["train", "--print-config"], extra].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    assert_eq!(config(&[])["weight_averaging"], serde_json::json!({"decay": 0.9995, "start_epoch": 1}));
    assert!(config(&["--ema", "0"])["weight_averaging"].is_null());
    assert_eq!(config(&["--ema", "0.999", "--ema-from", "3"])["weight_averaging"], serde_json::json!({"decay": 0.999, "start_epoch": 3}));
    assert_clean_error(&ferlite(&["train", "--print-config", "--ema", "0", "--ema-from", "3"]), &["--ema-from"]);
}
