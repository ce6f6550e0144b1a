"""End to end on the local control plane: a dynamic key of spec.config reaches every broker without a
restart, and the manual rolling update annotation (as Strimzi's `strimzi.io/manual-rolling-update`) restarts
one annotated broker pod, or every broker when on the StreamCluster, through the quorum-gated rollout, and is
then gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from tests.k8s.cluster import Cluster
from tests.k8s.release import GROUP, Release, installed_release, ready, resource

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "dyn"
ANNOTATION = f"{GROUP}/manual-rolling-update"
PENDING = f"{GROUP}/manual-rolling-update-pending"
ROLL_S = 300.0


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with installed_release(k8s, "dynconf") as rel:
        yield rel


def _pods(k8s: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    selector = f"app.kubernetes.io/instance%3D{NAME},app.kubernetes.io/component%3Dbroker"
    return {
        p["metadata"]["name"]: p
        for p in k8s.api.items(f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
        if not p["metadata"].get("deletionTimestamp")
    }


def _uids(k8s: Cluster, ns: str) -> dict[str, str]:
    return {n: str(p["metadata"]["uid"]) for n, p in _pods(k8s, ns).items()}


def _events(k8s: Cluster, ns: str, reason: str) -> list[str]:
    items = k8s.api.items(f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3D{reason}")
    return [str(e.get("message", "")) for e in items]


def _cluster(k8s: Cluster, ns: str) -> dict[str, Any]:
    obj = k8s.api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/streamclusters/{NAME}")
    assert obj is not None
    return obj


def _message_max_bytes(pods: dict[str, dict[str, Any]]) -> set[tuple[str, int]]:
    """message.max.bytes and its source as each broker reports it about itself (over its pod IP)."""
    seen = set()
    for name, pod in pods.items():
        node = str(int(name.rsplit("-", 1)[1]) + 1)
        admin = AdminClient({"bootstrap.servers": f"{pod['status']['podIP']}:9092"})
        res = ConfigResource(ResourceType.BROKER, node)
        entry = admin.describe_configs([res])[res].result(15)["message.max.bytes"]
        seen.add((str(entry.value), int(entry.source)))
    return seen


def _all_ready_and_replaced(k8s: Cluster, ns: str, before: dict[str, str], names: set[str]) -> bool:
    """Every broker Ready again, and exactly `names` running as new pods."""
    if ready(k8s, ns, "streamclusters", NAME) is None:
        return False
    now = _uids(k8s, ns)
    return len(now) == 3 and {n for n, uid in now.items() if before.get(n) != uid} == names


def test_dynamic_config_without_restart_and_manual_rolling_updates(k8s: Cluster, release: Release) -> None:
    ns = release.namespace
    spec = {"replicas": 3, "storage": {"size": "1Gi"}, "config": {"num.partitions": 1}}
    k8s.apply(resource("StreamCluster", NAME, spec), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 240, f"StreamCluster {NAME} Ready")
    first = _uids(k8s, ns)

    # A dynamic key: applied over the Admin API on every broker, no pod restarted.
    k8s.kubectl("patch", "streamcluster", NAME, "-n", ns, "--type", "merge",
                "-p", '{"spec": {"config": {"message.max.bytes": 3000000}}}')  # fmt: skip
    wanted = {("3000000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)}
    k8s.wait_for(
        lambda: _message_max_bytes(_pods(k8s, ns)) == wanted, 120, "message.max.bytes on every broker"
    )
    assert any("message.max.bytes=3000000" in m for m in _events(k8s, ns, "BrokerConfigUpdated"))
    assert _uids(k8s, ns) == first, "a dynamic config restarted a broker"

    # One broker pod annotated: that broker alone is restarted.
    k8s.kubectl("annotate", "pod", f"{NAME}-1", "-n", ns, f"{ANNOTATION}=true")
    k8s.wait_for(lambda: _all_ready_and_replaced(k8s, ns, first, {f"{NAME}-1"}), ROLL_S, f"{NAME}-1 rolled")
    second = _uids(k8s, ns)

    # The StreamCluster annotated: every broker restarted one at a time, then the annotation is gone.
    k8s.kubectl("annotate", "streamcluster", NAME, "-n", ns, f"{ANNOTATION}=true")
    every = {f"{NAME}-{i}" for i in range(3)}
    k8s.wait_for(lambda: _all_ready_and_replaced(k8s, ns, second, every), ROLL_S, "every broker rolled")
    annotations = _cluster(k8s, ns)["metadata"].get("annotations") or {}
    k8s.wait_for(
        lambda: not {ANNOTATION, PENDING} & set(_cluster(k8s, ns)["metadata"].get("annotations") or {}),
        60,
        f"annotations gone, were {annotations}",
    )
    assert any(
        m.startswith("manual rolling update requested for") for m in _events(k8s, ns, "ManualRollingUpdate")
    )
    manual = [m for m in _events(k8s, ns, "BrokerRestarted") if "manual rolling update" in m]
    assert {m.split(":")[0] for m in manual} == {f"restarted {n}" for n in every}, manual
    # The dynamic config outlived every restart (it lives in the controller log).
    assert _message_max_bytes(_pods(k8s, ns)) == wanted
    k8s.kubectl("delete", "streamcluster", NAME, "-n", ns, "--wait=false")
