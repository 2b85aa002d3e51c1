#!/usr/bin/env bash
# The planner's predicted time of every example against the measured one, under the `local`
# profile calibrated on this machine (`flowc calibrate`, kept apart from the user's own in
# target/bench-config; delete target/bench-config to calibrate again). Each example runs
# RUNS times (default 5) on 2 worker processes with --report, in rounds; the table prints
# the prediction, the median and range of the measured times, and the error of the median.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
cargo build --release -q -p flow-cli
flowc=$PWD/target/release/flowc
export XDG_CONFIG_HOME=$PWD/target/bench-config
[ -f "$XDG_CONFIG_HOME/flow/local.toml" ] || "$flowc" calibrate
out=$PWD/target/predicted
mkdir -p "$out"
names=$(cd examples && ls *.flow | sed 's/\.flow$//')
# Round by round, every example once a round: a slow moment of the shared machine falls on
# all of them alike instead of on one example's runs.
for i in $(seq "$runs"); do
  for name in $names; do
    (cd examples && "$flowc" run "$name.flow" --workers 2 --report "$out/$name-$i.json" >/dev/null)
  done
done
echo "| example | predicted | measured (median of $runs) | measured range | error |"
echo "| --- | --- | --- | --- | --- |"
for name in $names; do
  python3 - "$name" "$out" "$runs" <<'PY'
import json, statistics, sys
name, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
reports = [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, runs + 1)]
measured = [r["measured_s"] for r in reports]
p, m = reports[0]["predicted_s"], statistics.median(measured)
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"| {name} | {ms(p)} | {ms(m)} | {ms(min(measured))} – {ms(max(measured))} | {(p - m) / m * 100:+.0f}% |")
PY
done
