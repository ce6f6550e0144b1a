"""examples/event_sourcing against a real broker: commands append events, the projector folds them into the
compacted read model, and the query side rebuilds it by replaying from offset 0.

The broker's log cleaner runs every 100 ms here; the example's topic config (segment.ms 100, dirty ratio 0.01,
delete.retention.ms 2000) is what makes it act. The read model has one partition in this test, so one later
append closes the segment holding every earlier balance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from examples.event_sourcing.commands import Accounts
from examples.event_sourcing.events import Balance, DomainError
from examples.event_sourcing.projector import Projector
from examples.event_sourcing.query import rebuild
from examples.event_sourcing.topics import BALANCES_CONFIG, Topics, create_topics
from tests.support.broker import running_broker
from tests.support.broker_process import BrokerProcess
from tests.support.poll import wait_for
from tests.support.topic_read import LogRecord, read_topic, watermarks

SEGMENT_MS = int(BALANCES_CONFIG["segment.ms"])
DELETE_RETENTION_MS = int(BALANCES_CONFIG["delete.retention.ms"])


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with running_broker(extra_args=["--log-cleaner-backoff-ms", "100"]) as b:
        yield b


def physical(records: list[LogRecord]) -> list[tuple[str, Balance | None]]:
    """The read model's log as stored: (account, balance or None for a tombstone) in offset order."""
    out: list[tuple[str, Balance | None]] = []
    for r in records:
        assert r.key is not None
        out.append((r.key.decode(), None if r.value is None else Balance.decode(r.value)))
    return out


def project(broker: BrokerProcess, topics: Topics) -> dict[str, Balance]:
    projector = Projector(broker.bootstrap, topics)
    try:
        projector.run_until_caught_up()
        return dict(projector.balances)
    finally:
        projector.close()


def test_replay_compaction_and_tombstones(broker: BrokerProcess) -> None:
    topics = Topics()
    create_topics(broker.bootstrap, topics, partitions=1)
    accounts = Accounts(broker.bootstrap, topics)

    # Each command is projected on its own, so the read model gets one record per change of a balance.
    script = [
        lambda: accounts.open("alice"),
        lambda: accounts.open("bob"),
        lambda: accounts.open("carol"),
        lambda: accounts.deposit("alice", 10_000),
        lambda: accounts.deposit("bob", 2_500),
        lambda: accounts.withdraw("alice", 1_200),
        lambda: accounts.deposit("carol", 700),
        lambda: accounts.deposit("alice", 300),
        lambda: accounts.withdraw("carol", 700),
        lambda: accounts.withdraw("bob", 500),
        lambda: accounts.close("carol"),
    ]
    projector = Projector(broker.bootstrap, topics)
    try:
        for command in script:
            command()
            projector.run_until_caught_up()
        projected = dict(projector.balances)
    finally:
        projector.close()
    with pytest.raises(DomainError, match="cannot withdraw"):
        accounts.withdraw("bob", 2_001)
    with pytest.raises(DomainError, match="not open"):
        accounts.deposit("carol", 1)

    expected = {"alice": Balance(9_100, 4), "bob": Balance(2_000, 3)}  # version: events folded in
    assert projected == expected
    assert rebuild(broker.bootstrap, topics) == expected
    # The event log is the source of truth: a fresh command side folds it to the same balances.
    replayed = Accounts(broker.bootstrap, topics)
    assert {a: replayed.balance(a) for a in ("alice", "bob", "carol")} == {
        "alice": 9_100,
        "bob": 2_000,
        "carol": None,
    }

    # segment.ms must pass for the next append to roll the read model's segment (a time-based setting,
    # nothing to poll for); then a new account's first balance is the only record of the active segment,
    # and every earlier one is in a closed segment, which the cleaner may compact.
    time.sleep(2 * SEGMENT_MS / 1000)
    rolled_after = time.monotonic()  # no cleaning of the tombstone's segment can start before this
    accounts.open("dave")
    expected["dave"] = Balance(0, 1)
    # A restarted projector: state from the read model, position from its group's committed offsets.
    assert project(broker, topics) == expected
    ((_, written),) = watermarks(broker.bootstrap, topics.balances).values()
    assert written == len(script) + 1, "one balance record per command"

    # The cleaner keeps the latest record per account; carol's tombstone stays for delete.retention.ms.
    def stored() -> list[tuple[str, Balance | None]]:
        return physical(read_topic(broker.bootstrap, topics.balances))

    latest = [
        ("alice", expected["alice"]),
        ("bob", expected["bob"]),
        ("carol", None),
        ("dave", expected["dave"]),
    ]
    wait_for(
        "the cleaner to keep only the latest record per account",
        lambda: sorted(stored()) == latest,
        timeout=20,
        logs=lambda: f"{stored()}\n{broker.log_tail()}",
    )
    assert rebuild(broker.bootstrap, topics) == expected

    # After delete.retention.ms a later pass drops the tombstone: a closed account leaves no trace.
    wait_for(
        "carol's tombstone to go",
        lambda: [k for k, _ in stored()] == ["alice", "bob", "dave"],
        timeout=DELETE_RETENTION_MS / 1000 + 15,
        logs=lambda: f"{stored()}\n{broker.log_tail()}",
    )
    assert time.monotonic() - rolled_after >= DELETE_RETENTION_MS / 1000, "tombstone dropped too early"
    assert rebuild(broker.bootstrap, topics) == expected

    # A projector that reads the whole history again (a new consumer group) ends with the same balances:
    # an event at or below its account's version is skipped.
    again = Projector(broker.bootstrap, topics, group="projector-replay")
    try:
        again.run_until_caught_up()
        assert again.balances == expected
    finally:
        again.close()
    assert rebuild(broker.bootstrap, topics) == expected
