#!/usr/bin/env bash
# Embeds a training run's model and writes the figures that depend on it.
#
#   scripts/ship_model.sh runs/long150 [best|last]     (FER2013 beside the checkout: ../shared/data/fer2013)
#
# 1. the chosen weights, calibrated for --precision int8 on training faces, become
#    models/fer2013/model.safetensors (compiled into every front end), with the run's config and log;
# 2. the binary is rebuilt with it and evaluates val/ with each TTA mode into models/fer2013/val-tta-*/
#    (the reports `crates/ferlite/tests/shared_data.rs` checks the embedded model against);
# 3. the int8 and bf16 accuracies are printed for the README's results table.
# The README, models/fer2013/README.md and docs/experiments.md are then updated by hand from what it prints.
set -euo pipefail
cd "$(dirname "$0")/.."

run=${1:?usage: scripts/ship_model.sh RUN_DIR [best|last]}
which=${2:-best}
data=${FERLITE_DATA:-../shared/data/fer2013}
models=models/fer2013

test -f "$run/$which.safetensors" || { echo "no $run/$which.safetensors" >&2; exit 1; }
cargo build --release -q -p ferlite-cli
ferlite=target/release/ferlite

"$ferlite" export --model "$run/$which.safetensors" --weights "$models/model.safetensors"
"$ferlite" calibrate "$models/model.safetensors" --data "$data"
cp "$run/config.json" "$run/metrics.jsonl" "$models/"
cargo build --release -q -p ferlite-cli   # now with the new model compiled in

for tta in flip none ten-crop; do
    "$ferlite" -q evaluate "$data/val" --tta "$tta" --out "$models/val-tta-$tta"
done
summary() { python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
recall = " ".join(f"{c}:{100 * r['per_class'][c]['recall']:.1f}" for c in r["classes"])
print(f"{sys.argv[2]:>13}: {100 * r['accuracy']:.2f}%  macro-F1 {r['macro_f1']:.3f}  AUC {r['auc']['macro']:.3f}"
      f"  ECE {r['calibration']['ece']:.3f}  recall {recall}")
PY
}
for tta in flip none ten-crop; do summary "$models/val-tta-$tta/report.json" "f32 $tta"; done

tmp=$(mktemp -d)
for precision in int8 bf16; do
    for tta in flip none; do
        if "$ferlite" -q evaluate "$data/val" --tta "$tta" --precision "$precision" --out "$tmp/$precision-$tta" 2>"$tmp/err"; then
            summary "$tmp/$precision-$tta/report.json" "$precision $tta"
        else
            echo "$precision $tta: $(tail -1 "$tmp/err")"
        fi
    done
done
rm -rf "$tmp"
