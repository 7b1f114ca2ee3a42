#!/usr/bin/env bash
# Camera benchmarks (docs/benchmarks.md, "Cameras: press → on_target, and live viewers"): a
# demo node driving 15 ONVIF cameras (the Lima scenario, every camera given a loopback ONVIF
# URL, every other one a preset token too), served by simulated cameras in a process of their
# own (services/devices/examples/camera_farm.rs), so the node's CPU is measured without the
# cameras' JPEG drawing. Runs, in order:
#
#   camera_views: the node's CPU with no view, 1 view of 1 camera, VIEWERS views of VIEWERS
#                 cameras, VIEWERS views of one camera (services/bench/examples/camera_views.rs)
#   camera_aim:   press → camera on_target against the cameras' mechanical move time
#                 (services/bench/examples/camera_aim.rs), PRESSES presses
#
#   scripts/bench-cameras.sh [VIEWERS] [SECONDS] [PRESSES]     # defaults 15 20 30
#
# Prints JSON lines. Needs python3 (free ports, the scenario). Everything it starts is killed on
# exit (BENCH_KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

viewers="${1:-15}"
seconds="${2:-20}"
presses="${3:-30}"

cargo build --release -q --bin centinela -p centinela-cli
cargo build --release -q -p centinela-bench --example camera_views --example camera_aim
cargo build --release -q -p centinela-devices --example camera_farm
C=target/release/centinela
E=target/release/examples

work=$(mktemp -d /tmp/centinela-bench-cameras.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-cameras: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The Lima scenario with a loopback ONVIF URL on a free port for each camera.
cameras=$(python3 - deploy/scenarios/lima-centro.toml "$work/scenario.toml" "$work/ports" <<'EOF'
import re, socket, sys
src, dst, ports_out = sys.argv[1:4]
text = open(src).read()
n = len(re.findall(r'^camera = \{', text, re.M))
socks = [socket.socket() for _ in range(n + 2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
ports = [s.getsockname()[1] for s in socks]
ids, it = [], iter(range(n))
def onvif(m):
    i = next(it)
    ids.append(re.search(r'id = "([^"]+)"', m.group(0)).group(1))
    url = f'http://127.0.0.1:{ports[i]}/onvif/device_service'
    preset = ', preset = "pole"' if i % 2 else ''
    return m.group(0)[:-2] + f', onvif = "{url}"{preset} }}'
text = re.sub(r'^camera = \{[^}]*\}', onvif, text, flags=re.M)
open(dst, "w").write(text)
open(ports_out, "w").write(f"{ports[n]} {ports[n + 1]}\n")
print(",".join(ids))
EOF
)
read -r grpc_port http_port <"$work/ports"

export CENTINELA_ONVIF_USER=bench CENTINELA_ONVIF_PASSWORD="bench-$RANDOM-$RANDOM"

"$E/camera_farm" "$work/scenario.toml" >"$work/farm.out" 2>"$work/farm.log" &
farm=$!
pids+=("$farm")
for _ in $(seq 100); do grep -q ready "$work/farm.out" && break; sleep 0.1; done
grep -q ready "$work/farm.out" || { cat "$work/farm.log" >&2; exit 1; }

"$C" demo --scenario "$work/scenario.toml" --quiet-sim \
  --grpc "127.0.0.1:$grpc_port" --http "127.0.0.1:$http_port" >"$work/node.log" 2>&1 &
node=$!
pids+=("$node")
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
# Let the node connect to every camera and settle.
sleep 5

"$E/camera_views" "127.0.0.1:$http_port" "$node" "$seconds" "$cameras" "$viewers" "$farm"
"$E/camera_aim" "http://127.0.0.1:$grpc_port" "$presses"
