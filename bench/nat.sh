#!/usr/bin/env bash
# Direct channels punched through NAT (scripts/nat-testbed: private hosts in network
# namespaces, each behind its own nft NAT and stateful firewall), in one run:
#   1. one punched connection's throughput between two private hosts against iperf3 through
#      the same two NATs (iperf3's server reached through a port forward on its NAT, which
#      punching does without);
#   2. the time to punch every pair of an all-to-all shuffle (the million-row join, group and
#      sort of the tests, its shuffle planned onto N functions) at 2, 4, 8 and 16 workers:
#      p50 and p99 from the run report, next to the planner's per-pair figure (`pairing_s`
#      of the `local` profile, or of `flowc calibrate`'s);
#   3. the 10-million-row shuffle of bench/shuffle.sh on 4 workers in 4 private hosts,
#      through punched channels and through storage (a local folder), with hyperfine.
# Needs root. Every namespace shares this machine's two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
for tool in hyperfine iperf3; do
  command -v "$tool" >/dev/null || { apt-get install -y -qq "$tool" >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq "$tool"); }
done
cargo build --release -q -p flow-cli
cargo build -q -p flow-runtime --example punched_throughput
flowc=$PWD/target/release/flowc
probe=$PWD/target/debug/examples/punched_throughput
bed() { scripts/nat-testbed run --flowc "$flowc" "$@"; }
out=target/bench-nat
mkdir -p "$out"

echo "## 1. One connection between two private hosts, 2 GB"
bed --hosts 2 -- bash -c '
set -euo pipefail
read -r h1 h2 <<<"$FLOW_NAT_HOSTS"; read -r r1 _ <<<"$FLOW_NAT_ROUTERS"; read -r p1 _ <<<"$FLOW_NAT_PUBLIC"
secret=$(python3 -c "import secrets; print(secrets.token_hex(32))")
'"$probe"' open "$FLOW_RENDEZVOUS" "$secret" > /dev/null &
sleep 0.3
ip netns exec "$h1" '"$probe"' answer "$FLOW_RENDEZVOUS" "$secret" > /dev/null &
sleep 0.3
echo "punched: $(ip netns exec "$h2" '"$probe"' dial "$FLOW_RENDEZVOUS" "$secret" 2000000000)"
# iperf3 needs its server reachable: forward port 5201 of the first NAT to its host.
ip netns exec "$r1" nft add table ip forward
ip netns exec "$r1" nft "add chain ip forward pre { type nat hook prerouting priority dstnat; }"
ip netns exec "$r1" nft add rule ip forward pre tcp dport 5201 dnat to 10.0.0.2
ip netns exec "$r1" nft insert rule inet firewall forward tcp dport 5201 accept
ip netns exec "$h1" iperf3 -s -1 > /dev/null &
sleep 0.3
ip netns exec "$h2" iperf3 -c "$p1" -n 2000M -J > /tmp/iperf-nat.json
python3 -c "import json; print(\"iperf3:  %.0f MB/s\" % (json.load(open(\"/tmp/iperf-nat.json\"))[\"end\"][\"sum_received\"][\"bits_per_second\"] / 8e6))"
kill %1 2>/dev/null || true
'

echo
echo "## 2. Punching every pair of an all-to-all shuffle"
source bench/million-rows.sh
cat > "$out/shuffle.flow" <<'FLOW'
let facts = load "facts.csv"
let dims = load "dims.csv"
let joined = facts | join dims on key | group name { n = count(), total = sum(value) } | sort name
save joined to "out/joined.csv"
FLOW
"$flowc" plan "$out/shuffle.flow" --channel direct --format json > "$out/plan.json"
# The planner's figure per pair, as `flowc calibrate` measures it on this machine.
"$flowc" calibrate --quick --output "$out/profile.toml" > /dev/null
echo "| workers | pairs punched | p50 | p99 | planned, every pair |"
echo "| --- | --- | --- | --- | --- |"
for n in 2 4 8 16; do
  python3 - "$out/plan.json" "$n" "$out/plan-$n.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
for s in plan["stages"]:
    if s["partitioned"]:
        s["functions"] = int(sys.argv[2])
json.dump(plan, open(sys.argv[3], "w"))
PY
  bed --hosts "$n" -- "$flowc" run "$out/shuffle.flow" --plan "$out/plan-$n.json" \
    --rendezvous 198.18.0.1:7400 --listen 198.18.0.1 --strict-channels \
    --report "$out/report-$n.json" > /dev/null 2>&1
  python3 - "$out/report-$n.json" "$out/profile.toml" "$n" <<'PY'
import json, sys, tomllib
r = json.load(open(sys.argv[1]))["punched"]
profile = tomllib.load(open(sys.argv[2], "rb"))
pairing, cores, n = profile["direct"]["pairing_s"], profile["compute"]["shared_vcpus"], int(sys.argv[3])
# planner/src/cost.rs `direct`: a consumer pairs with its n peers side by side, and every
# one of the n * n pairs is punched at once on the machine's shared cores.
planned = max(n * pairing, n * n * pairing / cores)
print("| %d | %d | %.1f ms | %.1f ms | %.1f ms |" % (n, r["connections"], r["p50_s"] * 1e3, r["p99_s"] * 1e3, planned * 1e3))
PY
done

echo
echo "## 3. The 10-million-row shuffle on 4 workers in 4 private hosts"
# The shuffle's data and program.
source bench/shuffle-program.sh
hyperfine --runs "$RUNS" --export-markdown "$out/shuffle.md" \
  -n punched "scripts/nat-testbed run --hosts 4 --flowc $flowc -- $flowc run $shuffle/shuffle.flow --workers 4 --channel direct --rendezvous 198.18.0.1:7400 --listen 198.18.0.1 --strict-channels" \
  -n storage "scripts/nat-testbed run --hosts 4 --flowc $flowc -- $flowc run $shuffle/shuffle.flow --workers 4 --channel storage --listen 198.18.0.1" \
  > /dev/null
cat "$out/shuffle.md"
