#!/usr/bin/env bash
# Export overhead of OpenTelemetry, measured: the same open-loop load on a demo node with OTLP
# export off and on (to a do-nothing OTLP receiver, so the exporting side is what is measured),
# alternating off/on/off/on in one run. Prints one JSON line per run.
#
#   scripts/bench-otel-overhead.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-500}"
seconds="${2:-10}"
cargo build --release -q --bin centinela -p centinela-cli
cargo build --release -q -p centinela-telemetry --example otlp_sink
bin=target/release/centinela
sink_port=43170
target/release/examples/otlp_sink "127.0.0.1:${sink_port}" 2>/tmp/otlp-sink.log &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
for mode in off on off on; do
  if [ "$mode" = on ]; then
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:${sink_port}" OTEL_METRIC_EXPORT_INTERVAL=1000
  else
    unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_METRIC_EXPORT_INTERVAL
  fi
  "$bin" demo --quiet-sim --grpc 127.0.0.1:7480 --http 127.0.0.1:8480 2>/tmp/otel-demo-$mode.log &
  demo=$!
  sleep 2
  result=$(env -u OTEL_EXPORTER_OTLP_ENDPOINT "$bin" loadgen --addr http://127.0.0.1:7480 \
    --rate "$rate" --duration "$seconds" --json 2>/dev/null)
  echo "{\"export\":\"$mode\",\"result\":$result}"
  kill -TERM $demo; wait $demo || true
done
tail -n 1 /tmp/otlp-sink.log >&2
