"""A replicated broker pipelines the Produce requests of one connection (up to MAX_PIPELINED_REQUESTS
wait for their Raft commits at once) and still answers in request order, appends in request order, and
answers any other request only after every produce before it was applied.

Raw wire requests sent back to back on one socket, as a client with many requests in flight sends them:
an idempotent producer's batches are accepted only in sequence order, so one batch proposed out of order
would be refused with OUT_OF_ORDER_SEQUENCE_NUMBER."""

from __future__ import annotations

import itertools
import struct
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from kio.index import load_response_schema
from kio.schema.init_producer_id.v4 import request as ipr
from kio.schema.list_offsets.v7 import request as lor
from kio.schema.produce.v9 import request as pr
from kio.serial import entity_reader
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch
from streamraft_broker.server.connection import MAX_PIPELINED_REQUESTS

from tests.support.launcher import Cluster, create_topic
from tests.support.wire import WireClient

TOPIC = "pipelined"
REQUESTS = 3 * MAX_PIPELINED_REQUESTS  # beyond the bound: the reader waits, nothing is refused
RECORDS = 50
NOT_LEADER_OR_FOLLOWER = 6
OUT_OF_ORDER_SEQUENCE_NUMBER = 45


def _decode(api_key: int, version: int, frame: bytes) -> tuple[int, Any]:
    corr = struct.unpack_from(">i", frame, 0)[0]
    cls = load_response_schema(api_key, version)
    entity, _ = entity_reader(cls)(frame, 4 + (1 if cls.__flexible__ else 0))
    return corr, entity


def _leader_port(cluster: Cluster) -> int:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    deadline = time.monotonic() + 30
    while True:
        meta = admin.list_topics(TOPIC, timeout=5)
        leader = meta.topics[TOPIC].partitions[0].leader
        if leader > 0:
            return cluster.kafka_ports[leader]
        assert time.monotonic() < deadline, "no leader"
        time.sleep(0.1)  # pacing between metadata polls


def _produce_frame(client: WireClient, corr: int, pid: int, seq: int) -> bytes:
    batch = build_batch(
        [SimpleRecord(key=None, value=b"%d-%d" % (corr, i), offset_delta=i) for i in range(RECORDS)],
        timestamp_ms=int(time.time() * 1000),
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
    )
    part = build(pr.PartitionProduceData, index=0, records=batch)
    req = build(
        pr.ProduceRequest,
        transactional_id=None,
        acks=-1,
        timeout=30000,
        topic_data=(build(pr.TopicProduceData, name=TOPIC, partition_data=(part,)),),
    )
    return client.encode_request(0, 9, req, corr)


def _attempt(cluster: Cluster) -> tuple[list[tuple[int, int, int]], int, int] | None:
    """One pipelined burst at the current leader: (corr, error, base offset) per produce in the order
    answered, the latest offset ListOffsets answered, and its correlation id; None if leadership moved."""
    with WireClient("127.0.0.1", _leader_port(cluster), timeout=60) as client:
        init = client.request(
            22, 4, build(ipr.InitProducerIdRequest, transactional_id=None, transaction_timeout=60000)
        )
        assert init.error_code == 0, init
        pid = int(init.producer_id)
        frames = [
            _produce_frame(client, corr, pid, (corr - 100) * RECORDS) for corr in range(100, 100 + REQUESTS)
        ]
        query = build(
            lor.ListOffsetsRequest,
            replica_id=-1,
            isolation_level=0,
            topics=(
                build(
                    lor.ListOffsetsTopic,
                    name=TOPIC,
                    partitions=(build(lor.ListOffsetsPartition, partition_index=0, timestamp=-1),),
                ),
            ),
        )
        list_corr = 100 + REQUESTS
        client.send_raw(b"".join(frames) + client.encode_request(2, 7, query, list_corr))
        answers = []
        for _ in range(REQUESTS):
            corr, resp = _decode(0, 9, client.recv_frame())
            part = resp.responses[0].partition_responses[0]
            answers.append((corr, int(part.error_code), int(part.base_offset)))
        corr, offsets = _decode(2, 7, client.recv_frame())
    if any(code == NOT_LEADER_OR_FOLLOWER for _, code, _ in answers):
        return None
    listed = offsets.topics[0].partitions[0]
    assert listed.error_code == 0, listed
    return answers, int(listed.offset), corr


def test_pipelined_produce_requests_are_applied_and_answered_in_order(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        result = None
        for _ in range(3):  # a leadership move mid-burst (leaders are rebalanced after start) restarts it
            result = _attempt(cluster)
            if result is not None:
                break
        assert result is not None, "leadership kept moving"
        answers, latest, list_corr = result
        assert [corr for corr, _, _ in answers] == list(range(100, 100 + REQUESTS)), "answered out of order"
        assert [code for _, code, _ in answers] == [0] * REQUESTS, answers
        bases = [base for _, _, base in answers]
        assert bases == sorted(bases) and len(set(bases)) == REQUESTS, bases
        assert all(b - a == RECORDS for a, b in itertools.pairwise(bases)), bases
        # The ListOffsets sent after them was answered after all of them were applied.
        assert list_corr == 100 + REQUESTS
        assert latest == bases[-1] + RECORDS, (latest, bases[-1])


def test_a_new_producers_batch_after_a_missing_one_is_refused(tmp_path: Path) -> None:
    """A producer's first request refused (here: never sent) and its pipelined second one arriving: the
    leader has no state for the producer, and accepting the second would let librdkafka acknowledge the
    first without it ever being written (it takes a later success as proof of the earlier batches)."""
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        for _ in range(3):  # a leadership move (leaders are rebalanced after start) restarts it
            with WireClient("127.0.0.1", _leader_port(cluster), timeout=60) as client:
                init = client.request(
                    22, 4, build(ipr.InitProducerIdRequest, transactional_id=None, transaction_timeout=60000)
                )
                assert init.error_code == 0, init
                pid = int(init.producer_id)
                codes = []
                for corr, seq in ((1, RECORDS), (2, 0), (3, RECORDS)):
                    client.send_raw(_produce_frame(client, corr, pid, seq))
                    _, resp = _decode(0, 9, client.recv_frame())
                    part = resp.responses[0].partition_responses[0]
                    codes.append((int(part.error_code), int(part.base_offset)))
            if all(code != NOT_LEADER_OR_FOLLOWER for code, _ in codes):
                break
        assert codes == [(OUT_OF_ORDER_SEQUENCE_NUMBER, -1), (0, 0), (0, RECORDS)], codes
