#!/usr/bin/env bash
# The scale benchmark (docs/benchmarks.md, "Scale"): a generated city of BUTTONS buttons (each
# with its camera) and BRIGADES brigades as actors on one node, against empty ractor actors in
# the same run: RSS per actor, start-up time, and rebalancing time when a second node joins and
# leaves. Everything runs in-process (the embedded store served on loopback TCP); each part in
# its own child process. Prints one JSON line.
#
#   scripts/bench-scale.sh [BUTTONS] [BRIGADES] [SEED]     # defaults 100000 10000 7
#   scripts/bench-scale.sh wave [BUTTONS] [BRIGADES] [SEED]
#
# Needs ~3 GB of free memory at the default size; takes 1-2 minutes on 2 vCPUs. `wave` seeds
# the buttons online instead and waits until the node has marked every one offline (no
# device heartbeats): about 6 minutes at 100k buttons.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p centinela-bench --example scale
if [ "${1:-}" = wave ]; then
  exec target/release/examples/scale wave "${2:-100000}" "${3:-10000}" "${4:-7}"
fi
exec target/release/examples/scale "${1:-100000}" "${2:-10000}" "${3:-7}"
