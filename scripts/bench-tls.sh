#!/usr/bin/env bash
# TLS against plaintext (docs/benchmarks.md, "TLS"): press -> ack and press -> assigned with
# TLS on every hop against plaintext, same scenario and rate, in one invocation. Each run
# starts afresh: one etcd member, one `centinela start` node on a generated city
# (scripts/gen-city.py: BENCH_BUTTONS buttons with cameras, default 50; BENCH_BRIGADES
# brigades, default 30), `centinela devices --quiet-sim` attached (brigades are live and their
# terminals acknowledge assignments; a brigade without a live terminal is never assigned), and
# `centinela loadgen` pressing and closing each incident once assigned. Runs: plain, tls,
# plain (a baseline on each side of the TLS run; BENCH_ROUNDS=N repeats tls, plain N times).
# Prints one JSON line per run.
#
#   scripts/bench-tls.sh [RATE] [SECONDS]        # defaults 20 20
#
# tls = what issue 20 asks for: the node's gRPC and HTTP ports TLS only (a node certificate
# naming n1.node.centinela), the clients (loadgen, devices) trusting the city CA and presenting
# a client certificate, etcd on https with --client-cert-auth and RBAC on (the node is user
# centinela-node, read-write on /centinela/ only). Certificates are made here with openssl.
#
# BENCH_PROFILE=debug uses the debug build (default release): compare ratios, not absolutes.
# Needs etcd and etcdctl (Debian's etcd-server, etcd-client), openssl and python3. Everything
# lives in a temporary directory and is killed on exit (BENCH_KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

rate="${1:-20}"
seconds="${2:-20}"
buttons="${BENCH_BUTTONS:-50}"
brigades="${BENCH_BRIGADES:-30}"
profile="${BENCH_PROFILE:-release}"
for tool in etcd etcdctl openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench-tls: needs $tool" >&2; exit 1; }
done
build=()
[ "$profile" = release ] && build=(--release)
cargo build "${build[@]}" -q --bin centinela -p centinela-cli
C="${CARGO_TARGET_DIR:-target}/$profile/centinela"

work=$(mktemp -d /tmp/centinela-bench-tls.XXXXXX)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_all
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-tls: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# free_ports, json
source scripts/lib/bench-common.sh
# cpu_ms ETCD NODE DEVICES: their CPU time so far as {"etcd":..,"node":..,"devices":..}.
cpu_ms() {
  local names=(etcd node devices) out="" i=0 pid f
  for pid in "$@"; do
    read -r -a f <"/proc/$pid/stat"
    out+="\"${names[$i]}\":$(((f[13] + f[14]) * 1000 / $(getconf CLK_TCK))),"
    i=$((i + 1))
  done
  echo "{${out%,}}"
}

# --- certificates (docs/operations.md, "Certificates" and "etcd certificates and users") ----
pki="$work/pki"
mkdir -p "$pki"
ca() { # NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.pem" 2>/dev/null
}
leaf() { # NAME CA CN SUBJECT-ALT-NAMES
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
    -days 2 -out "$pki/$1.pem" -extfile <(printf "subjectAltName=%s" "$4") 2>/dev/null
}
ca city "Centinela bench city CA"
leaf n1 city n1 "DNS:n1.node.centinela,DNS:localhost,IP:127.0.0.1"
leaf client city bench "DNS:bench.client.centinela"
ca etcd-ca "Centinela bench etcd CA"
leaf etcd-server etcd-ca etcd "DNS:localhost,IP:127.0.0.1"
leaf root etcd-ca root "DNS:root"
leaf node-etcd etcd-ca centinela-node "DNS:centinela-node"

scripts/gen-city.py "$work/city.toml" "$buttons" "$brigades"

# --- credentials (docs/security.md): the same in both modes ---------------------------------
export CENTINELA_CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)
export CENTINELA_DEVICE_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
hash=$(echo 'bench password' | cargo run "${build[@]}" -q -p centinela-console --example hash-password 2>/dev/null)
export CENTINELA_OPERATORS="bench:supervisor:$hash"
export CENTINELA_OPERATOR=bench CENTINELA_PASSWORD='bench password'

