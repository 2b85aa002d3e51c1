#!/usr/bin/env bash
# Channel throughput in one run: a direct channel against raw loopback TCP moving the same
# bytes, a storage hop (local-folder store) against a plain file write + read, each without
# compression and with LZ4 and ZSTD. MB=256 RUNS=5 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
# Built together with flowc so both share one feature set (and one build of DataFusion).
cargo build --release -q -p flow-cli -p flow-runtime --example channel_throughput
target/release/examples/channel_throughput
