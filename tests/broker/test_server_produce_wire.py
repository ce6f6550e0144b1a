"""Produce over the raw wire: idempotent retries answered from the log, sequence gaps refused, bad batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.create_topics.v7 import request as ct
from kio.schema.fetch.v12 import request as fr
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_offsets.v7 import request as lo
from kio.schema.produce.v9 import request as pr
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

DUPLICATE_SEQUENCE_NUMBER = 46
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
CORRUPT_MESSAGE = 2
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
UNKNOWN_TOPIC_OR_PARTITION = 3


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, metrics=False)


def _produce(c: WireClient, topic: str, records: bytes, acks: int = -1) -> Any:
    part = build(pr.PartitionProduceData, index=0, records=records)
    req = build(
        pr.ProduceRequest,
        transactional_id=None,
        acks=acks,
        timeout=5000,
        topic_data=(build(pr.TopicProduceData, name=topic, partition_data=(part,)),),
    )
    return c.request(0, 9, req).responses[0].partition_responses[0]


def _end_offset(c: WireClient, topic: str) -> int:
    part = build(lo.ListOffsetsPartition, partition_index=0, current_leader_epoch=-1, timestamp=-1)
    req = build(
        lo.ListOffsetsRequest,
        replica_id=-1,
        isolation_level=0,
        topics=(build(lo.ListOffsetsTopic, name=topic, partitions=(part,)),),
    )
    return int(c.request(2, 7, req).topics[0].partitions[0].offset)


def _batch(pid: int, epoch: int, seq: int, n: int) -> bytes:
    records = [SimpleRecord(key=b"k", value=f"v{seq + i}".encode(), offset_delta=i) for i in range(n)]
    return build_batch(
        records,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        timestamp_ms=int(time.time() * 1000),
    )


def test_idempotent_retry_is_answered_not_appended(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as c:
        topic = build(
            ct.CreatableTopic, name="idem", num_partitions=1, replication_factor=1, assignments=(), configs=()
        )
        c.request(19, 7, build(ct.CreateTopicsRequest, topics=(topic,), timeout=5000, validate_only=False))
        init = c.request(
            22,
            4,
            build(
                InitProducerIdRequest,
                transactional_id=None,
                transaction_timeout=60000,
                producer_id=-1,
                producer_epoch=-1,
            ),
        )
        assert int(init.error_code) == 0
        pid, epoch = int(init.producer_id), int(init.producer_epoch)
        first = _produce(c, "idem", _batch(pid, epoch, 0, 5))
        assert (int(first.error_code), int(first.base_offset)) == (0, 0)
        retry = _produce(c, "idem", _batch(pid, epoch, 0, 5))
        assert (int(retry.error_code), int(retry.base_offset)) == (0, 0)
        assert _end_offset(c, "idem") == 5
        gap = _produce(c, "idem", _batch(pid, epoch, 9, 1))
        assert int(gap.error_code) == OUT_OF_ORDER_SEQUENCE_NUMBER
        nxt = _produce(c, "idem", _batch(pid, epoch, 5, 2))
        assert (int(nxt.error_code), int(nxt.base_offset)) == (0, 5)
        assert _end_offset(c, "idem") == 7


def test_corrupt_and_misdirected_batches_rejected_broker_stays_up(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as c:
        topic = build(
            ct.CreatableTopic, name="bad", num_partitions=1, replication_factor=1, assignments=(), configs=()
        )
        c.request(19, 7, build(ct.CreateTopicsRequest, topics=(topic,), timeout=5000, validate_only=False))
        good = bytearray(_batch(-1, -1, -1, 3))
        good[-1] ^= 0xFF  # flips a record byte covered by the CRC
        assert int(_produce(c, "bad", bytes(good)).error_code) == CORRUPT_MESSAGE
        assert int(_produce(c, "bad", _batch(-1, -1, -1, 3)[:40]).error_code) == CORRUPT_MESSAGE  # truncated
        assert int(_produce(c, "bad", b"\x00" * 70).error_code) == UNSUPPORTED_FOR_MESSAGE_FORMAT  # magic 0
        assert int(_produce(c, "nope", _batch(-1, -1, -1, 1)).error_code) == UNKNOWN_TOPIC_OR_PARTITION
        assert _end_offset(c, "bad") == 0
        ok = _produce(c, "bad", _batch(-1, -1, -1, 2))
        assert (int(ok.error_code), int(ok.base_offset)) == (0, 0)


def _fetch(c: WireClient, topic: str, offset: int, *, min_bytes: int, max_wait_ms: int) -> Any:
    part = build(
        fr.FetchPartition,
        partition=0,
        current_leader_epoch=-1,
        fetch_offset=offset,
        last_fetched_epoch=-1,
        log_start_offset=-1,
        partition_max_bytes=1 << 20,
    )
    req = build(
        fr.FetchRequest,
        replica_id=-1,
        max_wait=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(build(fr.FetchTopic, topic=topic, partitions=(part,)),),
        forgotten_topics_data=(),
        rack_id="",
    )
    return c.request(1, 12, req).responses[0].partitions[0]


def test_long_poll_fetch_is_woken_by_an_append(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port, timeout=60) as c, WireClient(broker.host, broker.port) as p:
        topic = build(
            ct.CreatableTopic, name="poll", num_partitions=1, replication_factor=1, assignments=(), configs=()
        )
        c.request(19, 7, build(ct.CreateTopicsRequest, topics=(topic,), timeout=5000, validate_only=False))
        empty = _fetch(c, "poll", 0, min_bytes=0, max_wait_ms=0)
        assert int(empty.high_watermark) == 0
        assert not empty.records  # empty record set, as Kafka sends it
        result: list[Any] = []
        waiter = threading.Thread(
            target=lambda: result.append(_fetch(c, "poll", 0, min_bytes=1, max_wait_ms=30000))
        )
        started = time.monotonic()
        waiter.start()
        assert int(_produce(p, "poll", _batch(-1, -1, -1, 4)).error_code) == 0
        waiter.join(timeout=60)
        # Answered by the append, not by the 30 s max_wait running out.
        assert time.monotonic() - started < 20
        (got,) = result
        assert int(got.high_watermark) == 4
        assert got.records is not None and len(got.records) > 61
        out_of_range = _fetch(c, "poll", 99, min_bytes=0, max_wait_ms=0)
        assert int(out_of_range.error_code) == 1  # OFFSET_OUT_OF_RANGE


def test_list_offsets_max_timestamp(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as c:
        topic = build(
            ct.CreatableTopic, name="ts", num_partitions=1, replication_factor=1, assignments=(), configs=()
        )
        c.request(19, 7, build(ct.CreateTopicsRequest, topics=(topic,), timeout=5000, validate_only=False))
        for ts in (1000, 5000, 3000):
            batch = build_batch([SimpleRecord(key=None, value=b"v")], timestamp_ms=ts)
            assert int(_produce(c, "ts", batch).error_code) == 0

        def query(timestamp: int) -> tuple[int, int]:
            part = build(
                lo.ListOffsetsPartition, partition_index=0, current_leader_epoch=-1, timestamp=timestamp
            )
            req = build(
                lo.ListOffsetsRequest,
                replica_id=-1,
                isolation_level=0,
                topics=(build(lo.ListOffsetsTopic, name="ts", partitions=(part,)),),
            )
            r = c.request(2, 7, req).topics[0].partitions[0]
            return int(r.offset), int(r.timestamp)

        assert query(-3) == (1, 5000)  # MAX_TIMESTAMP
        assert query(-2)[0] == 0  # EARLIEST
        assert query(-1)[0] == 3  # LATEST
        assert query(2000) == (1, 5000)  # first batch whose max timestamp >= 2000
        assert query(9000) == (-1, -1)  # nothing that late: offset -1, as Kafka answers
