//! `ferlite export --onnx` checked in ONNX Runtime: the exported model gives the framework's logits.
//! Needs the reference venv (`.ci/run` builds it from `bench/reference/requirements.txt`; or set
//! FERLITE_REFERENCE_PYTHON to a python with onnxruntime); skips, saying so, without it.

mod common;

use ferlite::model::Network;
use ferlite::nn::Tensor;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::process::Command;

fn reference_python() -> Option<PathBuf> {
    let root = common::repo_root();
    let python = std::env::var_os("FERLITE_REFERENCE_PYTHON").map(PathBuf::from).unwrap_or_else(|| root.join("target/reference-venv/bin/python"));
    let has_ort = Command::new(&python).args(["-c", "import onnxruntime"]).output().is_ok_and(|o| o.status.success());
    if !has_ort {
        common::skip("the ONNX Runtime check", &format!("{} cannot import onnxruntime", python.display()), common::Provided::ByCi);
    }
    has_ort.then_some(python)
}

#[test]
fn exported_onnx_model_gives_the_same_logits_in_onnx_runtime() {
    let Some(python) = reference_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("m.safetensors");
    common::untrained_model(&weights);
    let onnx = tmp.path().join("m.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(["export", "--onnx", onnx.to_str().unwrap(), "--model", weights.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = Tensor::from_vec([6, 1, 48, 48], (0..6 * 2304).map(|_| rng.random_range(-2.0f32..2.0)).collect());
    let logits = Network::load(&weights).unwrap().forward(&x);
    let raw = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (input, expected) = (tmp.path().join("input.f32"), tmp.path().join("expected.f32"));
    std::fs::write(&input, raw(&x.data)).unwrap();
    std::fs::write(&expected, raw(&logits.data)).unwrap();
    let script = common::repo_root().join("bench/reference/reference.py");
    let o = Command::new(python).arg(script).args(["check", onnx.to_str().unwrap(), input.to_str().unwrap(), expected.to_str().unwrap()]).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    eprintln!("{report}");
    assert!(o.status.success(), "ONNX Runtime disagrees: {report}");
}
