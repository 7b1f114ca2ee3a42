#!/usr/bin/env python3
"""What the Kubernetes schemas cannot check about the rendered overlays (scripts/validate-k8s.sh).

    k8s_policy.py K8S_DIR RENDERED_DIR

RENDERED_DIR holds one `<overlay>.yaml` per overlay (`kubectl kustomize` output). Checks:

- every object carries `app.kubernetes.io/name` and `app.kubernetes.io/part-of: centinela`;
- every pod: non-root, RuntimeDefault seccomp, no service account token; every container:
  requests and limits for cpu and memory, no privilege escalation, read-only root filesystem,
  all capabilities dropped; long-running pods have readiness and liveness probes;
- Centinela nodes: a native gRPC readiness probe on 7400, listening on 0.0.0.0:7400, node id
  = pod name, advertised address = the pod's DNS name under its headless Service (which
  exists in the same overlay and publishes not-ready addresses), spread over zones;
- etcd: `--grpc-keepalive-min-time` at most 500 ms (the nodes ping every 500 ms), anti-
  affinity, DNS names consistent with the shared initial cluster, an odd number (>= 3) of
  voting members over all overlays, exactly one PodDisruptionBudget over them;
- an object rendered by several overlays is identical in each (any apply order converges);
- the collector component's configuration equals deploy/otel/collector.yaml.

Exits 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "CronJob"}
PROBLEMS = []


def problem(where, what):
    PROBLEMS.append(f"{where}: {what}")


def pod_spec(obj):
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def duration_ms(text):
    match = re.fullmatch(r"(\d+)(ms|s)", text or "")
    if not match:
        return None
    return int(match.group(1)) * (1 if match.group(2) == "ms" else 1000)


def check_pod(where, obj):
    spec = pod_spec(obj)
    security = spec.get("securityContext", {})
    if security.get("runAsNonRoot") is not True:
        problem(where, "pod securityContext.runAsNonRoot is not true")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "automountServiceAccountToken is not false")
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        at = f"{where} container {container['name']}"
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    problem(at, f"no {kind}.{resource}")
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            problem(at, "allowPrivilegeEscalation is not false")
        if context.get("readOnlyRootFilesystem") is not True:
            problem(at, "readOnlyRootFilesystem is not true")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problem(at, "capabilities are not all dropped")
        if obj["kind"] != "CronJob":
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problem(at, f"no {probe}")


def check_node(where, obj, services):
    spec = obj["spec"]
    container = next(c for c in pod_spec(obj)["containers"] if c["name"] == "centinela")
    env = env_of(container)
    readiness = container.get("readinessProbe", {})
    if readiness.get("grpc", {}).get("port") != 7400:
        problem(where, "readiness is not a native gRPC probe on 7400")
    if env.get("CENTINELA_GRPC") != "0.0.0.0:7400":
        problem(where, "CENTINELA_GRPC is not 0.0.0.0:7400")
    if env.get("CENTINELA_NODE_ID") != "$(POD_NAME)":
        problem(where, "CENTINELA_NODE_ID is not the pod name")
    peer = spec["serviceName"]
    if env.get("PEER_SERVICE") != peer:
        problem(where, f"PEER_SERVICE {env.get('PEER_SERVICE')!r} is not the serviceName {peer!r}")
    if not (env.get("CENTINELA_ADVERTISE_GRPC") or "").startswith("$(POD_NAME).$(PEER_SERVICE)."):
        problem(where, "CENTINELA_ADVERTISE_GRPC is not the pod's DNS name")
    # The archive URL carries the database's password: from the Secret, never a literal.
    archive = next((e for e in container.get("env", []) if e["name"] == "CENTINELA_ARCHIVE"), None)
    if archive is None:
        problem(where, "no CENTINELA_ARCHIVE (the nodes' shared PostgreSQL archive)")
    elif "secretKeyRef" not in archive.get("valueFrom", {}):
        problem(where, "CENTINELA_ARCHIVE is not read from a Secret")
    service = services.get(peer)
    if service is None:
        problem(where, f"its headless Service {peer} is not in the overlay")
    else:
        if service["spec"].get("clusterIP") != "None":
            problem(where, f"Service {peer} is not headless")
        if service["spec"].get("publishNotReadyAddresses") is not True:
            problem(where, f"Service {peer} does not publish not-ready addresses")
    keys = {c["topologyKey"] for c in pod_spec(obj).get("topologySpreadConstraints", [])}
    if "topology.kubernetes.io/zone" not in keys:
        problem(where, "not spread across zones")
    if pod_spec(obj).get("terminationGracePeriodSeconds", 30) < 30:
        problem(where, "terminationGracePeriodSeconds under 30 s (graceful resign and drain)")


def check_etcd(where, obj):
    container = next(c for c in pod_spec(obj)["containers"] if c["name"] == "etcd")
    env = env_of(container)
    keepalive = duration_ms(env.get("ETCD_GRPC_KEEPALIVE_MIN_TIME"))
    if keepalive is None or keepalive > 500:
        problem(where, "ETCD_GRPC_KEEPALIVE_MIN_TIME missing or above 500ms (nodes ping every 500 ms)")
    if env.get("PEER_SERVICE") != obj["spec"]["serviceName"]:
        problem(where, "PEER_SERVICE is not the serviceName")
    if "podAntiAffinity" not in pod_spec(obj).get("affinity", {}):
        problem(where, "no pod anti-affinity")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def main():
    k8s, rendered = Path(sys.argv[1]), Path(sys.argv[2])
    seen = {}  # (kind, namespace, name) -> (overlay, object)
    etcd_members = {}  # statefulset name -> (replicas, serviceName, namespace)
    initial_clusters = set()
    etcd_pdbs = set()
    for path in sorted(rendered.glob("*.yaml")):
        overlay = path.stem
        objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        for obj in objects:
            kind, meta = obj["kind"], obj["metadata"]
            where = f"{overlay}: {kind}/{meta['name']}"
            key = (kind, meta.get("namespace"), meta["name"])
            if key in seen and seen[key][1] != obj:
                problem(where, f"rendered differently by overlay {seen[key][0]}")
            seen.setdefault(key, (overlay, obj))
            labels = meta.get("labels", {})
            if kind != "Namespace":
                if "app.kubernetes.io/name" not in labels:
                    problem(where, "no app.kubernetes.io/name label")
                if labels.get("app.kubernetes.io/part-of") != "centinela":
                    problem(where, "app.kubernetes.io/part-of is not centinela")
            if kind in WORKLOADS:
                check_pod(where, obj)
                pod_labels = (
                    obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
                    if kind == "CronJob"
                    else obj["spec"]["template"]["metadata"]["labels"]
                )
                if kind != "CronJob":
                    covering = [p["metadata"]["name"] for p in pdbs if selects(p["spec"]["selector"], pod_labels)]
                    if len(covering) != 1:
                        problem(where, f"its pods are covered by {len(covering)} PodDisruptionBudgets {covering}, not 1")
            if kind == "StatefulSet" and labels.get("app.kubernetes.io/name") == "centinela":
                check_node(where, obj, services)
            if kind == "StatefulSet" and labels.get("app.kubernetes.io/name") == "etcd":
                check_etcd(where, obj)
                etcd_members[meta["name"]] = (
                    obj["spec"].get("replicas", 1),
                    obj["spec"]["serviceName"],
                    meta.get("namespace"),
                )
            if kind == "ConfigMap" and "initial-cluster" in obj.get("data", {}):
                initial_clusters.add(obj["data"]["initial-cluster"])
            if kind == "PodDisruptionBudget" and selects(
                obj["spec"]["selector"],
                {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/component": "etcd"},
            ):
                etcd_pdbs.add(meta["name"])

    voting = sum(replicas for replicas, _, _ in etcd_members.values())
    if voting < 3 or voting % 2 == 0:
        problem("etcd", f"{voting} voting members over all overlays: need an odd number, at least 3")
    if len(etcd_pdbs) != 1:
        problem("etcd", f"{len(etcd_pdbs)} PodDisruptionBudgets over the members {sorted(etcd_pdbs)}, not 1")
    if len(initial_clusters) != 1:
        problem("etcd", f"{len(initial_clusters)} different initial-cluster settings")
    else:
        expected = {}
        for name, (replicas, service, namespace) in etcd_members.items():
            for i in range(replicas):
                pod = f"{name}-{i}"
                expected[pod] = f"http://{pod}.{service}.{namespace}.svc.cluster.local:2380"
        listed = dict(entry.split("=", 1) for entry in next(iter(initial_clusters)).split(","))
        if listed != expected:
            problem("etcd", f"initial-cluster {listed} does not match the members rendered {expected}")

    ours = k8s / "components" / "otel-collector" / "collector.yaml"
    theirs = Path("deploy/otel/collector.yaml")
    if theirs.exists() and ours.exists() and ours.read_bytes() != theirs.read_bytes():
        problem(str(ours), f"differs from {theirs}: copy it again (cp {theirs} {ours})")

    for line in PROBLEMS:
        print(f"policy: {line}", file=sys.stderr)
    if PROBLEMS:
        sys.exit(1)
    print(
        f"policy: {len(seen)} distinct objects, {voting} etcd voting members over "
        f"{len(etcd_members)} locations: ok",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
