#!/usr/bin/env bash
# The parallel-inference study's experiment with flow: a transformer scores IMDb reviews.
#  1. tract inside flow against onnxruntime on one core, the same padded batches each: the
#     committed small model (256 tokens, 400 reviews, a sweep of batch sizes) and the
#     full-size distilbert-base graph (512 tokens, 16 reviews);
#  2. accuracy on the 2,000 held-out reviews, by flow (`evaluate`) and by onnxruntime;
#  3. fan-out on this machine: the 2,000 reviews on 1 and 2 worker processes (time, CPU
#     seconds, the `local` profile's predicted time);
#  4. the Lambda plan for 25,000 reviews with the full-size model: one function against the
#     planned fan-out, predicted time and dollars; then the planner's price per operation,
#     fitted on the small model, checked on the full-size one: a measured local run against
#     its prediction.
# Needs the held-out reviews and the full-size graph from scripts/sentiment-model (with and
# without `--full-size target/sentiment/distilbert-base.onnx`), and onnxruntime, tokenizers
# and numpy (installed here from PyPI when missing). Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import onnxruntime, tokenizers, numpy" 2>/dev/null ||
    python3 -m pip install --quiet 'onnxruntime==1.*' 'tokenizers==0.23.*' numpy
dir=target/sentiment
held="$dir/imdb-heldout.csv"
big="$dir/distilbert-base.onnx"
for f in "$held" "$big"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/sentiment-model (see its --help)" >&2; exit 1; }
done
cargo build --release -q -p flow-cli -p flow-runtime --bins --example ml_throughput
bin=target/release/examples/ml_throughput
small=examples/models/sentiment.onnx
tok=examples/models/sentiment-tokenizer.json
# The full-size graph's vocabulary is BERT's 30,522 ids; the small tokenizer's 8,000 ids are
# all inside it, and only the arithmetic matters here.

echo "| model | tokens | batch | flow (reviews/s) | onnxruntime (reviews/s) | flow ÷ onnxruntime |"
echo "| --- | --- | --- | --- | --- | --- |"
row() {
    local name=$1 model=$2 rows=$3 length=$4 batch=$5
    local f o
    f=$("$bin" transformer "$model" "$tok" "$held" "$rows" "$length" "$batch")
    o=$(python3 bench/inference.py "$model" "$tok" "$held" "$rows" "$length" "$batch")
    python3 -c "import sys; f, o = float('$f'), float('$o'); print(f'| $name | $length | $batch | {f:.2f} | {o:.2f} | {f/o:.2f} |')"
}
for b in 1 4 8 16 32; do row small "$small" 400 256 "$b"; done
RUNS=3 row distilbert-base "$big" 16 512 1
big_rate=$(RUNS=3 "$bin" transformer "$big" "$tok" "$held" 16 512 1)

echo
work="$dir/bench"
mkdir -p "$work"
cat >"$work/heldout.flow" <<EOF
show load "$PWD/$held"
  | derive tokens = tokenize(review, "$PWD/$tok", length = 256)
  | infer load "$PWD/$small"
  | evaluate label
EOF
flow_acc=$(target/release/flowc run "$work/heldout.flow" 2>/dev/null | awk -F'|' 'NR==4 {gsub(/ /, "", $2); print $2}')
ort_acc=$(python3 scripts/sentiment-reference.py "$small" "$tok" "$held" --length 256 2>&1 >/dev/null | awk '{print $2}')
echo "| accuracy on 2,000 held-out reviews | flow | onnxruntime |"
echo "| --- | --- | --- |"
echo "| small model, 256 tokens | $flow_acc | $ort_acc |"

echo
cat >"$work/score.flow" <<EOF
save load "$PWD/$held"
  | derive tokens = tokenize(review, "$PWD/$tok", length = 256)
  | infer load "$PWD/$small"
  | select id, prediction, probability
  to "$PWD/$work/scores.parquet"
EOF
# CPU seconds from the run report: flowc's own and every function's tasks (time(1) cannot
# tell: it counts the workers only when they are reaped before flowc exits).
echo "| workers | measured | speed-up | CPU seconds | predicted (local) |"
echo "| --- | --- | --- | --- | --- |"
for n in 1 2; do
    /usr/bin/time -f "%e" -o "$work/time-$n" \
        target/release/flowc run "$work/score.flow" --workers "$n" --report "$work/score-$n.json" >/dev/null
    python3 - "$n" "$work/time-$n" "$work/score-$n.json" "$work/time-1" <<'PY'
