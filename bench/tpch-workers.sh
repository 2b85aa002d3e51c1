#!/usr/bin/env bash
# TPC-H Q1, Q3 and Q6 at scale factor 1 on 1 and 2 worker processes (each worker one
# DataFusion partition on one thread: the one vCPU of its function), timed in
# one run (medians of interleaved rounds). Installs tpchgen-cli (PyPI) when missing.
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
cargo build --release -q -p flow-cli
# Interleaved rounds (bench/interleaved.py): each round runs 1 worker, 2 workers and the
# third command below once each, so load on this shared machine falls on all three alike.
# The third command runs two 1-worker runs at once, one per core: how much of a second core
# this machine gives a query right now (a shared VM's cores share caches, memory bandwidth
# and a hypervisor); 2 x t(1 worker) / t(two at once) is the most a 2-worker plan could reach.
for q in q1 q3 q6; do
  one="target/release/flowc run bench/tpch/$q.flow --workers 1"
  python3 bench/interleaved.py "${RUNS:-5}" 1 \
    "1 worker=$one" \
    "2 workers=target/release/flowc run bench/tpch/$q.flow --workers 2" \
    "two at once=$one >/dev/null & $one >/dev/null; wait" >"target/tpch-workers-$q.json"
done
python3 - <<'PY'
import json, statistics
print("| query | 1 worker | 2 workers | speedup (medians) | speedup (median of rounds) | two 1-worker runs at once | machine's 2-core ceiling |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for q in ("q1", "q3", "q6"):
    r = json.load(open(f"target/tpch-workers-{q}.json"))
    m = r["median_ms"]
    one, two, pair = m["1 worker"], m["2 workers"], m["two at once"]
    rounds = statistics.median(x["1 worker"] / x["2 workers"] for x in r["rounds"])
    print(f"| {q.upper()} | {one:.0f} ms | {two:.0f} ms | {one / two:.2f} | {rounds:.2f} | {pair:.0f} ms | {2 * one / pair:.2f} |")
PY
