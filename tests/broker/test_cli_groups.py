"""`streamraft groups` and `cluster status`: what an operator reads about a cluster, as tables or JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.poll import wait_for
from tests.support.ports import free_port

TOPIC = "orders"
PARTITIONS = 2
PER_PARTITION = 15


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamraft_broker.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json(*args: str) -> Any:
    out = _cli(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _seed(bootstrap: str, group: str) -> None:
    """15 records per partition; the group commits offsets 5 and 10."""
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future resolves
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(TOPIC, f"{p}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(TOPIC, 0, 5), TopicPartition(TOPIC, 1, 10)], asynchronous=False)
    consumer.close()


def test_groups_list_describe_and_reset_offsets(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "b", metrics=False) as broker:
        bs = ("--bootstrap-server", f"127.0.0.1:{broker.port}")
        _seed(f"127.0.0.1:{broker.port}", "billing")

        listed = _json("groups", "list", *bs)
        # Only offsets were committed, no member ever joined: a "simple" group in Kafka's terms.
        assert {"group": "billing", "state": "EMPTY", "simple": True} in listed

        described = _json("groups", "describe", "billing", *bs)
        lags = {p["partition"]: (p["committed"], p["log_end"], p["lag"]) for p in described["partitions"]}
        assert lags == {0: (5, 15, 10), 1: (10, 15, 5)}
        assert described["total_lag"] == 15 and described["members"] == []
        table = _cli("groups", "describe", "billing", *bs).stdout
        assert "total lag: 15" in table and "COMMITTED" in table

        # Without --execute the plan is printed and nothing moves (Kafka's dry-run default).
        plan = _json("groups", "reset-offsets", "billing", "--topic", TOPIC, "--to-offset", "12", *bs)
        assert plan["executed"] is False
        assert [o["new_offset"] for o in plan["offsets"]] == [12, 12]
        assert _json("groups", "describe", "billing", *bs)["total_lag"] == 15
        done = _json(
            "groups", "reset-offsets", "billing", "--topic", TOPIC, "--to-earliest", "--execute", *bs
        )
        assert done["executed"] is True
        after = _json("groups", "describe", "billing", *bs)
        assert [p["committed"] for p in after["partitions"]] == [0, 0] and after["total_lag"] == 30

        # A group with a live member is not reset under it.
        member = Consumer({"bootstrap.servers": f"127.0.0.1:{broker.port}", "group.id": "billing"})
        member.subscribe([TOPIC])
        try:
            wait_for("the consumer to join", lambda: member.poll(0.5) is not None or member.assignment())
            refused = _cli(
                "groups", "reset-offsets", "billing", "--topic", TOPIC, "--to-latest", "--execute", *bs
            )
            assert refused.returncode == 1 and "active member" in refused.stderr
        finally:
            member.close()

        # One plain broker has no controller quorum: status says so and still reports the broker.
        status = _json("cluster", "status", *bs)
        assert [b["id"] for b in status["brokers"]] == [broker.node_id]
        assert "no controller quorum" in status["controller_quorum"]["error"]
        assert status["leaderless_partitions"] == []


def test_unreachable_cluster_is_one_clear_error() -> None:
    port = free_port()
    for command in (["cluster", "status"], ["groups", "list"]):
        out = _cli(*command, "--bootstrap-server", f"127.0.0.1:{port}", "--timeout", "2")
        assert out.returncode == 1, out
        assert out.stderr.startswith("streamraft: error:") and f"127.0.0.1:{port}" in out.stderr
        assert "Traceback" not in out.stderr and "FAIL|rdkafka" not in out.stderr
