"""End to end on the local control plane: the chart installs the operator (as a pod on a process node, i.e.
the real Deployment, running `streamraft-operator` from this checkout's venv), which then runs brokers
from StreamCluster resources and topics from StreamTopic resources.

Brokers are Raft-replicated (`--replication raft`, members from the pods' DNS names, node id = ordinal + 1).
A 3-broker cluster is checked for its objects, a quorum-aware rolling restart under acks=all writes to an
RF 3 topic, and a scale-down that must drain first; topic management and produce/consume also run against
a 1-broker cluster. Chaos (leader pods deleted) is in test_e2e_chaos.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.k8s.cluster import Cluster
from tests.k8s.release import (
    Release,
    delete_streamraft_resources,
    lease_holder_pod,
    operator_lease,
    operator_pods,
)

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


def _consume_all(bootstrap: str, topic: str, group: str, expected: set[bytes]) -> set[bytes]:
    """Reads until every expected value was seen (or 60 s). Not a count: the log may also hold records whose
    acknowledgement never reached the producer (in flight at a crash, then timed out), and counting those
    would stop the read before the last expected record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    try:
        while not expected <= seen and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.add(msg.value())
    finally:
        consumer.close()
    return seen


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
        delete_streamraft_resources(k8s, ns)


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
    # The category name and the short name (`srcluster`: `sc` would be StorageClass's) both work.
    printed = k8s.kubectl("get", "streamraft", "-n", ns).stdout
    assert "streamcluster.streamraft.io/trio" in printed and "True" in printed
    assert "trio" in k8s.kubectl("get", "srcluster", "-n", ns).stdout
    k8s.kubectl("delete", "streamcluster", "trio", "-n", ns, "--wait=false")  # frees CPU for the rest


def test_scale_down_drains_the_highest_broker_then_removes_it_and_refuses_a_voter(
    k8s: Cluster, release: Release
) -> None:
    """4 -> 2 brokers with an RF 3 topic: broker 4 (quad-3) is drained through the controller's decommission
    endpoint, then its pod removed and the rest restarted one at a time with the 3-member list; broker 3 is
    a controller voter, so the controller refuses to drain it and the condition says so."""
    ns = release.namespace
    k8s.apply(_cluster("quad", 4), namespace=ns)
    k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "quad"), 240, "StreamCluster quad Ready")
    k8s.apply(_topic("wide", "quad", partitions=4, replicas=3), namespace=ns)
    k8s.wait_for(lambda: _ready(k8s, ns, "streamtopics", "wide"), 120, "StreamTopic wide Ready")
    ip = _pod_ips(k8s, ns, "quad-headless")[0]
    admin = AdminClient({"bootstrap.servers": f"{ip}:9092"})

    def replicas() -> set[int]:
        topic = admin.list_topics("wide", timeout=10).topics["wide"]
        return {r for p in topic.partitions.values() for r in p.replicas}

    assert 4 in replicas(), "placement put no replica on broker 4"
    messages: list[str] = []

    def progressing() -> dict[str, Any] | None:
        cond = _condition(_get(k8s, ns, "streamclusters", "quad"), "Progressing")
        if cond is not None and cond["message"] not in messages[-1:]:
            messages.append(str(cond["message"]))
        return cond

    k8s.kubectl("scale", "streamcluster", "quad", "-n", ns, "--replicas=2")

    def refused() -> dict[str, Any] | None:
        cond = progressing()
        ok = cond and cond["reason"] == "ScaleDownBlocked" and "broker 3" in cond["message"]
        return cond if ok and k8s.get("statefulset", "quad", "-n", ns)["spec"]["replicas"] == 3 else None

    cond = k8s.wait_for(refused, 300, "broker 4 removed, then ScaleDownBlocked for broker 3")
    assert "refused to drain broker 3: HTTP 409" in cond["message"], cond
    assert any(m.startswith("broker 4 still hosts") and "draining broker 4" in m for m in messages), messages
    assert any("removing broker 4 (quad-3)" in m for m in _events(k8s, ns, "BrokerRemoved"))
    assert 4 not in replicas()
    k8s.kubectl("delete", "streamtopic", "wide", "-n", ns, "--wait=true", "--timeout=60s")
    k8s.kubectl("delete", "streamcluster", "quad", "-n", ns, "--wait=false")


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
    sent = {f"m{i}".encode() for i in range(100)}
    assert _consume_all(bootstrap, "orders", "e2e", sent) == sent

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

    # A config change restarts the broker (a lone broker has no quorum to keep) and its data survives.
    (old_pod,) = _pods(k8s, ns, "solo")
    k8s.kubectl(
        "patch",
        "streamcluster",
        "solo",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"config":{"num.partitions":2}}}',
    )

    def restarted() -> str | None:
        pods = _pods(k8s, ns, "solo")
        fresh = [p for p in pods if p["metadata"]["uid"] != old_pod["metadata"]["uid"]]
        if not fresh or not k8s.pod_ready(ns, "solo-0"):
            return None
        return str(fresh[0]["status"].get("podIP") or "") or None

    ip = k8s.wait_for(restarted, 180, "solo-0 restarted with the new config and Ready")
    assert any("restarted solo-0" in m for m in _events(k8s, ns, "BrokerRestarted"))
    bootstrap = f"{ip}:9092"
    assert _consume_all(bootstrap, "orders", "after-restart", sent) == sent
    admin = AdminClient({"bootstrap.servers": bootstrap})

    k8s.kubectl("delete", "streamtopic", "orders", "-n", ns, "--wait=true", "--timeout=60s")
    k8s.wait_for(lambda: "orders" not in admin.list_topics(timeout=5).topics, 30, "Kafka topic deleted")

    # The chart's `helm test` pod: create a topic, produce, consume, through the headless Service.
    out = k8s.helm("test", release.name, "-n", ns, "--timeout", "180s", check=False)
    assert out.returncode == 0, (
        out.stdout
        + out.stderr
        + k8s.pod_log(ns, f"{release.name}-streamraft-operator-test", "produce-consume")
    )


