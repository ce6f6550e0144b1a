"""Kafka's Java client with transactions: commit, abort, fencing of a zombie producer, and a read_committed
Java consumer. On the replicated cluster, which has no transaction coordinator yet, initTransactions fails
(FindCoordinator answers COORDINATOR_NOT_AVAILABLE) instead of half-working."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.compat.helpers import create_topic
from tests.compat.target import Target
from tests.javakafka.tools import compiled_test_clients, run_tool
from tests.support.txn_clients import read_partition

pytestmark = [pytest.mark.java]

TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (got,) = consumer.committed([TopicPartition(topic, 0)], timeout=15)
        return int(got.offset)
    finally:
        consumer.close()


def test_java_transactional_producer_and_read_committed_consumer(target: Target, topic_name: str) -> None:
    classes = str(compiled_test_clients())
    create_topic(target, topic_name, 1)
    out = run_tool(
        "TxnClient", [target.bootstrap, topic_name, f"tx-{topic_name}"], extra_cp=[classes], timeout_s=120
    ).stdout.splitlines()
    txn_id = f"tx-{topic_name}"
    listed = run_tool(TRANSACTIONS_COMMAND, ["--bootstrap-server", target.bootstrap, "list"]).stdout
    if target.name == "streamraft-raft":
        assert [line.split()[0] for line in out] == ["INIT_FAILED"], out
        assert txn_id not in listed, listed
        return
    assert any(txn_id in line and "CompleteCommit" in line for line in listed.splitlines()), listed
    described = run_tool(
        TRANSACTIONS_COMMAND,
        ["--bootstrap-server", target.bootstrap, "describe", "--transactional-id", txn_id],
    ).stdout
    assert "CompleteCommit" in described and txn_id in described, described
    assert "FENCED" in out, out
    # endOffsets under read_committed is the last stable offset: 4 transactions of one record + 4 markers,
    # the aborted one included, and the zombie's transaction aborted by the successor's initTransactions.
    assert [line for line in out if line.startswith("READ ")] == [
        "READ c1",
        "READ c2",
        "READ c3",
        "READ c4",
    ], out
    assert read_partition(target.bootstrap, topic_name, 0, isolation="read_committed") == [
        b"c1",
        b"c2",
        b"c3",
        b"c4",
    ]


def test_a_zombie_whose_consumer_left_the_group_cannot_commit_offsets_kip_447(
    target: Target, topic_name: str
) -> None:
    """Consume-transform-produce with the Java client (tests/compat/java/TxnZombieConsumer.java): the first
    instance stalls past max.poll.interval.ms, its consumer leaves the group and a successor with another
    transactional.id takes the partition, processes the same input and commits. The zombie's
    sendOffsetsToTransaction carries its old member id and generation: refused (the client's
    CommitFailedException, from UNKNOWN_MEMBER_ID), so it cannot commit and aborts. A read_committed reader
    sees the successor's output once and none of the zombie's; the group's offset is the successor's."""
    source, sink, group = f"{topic_name}-in", f"{topic_name}-out", f"g-{topic_name}"
    create_topic(target, source, 1)
    create_topic(target, sink, 1)
    inputs = [f"v{i}" for i in range(5)]
    producer = Producer({"bootstrap.servers": target.bootstrap})
    for value in inputs:
        producer.produce(source, value.encode(), partition=0)
    assert producer.flush(30) == 0
    out = run_tool(
        "TxnZombieConsumer",
        [target.bootstrap, source, sink, group],
        extra_cp=[str(compiled_test_clients())],
        timeout_s=120,
    ).stdout.splitlines()
    if target.name == "streamraft-raft":
        assert [line.split()[0] for line in out] == ["INIT_FAILED"], out
        return
    steps = [line.split()[0] for line in out]
    assert steps == [
        "TAKEN_OVER",
        "SUCCESSOR_COMMITTED",
        "ZOMBIE_OFFSETS_REFUSED",
        "ZOMBIE_COMMIT_FAILED",
        "DONE",
    ], out
    assert "CommitFailedException" in out[2], out
    assert out[1] == f"SUCCESSOR_COMMITTED {len(inputs)}", out
    successor = [f"successor:{v}".encode() for v in inputs]
    assert read_partition(target.bootstrap, sink, 0, isolation="read_committed") == successor
    # The zombie's records are in the log, aborted.
    assert sorted(read_partition(target.bootstrap, sink, 0, isolation="read_uncommitted")) == sorted(
        [f"zombie:{v}".encode() for v in inputs] + successor
    )
    assert committed_offset(target.bootstrap, group, source) == len(inputs)
