#!/usr/bin/env bash
# Scale on three nodes with devices attached (docs/benchmarks.md, "Scale on three nodes with
# devices attached"): one etcd and three `centinela start` nodes (two sites) on loopback, a
# generated city (scripts/gen-city.py: BUTTONS buttons, each with its camera, and BRIGADES
# brigades), and `centinela devices --quiet-sim` playing every device: each button heartbeats
# every 10 s, each camera holds its command stream, each brigade's terminal holds its
# assignment stream and reports its position every second. Prints one JSON line per phase:
#
#   startup   every node ready with its share started (and the idle ones passivated):
#             seconds from the nodes' start, RSS of each node and in all
#   attached  how many brigades are available, cameras connected and buttons online, and how
#             long it took (the phase ends at SCALE_ATTACH_S, default 900 s, even if short)
#   steady    after SCALE_STEADY_S (default 60) more seconds of heartbeats: RSS per node and in
#             all, heartbeats/s absorbed (the simulator's rounds: heartbeats the nodes answered
#             in the window, per second) and a round's length
#   load      `centinela loadgen` at SCALE_RATE presses/s (50) for SCALE_SECONDS (60) during
#             it: press → ack and press → assigned p50/p99, the largest RSS seen
#   rebalance kill -9 of a node that does not lead, SCALE_KILL_AT_S (10) into a loadgen run of
#             SCALE_KILL_RUN_S (40): until each survivor logs that it owns its share of two
#             members, the presses lost (a press retries for 10 s, so a press to the dead
#             node's buttons is lost only if its buttons stay unserved that long), the
#             survivors' RSS after
#   leases    how many times each node lost its session lease over the whole run
#
# Each line has the load average (/proc/loadavg) at the time: the machine may be shared. The
# first four have etcd_requests: the Range and Txn requests etcd handled during the phase (the
# attach phase's include its own polls' lists, three paged reads of the inventory every 20 s).
#
#   scripts/bench-scale-cluster.sh [BUTTONS] [BRIGADES]   # defaults 100000 10000
#
# Needs etcd (Debian's etcd-server) and python3. Everything it starts lives in a temporary
# directory and is killed on exit, also on failure (BENCH_KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

buttons="${1:-100000}"
brigades="${2:-10000}"
attach_s="${SCALE_ATTACH_S:-900}"
steady_s="${SCALE_STEADY_S:-60}"
rate="${SCALE_RATE:-50}"
seconds="${SCALE_SECONDS:-60}"
kill_at_s="${SCALE_KILL_AT_S:-10}"
kill_run_s="${SCALE_KILL_RUN_S:-40}"

