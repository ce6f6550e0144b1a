"""The log cleaner on a 3-broker replicated cluster (a partition's Raft log is its Kafka log): every replica
compacts its own copy below its high watermark, keeping one batch per Raft entry, so offsets and Raft
entries stay aligned; after a leader SIGKILL the new leader serves a valid compaction of the same history,
and a follower rebuilt from an empty disk catches up with the same records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from tests.support.keyed_io import (
    Keyed,
    produce_keyed,
    read_keyed,
    read_keyed_kafka_python,
    replay,
    replica_empty_batches,
    replica_records,
)
from tests.support.launcher import Cluster, partition_leader, wait_controller
from tests.support.poll import wait_for

pytestmark = pytest.mark.timeout(240)

TOPIC = "ledger"
KEYS = [b"account-%02d" % k for k in range(50)]
DELETED = KEYS[:5]
TAIL_KEY = b"~tail"
"""Written last so the history rolls out of the active segment (only closed segments are cleaned)."""
CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "600000",
}


def _history() -> list[tuple[bytes, bytes | None]]:
    items: list[tuple[bytes, bytes | None]] = [(KEYS[i % len(KEYS)], b"balance=%d" % i) for i in range(2000)]
    items += [(key, None) for key in DELETED]
    items += [(TAIL_KEY, b"filler-%04d" % i + b"." * 200) for i in range(100)]
    return items


def _valid_compaction(records: list[Keyed], produced: dict[int, tuple[bytes, bytes | None]]) -> bool:
    """Each record is what was written at its offset, offsets increase, the state replays the same, and
    the history (every key but the tail key) is compacted to one record per key."""
    offsets = [o for o, _k, _v in records]
    keys = [k for _o, k, _v in records if k != TAIL_KEY]
    return (
        offsets == sorted(set(offsets))
        and all(produced[o] == (k, v) for o, k, v in records)
        and replay(records) == replay([(o, k, v) for o, (k, v) in sorted(produced.items())])
        and len(keys) == len(set(keys)) == len(KEYS)
    )


def test_every_replica_compacts_and_a_rebuilt_follower_catches_up_with_the_same_records(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path, 3, extra_args=("--log-cleaner-backoff-ms", "200")) as cluster:
        wait_controller(cluster)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 3, config=CONFIGS)], operation_timeout=30)[TOPIC].result(30)
        acked = produce_keyed(cluster.bootstrap, TOPIC, _history())
        produced = {o: (k, v) for o, k, v in acked}
        end = max(produced) + 1

        def compacted_everywhere() -> dict[int, list[Keyed]] | None:
            copies = {n: replica_records(b.data_dir, TOPIC) for n, b in cluster.brokers.items()}
            ok = all(
                _valid_compaction(c, produced) and max(o for o, _k, _v in c) == end - 1
                for c in copies.values()
            )
            return copies if ok else None

        copies = wait_for("every replica to compact", compacted_everywhere, timeout=60, logs=cluster.logs)
        print({n: len(c) for n, c in copies.items()}, "records on disk per replica, of", len(acked))

        # Two clients with their own batch parsers read the leader's log (offset gaps, empty batches).
        served = read_keyed(cluster.bootstrap, TOPIC)
        assert _valid_compaction(served, produced) and len(served) < len(acked)
        assert read_keyed_kafka_python(cluster.bootstrap, TOPIC) == served
        assert all(replica_empty_batches(b.data_dir, TOPIC) > 0 for b in cluster.brokers.values())

        producer = Producer({"bootstrap.servers": cluster.bootstrap})
        leader = partition_leader(producer, TOPIC, 0)
        cluster.brokers[leader].kill()
        survivors = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in cluster.brokers if n != leader)

        def new_leader_serves() -> list[Keyed] | None:
            got = read_keyed(survivors, TOPIC)
            return got if _valid_compaction(got, produced) else None

        after_failover = wait_for(
            "the new leader to serve the compacted log", new_leader_serves, timeout=60, logs=cluster.logs
        )
        assert len(after_failover) < len(acked)
        cluster.brokers[leader].start()

        new_leader = partition_leader(producer, TOPIC, 0)
        follower = next(n for n in cluster.brokers if n not in (new_leader,))
        broker = cluster.brokers[follower]
        broker.kill()
        shutil.rmtree(broker.data_dir)
        broker.start()
        reference = wait_for(
            "the leader's copy",
            lambda: replica_records(cluster.brokers[new_leader].data_dir, TOPIC),
            logs=cluster.logs,
        )

        def rebuilt() -> list[Keyed] | None:
            got = replica_records(broker.data_dir, TOPIC)
            return got if got and max(o for o, _k, _v in got) == end - 1 else None

        copy = wait_for("the rebuilt follower to catch up", rebuilt, timeout=90, logs=cluster.logs)
        assert _valid_compaction(copy, produced)
        history = [r for r in copy if r[1] != TAIL_KEY]
        assert history == [r for r in reference if r[1] != TAIL_KEY]

        # Raft goes on over the compacted logs: new writes reach every replica, the restarted and the
        # rebuilt one included, at the offsets the leader gave them.
        more = produce_keyed(
            cluster.bootstrap, TOPIC, [(b"account-01", b"balance=after-%d" % i) for i in range(20)]
        )
        produced.update({o: (k, v) for o, k, v in more})
        new_end = max(produced) + 1

        def everywhere() -> bool:
            copies = [replica_records(b.data_dir, TOPIC) for b in cluster.brokers.values()]
            return all(
                c and max(o for o, _k, _v in c) == new_end - 1 and all(produced[o] == (k, v) for o, k, v in c)
                for c in copies
            )

        wait_for("the new writes on every replica", everywhere, timeout=60, logs=cluster.logs)

        # Tombstones go from every replica once delete.retention.ms (changed through the controller) passed.
        res = ConfigResource(
            "topic",
            TOPIC,
            incremental_configs=[
                ConfigEntry("delete.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([res])[res].result(timeout=30)

        def no_tombstones() -> bool:
            copies = [replica_records(b.data_dir, TOPIC) for b in cluster.brokers.values()]
            return all(
                not any(v is None for _o, _k, v in c)
                and replay(c) == replay(sorted((o, k, v) for o, (k, v) in produced.items()))
                for c in copies
            )

        wait_for("tombstones to go from every replica", no_tombstones, timeout=60, logs=cluster.logs)
        producer.flush(5)