machine="$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "{\"benchmark\":\"tls\",\"rate\":$rate,\"seconds\":$seconds,\"buttons\":$buttons,\"brigades\":$brigades,\"profile\":\"$profile\",\"machine\":\"$machine\",\"date\":\"$(date -u +%FT%TZ)\",\"etcd\":\"$(etcd --version | head -1)\"}"

# run MODE: a fresh etcd, node and devices in MODE (plain|tls); prints loadgen's JSON.
run() {
  local mode=$1 dir ports scheme etcd_tls=() etcdctl=() node_env=() client_env=()
  dir=$(mktemp -d "$work/$mode.XXXX")
  read -r -a ports <<<"$(free_ports 4)"
  scheme=http
  if [ "$mode" = tls ]; then
    scheme=https
    etcd_tls=(--client-cert-auth --trusted-ca-file "$pki/etcd-ca.pem"
      --cert-file "$pki/etcd-server.pem" --key-file "$pki/etcd-server.key")
    etcdctl=(--cacert "$pki/etcd-ca.pem" --cert "$pki/root.pem" --key "$pki/root.key")
    node_env=(CENTINELA_TLS_CERT="$pki/n1.pem" CENTINELA_TLS_KEY="$pki/n1.key"
      CENTINELA_TLS_CA="$pki/city.pem" CENTINELA_ETCD_CA="$pki/etcd-ca.pem"
      CENTINELA_ETCD_CERT="$pki/node-etcd.pem" CENTINELA_ETCD_KEY="$pki/node-etcd.key")
    client_env=(CENTINELA_TLS_CA="$pki/city.pem" CENTINELA_TLS_CLIENT_CERT="$pki/client.pem"
      CENTINELA_TLS_CLIENT_KEY="$pki/client.key")
  fi
  local etcd_url="$scheme://127.0.0.1:${ports[0]}"
  etcd --name e0 --data-dir "$dir/etcd" "${etcd_tls[@]}" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:${ports[1]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[1]}" \
    --initial-cluster "e0=http://127.0.0.1:${ports[1]}" --initial-cluster-state new \
    --grpc-keepalive-min-time 200ms --logger zap --log-level error >"$dir/etcd.log" 2>&1 &
  pids+=($!)
  local ctl=(env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" "${etcdctl[@]}")
  for _ in $(seq 1 100); do "${ctl[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$mode" = tls ]; then
    # RBAC as docs/operations.md sets it up: the node may touch /centinela/ only.
    "${ctl[@]}" role add centinela-node >/dev/null
    "${ctl[@]}" role grant-permission --prefix=true centinela-node readwrite /centinela/ >/dev/null
    "${ctl[@]}" user add centinela-node --no-password >/dev/null
    "${ctl[@]}" user grant-role centinela-node centinela-node >/dev/null
    "${ctl[@]}" user add root --no-password >/dev/null
    "${ctl[@]}" role add root >/dev/null
    "${ctl[@]}" user grant-role root root >/dev/null
    "${ctl[@]}" auth enable >/dev/null
  fi
  env "${node_env[@]}" "$C" start --node-id n1 --site site-a \
    --grpc "127.0.0.1:${ports[2]}" --http "127.0.0.1:${ports[3]}" \
    --etcd "$etcd_url" --scenario "$work/city.toml" >"$dir/n1.log" 2>&1 &
  pids+=($!)
  export CENTINELA_ADDR="$scheme://127.0.0.1:${ports[2]}"
  local leader=""
  for _ in $(seq 1 600); do
    leader=$(env "${client_env[@]}" "$C" cluster --json 2>/dev/null | json 'd["leader"]' 2>/dev/null || true)
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "bench-tls: the $mode node did not lead; logs in $work" >&2; BENCH_KEEP=1; exit 1; }
  env "${client_env[@]}" RUST_LOG=warn "$C" devices --quiet-sim >"$dir/devices.log" 2>&1 &
  pids+=($!)
  local online=0
  for _ in $(seq 1 600); do
    online=$(env "${client_env[@]}" "$C" cameras --json 2>/dev/null | json 'sum(c["online"] is True for c in d)' 2>/dev/null || echo 0)
    [ "$online" = "$buttons" ] && break
    sleep 0.1
  done
  [ "$online" = "$buttons" ] || { echo "bench-tls: the $mode devices did not connect; logs in $work" >&2; BENCH_KEEP=1; exit 1; }
  # CPU time (user + system, ms) of etcd, the node and the devices during the load: on a
  # shared machine, what TLS costs shows here even when other work blurs the latencies.
  local result before after
  before=$(cpu_ms "${pids[@]}")
  result=$(env "${client_env[@]}" "$C" loadgen --rate "$rate" --duration "$seconds" --json 2>/dev/null)
  after=$(cpu_ms "${pids[@]}")
  echo "{\"mode\":\"$mode\",\"centinela\":$result,\"cpu_ms\":$(python3 -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(json.dumps({k: b[k]-a[k] for k in b}))' "$before" "$after"),\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  stop_all
}

run plain
for _ in $(seq 1 "${BENCH_ROUNDS:-1}"); do
  run tls
  run plain
done
