# Helpers shared by the benchmark scripts (sourced, not run).

# free_ports N: N free TCP ports on loopback, space-separated.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# json EXPR: evaluates EXPR with `d` bound to the JSON document on stdin.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

# one_etcd DIR CLIENT_PORT PEER_PORT: a one-member etcd on loopback, its data and log in DIR,
# started in the background ($! is its pid): an 8 GiB quota for a city of 100,000 buttons, and
# HTTP/2 keep-alive pings allowed every 200 ms (the nodes ping every 500 ms).
one_etcd() {
  etcd --name e0 --data-dir "$1/etcd" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "e0=http://127.0.0.1:$3" --initial-cluster-state new \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
    --grpc-keepalive-min-time 200ms --logger zap --log-level error >"$1/etcd.log" 2>&1 &
}

# bench_credentials: a fresh cluster secret and device token (docs/security.md), and the
# operator account of the loadgen and the listings: the test suite's throwaway password and
# its argon2id hash (services/cli/tests/common), so that no other build is needed.
bench_credentials() {
  CENTINELA_CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)
  CENTINELA_DEVICE_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  export CENTINELA_CLUSTER_SECRET CENTINELA_DEVICE_TOKEN
  export CENTINELA_OPERATORS='bench:supervisor:$argon2id$v=19$m=1024,t=1,p=1$Y2VudGluZWxhLXRlc3Rz$mN+QVYUd29B41cBTGyVzSaqJUpE1GEFKg8CcfB5CkV0'
  export CENTINELA_OPERATOR=bench CENTINELA_PASSWORD='cluster-test-password'
}
