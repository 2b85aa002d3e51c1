#!/usr/bin/env bash
# TPC-H Q1, Q3 and Q6 at scale factor 1 on 1 and 2 worker processes (each worker one
# DataFusion partition on one thread: the one vCPU of its function), timed with hyperfine in
# one run. Installs tpchgen-cli (PyPI) and hyperfine (apt) when missing.
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
for q in q1 q3 q6; do
  hyperfine --warmup 1 --runs "${RUNS:-5}" --export-markdown "target/tpch-workers-$q.md" \
    -n "$q, 1 worker" "target/release/flowc run bench/tpch/$q.flow --workers 1" \
    -n "$q, 2 workers" "target/release/flowc run bench/tpch/$q.flow --workers 2"
done
cat target/tpch-workers-q1.md target/tpch-workers-q3.md target/tpch-workers-q6.md
