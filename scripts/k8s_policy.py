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

The overlays named `*-tls` (k8s/components/tls) are a deployment of their own, checked apart
from the plain ones (they share objects with each other, not with them) with its own
invariants too:

- https everywhere: every URL in an env var or a ConfigMap is https://, except the ones in
  PLAIN_ALLOWED (each with its reason);
- etcd requires client certificates on both ports (client and peer cert auth, trusted CAs,
  certificate and key files) and its initial cluster lists https peers;
- nodes: CENTINELA_TLS_CERT/KEY/CA and CENTINELA_ETCD_CA/CERT/KEY point into mounted
  volumes, probes are httpGet over HTTPS (a gRPC probe cannot speak TLS), and the
  certificate mounted as `tls` names `<pod>.node.centinela` for every replica;
- every Certificate names an Issuer of the overlay and its Secret is mounted by a workload
  or served by an Ingress (or is annotated as used outside the cluster).

Exits 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "CronJob"}
PROBLEMS = []
# Plain http:// URLs a TLS overlay keeps, and why.
PLAIN_ALLOWED = {
    # etcd's metrics port: the kubelet's probes and Prometheus; no keys, no requests.
    "ETCD_LISTEN_METRICS_URLS",
    # OTLP to the in-cluster collector (k8s/components/otel-collector): telemetry, not
    # issue 20's scope; the NetworkPolicy keeps it in the namespace.
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}
USED_OUTSIDE = "centinela/used-outside-the-cluster"


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


def check_node(where, obj, services, tls):
    spec = obj["spec"]
    container = next(c for c in pod_spec(obj)["containers"] if c["name"] == "centinela")
    env = env_of(container)
    readiness = container.get("readinessProbe", {})
    if tls:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if container.get(probe, {}).get("httpGet", {}).get("scheme") != "HTTPS":
                problem(where, f"{probe} is not httpGet over HTTPS (the node serves TLS only)")
        if readiness.get("httpGet", {}).get("path") != "/readyz":
            problem(where, "readiness is not /readyz")
    elif readiness.get("grpc", {}).get("port") != 7400:
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


def mounted_paths(obj, container):
    """Mount path -> Secret name, for the container's mounts of Secret volumes."""
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in pod_spec(obj).get("volumes", [])}
    return {m["mountPath"]: volumes.get(m["name"]) for m in container.get("volumeMounts", [])}


def secret_of_file(obj, container, path):
    """The Secret a file path lies in (None when it is in no mounted Secret)."""
    for mount, secret in mounted_paths(obj, container).items():
        if secret and (path or "").startswith(mount.rstrip("/") + "/"):
            return secret
    return None


def check_urls(where, name, value):
    for url in re.findall(r"[a-z]+://[^,\s]+", value or ""):
        if url.startswith("http://") and name not in PLAIN_ALLOWED:
            problem(where, f"{name} has a plaintext URL {url} in a TLS overlay")


def check_node_tls(where, obj, certificates):
    container = next(c for c in pod_spec(obj)["containers"] if c["name"] == "centinela")
    env = env_of(container)
    for name in ("CENTINELA_TLS_CERT", "CENTINELA_TLS_KEY", "CENTINELA_TLS_CA",
                 "CENTINELA_ETCD_CA", "CENTINELA_ETCD_CERT", "CENTINELA_ETCD_KEY"):
        if secret_of_file(obj, container, env.get(name)) is None:
            problem(where, f"{name} ({env.get(name)!r}) is not a file of a mounted Secret")
    secret = secret_of_file(obj, container, env.get("CENTINELA_TLS_CERT"))
    certificate = next((c for c in certificates if c["spec"]["secretName"] == secret), None)
    if certificate is None:
        problem(where, f"its certificate's Secret {secret!r} is not a Certificate of the overlay")
        return
    names = set(certificate["spec"].get("dnsNames", []))
    for i in range(obj["spec"].get("replicas", 1)):
        node = f"{obj['metadata']['name']}-{i}.node.centinela"
        if node not in names:
            problem(where, f"Certificate {certificate['metadata']['name']} does not name {node} (the node id of replica {i})")


def check_etcd_tls(where, obj):
    container = next(c for c in pod_spec(obj)["containers"] if c["name"] == "etcd")
    env = env_of(container)
    for flag in ("ETCD_CLIENT_CERT_AUTH", "ETCD_PEER_CLIENT_CERT_AUTH"):
        if env.get(flag) != "true":
            problem(where, f"{flag} is not true: etcd must require client certificates")
    for name in ("ETCD_TRUSTED_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE",
                 "ETCD_PEER_TRUSTED_CA_FILE", "ETCD_PEER_CERT_FILE", "ETCD_PEER_KEY_FILE"):
        if secret_of_file(obj, container, env.get(name)) is None:
            problem(where, f"{name} ({env.get(name)!r}) is not a file of a mounted Secret")
    for name in ("ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_PEER_URLS",
                 "ETCD_INITIAL_ADVERTISE_PEER_URLS"):
        if not (env.get(name) or "").startswith("https://"):
            problem(where, f"{name} is not https://")


