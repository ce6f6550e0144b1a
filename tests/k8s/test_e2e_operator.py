"""End to end on the local control plane: the chart installs the operator (as a pod on a process node, i.e.
the real Deployment, running `streamraft-operator` from this checkout's venv), which then runs brokers
from StreamCluster resources and topics from StreamTopic resources.

Brokers are not Raft-replicated yet, so a 3-broker cluster is checked for what it is today (pods, Ready,
status per broker, Services), and produce/consume plus topic management run against a 1-broker cluster.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.k8s.cluster import Cluster

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streamraft"
GROUP = "streamraft.io"


def _cluster(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "StreamCluster",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "storage": {"size": "1Gi"}, "config": {"num.partitions": 1}},
    }


def _topic(name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "StreamTopic",
        "metadata": {"name": name},
        "spec": {"clusterRef": cluster, "partitions": 2, "replicas": 1, **spec},
    }


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _get(k8s: Cluster, ns: str, plural: str, name: str) -> dict[str, Any] | None:
    return k8s.api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{plural}/{name}")


def _ready(k8s: Cluster, ns: str, plural: str, name: str) -> dict[str, Any] | None:
    obj = _get(k8s, ns, plural, name)
    cond = _condition(obj, "Ready")
    return obj if cond is not None and cond["status"] == "True" else None


def _pod_ips(k8s: Cluster, ns: str, service: str) -> list[str]:
    """Pod IPs behind the headless Service, from its Endpoints (never a ClusterIP)."""
    ep = k8s.api.get(f"/api/v1/namespaces/{ns}/endpoints/{service}")
    ips = [a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get("addresses") or []]
    return sorted(ips)


@dataclass(frozen=True)
class Release:
    namespace: str
    name: str


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with k8s.namespace("e2e") as ns:
        name = f"sr-{uuid.uuid4().hex[:6]}"
        k8s.helm(
            "install",
            name,
            str(CHART),
            "--namespace",
            ns,
            "--set",
            f"operator.watchNamespaces={{{ns}}}",
            # helm test talks to the 1-broker cluster through its headless Service (pod IPs).
            "--set",
            f"tests.bootstrap=solo-headless.{ns}.svc.cluster.local:9092",
            "--wait",
            "--timeout",
            "180s",
        )
        yield Release(ns, name)
        # Topics first (their finalizer needs the operator), then the clusters.
        k8s.kubectl("delete", "streamtopics", "--all", "-n", ns, "--wait=true", "--timeout=60s", check=False)
        k8s.kubectl("delete", "streamclusters", "--all", "-n", ns, "--wait=false", check=False)


def test_invalid_resources_are_rejected_with_the_schema_message(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    bad = [
        (_topic("even", "c", replicas=2), "replicas must be odd"),
        (_topic("neg", "c", partitions=-1), "spec.partitions"),
        (_cluster("bad-config", 1) | {"spec": {"replicas": 1, "config": {"no.such.key": 1}}}, "no.such.key"),
    ]
    for obj, message in bad:
        out = k8s.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj), check=False)
        assert out.returncode != 0, f"{obj['metadata']['name']} was accepted"
        assert message in out.stderr, out.stderr
    k8s.apply(_topic("moving", "c1"), namespace=ns)
    out = k8s.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(_topic("moving", "c2")), check=False)
    assert out.returncode != 0 and "clusterRef is immutable" in out.stderr, out.stderr
    out = k8s.kubectl(
        "apply", "-n", ns, "-f", "-", stdin=json.dumps(_topic("moving", "c1", partitions=1)), check=False
    )
    assert out.returncode != 0 and "partitions may only grow" in out.stderr, out.stderr
    k8s.kubectl("delete", "streamtopic", "moving", "-n", ns, "--wait=true", "--timeout=60s")


def test_three_broker_cluster_becomes_ready(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    k8s.apply(_cluster("trio", 3), namespace=ns)
    obj = k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "trio"), 240, "StreamCluster trio Ready")
    status = obj["status"]
    assert status["readyReplicas"] == 3
    assert [b["pod"] for b in status["brokers"]] == ["trio-0", "trio-1", "trio-2"]
    assert all(b["ready"] for b in status["brokers"])
    assert status["bootstrap"] == f"trio-bootstrap.{ns}.svc:9092"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    sts = k8s.get("statefulset", "trio", "-n", ns)
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["metadata"]["ownerReferences"][0]["kind"] == "StreamCluster"
    assert len(_pod_ips(k8s, ns, "trio-headless")) == 3
    pdb = k8s.get("poddisruptionbudget", "trio", "-n", ns)
    assert pdb["spec"]["maxUnavailable"] == 1
    # `sc` is also StorageClass's short name and kubectl prefers the built-in; the category name works.
    printed = k8s.kubectl("get", "streamraft", "-n", ns).stdout
    assert "streamcluster.streamraft.io/trio" in printed and "True" in printed


def test_topic_lifecycle_and_produce_consume_via_pod_ips(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    k8s.apply(_cluster("solo", 1), namespace=ns)
    k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "solo"), 240, "StreamCluster solo Ready")
    k8s.apply(_topic("orders", "solo", config={"retention.ms": 3600000}), namespace=ns)
    topic = k8s.wait_for(lambda: _ready(k8s, ns, "streamtopics", "orders"), 120, "StreamTopic orders Ready")
    assert topic["status"]["partitions"] == 2

    (ip,) = _pod_ips(k8s, ns, "solo-headless")
    bootstrap = f"{ip}:9092"
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(100):
        producer.produce("orders", key=str(i % 2).encode(), value=f"m{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e", "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 100 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            seen.add(msg.value())
    consumer.close()
    assert seen == {f"m{i}".encode() for i in range(100)}

    # Grow partitions through the resource; revert config drift made behind the operator's back.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    k8s.kubectl("patch", "streamtopic", "orders", "-n", ns, "--type=merge", "-p", '{"spec":{"partitions":3}}')
    k8s.wait_for(
        lambda: len(admin.list_topics("orders", timeout=5).topics["orders"].partitions) == 3,
        60,
        "3 partitions",
    )
    drift = ConfigResource(
        ResourceType.TOPIC,
        "orders",
        incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([drift])[drift].result(10)
    res = ConfigResource(ResourceType.TOPIC, "orders")

    def retention() -> str:
        return str(admin.describe_configs([res])[res].result(10)["retention.ms"].value)

    k8s.wait_for(lambda: retention() == "3600000", 90, "retention.ms drift reverted by the resync")

    k8s.kubectl("delete", "streamtopic", "orders", "-n", ns, "--wait=true", "--timeout=60s")
    k8s.wait_for(lambda: "orders" not in admin.list_topics(timeout=5).topics, 30, "Kafka topic deleted")

    # The chart's `helm test` pod: create a topic, produce, consume, through the headless Service.
    out = k8s.helm("test", release.name, "-n", ns, "--timeout", "180s", check=False)
    assert out.returncode == 0, (
        out.stdout
        + out.stderr
        + k8s.pod_log(ns, f"{release.name}-streamraft-operator-test", "produce-consume")
    )