command -v etcd >/dev/null || { echo "bench-scale-cluster: needs etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build --release -q --bin centinela -p centinela-cli
target="${CARGO_TARGET_DIR:-target}"
# BENCH_CENTINELA: another build of the binary (an older commit, to compare against).
C="${BENCH_CENTINELA:-$target/release/centinela}"

work=$(mktemp -d /tmp/centinela-scale.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-scale-cluster: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "bench-scale-cluster: $*; logs in $work" >&2; BENCH_KEEP=1; exit 1; }

# free_ports, json, one_etcd, bench_credentials
source scripts/lib/bench-common.sh

# --- one etcd ------------------------------------------------------------------------------
read -r -a ports <<<"$(free_ports 8)"
one_etcd "$work" "${ports[0]}" "${ports[1]}"
pids+=($!)
etcd_pid=$!
endpoints="http://127.0.0.1:${ports[0]}"

scripts/gen-city.py "$work/city.toml" "$buttons" "$brigades"

# --- credentials (docs/security.md) --------------------------------------------------------
bench_credentials

# --- three nodes, two sites ----------------------------------------------------------------
declare -a node_pid node_id http_port grpc_port
addrs=""
start_node() { # index id site
  local g=${ports[$((2 + $1))]} h=${ports[$((5 + $1))]}
  CENTINELA_LOG_FORMAT=json "$C" start --node-id "$2" --site "$3" --grpc "127.0.0.1:$g" \
    --http "127.0.0.1:$h" --etcd "$endpoints" --scenario "$work/city.toml" >"$work/$2.log" 2>&1 &
  pids+=($!)
  node_pid[$1]=$!
  node_id[$1]=$2
  http_port[$1]=$h
  grpc_port[$1]=$g
  addrs+="http://127.0.0.1:$g,"
}
t_start=$(date +%s.%N)
start_node 0 n1 site-a; start_node 1 n2 site-a; start_node 2 n3 site-b
addrs="${addrs%,}"
export CENTINELA_ADDR="$addrs"

now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' ','; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# {"n1":MiB,...,"all":MiB} over the live nodes.
rss_json() {
  local out="" all=0 kb i
  for i in 0 1 2; do
    kill -0 "${node_pid[$i]}" 2>/dev/null || continue
    kb=$(rss_kb "${node_pid[$i]}")
    all=$((all + kb))
    out+="\"${node_id[$i]}\":$((kb / 1024)),"
  done
  echo "{${out}\"all\":$((all / 1024))}"
}
# {"n1":N,...}: established TCP connections to each live node's gRPC port (devices, clients,
# peers): whether the devices' streams share their connections.
conns_json() {
  local out="" i
  for i in 0 1 2; do
    kill -0 "${node_pid[$i]}" 2>/dev/null || continue
    out+="\"${node_id[$i]}\":$(ss -Htn state established "( sport = :${grpc_port[$i]} )" 2>/dev/null | wc -l),"
  done
  echo "{${out%,}}"
}
ready() { python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "http://127.0.0.1:$1/readyz" 2>/dev/null; }

# Every node ready once (its "node ready" line): a node may turn unready again while the
# later ones join and the shares move; /readyz now is reported alongside.
deadline=$(( $(date +%s) + 600 ))
for i in 0 1 2; do
  until grep -q '"node ready"' "$work/${node_id[$i]}.log"; do
    kill -0 "${node_pid[$i]}" 2>/dev/null || fail "node ${node_id[$i]} exited"
    [ "$(date +%s)" -lt "$deadline" ] || fail "node ${node_id[$i]} not ready after 600 s"
    sleep 1
  done
done
startup_s=$(since "$t_start")
sleep 5 # settle: the last chunks of idle actors stop
ready_now() {
  local out="" i
  for i in 0 1 2; do
    kill -0 "${node_pid[$i]}" 2>/dev/null || continue
    if ready "${http_port[$i]}"; then out+="\"${node_id[$i]}\":true,"; else out+="\"${node_id[$i]}\":false,"; fi
  done
  echo "{${out%,}}"
}
# "RANGES TXNS": the Range and Txn requests etcd has handled since it started (its
# grpc_server_handled_total, every code), and etcd_json: those since the previous phase.
etcd_counts() {
  python3 - "$endpoints/metrics" <<'PY' 2>/dev/null || echo "0 0"
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
sums = {"Range": 0, "Txn": 0}
for line in text.splitlines():
    if line.startswith("grpc_server_handled_total{"):
        method = re.search(r'grpc_method="(\w+)"', line)
        if method and method.group(1) in sums:
            sums[method.group(1)] += int(float(line.rsplit(" ", 1)[1]))
print(sums["Range"], sums["Txn"])
PY
}
etcd_prev="0 0"
etcd_json() { # previous now
  local r0 x0 r1 x1
  read -r r0 x0 <<<"$1"; read -r r1 x1 <<<"$2"
  echo "{\"range\":$((r1 - r0)),\"txn\":$((x1 - x0))}"
}
etcd_phase() { local now; now=$(etcd_counts); etcd_delta=$(etcd_json "$etcd_prev" "$now"); etcd_prev=$now; }
machine="$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
etcd_phase
echo "{\"phase\":\"startup\",\"buttons\":$buttons,\"cameras\":$buttons,\"brigades\":$brigades,\"machine\":\"$machine\",\"date\":\"$(date -u +%FT%TZ)\",\"startup_s\":$startup_s,\"ready_now\":$(ready_now),\"rss_mib\":$(rss_json),\"etcd_rss_mib\":$(($(rss_kb $etcd_pid) / 1024)),\"etcd_requests\":$etcd_delta,\"loadavg\":[$(loadavg)]}"

# --- every device attached -----------------------------------------------------------------
t_devices=$(now)
RUST_LOG=info CENTINELA_LOG_FORMAT=json "$C" devices --quiet-sim --seed 1 >"$work/devices.log" 2>&1 &
pids+=($!)
devices_pid=$!
counts() {
  local units cameras online
  units=$("$C" units --json 2>/dev/null | json 'sum(u["status"] == "available" for u in d)' 2>/dev/null || echo 0)
  cameras=$("$C" cameras --json 2>/dev/null | json 'sum(bool(c["online"]) for c in d)' 2>/dev/null || echo 0)
  online=$("$C" buttons --json 2>/dev/null | json 'sum(b["status"] == "online" for b in d)' 2>/dev/null || echo 0)
  echo "$units $cameras $online"
}
deadline=$(( $(date +%s) + attach_s ))
# Each poll lists every button and camera (a 100,000-button list is a few MB of JSON to build
# and parse): every 5 s at 10,000, less often above, so the poll is not a load of its own.
poll_s=$(( buttons > 20000 ? 20 : 5 ))
while :; do
  kill -0 "$devices_pid" 2>/dev/null || fail "the device simulator exited"
  read -r units cameras online <<<"$(counts)"
  [ "$units" = "$brigades" ] && [ "$cameras" = "$buttons" ] && [ "$online" = "$buttons" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep "$poll_s"
done
# Why the simulated devices' channels ended during the attach, summed from the simulator's
# 10-second counts: refused by a node's attach admission, redirected to the owner, connection
# declared dead (keep-alive), deadlines, cancellations, other transport errors.
ended() {
  python3 - "$work/devices.log" <<'EOF'
import json, sys
total = {}
for line in open(sys.argv[1]):
    try:
        fields = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if fields.get("message") != "devices: channels ended":
        continue
    for cause, n in fields.items():
        if cause != "message":
            total[cause] = total.get(cause, 0) + n
print(json.dumps(total))
EOF
}
etcd_phase
echo "{\"phase\":\"attached\",\"after_s\":$(since "$t_devices"),\"channels_ended\":$(ended),\"brigades_available\":$units,\"cameras_connected\":$cameras,\"buttons_online\":$online,\"ready_now\":$(ready_now),\"grpc_connections\":$(conns_json),\"rss_mib\":$(rss_json),\"devices_rss_mib\":$(($(rss_kb $devices_pid) / 1024)),\"etcd_requests\":$etcd_delta,\"loadavg\":[$(loadavg)]}"

# --- steady: heartbeats --------------------------------------------------------------------
# The simulator's rounds that ended in [FROM, TO] (epoch seconds): heartbeats answered per
# second, failures, those a node sent on to the button's owner, and the rounds' lengths.
heartbeats() {
  python3 - "$work/devices.log" "$1" "$2" <<'EOF'
import datetime, json, sys
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
sent = failed = redirected = 0
took = []
for line in open(path):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    fields = entry.get("fields", {})
    if fields.get("message") != "devices: heartbeat round":
        continue
    at = datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
    if start <= at <= end:
        sent += fields["sent"]
        failed += fields["failed"]
        redirected += fields.get("redirected", 0)
        took.append(fields["took_ms"])
print(json.dumps({"per_s": round(sent / (end - start)), "failed": failed,
                  "redirected": redirected, "rounds": len(took),
                  "round_ms": {"min": min(took, default=None), "max": max(took, default=None)}}))
EOF
}
t0=$(now)
sleep "$steady_s"
t1=$(now)
etcd_phase
echo "{\"phase\":\"steady\",\"seconds\":$steady_s,\"heartbeats\":$(heartbeats "$t0" "$t1"),\"offered_per_s\":$((buttons / 10)),\"ready_now\":$(ready_now),\"rss_mib\":$(rss_json),\"etcd_rss_mib\":$(($(rss_kb $etcd_pid) / 1024)),\"devices_rss_mib\":$(($(rss_kb $devices_pid) / 1024)),\"etcd_requests\":$etcd_delta,\"loadavg\":[$(loadavg)]}"

# --- load: presses during it ---------------------------------------------------------------
# The largest total RSS of the nodes, sampled every second while the load runs.
watch_rss() {
  local peak=0 all
  while :; do
    all=$(rss_json | json 'd["all"]')
    [ "$all" -gt "$peak" ] && peak=$all && echo "$peak" >"$work/rss-peak"
    sleep 1
  done
}
echo 0 >"$work/rss-peak"
watch_rss &
watcher=$!
pids+=($watcher)
t0=$(now)
# The load generator's own log (a press a node refused, and why) is kept with the others.
result=$("$C" loadgen --rate "$rate" --duration "$seconds" --json 2>"$work/loadgen.log" || echo '{"error":"loadgen failed (could it list the buttons?)"}')
t1=$(now)
kill "$watcher" 2>/dev/null || true
etcd_phase
echo "{\"phase\":\"load\",\"rate\":$rate,\"seconds\":$seconds,\"centinela\":$result,\"heartbeats\":$(heartbeats "$t0" "$t1"),\"rss_mib\":$(rss_json),\"rss_all_peak_mib\":$(cat "$work/rss-peak"),\"etcd_requests\":$etcd_delta,\"loadavg\":[$(loadavg)]}"

# --- rebalance: kill -9 of a node that does not lead ---------------------------------------
leader=$("$C" cluster --json | json 'd["leader"]')
victim=2
[ "${node_id[2]}" = "$leader" ] && victim=1
"$C" loadgen --rate "$rate" --duration "$kill_run_s" --json >"$work/kill-run.json" 2>"$work/kill-run.log" &
loadgen=$!
pids+=($loadgen)
sleep "$kill_at_s"
killed_at=$(date -u +%FT%T.%6NZ)
kill -9 "${node_pid[$victim]}"
# How long after the kill each survivor logged that it owns its share of two members, and
# what the victim owned (its last such line).
rebalanced() {
  python3 - "$killed_at" "$work/${node_id[$victim]}.log" "$@" <<'EOF'
import datetime, json, sys
def parse(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
def shares(path):
    for line in open(path):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", {})
        if fields.get("message") == "owning my share":
            yield parse(entry["timestamp"]), fields
killed = parse(sys.argv[1])
victim = None
for at, fields in shares(sys.argv[2]):
    if at < killed:
        victim = {k: fields[k] for k in ("buttons", "cameras", "brigades")}
out = {"victim_owned": victim}
for path in sys.argv[3:]:
    after = [(at, f) for at, f in shares(path) if at >= killed and f.get("members") == 2]
    name = path.rsplit("/", 1)[-1].removesuffix(".log")
    out[name] = None if not after else {
        "after_ms": round((after[0][0] - killed).total_seconds() * 1000),
        "owns": {k: after[0][1][k] for k in ("buttons", "cameras", "brigades")},
    }
print(json.dumps(out))
EOF
}
survivors=()
for i in 0 1 2; do [ "$i" = "$victim" ] || survivors+=("$work/${node_id[$i]}.log"); done
wait "$loadgen" || true
echo "{\"phase\":\"rebalance\",\"killed\":\"${node_id[$victim]}\",\"leader\":\"$leader\",\"at_s\":$kill_at_s,\"shares\":$(rebalanced "${survivors[@]}"),\"centinela\":$(cat "$work/kill-run.json" | grep . || echo '{"error":"loadgen failed"}'),\"rss_mib\":$(rss_json),\"loadavg\":[$(loadavg)]}"

# --- session leases lost over the whole run, per node (its "session lease lost" lines) -------
losses=""
for i in 0 1 2; do
  losses+="\"${node_id[$i]}\":$(grep -c 'session lease lost' "$work/${node_id[$i]}.log" || true),"
done
echo "{\"phase\":\"leases\",\"lost\":{${losses%,}},\"loadavg\":[$(loadavg)]}"
