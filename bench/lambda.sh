#!/usr/bin/env bash
# flow on Lambda, emulated on this machine (scripts/lambda-emulator.py: moto for S3,
# cargo-lambda's Invoke and Runtime APIs, flowc processes as function instances), in one run:
#   1. per-invocation overhead: each task's time from sent to answered, less the time the
#      function spent on it (the run report's tasks), p50 and p99 over every task of a
#      million-row join/group/sort/union program on 8 functions per stage;
#   2. the 10-million-row shuffle of bench/shuffle.sh on 2 and 4 workers through storage:
#      worker processes with a local-folder store, the same with S3 on moto (the store's
#      cost alone), and Lambda functions through S3 on moto (--target lambda), with hyperfine.
# The emulator shares this machine's two cores with the coordinator and moto: the figures
# are the overheads of the protocol and the store, not Lambda's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq hyperfine); }
cargo build --release -q -p flow-cli
flowc=$PWD/target/release/flowc
out=target/bench-lambda
mkdir -p "$out"

# The shuffle's data and program.
source bench/shuffle-program.sh

# A million rows, as the tests make them.
source bench/million-rows.sh
cat > "$out/program.flow" <<'FLOW'
let facts = load "facts.csv"
let dims = load "dims.csv"
let joined = facts | join dims on key | group name { n = count(), total = sum(value) }
show joined | sort name
let both = (facts | filter key < 10 | select id, key)
  | union (facts | filter key >= 990 | select id, key)
  | group key { n = count(), low = min(id) }
show both | sort key
FLOW

coproc EMULATOR { exec python3 scripts/lambda-emulator.py --flowc "$flowc" --while-stdin --concurrency 16; }
read -r ready <&"${EMULATOR[0]}"
eval "$(python3 -c '
import json, shlex, sys
d = json.loads(sys.argv[1])
for k, v in d["env"].items(): print(f"export {k}={shlex.quote(v)}")
print("export FLOW_LAMBDA_KEY=" + d["key"])
print("export FLOW_LAMBDA_MEMORY_MB=1769")
' "$ready")"
store="s3://$FLOW_LAMBDA_BUCKET/runs"

# 1. Per-invocation overhead, over five runs.
rm -f "$out"/report-*.json
for i in 1 2 3 4 5; do
  "$flowc" run "$out/program.flow" --target lambda --store "$store" --workers 8 \
    --report "$out/report-$i.json" >/dev/null
done
python3 - "$out"/report-*.json <<'PY'
import json, sys
gaps = []
for path in sys.argv[1:]:
    for t in json.load(open(path))["tasks"]:
        if t.get("error") is None:
            gaps.append((t["end_s"] - t["start_s"] - t["busy_s"]) * 1e3)
gaps.sort()
pick = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))]
print(f"per-invocation overhead over {len(gaps)} invocations: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms")
open(sys.argv[1].rsplit("/", 1)[0] + "/overhead_s", "w").write(str(pick(0.5) / 1e3))
PY

# 2. The shuffle through S3 on moto against a local folder. `--workers N` is a bound the
#    planner may stay under (on Lambda without a rendezvous host it fuses the shuffle into
#    one function), so each row runs a saved plan with exactly N functions in every stage
#    that can be split and every exchange through storage: the same work each way.
exact_plan() { # TARGET N -> plan file
  local file="$out/shuffle-$1-$2.json"
  "$flowc" plan "$shuffle/shuffle.flow" --target "$1" --workers "$2" --channel storage --format json |
    python3 -c '
import json, sys
plan, n = json.load(sys.stdin), int(sys.argv[1])
for s in plan["stages"]:
    if s["partitioned"]:
        s["functions"] = n
for x in plan["exchanges"]:
    x["channel"] = "storage"
print(json.dumps(plan))' "$2" >"$file"
  echo "$file"
}
hyperfine --warmup 1 --runs "${RUNS:-3}" --export-markdown "$out/shuffle.md" \
  -n "2 workers, local folder" "$flowc run $shuffle/shuffle.flow --plan $(exact_plan local 2)" \
  -n "2 workers, S3 on moto" "$flowc run $shuffle/shuffle.flow --plan $(exact_plan local 2) --store $store" \
  -n "2 functions, S3 on moto" "$flowc run $shuffle/shuffle.flow --target lambda --store $store --plan $(exact_plan lambda 2)" \
  -n "4 workers, local folder" "$flowc run $shuffle/shuffle.flow --plan $(exact_plan local 4)" \
  -n "4 workers, S3 on moto" "$flowc run $shuffle/shuffle.flow --plan $(exact_plan local 4) --store $store" \
  -n "4 functions, S3 on moto" "$flowc run $shuffle/shuffle.flow --target lambda --store $store --plan $(exact_plan lambda 4)"
cat "$out/shuffle.md"

# 3. Predicted against measured stage times on the emulator. The functions run here, on
#    this machine's cores, and their store is moto: the profile is this machine's
#    (`flowc calibrate --quick`: kernels, shared cores, worker start-up) with the storage
#    figures measured in moto's bucket (`--store`), and as each task's overhead the
#    emulator's per-invocation overhead (the p50 of 1., fitted on program.flow). The check
#    is on the other programs.
"$flowc" calibrate --quick --store "$store" --output "$out/emulated.toml" >/dev/null
sed -i "s/^task_overhead_s = .*/task_overhead_s = $(cat "$out/overhead_s")/" "$out/emulated.toml"
rm -f "$out"/stages-*.json
i=0
for program in "$shuffle/shuffle.flow" examples/analytics.flow examples/events.flow examples/churn.flow; do
  for workers in 2 4; do
    i=$((i + 1))
    "$flowc" run "$program" --target lambda --store "$store" --workers "$workers" \
      --profile "$out/emulated.toml" --report "$out/stages-$i.json" >/dev/null
  done
done
python3 - "$out"/stages-*.json <<'PY'
import json, statistics, sys
errors = []
for path in sys.argv[1:]:
    for s in json.load(open(path))["stages"]:
        if s["attempts"] and s["runs_in"] == "workers" and s["predicted_s"]:
            errors.append(s["measured_s"] / s["predicted_s"] - 1)
within = sum(abs(e) <= 0.25 for e in errors)
print(f"stages run by functions: {len(errors)}; measured/predicted - 1: median {statistics.median(errors):+.0%}, "
      f"median |error| {statistics.median(abs(e) for e in errors):.0%}, within 25%: {within}/{len(errors)}")
PY
