"""Idempotent produce through the broker with hand-made retries over the wire (InitProducerId + Produce):
a real client never lets one force a retry, so the batches are built here. (Idempotent real clients are
covered by test_clients_*.py.)"""

from __future__ import annotations

import datetime
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.types import TopicName
from kio.static.primitive import i16, i32, i32Timedelta, i64
from streamraft_broker.records import SimpleRecord, build_batch

from tests.support.threaded_broker import ThreadedBroker
from tests.support.wire import WireClient

TOPIC = "payments"
INIT_PRODUCER_ID, PRODUCE = 22, 0


def create_topic(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1)])[TOPIC].result(30)


def produce(client: WireClient, raw: bytes) -> tuple[ErrorCode, int]:
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            TopicProduceData(
                name=TopicName(TOPIC), partition_data=(PartitionProduceData(index=i32(0), records=raw),)
            ),
        ),
    )
    response = client.request(PRODUCE, 9, request)
    part = response.responses[0].partition_responses[0]
    return part.error_code, int(part.base_offset)


def batch(pid: int, seq: int, count: int = 1) -> bytes:
    records = [SimpleRecord(None, f"r{seq + i}".encode()) for i in range(count)]
    return build_batch(
        records, producer_id=pid, producer_epoch=0, base_sequence=seq, timestamp_ms=1_700_000_000_000
    )


def test_wire_retry_is_not_appended_twice_and_gaps_are_refused(tmp_path: Path) -> None:
    with ThreadedBroker(tmp_path / "data") as broker:
        create_topic(broker.bootstrap, 1)
        assert broker.broker is not None
        host, port = broker.bootstrap.split(":")
        with WireClient(host, int(port)) as client:
            init = client.request(
                INIT_PRODUCER_ID,
                4,
                InitProducerIdRequest(
                    transactional_id=None,
                    transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                    producer_id=i64(-1),
                    producer_epoch=i16(-1),
                ),
            )
            assert init.error_code == ErrorCode.none
            pid = int(init.producer_id)
            assert produce(client, batch(pid, 0, 3)) == (ErrorCode.none, 0)
            assert produce(client, batch(pid, 3, 2)) == (ErrorCode.none, 3)
            # A retry after a lost response gets the original offset.
            assert produce(client, batch(pid, 3, 2)) == (ErrorCode.none, 3)
            partition = broker.broker.registry.partition(TOPIC, 0)
            assert partition is not None and partition.log_end_offset == 5, "the retry was not appended"
            assert produce(client, batch(pid, 9))[0] == ErrorCode.out_of_order_sequence_number
            assert produce(client, batch(pid, 5)) == (ErrorCode.none, 5)
            assert partition.log_end_offset == 6