def check_env_order(where, obj):
    """$(VAR) expands only from variables listed before it: a merge that moved one breaks it."""
    for container in pod_spec(obj).get("containers", []):
        defined = set()
        for entry in container.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", entry.get("value") or ""):
                if ref not in defined:
                    problem(where, f"{entry['name']} refers to $({ref}), not defined before it")
            defined.add(entry["name"])


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def check_deployment(label, rendered, tls):
    """The overlays of one deployment (all plain, or all TLS): `rendered` is [(overlay, objects)]."""
    seen = {}  # (kind, namespace, name) -> (overlay, object)
    etcd_members = {}  # statefulset name -> (replicas, serviceName, namespace)
    initial_clusters = set()
    etcd_pdbs = set()
    # Secrets mounted by a workload or served by an Ingress, in any overlay of the deployment
    # (the tie-breaker has no node, yet shares the nodes' etcd client Certificate).
    used_secrets = set()
    for _, objects in rendered:
        for obj in objects:
            if obj["kind"] in WORKLOADS:
                for volume in pod_spec(obj).get("volumes", []):
                    used_secrets.add(volume.get("secret", {}).get("secretName"))
            if obj["kind"] == "Ingress":
                for entry in obj["spec"].get("tls", []):
                    used_secrets.add(entry.get("secretName"))
    for overlay, objects in rendered:
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        certificates = [o for o in objects if o["kind"] == "Certificate"]
        issuers = {o["metadata"]["name"] for o in objects if o["kind"] == "Issuer"}
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
                check_env_order(where, obj)
                pod_labels = (
                    obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
                    if kind == "CronJob"
                    else obj["spec"]["template"]["metadata"]["labels"]
                )
                if kind != "CronJob":
                    covering = [p["metadata"]["name"] for p in pdbs if selects(p["spec"]["selector"], pod_labels)]
                    if len(covering) != 1:
                        problem(where, f"its pods are covered by {len(covering)} PodDisruptionBudgets {covering}, not 1")
                if tls:
                    for container in pod_spec(obj).get("containers", []):
                        for entry in container.get("env", []):
                            check_urls(where, entry["name"], entry.get("value"))
            if kind == "StatefulSet" and labels.get("app.kubernetes.io/name") == "centinela":
                check_node(where, obj, services, tls)
                if tls:
                    check_node_tls(where, obj, certificates)
            if kind == "StatefulSet" and labels.get("app.kubernetes.io/name") == "etcd":
                check_etcd(where, obj)
                if tls:
                    check_etcd_tls(where, obj)
                etcd_members[meta["name"]] = (
                    obj["spec"].get("replicas", 1),
                    obj["spec"]["serviceName"],
                    meta.get("namespace"),
                )
            if kind == "ConfigMap" and "initial-cluster" in obj.get("data", {}):
                initial_clusters.add(obj["data"]["initial-cluster"])
            if kind == "ConfigMap" and tls:
                for name, value in obj.get("data", {}).items():
                    if "://" in value and "\n" not in value:  # URL settings, not files
                        check_urls(where, name, value)
            if kind == "PodDisruptionBudget" and selects(
                obj["spec"]["selector"],
                {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/component": "etcd"},
            ):
                etcd_pdbs.add(meta["name"])
            if kind == "Certificate":
                spec = obj["spec"]
                if spec.get("issuerRef", {}).get("name") not in issuers:
                    problem(where, f"its issuer {spec.get('issuerRef')} is not an Issuer of the overlay")
                if not (spec.get("dnsNames") or spec.get("commonName")):
                    problem(where, "names nothing (no dnsNames, no commonName)")
                if spec.get("secretName") not in used_secrets and USED_OUTSIDE not in meta.get("annotations", {}):
                    problem(where, f"its Secret {spec.get('secretName')} is mounted by no workload and served by no Ingress")
        if tls and not certificates:
            problem(overlay, "a TLS overlay with no Certificate")

    voting = sum(replicas for replicas, _, _ in etcd_members.values())
    if voting < 3 or voting % 2 == 0:
        problem(f"{label} etcd", f"{voting} voting members over all overlays: need an odd number, at least 3")
    if len(etcd_pdbs) != 1:
        problem(f"{label} etcd", f"{len(etcd_pdbs)} PodDisruptionBudgets over the members {sorted(etcd_pdbs)}, not 1")
    if len(initial_clusters) != 1:
        problem(f"{label} etcd", f"{len(initial_clusters)} different initial-cluster settings")
    else:
        scheme = "https" if tls else "http"
        expected = {}
        for name, (replicas, service, namespace) in etcd_members.items():
            for i in range(replicas):
                pod = f"{name}-{i}"
                expected[pod] = f"{scheme}://{pod}.{service}.{namespace}.svc.cluster.local:2380"
        listed = dict(entry.split("=", 1) for entry in next(iter(initial_clusters)).split(","))
        if listed != expected:
            problem(f"{label} etcd", f"initial-cluster {listed} does not match the members rendered {expected}")
    return len(seen), voting, len(etcd_members)


def main():
    k8s, rendered = Path(sys.argv[1]), Path(sys.argv[2])
    deployments = {"plain": [], "tls": []}
    for path in sorted(rendered.glob("*.yaml")):
        objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
        tls = path.stem.endswith("-tls")
        deployments["tls" if tls else "plain"].append((path.stem, objects))
    if not deployments["plain"]:
        problem(str(rendered), "no plain overlay rendered")
    summary = []
    for label, overlays in deployments.items():
        if overlays:
            objects, voting, locations = check_deployment(label, overlays, label == "tls")
            summary.append(f"{label}: {len(overlays)} overlays, {objects} distinct objects, {voting} etcd voting members over {locations} locations")

    ours = k8s / "components" / "otel-collector" / "collector.yaml"
    theirs = Path("deploy/otel/collector.yaml")
    if theirs.exists() and ours.exists() and ours.read_bytes() != theirs.read_bytes():
        problem(str(ours), f"differs from {theirs}: copy it again (cp {theirs} {ours})")

    for line in PROBLEMS:
        print(f"policy: {line}", file=sys.stderr)
    if PROBLEMS:
        sys.exit(1)
    print(f"policy: {'; '.join(summary)}: ok", file=sys.stderr)


if __name__ == "__main__":
    main()
