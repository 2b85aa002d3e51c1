#!/usr/bin/env bash
# The planner's predictions checked on work it was not fitted to: twelve pipelines of 10 MB
# to 1 GB of input (TPC-H Q1, Q3, Q6 and Q18 at scale factor 1, and generated groupings,
# joins, sorts and filters over 10 million rows), each on 1 and 2 worker processes, with the
# `local` profile `flowc calibrate` fits on its own synthetic workloads just before (kept
# apart in target/bench-config, as bench/predicted.sh keeps it). Nothing here feeds a constant.
# Prints predicted against measured (median of RUNS runs, default 3) and the median error.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
bash bench/tpch-workers.sh >/dev/null 2>&1 || true   # generates the TPC-H data when missing
[ -f target/bench-shuffle/facts.parquet ] || RUNS=1 bash bench/shuffle.sh >/dev/null
cargo build --release -q -p flow-cli
flowc=$PWD/target/release/flowc
export XDG_CONFIG_HOME=$PWD/target/bench-config
# Calibrated afresh each time, right before the runs it predicts: on a shared machine the
# speed of the same work moves by 10-20% between hours, which would read as model error.
rm -f "$XDG_CONFIG_HOME/flow/local.toml"
"$flowc" calibrate >/dev/null
dir=$PWD/target/validation
mkdir -p "$dir/out"
cp target/bench-shuffle/facts.parquet "$dir/facts.parquet"
if [ ! -f "$dir/dims.csv" ]; then
  awk 'BEGIN { print "key,region"; for (k = 0; k < 5000000; k += 50) printf "%d,r%d\n", k, k % 7 }' > "$dir/dims.csv"
fi
gen() {
  local dims=""
  case "$2" in *dims*) dims='let dims = load "dims.csv"\n' ;; esac
  printf "let facts = load \"facts.parquet\"\n${dims}%s\n" "$2" > "$dir/$1.flow"
}
gen shuffle 'show facts | group key { total = sum(value) } | group { keys = count(), total = sum(total) }'
gen group_value 'show facts | group value { n = count() } | sort n desc, value | take 5'
gen top_k 'show facts | sort value desc, id | take 100'
gen filter_save 'save facts | filter value < 1000 to "out/small.parquet"'
gen join_group 'show facts | join dims on key | group region { total = sum(value) } | sort region'
gen group_sort 'show facts | group key { total = sum(value) } | sort total desc, key | take 10'
gen derive_total 'show facts | derive v2 = value * 2 | filter v2 > 100 | group { n = count(), s = sum(v2) }'
gen semi_join 'show facts | join semi dims on key | group { n = count() }'
pipelines="$(for q in q1 q3 q6 q18; do echo "bench/tpch/$q.flow"; done)
$(for g in shuffle group_value top_k filter_save join_group group_sort derive_total semi_join; do echo "$dir/$g.flow"; done)"
for i in $(seq "$runs"); do
  for p in $pipelines; do
    for w in 1 2; do
      (cd "$(dirname "$p")" && "$flowc" run "$(basename "$p")" --workers "$w" --report "$dir/$(basename "$p" .flow)-w$w-$i.json" >/dev/null)
    done
  done
done
python3 - "$dir" "$runs" $pipelines <<'PY'
import json, statistics, sys, os
out, runs, pipelines = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"| pipeline | workers | predicted | measured (median of {runs}) | error |")
print("| --- | --- | --- | --- | --- |")
errors = []
for p in pipelines:
    name = os.path.basename(p)[:-5]
    for w in (1, 2):
        reports = [json.load(open(f"{out}/{name}-w{w}-{i}.json")) for i in range(1, runs + 1)]
        predicted = reports[0]["predicted_s"]
        measured = statistics.median(r["measured_s"] for r in reports)
        error = predicted / measured - 1
        errors.append(abs(error))
        print(f"| {name} | {w} | {predicted * 1e3:.0f} ms | {measured * 1e3:.0f} ms | {error:+.0%} |")
within = sum(e <= 0.25 for e in errors)
print(f"\nmedian absolute error {statistics.median(errors):.0%}; {within} of {len(errors)} within 25%")
PY
