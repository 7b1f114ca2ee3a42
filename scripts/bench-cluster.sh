#!/usr/bin/env bash
# Cluster benchmarks (docs/benchmarks.md): a three-member etcd and three `centinela start`
# nodes (two sites) on loopback, with a generated city (scripts/gen-city.py: BENCH_BUTTONS
# buttons with their cameras, default 1000; BENCH_BRIGADES brigades, default 200: enough that
# presses open new incidents rather than merge into open ones, and incidents do not wait for a
# free brigade), and `centinela loadgen` pressing (and closing each incident once assigned, so
# brigades free up). A brigade is available only while its terminal is live, so
# `centinela devices --units-only` plays the brigades' terminals (positions, acks; no button
# heartbeats, no cameras) and the scenarios wait until every brigade is available. Each
# scenario prints JSON lines; the baseline (raw etcd, the same write transaction a press makes,
# measured the same way) runs in the same invocation. steady also reports, per run, the CPU the
# etcd members and the nodes spent (cpu_ms) and the requests etcd handled (etcd_requests, from
# their /metrics), and, per press, the requests and watch events of the loadgen's run less those
# of an idle window just before it, scaled to the run's wall time (the terminals' own traffic:
# positions written every 2 s per brigade), divided by the presses sent (per_press).
#
#   scripts/bench-cluster.sh steady   [RATE] [SECONDS]   # loadgen vs raw etcd, same rate
#   scripts/bench-cluster.sh failover [RATE] [SECONDS]   # kill -9 of the leader mid-run
#   scripts/bench-cluster.sh sweep    [SECONDS]          # rate up until assigned p99 > 100 ms
#   scripts/bench-cluster.sh wave     [RATE] [SECONDS]   # load across the offline wave
#
# BENCH_WATCH=leader|other picks the node the loadgen watches through; BENCH_DEBUG=1 uses
# debug builds (see below).
#
# With no devices, every button falls silent at once and is marked offline 30-35 s after the
# nodes start: the "offline wave" (docs/benchmarks.md). steady, sweep and failover wait for it
# to pass before measuring; wave starts the load at once so that the wave falls inside it.
#
# Needs etcd (Debian's etcd-server) and python3 (JSON and free ports). Everything it starts
# lives in a temporary directory and is killed on exit (BENCH_KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${1:-steady}"
case "$scenario" in
  steady|failover) rate="${2:-200}"; seconds="${3:-20}" ;;
  wave) rate="${2:-50}"; seconds="${3:-60}" ;;
  sweep) seconds="${2:-10}" ;;
  *) echo "usage: scripts/bench-cluster.sh steady|failover|wave [RATE] [SECONDS] | sweep [SECONDS]" >&2; exit 2 ;;
esac

command -v etcd >/dev/null || { echo "bench-cluster: needs etcd (apt-get install etcd-server)" >&2; exit 1; }
# BENCH_DEBUG=1: debug builds (counts per press do not depend on speed; timings do).
if [ -n "${BENCH_DEBUG:-}" ]; then profile=(); out=debug; else profile=(--release); out=release; fi
target="${CARGO_TARGET_DIR:-target}"
cargo build "${profile[@]}" -q --bin centinela -p centinela-cli
cargo build "${profile[@]}" -q -p centinela-bench --example etcd_load
# BENCH_CENTINELA: another build of the binary (an older commit, to compare against).
C="${BENCH_CENTINELA:-$target/$out/centinela}"
LOAD=$target/$out/examples/etcd_load

work=$(mktemp -d /tmp/centinela-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-cluster: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# free_ports, json
source scripts/lib/bench-common.sh

# --- etcd: three members -------------------------------------------------------------------
read -r -a ports <<<"$(free_ports 12)"
cluster=""
for i in 0 1 2; do cluster+="e$i=http://127.0.0.1:${ports[$((3 + i))]},"; done
cluster="${cluster%,}"
endpoints=""
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$work/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:${ports[$i]}" --advertise-client-urls "http://127.0.0.1:${ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ports[$((3 + i))]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((3 + i))]}" \
    --initial-cluster "$cluster" --initial-cluster-state new --pre-vote \
    --grpc-keepalive-min-time 200ms --logger zap --log-level error >"$work/etcd-$i.log" 2>&1 &
  pids+=($!)
  endpoints+="http://127.0.0.1:${ports[$i]},"
done
endpoints="${endpoints%,}"

scripts/gen-city.py "$work/city.toml" "${BENCH_BUTTONS:-1000}" "${BENCH_BRIGADES:-200}"

# --- credentials (docs/security.md) --------------------------------------------------------
export CENTINELA_CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)
export CENTINELA_DEVICE_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
hash=$(echo 'bench password' | cargo run "${profile[@]}" -q -p centinela-console --example hash-password 2>/dev/null)
export CENTINELA_OPERATORS="bench:supervisor:$hash"
export CENTINELA_OPERATOR=bench CENTINELA_PASSWORD='bench password'