import json, sys
wall = float(open(sys.argv[2]).read().split()[-1])
one = float(open(sys.argv[4]).read().split()[-1])
r = json.load(open(sys.argv[3]))
cpu = r["coordinator_cpu_s"] + sum(s.get("cpu_s") or 0 for s in r["stages"])
print(f"| {sys.argv[1]} | {wall:.2f} s | {one / wall:.2f}× | {cpu:.1f} | {r['predicted_s']:.2f} s |")
PY
done

echo
# 25,000 reviews with the held-out ones' lengths: the plan needs their number and size.
all="$work/imdb-25000.csv"
python3 - "$held" "$all" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8", newline="")))
with open(sys.argv[2], "w", encoding="utf-8", newline="") as f:
    out = csv.writer(f)
    out.writerow(["id", "review", "label"])
    for i in range(25_000):
        r = rows[i % len(rows)]
        out.writerow([i, r["review"], r["label"]])
PY
cat >"$work/study.flow" <<EOF
save load "$PWD/$all"
  | derive tokens = tokenize(review, "$PWD/$tok", length = 512)
  | infer load "$PWD/$big"
  | select id, prediction, probability
  to "$PWD/$work/study.parquet"
EOF
echo "| lambda plan, 25,000 reviews, distilbert-base at 512 tokens | functions | predicted time | predicted cost | time cut | cost against one function |"
echo "| --- | --- | --- | --- | --- | --- |"
# The study's baseline, priced by the planner: everything on one function of the most
# memory (the most vCPUs). Its time is past Lambda's 15 minutes, so it is planned with a
# profile that lifts the limit: a measure to compare with, as in the study, not a deployment.
sed 's/^max_duration_s = .*/max_duration_s = 1e9/' planner/profiles/aws.toml >"$work/aws-unlimited.toml"
target/release/flowc plan "$work/study.flow" --target lambda --profile "$work/aws-unlimited.toml" \
    --workers 1 --memory-mb 10240 --format json >"$work/study-one.json"
# The planner's own choices: the fastest plan, and the fastest within 1.1 times the
# baseline's dollars (`--budget-usd`), the study's question.
target/release/flowc plan "$work/study.flow" --target lambda --format json >"$work/study-fastest.json"
budget=$(python3 -c "import json,sys; print(1.1 * json.load(open(sys.argv[1]))['predicted_usd'])" "$work/study-one.json")
target/release/flowc plan "$work/study.flow" --target lambda --budget-usd "$budget" \
    --format json >"$work/study-budget.json"
python3 - "$work/study-one.json" "$work/study-fastest.json" "$work/study-budget.json" <<'PY'
import json, sys
one, fastest, budget = (json.load(open(f)) for f in sys.argv[1:4])
def row(name, plan):
    infer = next(s for s in plan["stages"] if s.get("batching"))
    cut = 1 - plan["predicted_s"] / one["predicted_s"]
    print(f"| {name} | {infer['functions']} × {infer['memory_mb']} MB | {plan['predicted_s'] / 60:.1f} min"
          f" | ${plan['predicted_usd']:.3f} | {cut:.1%} | {plan['predicted_usd'] / one['predicted_usd']:.2f}× |")
row("one function", one)
row("fastest plan", fastest)
row("fastest within 1.1× the one function's cost", budget)
PY

echo
# The planner's price per operation was fitted on the small model; here it meets the big one.
head -n 33 "$held" >"$work/heldout-32.csv"
cat >"$work/big.flow" <<EOF
save load "$PWD/$work/heldout-32.csv"
  | derive tokens = tokenize(review, "$PWD/$tok", length = 512)
  | infer load "$PWD/$big"
  | select id, prediction
  to "$PWD/$work/big.parquet"
EOF
target/release/flowc run "$work/big.flow" --workers 1 --report "$work/big.json" >/dev/null
python3 - "$work/big.json" "$big_rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| distilbert-base, 32 reviews at 512 tokens, 1 worker | measured | predicted (local) |")
print("| --- | --- | --- |")
print(f"| run | {r['measured_s']:.2f} s | {r['predicted_s']:.2f} s |")
print(f"| one core, reviews per second (part 1) | {float(sys.argv[2]):.2f} | |")
PY
