"""Client quotas in a 3-broker Raft cluster: an AlterClientQuotas sent to any broker is forwarded to the
controller, committed to the controller log and applied by every broker; a SIGKILLed controller's
successor accepts further changes, and the killed broker gets them all back when it returns (from the
controller log and its snapshots, taken every few entries here)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.client_quotas import EntityKey, admin_client, alter, describe
from tests.support.launcher import Cluster, wait_controller

pytestmark = pytest.mark.timeout(180)

APP: EntityKey = (("client-id", "app"),)
ALICE: EntityKey = (("client-id", None), ("user", "alice"))


def _alter_via(
    cluster: Cluster, node: int, entity: dict[str, str | None], ops: dict[str, float | None]
) -> None:
    """Sends the change to ``node`` itself (not the controller unless it is one), retrying while the
    controller group elects a leader."""
    deadline = time.monotonic() + 30
    with admin_client(f"127.0.0.1:{cluster.kafka_ports[node]}") as admin:
        while True:
            result = alter(admin, [(entity, ops)], node_id=node)
            if result == [(0, None)]:
                return
            assert time.monotonic() < deadline, f"alteration through broker {node} kept failing: {result}"
            time.sleep(0.2)  # pacing between retries during an election


def _wait_described(cluster: Cluster, nodes: list[int], expected: dict[EntityKey, dict[str, float]]) -> None:
    """Until each of ``nodes`` describes exactly ``expected`` from its own copy of the controller state."""
    for node in nodes:
        deadline = time.monotonic() + 30
        with admin_client(f"127.0.0.1:{cluster.kafka_ports[node]}") as admin:
            while (got := describe(admin, [], node_id=node)) != (0, expected):
                assert time.monotonic() < deadline, f"broker {node} describes {got}, not {expected}"
                time.sleep(0.1)  # pacing between polls of the broker's applied state


def test_quotas_replicate_through_any_broker_and_outlive_a_killed_controller(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, extra_args=("--controller-snapshot-entries", "3")) as cluster:
        nodes = sorted(cluster.kafka_ports)
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
