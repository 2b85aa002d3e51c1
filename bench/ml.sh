#!/usr/bin/env bash
# ML benchmarks, each side in the same run on the same data (bench/ml.py makes it):
#  - training throughput: flow's logistic regression (plain SGD, one row per step, 5 epochs)
#    against scikit-learn's SGDClassifier (log loss, 5 epochs), 200,000 rows × 20 features;
#  - ONNX inference throughput: tract inside flow against onnxruntime (one thread each), the
#    digits model of examples/models on 100,000 rows, 1,000 rows per call; flow's table holds
#    the same f32 values onnxruntime is handed (64 Float32 columns), and, for reference, the
#    columns as read from the CSV (Int64, twice the bytes);
#  - parallel batch inference: `flowc run` scoring 1,000,000 rows with that model on 1, 2 and
#    4 worker processes, measured against the planner's predicted time (local profile) and
#    predicted cost on Lambda.
# Installs scikit-learn and onnxruntime from PyPI when missing. Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import sklearn, onnxruntime" 2>/dev/null || python3 -m pip install --quiet scikit-learn onnxruntime
cargo build --release -q -p flow-cli -p flow-runtime --bins --example ml_throughput
dir=target/bench-ml
mkdir -p "$dir"
[ -f "$dir/digits-1m.csv" ] || python3 bench/ml.py data "$dir"
bin=target/release/examples/ml_throughput
model=examples/models/digits.onnx

sk=$(python3 bench/ml.py sgd "$dir/train.csv" 5)
fl=$("$bin" train "$dir/train.csv" label 5)
ort=$(python3 bench/ml.py onnx "$model" "$dir/digits.csv" 1000)
tr=$("$bin" onnx "$model" "$dir/digits.csv" 1000 f32)
ti=$("$bin" onnx "$model" "$dir/digits.csv" 1000 as-read)
python3 - "$sk" "$fl" "$ort" "$tr" "$ti" <<'PY'
import sys
sk, fl, ort, tr, ti = map(float, sys.argv[1:])
print("| what | flow (rows/s) | reference (rows/s) | flow ÷ reference |")
print("| --- | --- | --- | --- |")
print(f"| training, logistic SGD | {fl:,.0f} | {sk:,.0f} (SGDClassifier) | {fl/sk:.2f} |")
print(f"| ONNX inference, Float32 columns | {tr:,.0f} | {ort:,.0f} (onnxruntime) | {tr/ort:.2f} |")
print(f"| ONNX inference, Int64 columns as read | {ti:,.0f} | {ort:,.0f} (onnxruntime) | {ti/ort:.2f} |")
PY

cat > "$dir/score.flow" <<EOF2
save load "digits-1m.csv" | infer load "$PWD/$model" batch 1000 to "scored.parquet"
EOF2
echo
echo "| workers | measured | predicted (local) | predicted cost on lambda |"
echo "| --- | --- | --- | --- |"
for n in 1 2 4; do
  target/release/flowc run "$dir/score.flow" --workers "$n" --report "$dir/score-$n.json" >/dev/null
  target/release/flowc plan "$dir/score.flow" --target lambda --workers "$n" --format json >"$dir/plan-$n.json"
  python3 - "$n" "$dir/score-$n.json" "$dir/plan-$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
plan = json.load(open(sys.argv[3]))
print(f"| {sys.argv[1]} | {r['measured_s']:.2f} s | {r['predicted_s']:.2f} s | ${plan['predicted_usd']:.6f} |")
PY
done
