"""A single broker (no replication) whose data directory fills up (a small real tmpfs): produce is answered
KAFKA_STORAGE_ERROR on the same, still open connection, and works again once space is freed; every
acknowledged record is read back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from kio.schema.create_topics.v7 import request as ct
from kio.schema.produce.v9 import request as pr
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch

from tests.support.broker_process import BrokerProcess
from tests.support.small_disk import fill, free, small_tmpfs
from tests.support.wire import WireClient

KAFKA_STORAGE_ERROR = 56
TOPIC = "fills-up"


def _produce(c: WireClient, value: bytes) -> Any:
    batch = build_batch([SimpleRecord(key=None, value=value)], timestamp_ms=int(time.time() * 1000))
    part = build(pr.PartitionProduceData, index=0, records=batch)
    req = build(
        pr.ProduceRequest,
        transactional_id=None,
        acks=-1,
        timeout=5000,
        topic_data=(build(pr.TopicProduceData, name=TOPIC, partition_data=(part,)),),
    )
    return c.request(0, 9, req).responses[0].partition_responses[0]


def test_produce_on_a_full_disk_answers_storage_error_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "data", size_mb=16) as disk, BrokerProcess(disk, metrics=False) as broker:
        acked: dict[int, bytes] = {}
        with WireClient(broker.host, broker.port) as c:
            topic = build(
                ct.CreatableTopic,
                name=TOPIC,
                num_partitions=1,
                replication_factor=1,
                assignments=(),
                configs=(),
            )
            created = c.request(
                19, 7, build(ct.CreateTopicsRequest, topics=(topic,), timeout=5000, validate_only=False)
            )
            assert int(created.topics[0].error_code) == 0
            for i in range(10):
                value = b"before-%d-" % i + b"v" * 1000
                got = _produce(c, value)
                assert int(got.error_code) == 0
                acked[int(got.base_offset)] = value

            fill(disk)
            for i in range(3):  # the same connection answers every time
                # Bigger than a page: the tail of the page last written to still has room.
                got = _produce(c, b"full-%d-" % i + b"v" * 10_000)
                assert int(got.error_code) == KAFKA_STORAGE_ERROR

            free(disk)
            for i in range(10):
                value = b"after-%d-" % i + b"v" * 1000
                got = _produce(c, value)
                assert int(got.error_code) == 0
                acked[int(got.base_offset)] = value
        assert broker.running
        assert sorted(acked) == list(range(20)), "offsets must continue where the last acked one ended"

        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader"})
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        seen: dict[int, bytes] = {}
        deadline = time.monotonic() + 30
        try:
            while len(seen) < len(acked):
                assert time.monotonic() < deadline, f"read {len(seen)} of {len(acked)}"
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                offset, value = msg.offset(), msg.value()
                assert offset is not None and isinstance(value, bytes)
                seen[offset] = value
        finally:
            consumer.close()
        assert seen == acked
