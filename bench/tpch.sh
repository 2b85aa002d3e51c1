#!/usr/bin/env bash
# flowc against plain DataFusion on TPC-H Q1 and Q6, scale factor 1, in one run.
# Installs what it needs: tpchgen-cli (PyPI) to generate the data, hyperfine (apt) to time.
set -euo pipefail
cd "$(dirname "$0")/.."
data=bench/tpch/data
if [ ! -f "$data/lineitem.parquet" ]; then
  command -v tpchgen-cli >/dev/null || python3 -m pip install --quiet tpchgen-cli
  mkdir -p "$data"
  tpchgen-cli parquet -s 1 --tables lineitem --output-dir "$data"
fi
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq hyperfine); }
cargo build --release -q -p flow-cli -p flow-runtime --bins --example datafusion_sql
for q in q1 q6; do
  hyperfine --warmup 1 --runs "${RUNS:-10}" --export-markdown "target/tpch-$q.md" \
    -n "flowc $q" "target/release/flowc run bench/tpch/$q.flow" \
    -n "datafusion $q" "target/release/examples/datafusion_sql $data bench/tpch/$q.sql"
done
cat target/tpch-q1.md target/tpch-q6.md
