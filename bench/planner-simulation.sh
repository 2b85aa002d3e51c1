#!/usr/bin/env bash
# The planner's cost model on the `aws` profile against FMI's measured latencies, the shape of
# parallel batch inference and a shuffle join at 2-64 functions (planner/examples/simulate.rs).
# Writes bench/planner-simulation.txt, which is committed; docs/benchmarks.md quotes it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p flow-planner --example simulate | tee bench/planner-simulation.txt
