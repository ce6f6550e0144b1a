"""kafka-topics (TopicCommand): create, describe, alter partitions, list and delete."""

from __future__ import annotations

import time

import pytest

from tests.compat.helpers import create_topic, describe_partition_count
from tests.compat.target import Target
from tests.javakafka.tools import TOPIC_COMMAND, run_tool

pytestmark = [pytest.mark.java]


def _list(target: Target) -> set[str]:
    out = run_tool(TOPIC_COMMAND, ["--bootstrap-server", target.bootstrap, "--list"]).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def test_create_describe_alter_delete(target: Target, topic_name: str) -> None:
    create_topic(target, topic_name, 3)
    assert topic_name in _list(target)
    assert describe_partition_count(target, topic_name) == 3

    described = run_tool(
        TOPIC_COMMAND, ["--bootstrap-server", target.bootstrap, "--describe", "--topic", topic_name]
    ).stdout
    partition_lines = [ln for ln in described.splitlines() if "Partition:" in ln and "Leader:" in ln]
    assert len(partition_lines) == 3, described
    assert all(f"ReplicationFactor: {target.replication_factor}" in described for _ in [0]), described

    run_tool(
        TOPIC_COMMAND,
        ["--bootstrap-server", target.bootstrap, "--alter", "--topic", topic_name, "--partitions", "5"],
    )
    assert describe_partition_count(target, topic_name) == 5

    run_tool(TOPIC_COMMAND, ["--bootstrap-server", target.bootstrap, "--delete", "--topic", topic_name])
    deadline = time.monotonic() + 30
    while topic_name in _list(target):
        assert time.monotonic() < deadline, f"{topic_name} still listed 30s after delete"
        time.sleep(0.5)


def test_create_duplicate_is_rejected(target: Target, topic_name: str) -> None:
    create_topic(target, topic_name, 1)
    proc = run_tool(
        TOPIC_COMMAND,
        ["--bootstrap-server", target.bootstrap, "--create", "--topic", topic_name, "--partitions", "1"],
        check=False,
    )
    assert proc.returncode != 0
    assert "already exists" in (proc.stdout + proc.stderr)
