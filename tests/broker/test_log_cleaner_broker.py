"""The log cleaner on a real single-node broker process (confluent-kafka clients): an event-sourced topic
(cleanup.policy=compact, tiny segments) is compacted to the latest record per key with offsets preserved,
replaying it rebuilds the same state as the full history, tombstones go delete.retention.ms after their
segment was first cleaned, and the compacted log survives a SIGKILL and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.keyed_io import Keyed, produce_keyed, read_keyed, replay
from tests.support.metrics import scrape_flat
from tests.support.poll import wait_for

TOPIC = "account-events"
KEYS = [b"account-%02d" % k for k in range(50)]
DELETED = KEYS[:5]
TAIL_KEY = b"~tail"
"""Written last so the rest of the history rolls out of the active segment (only closed ones are cleaned)."""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "data", extra_args=["--log-cleaner-backoff-ms", "200"]) as b:
        yield b


def _history() -> list[tuple[bytes, bytes | None]]:
    items: list[tuple[bytes, bytes | None]] = [(KEYS[i % len(KEYS)], b"balance=%d" % i) for i in range(3000)]
    items += [(key, None) for key in DELETED]
    items += [(TAIL_KEY, b"filler-%04d" % i + b"." * 200) for i in range(100)]
    return items


def _compacted(records: list[Keyed], *, tombstones: int) -> bool:
    """Every key but the tail key appears once; ``tombstones`` of them are tombstones."""
    keys = [k for _o, k, _v in records if k != TAIL_KEY]
    nulls = sum(1 for _o, k, v in records if k != TAIL_KEY and v is None)
    return len(keys) == len(set(keys)) == len(KEYS) - len(DELETED) + tombstones and nulls == tombstones


def test_an_event_sourced_topic_is_compacted_to_the_latest_record_per_key(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "600000",
    }
    admin.create_topics([NewTopic(TOPIC, 1, 1, config=configs)])[TOPIC].result(timeout=30)
    produced = produce_keyed(broker.bootstrap, TOPIC, _history())
    by_offset = {o: (k, v) for o, k, v in produced}
    full_state = replay(produced)
    assert len(produced) == 3105 and len(full_state) == 46

    def compacted() -> list[Keyed] | None:
        records = read_keyed(broker.bootstrap, TOPIC)
        return records if _compacted(records, tombstones=len(DELETED)) else None

    records = wait_for("the cleaner to compact the history", compacted, timeout=60, logs=broker.log_tail)
    offsets = [o for o, _k, _v in records]
    assert offsets == sorted(set(offsets))
    # Offsets preserved: each surviving record is exactly what was written at its offset.
    assert all(by_offset[o] == (k, v) for o, k, v in records)
    assert replay(records) == full_state
    # The newest value of every live key survived (the latest per key, not any one of them).
    latest = {k: o for o, k, _v in produced}
    assert {o for o, k, _v in records if k != TAIL_KEY} == {o for k, o in latest.items() if k != TAIL_KEY}
    metrics = scrape_flat(broker.metrics_url)
    assert metrics["streamraft_log_cleaner_passes_total"] >= 1
    assert metrics["streamraft_log_cleaner_records_removed_total"] >= 3000 - 50
    assert metrics["streamraft_log_cleaner_bytes_removed_total"] > 0

    broker.kill()
    broker.start()
    after_restart = read_keyed(broker.bootstrap, TOPIC)
    assert after_restart == records

    # Tombstones are kept delete.retention.ms (10 min above); shortened, the next passes remove them.
    res = ConfigResource(
        "topic",
        TOPIC,
        incremental_configs=[
            ConfigEntry("delete.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.incremental_alter_configs([res])[res].result(timeout=30)

    def tombstones_gone() -> list[Keyed] | None:
        got = read_keyed(broker.bootstrap, TOPIC)
        return got if _compacted(got, tombstones=0) else None

    final = wait_for("tombstones to be removed", tombstones_gone, timeout=60, logs=broker.log_tail)
    assert replay(final) == full_state
    assert all(by_offset[o] == (k, v) for o, k, v in final)
    print(f"records before {len(produced)}, compacted {len(records)}, tombstones expired {len(final)}")


def _updates(count: int) -> list[tuple[bytes, bytes | None]]:
    items: list[tuple[bytes, bytes | None]] = [(KEYS[i % 10], b"v%d" % i) for i in range(count)]
    return items + [(TAIL_KEY, b"filler-%04d" % i + b"." * 200) for i in range(60)]


def test_compaction_lags_hold_back_and_force_cleaning(broker: BrokerProcess) -> None:
    """min.compaction.lag.ms keeps young records uncompacted even when the log is all dirty; with
    min.cleanable.dirty.ratio=1 (never by ratio) max.compaction.lag.ms still forces a pass."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    base = {"cleanup.policy": "compact", "segment.bytes": "4096"}
    young = {**base, "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "3600000"}
    forced = {**base, "min.cleanable.dirty.ratio": "1", "max.compaction.lag.ms": "1000"}
    topics = [NewTopic("young", 1, 1, config=young), NewTopic("forced", 1, 1, config=forced)]
    for future in admin.create_topics(topics).values():
        future.result(timeout=30)
    produced = {name: produce_keyed(broker.bootstrap, name, _updates(1000)) for name in ("young", "forced")}

    def compacted(name: str) -> list[Keyed] | None:
        records = read_keyed(broker.bootstrap, name)
        keys = [k for _o, k, _v in records if k != TAIL_KEY]
        return records if len(keys) == len(set(keys)) == 10 else None

    forced_records = wait_for(
        "max.compaction.lag.ms to force a pass", lambda: compacted("forced"), timeout=60
    )
    assert replay(forced_records) == replay(produced["forced"])
    # Passes ran meanwhile (one compacted "forced"); three more and "young" is still whole.
    passes = scrape_flat(broker.metrics_url)["streamraft_log_cleaner_passes_total"]
    wait_for(
        "three more cleaner passes",
        lambda: scrape_flat(broker.metrics_url)["streamraft_log_cleaner_passes_total"] >= passes + 3,
        timeout=30,
    )
    assert read_keyed(broker.bootstrap, "young") == produced["young"]

    res = ConfigResource(
        "topic",
        "young",
        incremental_configs=[
            ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    young_records = wait_for("the lag lifted, a pass", lambda: compacted("young"), timeout=60)
    assert replay(young_records) == replay(produced["young"])
