#!/usr/bin/env bash
# The scale benchmark (docs/benchmarks.md, "Scale"): a generated city of BUTTONS buttons (each
# with its camera) and BRIGADES brigades as actors on one node, against empty ractor actors in
# the same run: RSS per actor, start-up time, and rebalancing time when a second node joins and
# leaves. Everything runs in-process (the embedded store served on loopback TCP); each part in
# its own child process. Prints one JSON line.
#
#   scripts/bench-scale.sh [BUTTONS] [BRIGADES] [SEED]     # defaults 100000 10000 7
#
# Needs ~3 GB of free memory at the default size; takes 1-2 minutes on 2 vCPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p centinela-bench --example scale
exec target/release/examples/scale "${1:-100000}" "${2:-10000}" "${3:-7}"
