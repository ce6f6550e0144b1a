"""OffsetDelete: ``kafka-consumer-groups --delete-offsets`` and kafka-python's
KafkaAdminClient.delete_group_offsets (confluent-kafka has no binding for it) forget a group's committed
offsets, except of topics its members consume (GROUP_SUBSCRIBED_TO_TOPIC)."""

from __future__ import annotations

import time

import kafka.errors
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaTP

from tests.compat.target import Target
from tests.javakafka.tools import CONSUMER_GROUPS, run_tool

pytestmark = [pytest.mark.java]

NO_OFFSET = -1001
"""librdkafka's OFFSET_INVALID: what committed() returns for a partition without a committed offset."""


def _create(target: Target, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, target.replication_factor)])[topic].result(30)


def _committed(target: Target, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return [tp.offset for tp in c.committed(wanted, timeout=30)]
    finally:
        c.close()


def _commit(target: Target, group: str, topic: str, offsets: list[int]) -> None:
    """Commits without joining the group (generation -1), as tools that manage offsets do."""
    c = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in enumerate(offsets)], asynchronous=False)
    finally:
        c.close()


def test_delete_offsets_of_an_empty_group_with_the_cli(target: Target, topic_name: str) -> None:
    _create(target, topic_name, 2)
    group = f"g-{topic_name}"
    _commit(target, group, topic_name, [5, 7])
    out = run_tool(
        CONSUMER_GROUPS,
        [
            "--bootstrap-server", target.bootstrap, "--delete-offsets", "--group", group,
            "--topic", f"{topic_name}:0",
        ],
    ).stdout  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith(topic_name)]
    assert rows == [[topic_name, "0", "Successful"]], out
    assert _committed(target, group, topic_name, 2) == [NO_OFFSET, 7]

    # A group that does not exist is a clear error, not a silent success.
    missing = run_tool(
        CONSUMER_GROUPS,
        [
            "--bootstrap-server", target.bootstrap, "--delete-offsets", "--group", f"none-{group}",
            "--topic", topic_name,
        ],
        check=False,
    )  # fmt: skip
    assert "does not exist" in missing.stdout + missing.stderr, missing.stdout + missing.stderr


def test_offsets_of_a_subscribed_topic_are_kept(target: Target, topic_name: str) -> None:
    _create(target, topic_name, 1)
    other = f"{topic_name}-other"
    _create(target, other, 1)
    group = f"g-{topic_name}"
    member = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        member.subscribe([topic_name])
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline, "the member never got its assignment"
            member.poll(0.2)
        both = [TopicPartition(topic_name, 0, 3), TopicPartition(other, 0, 4)]
        member.commit(offsets=both, asynchronous=False)
        admin = KafkaAdminClient(bootstrap_servers=target.bootstrap)
        try:
            outcome = admin.delete_group_offsets(group, [KafkaTP(topic_name, 0), KafkaTP(other, 0)])
        finally:
            admin.close()
        # The member consumes topic_name: its offset stays. It does not consume `other`: that offset goes
        # while the group is Stable.
        assert outcome == {
            KafkaTP(topic_name, 0): kafka.errors.GroupSubscribedToTopicError,
            KafkaTP(other, 0): kafka.errors.NoError,
        }
        committed = member.committed([TopicPartition(topic_name, 0), TopicPartition(other, 0)], timeout=30)
        assert [tp.offset for tp in committed] == [3, NO_OFFSET]
    finally:
        member.close()
