#!/usr/bin/env bash
# TPC-H Q1, Q3 and Q6 at scale factor 1 on 1 and 2 worker processes (each worker one
# DataFusion partition on one thread: the one vCPU of its function), timed with hyperfine in
# one run (medians). Installs tpchgen-cli (PyPI) and hyperfine (apt) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
data=bench/tpch/data
for table in lineitem orders customer; do
  if [ ! -f "$data/$table.parquet" ]; then
    command -v tpchgen-cli >/dev/null || python3 -m pip install --quiet tpchgen-cli
    mkdir -p "$data"
    tpchgen-cli parquet -s 1 --tables "$table" --output-dir "$data"
  fi
done
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq hyperfine); }
cargo build --release -q -p flow-cli
# The third command runs two 1-worker runs at once, one per core: how much of a second core
# this machine really gives a query (a shared VM's cores share caches, memory bandwidth and a
# hypervisor). 2 x t(1 worker) / t(two at once) is the most any 2-worker plan could reach.
for q in q1 q3 q6; do
  one="target/release/flowc run bench/tpch/$q.flow --workers 1"
  hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-json "target/tpch-workers-$q.json" \
    -n "$q, 1 worker" "$one" \
    -n "$q, 2 workers" "target/release/flowc run bench/tpch/$q.flow --workers 2" \
    -n "$q, two 1-worker runs at once" "bash -c '$one >/dev/null & $one >/dev/null; wait'"
done
python3 - <<'PY'
import json, statistics
print("| query | 1 worker | 2 workers | speedup | two 1-worker runs at once | machine's 2-core ceiling |")
print("| --- | --- | --- | --- | --- | --- |")
for q in ("q1", "q3", "q6"):
    runs = json.load(open(f"target/tpch-workers-{q}.json"))["results"]
    one, two, pair = (statistics.median(r["times"]) * 1e3 for r in runs)
    print(f"| {q.upper()} | {one:.0f} ms | {two:.0f} ms | {one / two:.2f} | {pair:.0f} ms | {2 * one / pair:.2f} |")
PY
