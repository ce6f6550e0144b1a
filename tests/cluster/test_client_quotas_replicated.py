"""Client quotas in a 3-broker Raft cluster: an AlterClientQuotas sent to any broker is forwarded to the
controller, committed to the controller log and applied by every broker; a SIGKILLed controller's
successor accepts further changes, and the killed broker gets them all back when it returns (from the
controller log and its snapshots, taken every few entries here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from tests.support.client_quotas import EntityKey, admin_client, alter, describe
from tests.support.launcher import Cluster, wait_controller
from tests.support.membership import settled

pytestmark = pytest.mark.timeout(180)
T = TypeVar("T")

APP: EntityKey = (("client-id", "app"),)
ALICE: EntityKey = (("client-id", None), ("user", "alice"))


def _on_node(cluster: Cluster, node: int, call: Callable[[KafkaAdminClient], T]) -> T | KafkaError:
    """``call`` on an admin client bootstrapped from ``node``, or the client error it raised (a broker that
    has just started may not list itself in Metadata yet)."""
    try:
        with admin_client(f"127.0.0.1:{cluster.kafka_ports[node]}") as admin:
            return call(admin)
    except KafkaError as exc:
        return exc


def _alter_via(
    cluster: Cluster, node: int, entity: dict[str, str | None], ops: dict[str, float | None]
) -> None:
    """Sends the change to ``node`` itself (not the controller unless it is one), retrying while the
    controller group elects a leader."""
    deadline = time.monotonic() + 30
    while (result := _on_node(cluster, node, lambda a: alter(a, [(entity, ops)], node_id=node))) != [
        (0, None)
    ]:
        assert time.monotonic() < deadline, f"alteration through broker {node} kept failing: {result}"
        time.sleep(0.2)  # pacing between retries during an election


def _wait_described(cluster: Cluster, nodes: list[int], expected: dict[EntityKey, dict[str, float]]) -> None:
    """Until each of ``nodes`` describes exactly ``expected`` from its own copy of the controller state."""
    for node in nodes:
        deadline = time.monotonic() + 30
        while (got := _on_node(cluster, node, partial(describe, components=[], node_id=node))) != (
            0,
            expected,
        ):
            assert time.monotonic() < deadline, f"broker {node} describes {got}, not {expected}"
            time.sleep(0.1)  # pacing between polls of the broker's applied state


def test_quotas_replicate_through_any_broker_and_outlive_a_killed_controller(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, extra_args=("--controller-snapshot-entries", "3"))
    for broker in cluster.brokers.values():
        broker.metrics = True  # for /admin/rejoin
    with cluster:
        nodes = sorted(cluster.kafka_ports)
        deadline = time.monotonic() + 60
        # A broker started late joins through a rejoin: until it is a voter again, killing the
        # controller would leave the controller group without a quorum.
        while not settled([b.admin_port for b in cluster.brokers.values()]):
            assert time.monotonic() < deadline, "the cluster's start-up never settled"
            time.sleep(0.2)  # pacing between polls of the brokers' rejoin state
        controller = wait_controller(cluster)
        follower = next(n for n in nodes if n != controller)
        _alter_via(cluster, follower, {"client-id": "app"}, {"producer_byte_rate": 1024})
        _wait_described(cluster, nodes, {APP: {"producer_byte_rate": 1024.0}})

        cluster.brokers[controller].kill()
        survivors = [n for n in nodes if n != controller]
        _alter_via(cluster, survivors[0], {"user": "alice", "client-id": None}, {"consumer_byte_rate": 2048})
        _alter_via(cluster, survivors[1], {"client-id": "app"}, {"request_percentage": 50})
        both = {
            APP: {"producer_byte_rate": 1024.0, "request_percentage": 50.0},
            ALICE: {"consumer_byte_rate": 2048.0},
        }
        _wait_described(cluster, survivors, both)

        cluster.brokers[controller].start()
        _wait_described(cluster, [controller], both)
