"""The `k8s` fixture: one local control plane + process nodes per test session.

Binaries come from .ci/prepare-k8s (run by .ci/test before pytest). The cluster is torn down at session
end, even after failures; its components are tied to this process (setpriv --pdeathsig), so a killed
session leaves nothing running either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s import controlplane
from tests.k8s.cluster import Cluster
from tests.k8s.nodeagent.api import Api

NODES = int(os.environ.get("STREAMRAFT_K8S_NODES", "3"))

# A default StorageClass so charts that ask for "standard" (or nothing) get a process-node PV.
STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "streamraft.io/process-node-local-path",
    "reclaimPolicy": "Retain",
    "volumeBindingMode": "Immediate",
}


def _missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the process node agent needs root (network namespaces, bind mounts)"
    try:
        controlplane.binary("kube-apiserver")
        controlplane.binary("helm")
        controlplane.binary("helm4")
    except FileNotFoundError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = _missing_prerequisites()
    if problem is not None:
        pytest.fail(f"cannot start the local Kubernetes cluster: {problem}")
    directory = Path(tmp_path_factory.mktemp("k8s"))
    t0 = time.monotonic()
    # Host-side DNS lets test code use the names brokers advertise, as pods do.
    state = controlplane.up(directory, NODES, agent_args=["--host-dns"], tie_to_parent=True)
    try:
        cluster = Cluster(state, Api(str(state.kubeconfig)))
        cluster.apply(STORAGE_CLASS)
        # Pods cannot be created in a namespace until its `default` ServiceAccount exists.
        cluster.wait_for(lambda: cluster.api.get("/api/v1/namespaces/default/serviceaccounts/default"), 60,
                         "the default ServiceAccount")  # fmt: skip
        cluster.wait_for(lambda: all(_node_ready(cluster, n) for n in cluster.nodes), 60, "nodes Ready")
        print(f"\nlocal k8s cluster up in {time.monotonic() - t0:.1f}s at {directory}")
        yield cluster
    finally:
        controlplane.down(directory, keep_logs=True)


def _node_ready(cluster: Cluster, name: str) -> bool:
    node = cluster.api.get(f"/api/v1/nodes/{name}")
    if node is None:
        return False
    if any(t.get("key") == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints") or []):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


@pytest.fixture
def k8s_namespace(k8s: Cluster) -> Iterator[str]:
    with k8s.namespace() as name:
        yield name