# --- three nodes, two sites; terminals -----------------------------------------------------
addrs=""
start_node() { # index id site
  local g=${ports[$((6 + $1))]} h=${ports[$((9 + $1))]}
  "$C" start --node-id "$2" --site "$3" --grpc "127.0.0.1:$g" --http "127.0.0.1:$h" \
    --etcd "$endpoints" --scenario "$work/city.toml" >"$work/$2.log" 2>&1 &
  pids+=($!)
  node_pid[$1]=$!
  addrs+="http://127.0.0.1:$g,"
}
declare -a node_pid
start_node 0 n1 site-a; start_node 1 n2 site-a; start_node 2 n3 site-b
addrs="${addrs%,}"
export CENTINELA_ADDR="$addrs"
for _ in $(seq 1 300); do
  members=$("$C" cluster --json 2>/dev/null | json 'len(d["members"]) if d.get("leader") else 0' 2>/dev/null || echo 0)
  [ "$members" = 3 ] && break
  sleep 0.1
done
[ "$members" = 3 ] || { echo "bench-cluster: the cluster did not form; logs in $work" >&2; trap - EXIT; exit 1; }

# The brigades' terminals: without a live terminal a brigade is offline and never assigned.
"$C" devices --quiet-sim --units-only --seed 1 >"$work/devices.log" 2>&1 &
pids+=($!)
brigades="${BENCH_BRIGADES:-200}"
available_units() { "$C" units --json 2>/dev/null | json 'sum(u["status"] == "available" for u in d)' 2>/dev/null || echo 0; }
for _ in $(seq 1 600); do
  [ "$(available_units)" = "$brigades" ] && break
  sleep 0.1
done
[ "$(available_units)" = "$brigades" ] || { echo "bench-cluster: the brigades did not come online; logs in $work" >&2; trap - EXIT; exit 1; }

offline_buttons() { "$C" buttons --json 2>/dev/null | json 'sum(b["status"] == "offline" for b in d)' 2>/dev/null || echo 0; }
if [ "$scenario" != wave ]; then
  for _ in $(seq 1 1200); do
    [ "$(offline_buttons)" = "${BENCH_BUTTONS:-1000}" ] && break
    sleep 0.1
  done
  [ "$(offline_buttons)" = "${BENCH_BUTTONS:-1000}" ] || { echo "bench-cluster: the offline wave did not complete; logs in $work" >&2; trap - EXIT; exit 1; }
fi

