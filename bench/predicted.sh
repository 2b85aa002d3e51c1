#!/usr/bin/env bash
# The planner's predicted time of every example against the measured one, under the `local`
# profile calibrated on this machine (`flowc calibrate`, kept apart from the user's own in
# target/bench-config). Each example runs on 2 worker processes with --report; the table
# prints both times and the error.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p flow-cli
flowc=target/release/flowc
export XDG_CONFIG_HOME=$PWD/target/bench-config
[ -f "$XDG_CONFIG_HOME/flow/local.toml" ] || "$flowc" calibrate
echo "| example | predicted | measured | error |"
echo "| --- | --- | --- | --- |"
for f in examples/*.flow; do
  name=$(basename "$f" .flow)
  "$flowc" run "$f" --workers 2 --report "target/predicted-$name.json" >/dev/null
  python3 - "$name" "target/predicted-$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
p, m = r["predicted_s"], r["measured_s"]
print(f"| {sys.argv[1]} | {p*1000:.0f} ms | {m*1000:.0f} ms | {(p-m)/m*100:+.0f}% |")
PY
done
