"""The local cluster end to end: real control-plane binaries, process nodes running real processes in
their own network namespaces, Services, DNS names, probes, PVCs and the StatefulSet controller."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from tests.k8s.cluster import Cluster

# The server each web pod runs: records who it is (from the downward API, a ConfigMap and the UTS
# namespace) and counts its boots in the PVC, then serves that directory on the pod IP.
WEB_SCRIPT = textwrap.dedent(
    """
    import os, socket, pathlib
    data = pathlib.Path("/opt/srk-test/data")
    boots = data / "boots"
    count = int(boots.read_text()) + 1 if boots.exists() else 1
    boots.write_text(str(count))
    greeting = pathlib.Path("/opt/srk-test/web/greeting").read_text()
    (data / "whoami").write_text(" ".join([
        socket.gethostname(), os.environ["POD_NAME"], os.environ["POD_IP"], os.environ["NODE"],
        os.environ["COLOR"], greeting, os.environ["WHERE"],
    ]))
    os.execvp("python", ["python", "-m", "http.server", "8080", "--bind", os.environ["POD_IP"],
                         "--directory", "/opt/srk-test/data"])
    """
)


def _web(namespace: str, replicas: int) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    container = {
        "name": "web",
        "image": "ignored.example/web:1",
        "command": ["python", "-c", WEB_SCRIPT],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "web", "key": "color"}}},
            {"name": "WHERE", "value": "$(POD_NAME)@$(NODE)"},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        # Ready only once /data/ready exists: the test decides when.
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2, "initialDelaySeconds": 3},
        "volumeMounts": [
            {"name": "data", "mountPath": "/opt/srk-test/data"},
            {"name": "config", "mountPath": "/opt/srk-test/web", "readOnly": True},
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
         "data": {"color": "teal", "greeting": "hello"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "http", "port": 8080}]}},
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {
                "serviceName": "web",
                "replicas": replicas,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "web"}}],
                    },
                },
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}
                ],
            },
        },
    ]  # fmt: skip


def _claim_dir(k8s: Cluster, namespace: str, claim: str) -> Path:
    pvc = k8s.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    assert pvc is not None and pvc["status"]["phase"] == "Bound", pvc
    pv = k8s.api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    assert pv is not None
    return Path(pv["spec"]["hostPath"]["path"])


def _get(url: str) -> str:
    # Pod IPs are on the bridge subnet, reachable from the host like a node reaches its pods.
    with urllib.request.urlopen(url, timeout=3) as resp:
        body: bytes = resp.read()
        return body.decode()


def test_nodes_leases_and_tools(k8s: Cluster, k8s_namespace: str, tmp_path: Path) -> None:
    for name in k8s.nodes:
        node = k8s.get("node", name)
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        lease = k8s.get("lease", "-n", "kube-node-lease", name)
        assert lease["spec"]["holderIdentity"] == name
    version = json.loads(k8s.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
    helm = k8s.helm("version", "--short").stdout
    assert helm.startswith("v3."), helm
    # helm drives the cluster: install and uninstall a one-template chart.
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tiny}\n"
        "data: {release: {{ .Release.Name | quote }}}\n"
    )
    k8s.helm("install", "rel", str(chart), "-n", k8s_namespace, "--wait", "--timeout", "60s")
    assert k8s.get("configmap", "tiny", "-n", k8s_namespace)["data"] == {"release": "rel"}
    k8s.helm("uninstall", "rel", "-n", k8s_namespace, "--wait", "--timeout", "60s")
    assert k8s.kubectl("get", "configmap", "tiny", "-n", k8s_namespace, check=False).returncode != 0


def test_statefulset_with_headless_service_pvcs_dns_and_probes(k8s: Cluster, k8s_namespace: str) -> None:
    ns = k8s_namespace
    k8s.apply(*_web(ns, replicas=2), namespace=ns)

    def running(name: str) -> dict[str, Any] | None:
        pod = k8s.pod(ns, name)
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        return pod if statuses and "running" in statuses[0]["state"] else None

    pods = {n: k8s.wait_for(partial(running, n), 90, f"{n} running") for n in ("web-0", "web-1")}
    ips = {n: p["status"]["podIP"] for n, p in pods.items()}
    assert all(ip.startswith(f"10.244.{k8s.subnet.octet}.") for ip in ips.values()), ips
    assert len(set(ips.values())) == 2

    # The readiness probe gates Ready: the server is up, but /ready does not exist yet.
    k8s.wait_for(lambda: _get(f"http://{ips['web-0']}:8080/whoami"), 30, "web-0 serving")
    assert k8s.pod_ready(ns, "web-0") is None
    whoami = _get(f"http://{ips['web-0']}:8080/whoami").split(" ")
    node0 = pods["web-0"]["spec"]["nodeName"]
    assert whoami == ["web-0", "web-0", ips["web-0"], node0, "teal", "hello", f"web-0@{node0}"]

    for name in ("web-0", "web-1"):
        (_claim_dir(k8s, ns, f"data-{name}") / "ready").write_text("ok")
    for name in ("web-0", "web-1"):
        k8s.wait_for(partial(k8s.pod_ready, ns, name), 30, f"{name} Ready")

    def endpoint_ips() -> set[str] | None:
        slices = k8s.get("endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
        found = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]
                 if (e.get("conditions") or {}).get("ready")}  # fmt: skip
        return found if found == set(ips.values()) else None

    k8s.wait_for(endpoint_ips, 30, "EndpointSlice with both pod IPs")

    def legacy_endpoint_ips() -> set[str] | None:
        ep = k8s.get("endpoints", "web", "-n", ns)
        found = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
        return found if found == set(ips.values()) else None

    k8s.wait_for(legacy_endpoint_ips, 30, "Endpoints with both pod IPs")

    # DNS names resolve inside the pod (its own /etc/hosts), and pod-to-pod traffic flows.
    def resolve_in(pod: str, name: str) -> str:
        code = f"import socket; print(socket.gethostbyname({name!r}))"
        return k8s.run_in_pod(ns, pod, [sys.executable, "-c", code]).stdout.strip()

    fqdn = f"web-1.web.{ns}.svc.cluster.local"
    assert k8s.wait_for(lambda: resolve_in("web-0", fqdn) == ips["web-1"], 15, f"{fqdn} resolvable")
    assert resolve_in("web-0", f"web.{ns}.svc.cluster.local") in set(ips.values())
    assert resolve_in("web-1", "web-0.web") == ips["web-0"]
    fetch = (
        f"import urllib.request; print(urllib.request.urlopen('http://{fqdn}:8080/whoami').read().decode())"
    )
    assert k8s.run_in_pod(ns, "web-0", [sys.executable, "-c", fetch]).stdout.startswith("web-1 web-1 ")
    # The same names resolve for test code on the host (a tagged block in its /etc/hosts).
    assert k8s.wait_for(lambda: socket.gethostbyname(fqdn) == ips["web-1"], 15, f"{fqdn} on the host")
    unknown = k8s.run_in_pod(
        ns, "web-0", [sys.executable, "-c", "import socket; socket.gethostbyname('example.com')"]
    )
    assert unknown.returncode != 0  # nothing outside the cluster resolves (or is reachable)

    # A deleted pod is recreated by the StatefulSet controller and finds its PVC directory again.
    claim0 = _claim_dir(k8s, ns, "data-web-0")
    assert (claim0 / "boots").read_text() == "1"
    old_uid = pods["web-0"]["metadata"]["uid"]
    k8s.kubectl("delete", "pod", "-n", ns, "web-0", "--wait=false")

    def recreated() -> dict[str, Any] | None:
        pod = k8s.pod_ready(ns, "web-0")
        return pod if pod is not None and pod["metadata"]["uid"] != old_uid else None

    k8s.wait_for(recreated, 90, "web-0 recreated and Ready")
    assert _claim_dir(k8s, ns, "data-web-0") == claim0
    assert (claim0 / "boots").read_text() == "2"
    assert "--- start" in k8s.pod_log(ns, "web-0", "web")


def test_restarts_hooks_and_graceful_deletion(k8s: Cluster, k8s_namespace: str, tmp_path: Path) -> None:
    ns = k8s_namespace
    tmp_path.chmod(0o777)
    crasher = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "crasher"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "none",
                    "command": ["python", "-c", "print('about to fail'); raise SystemExit(3)"],
                }
            ]
        },
    }
    # On SIGTERM the process records it and exits; the preStop hook runs first and records itself.
    graceful_script = textwrap.dedent(
        """
        import signal, sys, time, pathlib
        out = pathlib.Path("/opt/srk-test/out")
        def on_term(signum, frame):
            (out / "events").open("a").write("sigterm\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        (out / "events").open("a").write("started\\n")
        while True:
            time.sleep(0.1)
        """
    )
    graceful = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "graceful"},
        "spec": {
            "terminationGracePeriodSeconds": 20,
            "initContainers": [
                {
                    "name": "init",
                    "image": "none",
                    "command": ["sh", "-c", "echo init >> /opt/srk-test/out/events"],
                    "volumeMounts": [{"name": "out", "mountPath": "/opt/srk-test/out"}],
                }
            ],
            "containers": [
                {
                    "name": "g",
                    "image": "none",
                    "command": ["python", "-u", "-c", graceful_script],
                    "lifecycle": {
                        "preStop": {
                            "exec": {"command": ["sh", "-c", "echo prestop >> /opt/srk-test/out/events"]}
                        }
                    },
                    "startupProbe": {
                        "exec": {"command": ["test", "-s", "/opt/srk-test/out/events"]},
                        "periodSeconds": 1,
                    },
                    "volumeMounts": [{"name": "out", "mountPath": "/opt/srk-test/out"}],
                }
            ],
            "volumes": [{"name": "out", "hostPath": {"path": str(tmp_path), "type": "Directory"}}],
        },
    }
    k8s.apply(crasher, graceful, namespace=ns)

    def restarted_twice() -> dict[str, Any] | None:
        pod = k8s.pod(ns, "crasher")
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    status = k8s.wait_for(restarted_twice, 60, "crasher restarted twice")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert not status["ready"]
    # `kubectl logs` works through the agent's containerLogs endpoint (the apiserver proxies to it).
    assert k8s.kubectl("logs", "-n", ns, "crasher", "--previous").stdout == "about to fail\n"

    k8s.wait_for(lambda: k8s.pod_ready(ns, "graceful"), 60, "graceful Ready after its startup probe")
    k8s.kubectl("delete", "pod", "-n", ns, "graceful", "--wait=false")
    k8s.wait_for(lambda: k8s.pod(ns, "graceful") is None, 30, "graceful pod finalized and removed")
    assert (tmp_path / "events").read_text().split() == ["init", "started", "prestop", "sigterm"]


def test_in_cluster_client_reaches_the_apiserver(k8s: Cluster, k8s_namespace: str) -> None:
    """A pod using in-cluster config (service-account token volume, KUBERNETES_SERVICE_*) talks to the
    apiserver through the agent's relay on the bridge address, as an operator pod would."""
    ns = k8s_namespace
    k8s.kubectl(
        "create", "rolebinding", "view", "-n", ns, "--clusterrole=view", f"--serviceaccount={ns}:default"
    )
    code = (
        "from kubernetes import client, config; config.load_incluster_config(); "
        f"pods = client.CoreV1Api().list_namespaced_pod({ns!r}).items; "
        + "print('PODS', sorted(p.metadata.name for p in pods))"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "incluster"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x", "command": ["python", "-c", code]}],
        },
    }
    k8s.apply(pod, namespace=ns)

    def finished() -> str | None:
        phase = ((k8s.pod(ns, "incluster") or {}).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    assert k8s.wait_for(finished, 60, "in-cluster pod finished") == "Succeeded", k8s.pod_log(
        ns, "incluster", "c"
    )
    assert "PODS ['incluster']" in k8s.pod_log(ns, "incluster", "c")


GRPC_SCRIPT = textwrap.dedent(
    """
    import json, os, pathlib, threading, time
    from concurrent import futures
    import grpc
    out = pathlib.Path("/opt/srk-test/out")
    seen = {
        "token": os.environ["TOKEN"], "user": os.environ["S_USER"],
        "pw_file": pathlib.Path("/opt/srk-test/secret/pw").read_text(),
        "labels": pathlib.Path("/opt/srk-test/info/labels").read_text(), "hostname": os.uname().nodename,
    }
    pathlib.Path("/opt/srk-test/scratch/note").write_text("kept in an emptyDir")
    seen["scratch"] = pathlib.Path("/opt/srk-test/scratch/note").read_text()
    seen["cwd"] = os.getcwd()
    seen["tmp"] = os.listdir("/tmp")
    (out / "seen.json").write_text(json.dumps(seen))
    def mirror():  # shows the test what the container sees in its Secret volume, over time
        while True:
            (out / "pw.tmp").write_text(pathlib.Path("/opt/srk-test/secret/pw").read_text())
            (out / "pw.tmp").rename(out / "pw")
            time.sleep(0.2)
    threading.Thread(target=mirror, daemon=True).start()
    def check(request, context):
        return b"\\x08\\x01"  # HealthCheckResponse{status: SERVING}
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(os.environ["POD_IP"] + ":50051")
    server.start()
    server.wait_for_termination()
    """
)


def _host_dirs_under(root: str) -> list[str]:
    """Host dirs the node agent binds back into pods: the checkout and the venv (nodeagent/launcher.py)."""
    checkout = Path(__file__).resolve().parents[2]
    dirs = [str(checkout), str(Path(sys.prefix).resolve()), sys.prefix]
    return [d for d in dirs if d.startswith(root + "/")]


def test_grpc_probe_liveness_kill_secrets_and_downward_volume(
    k8s: Cluster, k8s_namespace: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"token": "t0k3n", "USER": "alice", "pw": "s3cret"},
    }
    probed = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probed", "labels": {"tier": "grpc"}},
        "spec": {
            "containers": [
                {
                    "name": "g",
                    "image": "none",
                    "command": ["python", "-c", GRPC_SCRIPT],
                    "workingDir": "/opt/srk-test/out",
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                    ],
                    "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "S_"}],
                    "readinessProbe": {"grpc": {"port": 50051}, "periodSeconds": 1, "timeoutSeconds": 5},
                    "volumeMounts": [
                        # Listed first, it hides the host's /tmp, where the other volumes' sources live.
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "out", "mountPath": "/opt/srk-test/out"},
                        {"name": "secret", "mountPath": "/opt/srk-test/secret", "readOnly": True},
                        {"name": "info", "mountPath": "/opt/srk-test/info"},
                        {"name": "scratch", "mountPath": "/opt/srk-test/scratch"},
                    ],
                }
            ],
            "volumes": [
                {"name": "out", "hostPath": {"path": str(tmp_path)}},
                {"name": "secret", "secret": {"secretName": "creds"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "info", "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            ],
        },
    }  # fmt: skip
    # Alive as a process, but its liveness probe can never pass: the agent must kill and restart it.
    unhealthy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unhealthy"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "u",
                    "image": "none",
                    "command": ["sleep", "600"],
                    "livenessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 1, "failureThreshold": 2},
                }
            ],
        },
    }
    k8s.apply(secret, probed, unhealthy, namespace=ns)

    k8s.wait_for(lambda: k8s.pod_ready(ns, "probed"), 60, "probed Ready through its gRPC health probe")
    seen = json.loads((tmp_path / "seen.json").read_text())
    # Binding also copies the node's topology labels onto the pod (PodTopologyLabels admission).
    assert 'tier="grpc"' in seen.pop("labels").splitlines()
    assert seen == {
        "token": "t0k3n",
        "user": "alice",
        "pw_file": "s3cret",
        "hostname": "probed",
        "scratch": "kept in an emptyDir",
        "cwd": "/opt/srk-test/out",
        # The emptyDir hides the host's /tmp; only the first component of a host program dir the agent binds
        # back (the venv or checkout, when the checkout itself lives under /tmp) may show through.
        "tmp": sorted({Path(p).relative_to("/tmp").parts[0] for p in _host_dirs_under("/tmp")}),
    }

    # Secret (and ConfigMap) volumes follow updates of their object while the container runs.
    k8s.kubectl("patch", "secret", "creds", "-n", ns, "-p", json.dumps({"stringData": {"pw": "rotated"}}))
    k8s.wait_for(lambda: (tmp_path / "pw").read_text() == "rotated", 30, "rotated secret visible in the pod")

    def killed() -> dict[str, Any] | None:
        pod = k8s.pod(ns, "unhealthy")
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    status = k8s.wait_for(killed, 60, "unhealthy restarted by its liveness probe")
    assert status["lastState"]["terminated"]["reason"] == "LivenessProbeFailed"
    assert status["lastState"]["terminated"]["exitCode"] == 128 + 15  # SIGTERM ended `sleep`