machine="$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "{\"scenario\":\"$scenario\",\"buttons\":${BENCH_BUTTONS:-1000},\"brigades\":${BENCH_BRIGADES:-200},\"machine\":\"$machine\",\"date\":\"$(date -u +%FT%TZ)\",\"etcd\":\"$(etcd --version | head -1)\"}"

etcd_open() { "$LOAD" "$endpoints" open "$1" "$2"; }
# BENCH_WATCH=leader|other: the node the loadgen watches (and presses) through, the first of
# its addresses: the leader's, whose dispatcher and feed share one store watch, or another's.
# Unset: n1, whichever it is.
watch_addrs() {
  local leader i
  [ -z "${BENCH_WATCH:-}" ] && { echo "$addrs"; return; }
  leader=$("$C" cluster --json | json 'd["leader"]')
  for i in 1 2 3; do
    if { [ "$BENCH_WATCH" = leader ] && [ "n$i" = "$leader" ]; } ||
      { [ "$BENCH_WATCH" = other ] && [ "n$i" != "$leader" ]; }; then
      echo "http://127.0.0.1:${ports[$((5 + i))]},$addrs"; return
    fi
  done
}
loadgen() { CENTINELA_ADDR=$(watch_addrs) "$C" loadgen --rate "$1" --duration "$2" --json 2>/dev/null; }
# CPU time (user + system, ms) the given processes have used so far: where a run's time goes.
cpu_ms() {
  local ticks=0 f
  for pid in "$@"; do read -r -a f <"/proc/$pid/stat" && ticks=$((ticks + f[13] + f[14])); done
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}
etcd_pids=("${pids[@]:0:3}")
# What the three etcd members have handled so far (their /metrics, summed): requests by gRPC
# method, watch events sent, and raft proposals committed (writes: the largest count of the
# three, as every member commits every proposal).
etcd_counts() {
  python3 - "$endpoints" <<'EOF'
import json, re, sys, urllib.request
counts = {"proposals": 0}
for url in sys.argv[1].split(","):
    for line in urllib.request.urlopen(url + "/metrics", timeout=5).read().decode().splitlines():
        if line.startswith("etcd_server_proposals_committed_total "):
            counts["proposals"] = max(counts["proposals"], float(line.split()[1]))
        m = re.match(r'grpc_server_handled_total\{grpc_code="[^"]*",grpc_method="(\w+)".*\} (\S+)', line)
        name, value = (m.group(1), m.group(2)) if m else (None, None)
        if line.startswith("etcd_debugging_mvcc_events_total "):
            name, value = "watch_events", line.split()[1]
        if name:
            counts[name] = counts.get(name, 0) + float(value)
print(json.dumps(counts))
EOF
}
# measured LABEL COMMAND...: the command's JSON, with the CPU etcd and the nodes spent on it
# (ms) and the etcd requests it caused.
measured() {
  local label=$1 e0 n0 c0 t0 out e1 n1 c1 t1 requests
  shift
  e0=$(cpu_ms "${etcd_pids[@]}") n0=$(cpu_ms "${node_pid[@]}") c0=$(etcd_counts) t0=$(date +%s%N)
  out=$("$@")
  e1=$(cpu_ms "${etcd_pids[@]}") n1=$(cpu_ms "${node_pid[@]}") c1=$(etcd_counts) t1=$(date +%s%N)
  requests=$(python3 -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(json.dumps({k: round(b[k]-a.get(k,0)) for k in sorted(b) if b[k]-a.get(k,0)}))' "$c0" "$c1")
  echo "{\"$label\":$out,\"wall_ms\":$(((t1 - t0) / 1000000)),\"cpu_ms\":{\"etcd\":$((e1 - e0)),\"nodes\":$((n1 - n0))},\"etcd_requests\":$requests}"
}

# An idle window: what the cluster and the terminals cost etcd with no presses.
idle() { sleep "$1"; echo '{}'; }

case "$scenario" in
  steady)
    # baseline, idle, system, baseline: the ratio uses the worse of the two baselines' p99;
    # per press, the system's etcd requests and watch events less the idle window's.
    measured etcd_txn etcd_open "$rate" "$seconds"
    quiet=$(measured idle idle "$seconds")
    echo "$quiet"
    run=$(measured centinela loadgen "$rate" "$seconds")
    echo "$run"
    python3 - "$quiet" "$run" <<'EOF'
import json, sys
idle, run = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sent = run["centinela"]["sent"]
# The idle window's counts scaled to the run's wall time (the run drains after its last press).
scale = run["wall_ms"] / idle["wall_ms"]
a, b = idle["etcd_requests"], run["etcd_requests"]
per = {k: round((b.get(k, 0) - scale * a.get(k, 0)) / sent, 2) for k in sorted(set(a) | set(b))}
print(json.dumps({"per_press": per, "sent": sent}))
EOF
    measured etcd_txn etcd_open "$rate" "$seconds"
    ;;
  failover)
    leader=$("$C" cluster --json | json 'd["leader"]')
    idx=$(( ${leader#n} - 1 ))
    half=$(python3 -c "print($seconds / 2)")
    ( sleep "$half"; date -u +%FT%T.%6NZ >"$work/killed-at"; kill -9 "${node_pid[$idx]}" ) &
    result=$(loadgen "$rate" "$seconds")
    wait $! 2>/dev/null || true
    after=$("$C" cluster --json | json 'd["leader"]')
    # From the new leader's log: when it started dispatching and its first assignment after
    # the kill (presses keep coming, so the first assignment is the end of the gap).
    gap=$(scripts/failover-gap.py "$work/killed-at" "$work/$after.log")
    echo "{\"killed_leader\":\"$leader\",\"at_s\":$half,\"new_leader\":\"$after\",\"gap\":$gap,\"centinela\":$result}"
    ;;
  wave)
    result=$(loadgen "$rate" "$seconds")
    echo "{\"offline_after\":$(offline_buttons),\"centinela\":$result}"
    ;;
  sweep)
    # Every rate first, then raw etcd at each rate's concurrency: a closed-loop etcd run (12k
    # writes, then one delete of them all) leaves etcd measurably slower for a while, which
    # would bill the next rate for the baseline's own load.
    declare -a rates results
    for r in ${BENCH_RATES:-25 50 75 100 125 150 200 300 400 600 800}; do
      result=$(loadgen "$r" "$seconds")
      rates+=("$r"); results+=("$result")
      p99=$(echo "$result" | json 'd["press_to_assigned_ms"]["p99"]')
      lost=$(echo "$result" | json 'd["lost"]')
      if python3 -c "import sys; sys.exit(0 if ($p99 > 100 or $lost > 0) else 1)"; then break; fi
    done
    for i in "${!rates[@]}"; do
      r=${rates[$i]} result=${results[$i]}
      # Little's law: presses in flight = rate x mean time to acknowledge (p50 as its estimate).
      conc=$(echo "$result" | json "max(1, round($r * d['press_to_ack_ms']['p50'] / 1000))")
      echo "{\"rate\":$r,\"centinela\":$result,\"etcd_txn_closed\":$("$LOAD" "$endpoints" closed "$conc" "$seconds")}"
    done
    ;;
esac
