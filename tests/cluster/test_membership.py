"""Cluster membership on real brokers: registrations (with racks) feed Metadata and DescribeCluster, a
broker started later joins and receives replicas, and a decommission over the admin HTTP API moves every
replica off a broker before it leaves the metadata, without losing an acked write."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from kio.schema.describe_cluster.v0.request import DescribeClusterRequest

from tests.support.broker_process import BrokerProcess
from tests.support.kafka_io import read_all, send
from tests.support.launcher import create_topic, wait_controller
from tests.support.membership import (
    add_broker,
    admin,
    metadata_brokers,
    racked_cluster,
    registered,
    replicas,
    wire,
)
from tests.support.poll import wait_for

TOPIC = "spread"
RACKS = {1: "a", 2: "b", 3: "c"}


def _racks_are(broker: BrokerProcess, racks: dict[int, str]) -> bool:
    return {n: r["rack"] for n, r in registered(broker).items()} == racks


def _metadata_is(port: int, brokers: set[int]) -> bool:
    return metadata_brokers(port) == brokers


def test_registration_join_and_decommission(tmp_path: Path) -> None:
    with racked_cluster(tmp_path, RACKS) as cluster:
        for n, b in cluster.brokers.items():
            wait_for(f"registrations seen by broker {n}", partial(_racks_are, b, RACKS), logs=cluster.logs)
        described = wire(
            cluster.kafka_ports[2], 60, 0, DescribeClusterRequest(include_cluster_authorized_operations=False)
        )
        assert {int(b.broker_id): b.rack for b in described.brokers} == RACKS
        assert int(described.controller_id) in RACKS

        b4 = add_broker(cluster, tmp_path, 4, "a")
        for port in cluster.kafka_ports.values():
            wait_for(f"broker 4 in metadata from {port}", partial(_metadata_is, port, {1, 2, 3, 4}))
        assert registered(b4)[4]["state"] == "active"

        create_topic(cluster, TOPIC, 4, 3)
        placed = replicas(cluster.kafka_ports[1], TOPIC)
        per_broker = {n: sum(n in rs for rs in placed.values()) for n in (1, 2, 3, 4)}
        assert per_broker == {1: 3, 2: 3, 3: 3, 4: 3}, f"replicas not spread over the new broker: {placed}"
        acked = {
            p: send(cluster.bootstrap, TOPIC, p, [f"{p}-{i}".encode() for i in range(100)]) for p in placed
        }

        controller = wait_controller(cluster)
        other = next(n for n in (1, 2, 3) if n != controller)
        via = cluster.brokers[other]  # a non-controller: the request is forwarded as UnregisterBroker
        status, body = admin(via, "POST", f"/admin/brokers/{controller}/decommission")
        assert status == 409 and "controller voter" in body["error"], body
        assert admin(via, "POST", "/admin/brokers/77/decommission")[0] == 404
        assert admin(via, "POST", "/admin/brokers/four/decommission")[0] == 400

        status, body = admin(via, "POST", "/admin/brokers/4/decommission")
        assert status == 202 and body["id"] == 4 and body["state"] == "decommissioning", body
        assert 0 < body["replicas_left"] <= 3, body

        def drained() -> bool:
            regs = registered(via)
            return regs[4]["state"] == "decommissioned" and regs[4]["replicas"] == 0

        wait_for("broker 4 decommissioned", drained, timeout=120, logs=cluster.logs)
        for port in (cluster.kafka_ports[n] for n in (1, 2, 3)):
            wait_for(f"broker 4 gone from metadata at {port}", partial(_metadata_is, port, {1, 2, 3}))
            assert all(4 not in rs and len(rs) == 3 for rs in replicas(port, TOPIC).values())
        status, body = admin(via, "POST", "/admin/brokers/4/decommission")
        assert (status, body["state"], body["replicas_left"]) == (200, "decommissioned", 0), body

        b4.terminate()
        bootstrap = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in (1, 2, 3))
        for p, early in acked.items():
            values = early + send(bootstrap, TOPIC, p, [f"{p}-late-{i}".encode() for i in range(20)])
            got = read_all(bootstrap, TOPIC, p, len(values), cluster.logs)
            assert set(values) <= set(got), f"partition {p} lost {len(set(values) - set(got))} acked records"
            assert len(got) == len(set(got)), f"partition {p}: a record was read twice"
