#!/usr/bin/env bash
# Side-by-side speed on this machine: ferlite bench, then ONNX Runtime (and PyTorch, if installed in
# the venv with safetensors) on the same weights. Usage: bench/reference/run.sh [weights.safetensors]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=target/reference-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r bench/reference/requirements.txt
fi
cargo build --release -q
MODEL_ARGS=()
[ $# -ge 1 ] && MODEL_ARGS=(--model "$1")
WEIGHTS=${1:-models/fer2013/model.safetensors}  # the embedded model's file, for the PyTorch rows
target/release/ferlite export --onnx target/reference.onnx "${MODEL_ARGS[@]}"
echo "## $(date -u +%F) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo
echo '### ferlite'
target/release/ferlite --threads 1 bench --repeats 10 | grep infer | sed 's/^/    1 thread:  /'
target/release/ferlite --threads 2 bench --repeats 10 | sed 's/^/    2 threads: /'
echo
echo '### references (same weights: ONNX Runtime on the export, PyTorch on the weights file)'
"$VENV/bin/python" bench/reference/reference.py bench target/reference.onnx "$WEIGHTS"
