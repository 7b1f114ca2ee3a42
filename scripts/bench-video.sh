#!/usr/bin/env bash
# Live video benchmark (docs/benchmarks.md, "Live video: node CPU and memory per stream and
# per viewer"): the node's video path (centinela-video: RTSP sessions with retina, the bounded
# broadcast, each viewer building its WebSocket messages) pulling GStreamer test cameras at
# SIZE, 30 frames/s, a key frame a second (services/video/examples/video_load.rs). The
# cameras run in processes of their own, so their H.264 encoding is not in the figures.
# Runs, in order: 1 stream × 1 viewer, 1 × VIEWERS, 2 × 1; then a whole node (console,
# actors, store, simulated ONVIF cameras) sending STREAMS streams to 2 headless WebSocket
# viewers each through /api/cameras/{id}/live.ws, against the same node idle
# (services/console/examples/video_node_load.rs; the cameras' ENCODERS processes share their
# encoders between sessions, see there).
#
#   scripts/bench-video.sh [VIEWERS] [SECONDS] [SIZE] [STREAMS] [ENCODERS]
#                                                   # defaults 15 20 1920x1080 15 1
#
# Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-{base,good,
# ugly} (scripts/test.sh installs them). Prints one line of key=value per run.
set -euo pipefail
cd "$(dirname "$0")/.."

viewers="${1:-15}"
seconds="${2:-20}"
size="${3:-1920x1080}"
streams="${4:-15}"
encoders="${5:-1}"

cargo build --release -q -p centinela-video --example video_load
E="${CARGO_TARGET_DIR:-target}/release/examples/video_load"

"$E" 1 1 "$seconds" "$size"
"$E" 1 "$viewers" "$seconds" "$size"
"$E" 2 1 "$seconds" "$size"

cargo build --release -q -p centinela-console --example video_node_load
N="${CARGO_TARGET_DIR:-target}/release/examples/video_node_load"
"$N" "$streams" 2 "$seconds" "$size" "$encoders"
