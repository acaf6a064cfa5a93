#!/usr/bin/env bash
# Side-by-side speed on this machine: ferlite bench, then ONNX Runtime (and PyTorch, if installed in
# the venv) on the same weights exported to ONNX. Usage: bench/reference/run.sh [weights.safetensors]
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
target/release/ferlite export --onnx target/reference.onnx "${MODEL_ARGS[@]}"
echo "## $(date -u +%F) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo
echo '### ferlite'
target/release/ferlite --threads 1 bench --repeats 10 | grep infer | sed 's/^/    1 thread:  /'
target/release/ferlite --threads 2 bench --repeats 10 | sed 's/^/    2 threads: /'
echo
echo '### references (same weights, ONNX)'
"$VENV/bin/python" bench/reference/reference.py bench target/reference.onnx
