# Sourced by the benchmarks that run the 10-million-row shuffle: sets $shuffle to its folder
# (made by bench/shuffle.sh when missing) and writes $shuffle/shuffle.flow there.
shuffle=target/bench-shuffle
if [ ! -f "$shuffle/facts.parquet" ]; then
  RUNS=1 bash bench/shuffle.sh >/dev/null
fi
cat > "$shuffle/shuffle.flow" <<'FLOW'
# Every row crosses the shuffle: 10,000,000 rows on 5,000,000 keys.
let facts = load "facts.parquet"
show facts | group key { total = sum(value) } | group { keys = count(), total = sum(total) }
FLOW
