"""Brokers joining and moving: a launcher cluster with metrics/admin ports and racks, brokers added later,
the admin HTTP calls that show registrations and rejoins, and the replicas Metadata reports."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from tests.support.broker_process import BrokerProcess
from tests.support.launcher import Cluster
from tests.support.ports import free_port
from tests.support.wire import WireClient


def racked_cluster(base: Path, racks: dict[int, str]) -> Cluster:
    """A launcher cluster whose brokers serve metrics/admin HTTP, have racks (STREAMRAFT_RACK) and accept
    brokers that join later (``add_broker``)."""
    cluster = Cluster(base, size=len(racks))
    for n, b in cluster.brokers.items():
        b.metrics = True
        b.env = {"STREAMRAFT_RACK": racks[n], "STREAMRAFT_ALLOW_BROKER_JOIN": "true"}
    return cluster


def add_broker(cluster: Cluster, base: Path, node: int, rack: str) -> BrokerProcess:
    """Start a broker the cluster's --cluster-members does not name; it lists the others plus itself (the
    cluster's brokers must allow joining: STREAMRAFT_ALLOW_BROKER_JOIN)."""
    cluster.kafka_ports[node] = free_port()
    cluster.raft_ports[node] = free_port()
    members = ",".join(
        f"{n}=127.0.0.1:{cluster.kafka_ports[n]}/127.0.0.1:{cluster.raft_ports[n]}"
        for n in cluster.kafka_ports
    )
    broker = BrokerProcess(
        base / f"b{node}",
        node_id=node,
        extra_args=[
            "--listen",
            f"127.0.0.1:{cluster.kafka_ports[node]}",
            "--replication",
            "raft",
            "--cluster-members",
            members,
            "--rack",
            rack,
        ],
    )
    cluster.brokers[node] = broker
    return broker.start()


def admin(broker: BrokerProcess, method: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{broker.admin_port}{path}", method=method, data=b"")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def registered(broker: BrokerProcess) -> dict[int, dict[str, Any]]:
    status, body = admin(broker, "GET", "/admin/brokers")
    assert status == 200, body
    return {int(b["id"]): b for b in body["brokers"]}


def replicas(port: int, topic: str) -> dict[int, list[int]]:
    md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    assert t is not None and t.error is None, t
    return {p: list(pm.replicas) for p, pm in t.partitions.items()}


def metadata_brokers(port: int) -> set[int]:
    return set(AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=5).brokers)


def wire(port: int, api_key: int, version: int, body: Any) -> Any:
    with WireClient("127.0.0.1", port, timeout=30) as client:
        return client.request(api_key, version, body)


def rejoin_view(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/rejoin", timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def settled(admin_ports: list[int]) -> bool:
    """A Raft cluster's start-up is over: every broker decided (first life or rebuilt), none is recovering,
    and no group has a learner left. The launcher starts brokers one after another and a broker that finds
    the cluster formed goes through a rejoin; until it is a voter again the cluster survives no further
    failure, so a test that kills a broker waits for this first."""
    views = [rejoin_view(port) for port in admin_ports]
    if not all(v["state"] in ("none", "fresh", "done") and not v["recovering"] for v in views):
        return False
    return all(not g["learners"] for v in views for g in v["groups"].values())
