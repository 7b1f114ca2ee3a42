#!/usr/bin/env bash
# Memory per attached device on one node (docs/benchmarks.md, "Memory per attached device"):
# one etcd and one `centinela start` node on loopback, a generated city of BUTTONS buttons (each
# with its camera) and BUTTONS/10 brigades, and `centinela devices --quiet-sim` playing every
# device. Prints one JSON line per phase, with the node's RSS:
#
#   ready     the node ready, every entity passivated
#   attached  every camera connected and every brigade available (seconds it took)
#   settled   MEM_SETTLE_S (default 200) seconds later: the buttons the first heartbeat woke
#             have passivated again (after 150 s at most), what is left is what the attached
#             devices hold
#
# The attached devices' share is (settled - ready) / (cameras + brigades).
#
#   scripts/bench-device-memory.sh [BUTTONS]        # default 20000
#
# BENCH_CENTINELA: another build of the binary (an older commit, to compare against).
# MEM_HEAPTRACK=1: runs the node under heaptrack and kills it at `settled`, so that what
# heaptrack reports as leaked is the heap the node held then; prints the largest sites. The
# binary must be built with the system allocator, which heaptrack sees (jemalloc it does not):
#   cargo build --release -p centinela-cli --no-default-features
#
# Needs etcd (Debian's etcd-server), python3, and for MEM_HEAPTRACK heaptrack. Everything it
# starts lives in a temporary directory and is killed on exit, also on failure (BENCH_KEEP=1
# keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

buttons="${1:-20000}"
brigades=$((buttons / 10))
settle_s="${MEM_SETTLE_S:-200}"

command -v etcd >/dev/null || { echo "bench-device-memory: needs etcd (apt-get install etcd-server)" >&2; exit 1; }
wrap=()
if [ -n "${MEM_HEAPTRACK:-}" ]; then
  command -v heaptrack >/dev/null || { echo "bench-device-memory: needs heaptrack (apt-get install heaptrack)" >&2; exit 1; }
fi
if [ -z "${BENCH_CENTINELA:-}" ]; then cargo build --release -q --bin centinela -p centinela-cli; fi
C="${BENCH_CENTINELA:-${CARGO_TARGET_DIR:-target}/release/centinela}"

work=$(mktemp -d /tmp/centinela-memory.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-device-memory: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "bench-device-memory: $*; logs in $work" >&2; BENCH_KEEP=1; exit 1; }

# free_ports, json, one_etcd, bench_credentials
source scripts/lib/bench-common.sh

read -r -a ports <<<"$(free_ports 4)"
one_etcd "$work" "${ports[0]}" "${ports[1]}"
pids+=($!)

scripts/gen-city.py "$work/city.toml" "$buttons" "$brigades" >/dev/null

bench_credentials
export CENTINELA_ADDR="http://127.0.0.1:${ports[2]}"

[ -n "${MEM_HEAPTRACK:-}" ] && wrap=(heaptrack -o "$work/heap")
CENTINELA_LOG_FORMAT=json "${wrap[@]}" "$C" start --node-id n1 --site site-a --grpc "127.0.0.1:${ports[2]}" \
  --http "127.0.0.1:${ports[3]}" --etcd "http://127.0.0.1:${ports[0]}" --scenario "$work/city.toml" \
  >"$work/n1.log" 2>&1 &
pids+=($!)
launched=$!
deadline=$(( $(date +%s) + 600 ))
until grep -q '"node ready"' "$work/n1.log"; do
  kill -0 "$launched" 2>/dev/null || fail "the node exited"
  [ "$(date +%s)" -lt "$deadline" ] || fail "the node is not ready after 600 s"
  sleep 1
done
# Under heaptrack the node is heaptrack's child.
node=$(pgrep -P "$launched" -f -- " start --node-id n1" || echo "$launched")
pids+=("$node")
sleep 10 # the last chunks of idle actors stop
rss() { awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$node/status"; }
machine="$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "{\"phase\":\"ready\",\"buttons\":$buttons,\"cameras\":$buttons,\"brigades\":$brigades,\"machine\":\"$machine\",\"date\":\"$(date -u +%FT%TZ)\",\"heaptrack\":$([ -n "${MEM_HEAPTRACK:-}" ] && echo true || echo false),\"rss_mib\":$(rss)}"

t0=$(date +%s)
RUST_LOG=info CENTINELA_LOG_FORMAT=json "$C" devices --quiet-sim --seed 1 >"$work/devices.log" 2>&1 &
pids+=($!)
devices=$!
peak=0
deadline=$(( t0 + 900 ))
while :; do
  sleep 5
  kill -0 "$devices" 2>/dev/null || fail "the device simulator exited"
  kill -0 "$node" 2>/dev/null || fail "the node exited"
  now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
  cameras=$("$C" cameras --json 2>/dev/null | json 'sum(bool(c["online"]) for c in d)' 2>/dev/null || echo 0)
  units=$("$C" units --json 2>/dev/null | json 'sum(u["status"] == "available" for u in d)' 2>/dev/null || echo 0)
  [ "$cameras" = "$buttons" ] && [ "$units" = "$brigades" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "only $cameras cameras and $units brigades attached after 900 s"
done
echo "{\"phase\":\"attached\",\"after_s\":$(( $(date +%s) - t0 )),\"cameras_connected\":$cameras,\"brigades_available\":$units,\"rss_mib\":$(rss),\"rss_peak_mib\":$peak}"

sleep "$settle_s"
kill -0 "$node" 2>/dev/null || fail "the node exited"
echo "{\"phase\":\"settled\",\"seconds\":$settle_s,\"rss_mib\":$(rss)}"

if [ -n "${MEM_HEAPTRACK:-}" ]; then
  # Killed outright: nothing is freed on the way out, so "leaked" is what the node held.
  kill -9 "$node"
  for _ in $(seq 120); do [ -n "$(ls "$work"/heap*.zst 2>/dev/null)" ] && ! kill -0 "$launched" 2>/dev/null && break; sleep 1; done
  heaptrack_print -f "$work"/heap*.zst --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --print-leaks 1 --peak-limit 1000 --sub-peak-limit 1000 >"$work/leaks.txt" 2>/dev/null
  # The largest sites, each as the first frames outside the standard library.
  python3 - "$work/leaks.txt" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
sites, i = [], 0
head = re.compile(r"^\s*([\d.]+)([KMG]?)B? leaked over (\d+) calls from:")
while i < len(lines):
    m = head.match(lines[i])
    if not m:
        i += 1
        continue
    size = float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
    frames, i = [], i + 1
    while i < len(lines) and not head.match(lines[i]):
        f = re.match(r"\s+at (\S+)", lines[i])
        if f and not re.search(r"/rustc/|raw_vec|alloc\.rs|boxed\.rs", f.group(1)):
            path = re.sub(r"^.*index\.crates\.io-[0-9a-f]+/|^.*/out/", "", f.group(1))
            frames.append(path.replace("/src/", "/", 1))
        i += 1
    sites.append((size, int(m.group(3)), frames))
print("heap held at settled, largest sites (MB, calls, first frames):")
for size, calls, frames in sorted(sites, key=lambda s: -s[0])[:25]:
    print(f"{size / 1e6:7.2f} {calls:9d}  " + " <- ".join(frames[:5]))
PY
  BENCH_KEEP=1
fi
