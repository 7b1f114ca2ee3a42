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
