#!/usr/bin/env bash
# Run by tests/nat.rs inside the NAT test bed: the Lambda emulator on the public host (its
# function instances placed in the private hosts by FLOW_WORKER_LAUNCHER), a deploy, and a
# run on Lambda with direct channels through the test bed's rendezvous host; the coordinator
# listens on loopback only, so the functions punch their control connections too. Prints how many
# instances the test bed placed.
#   nat-lambda.sh FLOWC PROGRAM REPORT WORKERS
set -euo pipefail
flowc=$1 program=$2 report=$3 workers=$4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state=$(mktemp -d)
python3 "$here/../../scripts/lambda-emulator.py" --flowc "$flowc" --host 198.18.0.1 \
    >"$state/ready.json" 2>"$state/log" &
emulator=$!
trap 'kill $emulator 2>/dev/null; wait $emulator 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1200); do
    [ -s "$state/ready.json" ] && break
    kill -0 $emulator 2>/dev/null || { cat "$state/log" >&2; exit 1; }
    sleep 0.1
done
eval "$(python3 -c 'import json, shlex, sys
for k, v in json.load(open(sys.argv[1]))["env"].items():
    print(f"export {k}={shlex.quote(v)}")' "$state/ready.json")"
"$flowc" deploy --role "$FLOW_LAMBDA_ROLE" --bucket "$FLOW_LAMBDA_BUCKET" >/dev/null
"$flowc" run "$program" --target lambda --store "s3://$FLOW_LAMBDA_BUCKET/runs" \
    --workers "$workers" --channel direct --strict-channels \
    --rendezvous 198.18.0.1:7400 --report "$report"
echo "placed $(cat "$FLOW_NAT_STATE/next") instances"
