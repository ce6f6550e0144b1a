"""End to end on the local control plane: growing a StreamCluster's storage expands its PVC in place and
re-creates the StatefulSet around the running broker (orphaned, then adopted: no restart); a shrink is refused
in status with nothing changed; a PVC patch the API server refuses (a ResourceQuota) becomes an ApplyFailed
condition carrying the server's message.

The node agent's provisioner stands in for the CSI resizer + kubelet: it raises the PV's and the PVC's
capacity, and only for a StorageClass with allowVolumeExpansion (see tests/k8s/nodeagent/provisioner.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.k8s.cluster import Cluster
from tests.k8s.release import GROUP, Release, installed_release, ready, resource

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "disk"
POD = f"{NAME}-0"
PVC = f"data-{NAME}-0"
TOPIC = "kept"
RECORDS = [f"r{i}".encode() for i in range(20)]


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with installed_release(k8s, "storage") as rel:
        yield rel


@pytest.fixture
def expandable_class(k8s: Cluster) -> Iterator[str]:
    """A StorageClass of the process-node provisioner allowing volume expansion (the default one does not)."""
    name = f"expandable-{uuid.uuid4().hex[:6]}"
    k8s.apply(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "streamraft.io/process-node-local-path",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        }
    )
    yield name
    k8s.kubectl("delete", "storageclass", name, "--wait=false", check=False)


def _cluster(k8s: Cluster, ns: str) -> dict[str, Any]:
    obj = k8s.api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/streamclusters/{NAME}")
    assert obj is not None
    return obj


def _condition(k8s: Cluster, ns: str, kind: str) -> dict[str, Any]:
    for cond in _cluster(k8s, ns).get("status", {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def _pvc_capacity(k8s: Cluster, ns: str) -> str | None:
    pvc = k8s.api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{PVC}") or {}
    return ((pvc.get("status") or {}).get("capacity") or {}).get("storage")


def _sts(k8s: Cluster, ns: str) -> dict[str, Any]:
    sts = k8s.api.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NAME}")
    assert sts is not None
    return sts


def _template_size(sts: dict[str, Any]) -> str:
    return str(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])


def _broker_pod(k8s: Cluster, ns: str) -> tuple[str, int]:
    """(uid, restartCount) of the broker pod: both unchanged means it was never restarted nor replaced."""
    pod = k8s.pod(ns, POD)
    assert pod is not None
    return pod["metadata"]["uid"], int(pod["status"]["containerStatuses"][0]["restartCount"])


def _resize(k8s: Cluster, ns: str, size: str) -> None:
    patch = f'{{"spec":{{"storage":{{"size":"{size}"}}}}}}'
    k8s.kubectl("patch", "streamcluster", NAME, "-n", ns, "--type=merge", "-p", patch)


def _events(k8s: Cluster, ns: str, reason: str) -> list[dict[str, Any]]:
    return k8s.api.items(f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3D{reason}")


def _read_back(bootstrap: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}"})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < len(RECORDS) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and isinstance(msg.value(), bytes):
                got.append(msg.value())
    finally:
        consumer.close()
    return got


def test_storage_grows_in_place_and_refusals_are_reported(
    k8s: Cluster, release: Release, expandable_class: str
) -> None:
    ns = release.namespace
    spec = {"replicas": 1, "storage": {"size": "1Gi", "storageClass": expandable_class}}
    k8s.apply(resource("StreamCluster", NAME, spec), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 180, f"StreamCluster {NAME} Ready")
    ip = k8s.pod(ns, POD)["status"]["podIP"]
    bootstrap = f"{ip}:9092"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future completes
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in RECORDS:
        producer.produce(TOPIC, value=value)
    assert producer.flush(30) == 0
    pod_before = _broker_pod(k8s, ns)
    sts_before = _sts(k8s, ns)
    assert _template_size(sts_before) == "1Gi"
    assert _pvc_capacity(k8s, ns) == "1Gi"

    # Grow: the PVC is expanded, the StatefulSet re-created around the running pod.
    _resize(k8s, ns, "2Gi")
    k8s.wait_for(lambda: _pvc_capacity(k8s, ns) == "2Gi", 60, f"{PVC} capacity 2Gi")
    k8s.wait_for(lambda: _template_size(_sts(k8s, ns)) == "2Gi", 60, "StatefulSet re-created with 2Gi claims")
    grown = k8s.wait_for(
        lambda: (
            (c := ready(k8s, ns, "streamclusters", NAME))
            and c["status"]["brokers"][0].get("storage") == "2Gi"
            and c
        ),
        60,
        "status reporting the 2Gi volume, Ready",
    )
    assert grown["status"]["brokers"][0]["storage"] == "2Gi"
    sts_after = _sts(k8s, ns)
    assert sts_after["metadata"]["uid"] != sts_before["metadata"]["uid"], "the StatefulSet was re-created"
    assert _broker_pod(k8s, ns) == pod_before, "the broker was neither restarted nor replaced"
    pod = k8s.pod(ns, POD)
    assert pod is not None and pod["metadata"]["ownerReferences"][0]["uid"] == sts_after["metadata"]["uid"]
    assert _read_back(bootstrap) == RECORDS

    # Shrink: refused in status; the PVC, the StatefulSet and the pod stay as they are.
    _resize(k8s, ns, "1Gi")
    refused = k8s.wait_for(
        lambda: (d := _condition(k8s, ns, "Degraded")).get("reason") == "StorageResizeRefused" and d,
        30,
        "Degraded=StorageResizeRefused",
    )
    assert refused["status"] == "True"
    assert "cannot shrink (2Gi -> 1Gi)" in refused["message"], refused
    assert _pvc_capacity(k8s, ns) == "2Gi"
    assert _sts(k8s, ns)["metadata"]["uid"] == sts_after["metadata"]["uid"]
    assert _template_size(_sts(k8s, ns)) == "2Gi"
    assert _broker_pod(k8s, ns) == pod_before
    assert _condition(k8s, ns, "Ready")["status"] == "True", "the broker itself is fine"
    warned = _events(k8s, ns, "StorageResizeRefused")
    assert [e["type"] for e in warned if "cannot shrink" in e.get("message", "")] == ["Warning"], warned

    # A PVC patch the API server refuses (over the namespace's storage quota): ApplyFailed with its message.
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "storage"},
        "spec": {"hard": {"requests.storage": "2Gi"}},
    }
    k8s.apply(quota, namespace=ns)
    k8s.wait_for(
        lambda: (
            (k8s.api.get(f"/api/v1/namespaces/{ns}/resourcequotas/storage") or {})
            .get("status", {})
            .get("used")
        ),
        30,
        "the quota's usage computed",
    )
    _resize(k8s, ns, "3Gi")
    failed = k8s.wait_for(
        lambda: (r := _condition(k8s, ns, "Ready")).get("reason") == "ApplyFailed" and r,
        45,
        "Ready=False ApplyFailed",
    )
    assert failed["status"] == "False"
    assert failed["message"].startswith(f"PersistentVolumeClaim {PVC}: "), failed
    assert "exceeded quota" in failed["message"], failed
    assert _condition(k8s, ns, "Degraded")["reason"] == "ApplyFailed"
    events = _events(k8s, ns, "ApplyFailed")
    assert any(e.get("type") == "Warning" and PVC in e.get("message", "") for e in events), events
    assert _pvc_capacity(k8s, ns) == "2Gi"
    assert _template_size(_sts(k8s, ns)) == "2Gi", "no re-creation after a refused PVC patch"
    assert _broker_pod(k8s, ns) == pod_before
