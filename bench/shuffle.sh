#!/usr/bin/env bash
# A 10-million-row hash shuffle (a grouping on 5,000,000 keys) in one process and on 1, 2 and
# 4 worker processes over each channel, timed with hyperfine (apt) in one run. The data is
# generated here and converted to Parquet by flowc itself.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/bench-shuffle
mkdir -p "$dir"
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq hyperfine); }
cargo build --release -q -p flow-cli
flowc=target/release/flowc
if [ ! -f "$dir/facts.parquet" ]; then
  awk 'BEGIN { print "id,key,value"; for (i = 0; i < 10000000; i++) printf "%d,%d,%d\n", i, (i * 7919) % 5000000, (i * 31) % 10007 }' > "$dir/facts.csv"
  printf 'let facts = load "facts.csv"\nsave facts to "facts.parquet"\n' > "$dir/convert.flow"
  "$flowc" run "$dir/convert.flow"
  rm "$dir/facts.csv"
fi
cat > "$dir/shuffle.flow" <<'FLOW'
# Every row crosses the shuffle: 10,000,000 rows on 5,000,000 keys.
let facts = load "facts.parquet"
show facts | group key { total = sum(value) } | group { keys = count(), total = sum(total) }
FLOW
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-markdown target/bench-shuffle.md \
  -n "one process" "$flowc run $dir/shuffle.flow" \
  -n "1 worker, direct" "$flowc run $dir/shuffle.flow --workers 1 --channel direct" \
  -n "2 workers, direct" "$flowc run $dir/shuffle.flow --workers 2 --channel direct" \
  -n "4 workers, direct" "$flowc run $dir/shuffle.flow --workers 4 --channel direct" \
  -n "2 workers, storage" "$flowc run $dir/shuffle.flow --workers 2 --channel storage" \
  -n "4 workers, storage" "$flowc run $dir/shuffle.flow --workers 4 --channel storage"
cat target/bench-shuffle.md