def _events(k8s: Cluster, ns: str, reason: str) -> list[str]:
    items = k8s.api.items(f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3D{reason}")
    return [str(e.get("message", "")) for e in items]


def _pods(k8s: Cluster, ns: str, cluster: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance%3D{cluster},app.kubernetes.io/component%3Dbroker"
    return [
        p
        for p in k8s.api.items(f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
        if not p["metadata"].get("deletionTimestamp")
    ]


def test_topic_of_missing_cluster_and_paused_topic_get_conditions(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    k8s.apply(_topic("orphan", "no-such-cluster"), namespace=ns)

    def not_found() -> dict[str, Any] | None:
        cond = _condition(_get(k8s, ns, "streamtopics", "orphan"), "Ready")
        return cond if cond and cond["reason"] == "ClusterNotFound" else None

    cond = k8s.wait_for(not_found, 60, "ClusterNotFound condition")
    assert cond["message"] == f"StreamCluster no-such-cluster not found in namespace {ns}"
    k8s.kubectl("annotate", "streamtopic", "orphan", "-n", ns, "streamraft.io/paused=true")

    def paused() -> dict[str, Any] | None:
        cond = _condition(_get(k8s, ns, "streamtopics", "orphan"), "Progressing")
        return cond if cond and cond["reason"] == "Paused" else None

    k8s.wait_for(paused, 60, "Paused condition")
    k8s.kubectl("delete", "streamtopic", "orphan", "-n", ns, "--wait=true", "--timeout=60s")


def _produce_until(bootstrap: str, topic: str, start: int, stop: threading.Event, acked: set[bytes]) -> int:
    """Produces `r<start>`, `r<start+1>`... with acks=all until `stop` is set; returns the next index."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 15000,
            "linger.ms": 5,
        }
    )

    def delivered(err: object, msg: Any) -> None:
        if err is None:
            acked.add(msg.value())

    i = start
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline and i < start + 20000:
        try:
            producer.produce(topic, value=f"r{i}".encode(), on_delivery=delivered)
            i += 1
        except BufferError:
            pass
        producer.poll(0.01)
    producer.flush(20)
    return i


def test_broker_pod_killed_during_acks_all_production_loses_no_acknowledged_record(
    k8s: Cluster, release: Release
) -> None:
    ns = release.namespace
    k8s.apply(_cluster("solo", 1), namespace=ns)
    k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "solo"), 240, "StreamCluster solo Ready")
    k8s.apply(_topic("durable", "solo", partitions=1), namespace=ns)
    k8s.wait_for(lambda: _ready(k8s, ns, "streamtopics", "durable"), 120, "StreamTopic durable Ready")
    (pod,) = _pods(k8s, ns, "solo")
    acked: set[bytes] = set()
    stop = threading.Event()
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(
            _produce_until(f"{pod['status']['podIP']}:9092", "durable", 0, stop, acked)
        )
    )
    worker.start()
    k8s.wait_for(lambda: len(acked) >= 300, 60, "300 records acknowledged before the kill")
    # SIGKILL semantics: no grace period, no preStop.
    k8s.kubectl("delete", "pod", "solo-0", "-n", ns, "--grace-period=0", "--force", "--wait=false")
    acked_before_kill = len(acked)

    def back() -> str | None:
        fresh = [p for p in _pods(k8s, ns, "solo") if p["metadata"]["uid"] != pod["metadata"]["uid"]]
        return str(fresh[0]["status"].get("podIP") or "") if fresh and k8s.pod_ready(ns, "solo-0") else None

    ip = k8s.wait_for(back, 180, "solo-0 back and Ready")
    stop.set()
    worker.join(60)
    assert result, "producer thread did not finish"
    stop.clear()
    end = _produce_until(f"{ip}:9092", "durable", result[0], _stop_after(200, acked), acked)
    assert end > result[0]
    k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "solo"), 120, "StreamCluster solo Ready again")
    stored = _consume_all(f"{ip}:9092", "durable", f"verify-{uuid.uuid4().hex[:6]}", acked)
    missing = acked - stored
    assert not missing, (
        f"{len(missing)} acknowledged records lost (acked {len(acked)}, {acked_before_kill} before kill)"
    )


def _stop_after(more: int, acked: set[bytes]) -> threading.Event:
    """An Event that sets itself once `more` further records are acknowledged (checked from a thread)."""
    target = len(acked) + more
    event = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(acked) < target and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a counter owned by librdkafka's callback: nothing to block on
        event.set()

    threading.Thread(target=watch, daemon=True).start()
    return event


def test_operator_restart_mid_reconcile_creates_no_duplicates(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    k8s.apply(_cluster("again", 2), namespace=ns)
    # The acting operator is the Lease holder (the other replica stands by).
    leader = k8s.wait_for(lambda: lease_holder_pod(operator_lease(k8s, release)), 60, "an operator leader")
    assert leader in operator_pods(k8s, ns)
    # Kill the operator while it is creating the cluster's objects; the standby (or the replacement
    # pod) takes the Lease over and resumes the work.
    k8s.kubectl("delete", "pod", leader, "-n", ns, "--grace-period=0", "--force", "--wait=false")
    k8s.wait_for(lambda: _ready(k8s, ns, "streamclusters", "again"), 240, "StreamCluster again Ready")
    owned = {
        kind: [
            o["metadata"]["name"]
            for o in k8s.get(kind, "-n", ns, "-l", "app.kubernetes.io/instance=again")["items"]
        ]
        for kind in ("statefulsets", "services", "configmaps", "poddisruptionbudgets")
    }
    assert owned == {
        "statefulsets": ["again"],
        "services": ["again-bootstrap", "again-headless"],
        "configmaps": ["again-config"],
        "poddisruptionbudgets": ["again"],
    }
    assert sorted(p["metadata"]["name"] for p in _pods(k8s, ns, "again")) == ["again-0", "again-1"]
    k8s.kubectl("delete", "streamcluster", "again", "-n", ns, "--wait=false")


SERVICE_MONITOR_CRD = {
    # A stand-in for the Prometheus Operator's CRD: only its existence matters to the operator.
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_service_monitor_created_once_its_crd_exists(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    if (
        k8s.api.get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com"
        )
        is None
    ):
        k8s.apply(SERVICE_MONITOR_CRD)
    cluster = _cluster("watched", 1)
    cluster["spec"]["metrics"] = {"enabled": True, "serviceMonitor": True}
    k8s.apply(cluster, namespace=ns)
    path = f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors/watched"
    sm = k8s.wait_for(lambda: k8s.api.get(path), 120, "ServiceMonitor watched")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["metadata"]["ownerReferences"][0]["name"] == "watched"
    k8s.kubectl("delete", "streamcluster", "watched", "-n", ns, "--wait=false")
