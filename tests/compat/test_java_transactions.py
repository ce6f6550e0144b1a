"""Kafka's Java client with transactions: commit, abort, fencing of a zombie producer, and a read_committed
Java consumer. On the replicated cluster, which has no transaction coordinator yet, initTransactions fails
(FindCoordinator answers COORDINATOR_NOT_AVAILABLE) instead of half-working."""

from __future__ import annotations

import pytest

from tests.compat.helpers import create_topic
from tests.compat.target import Target
from tests.javakafka.tools import compiled_test_clients, run_tool
from tests.support.txn_clients import read_partition

pytestmark = [pytest.mark.java]

TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"


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
