"""API versions raised to what Apache Kafka 4.3 serves: each new version's new fields, on a real broker."""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader
from streamraft_broker.protocol.fetch_response import (
    FetchPartitionResult,
    FetchTopicResult,
    NodeEndpoint,
    encode_fetch_response,
)

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

FETCH, METADATA = 1, 3
UNKNOWN_TOPIC_ID = 100
TOPIC = "kafka4-versions"
VALUES = [f"value-{i}".encode() for i in range(5)]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    for b in module_broker(tmp_path_factory):
        producer = Producer({"bootstrap.servers": b.bootstrap})
        for value in VALUES:
            producer.produce(TOPIC, value)
        assert producer.flush(30) == 0, "the records were not acknowledged"
        yield b


def _wire(broker: BrokerProcess) -> WireClient:
    host, port = broker.bootstrap.rsplit(":", 1)
    return WireClient(host, int(port))


def _schema(api_key: int, version: int) -> Any:
    """The kio module of a request version (its nested entity types live beside the request type)."""
    return sys.modules[load_request_schema(api_key, version).__module__]


def _topic_id(wire: WireClient) -> uuid.UUID:
    module = _schema(METADATA, 12)
    request = module.MetadataRequest(
        topics=(module.MetadataRequestTopic(name=TOPIC, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    (topic,) = wire.request(METADATA, 12, request).topics
    assert (topic.error_code, topic.name) == (0, TOPIC)
    return topic.topic_id


def _fetch(wire: WireClient, version: int, topic_id: uuid.UUID) -> Any:
    module = _schema(FETCH, version)
    request = module.FetchRequest(
        max_wait=datetime.timedelta(milliseconds=0),
        min_bytes=0,
        topics=(
            module.FetchTopic(
                topic_id=topic_id,
                partitions=(module.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20),),
            ),
        ),
        forgotten_topics_data=(),
    )
    return wire.request(FETCH, version, request)


@pytest.mark.parametrize("version", [13, 15, 16, 17, 18])
def test_fetch_by_topic_id_returns_the_records_of_that_topic(broker: BrokerProcess, version: int) -> None:
    with _wire(broker) as wire:
        topic_id = _topic_id(wire)
        assert topic_id != uuid.UUID(int=0)
        response = _fetch(wire, version, topic_id)
    (topic,) = response.responses
    assert topic.topic_id == topic_id
    (part,) = topic.partitions
    assert (part.partition_index, part.error_code, part.high_watermark) == (0, 0, len(VALUES))
    assert part.records is not None
    for value in VALUES:
        assert value in part.records


def test_fetch_by_an_unknown_topic_id_answers_unknown_topic_id(broker: BrokerProcess) -> None:
    stranger = uuid.uuid4()
    with _wire(broker) as wire:
        response = _fetch(wire, 13, stranger)
    (topic,) = response.responses
    assert topic.topic_id == stranger
    assert [(p.partition_index, p.error_code) for p in topic.partitions] == [(0, UNKNOWN_TOPIC_ID)]


def test_kafka_python_detects_a_kafka_4_broker_and_consumes_with_it(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert admin._manager.broker_version >= (4, 0)
    finally:
        admin.close()
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=15000
    )
    try:
        assert consumer.config["api_version"] >= (4, 0)
        got: list[bytes] = []
        for message in consumer:
            got.append(message.value)
            if len(got) == len(VALUES):
                break
        assert got == VALUES
    finally:
        consumer.close()


LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE_GROUPS, LIST_GROUPS, DESCRIBE_CLUSTER = (
    2,
    8,
    9,
    15,
    16,
    60,
)
GROUP_ID_NOT_FOUND = 69


def _commit(wire: WireClient, group: str, offset: int) -> None:
    """A v9 commit outside any generation (generation -1, no member), as tools that reset offsets send."""
    module = _schema(OFFSET_COMMIT, 9)
    request = module.OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=(
            module.OffsetCommitRequestTopic(
                name=TOPIC,
                partitions=(
                    module.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=offset, committed_metadata="m"
                    ),
                ),
            ),
        ),
    )
    (topic,) = wire.request(OFFSET_COMMIT, 9, request).topics
    assert [p.error_code for p in topic.partitions] == [0]


@pytest.mark.parametrize("version", [8, 9])
def test_offset_fetch_batches_groups_and_answers_each_on_its_own(broker: BrokerProcess, version: int) -> None:
    """v8 batches groups (KIP-709); v9 adds a member id and epoch that only KIP-848 groups check."""
    module = _schema(OFFSET_FETCH, version)
    member = {"member_id": "not-checked-for-classic-groups", "member_epoch": 5} if version >= 9 else {}
    with _wire(broker) as wire:
        _commit(wire, "batched-a", 3)
        _commit(wire, "batched-b", 4)
        request = module.OffsetFetchRequest(
            groups=(
                module.OffsetFetchRequestGroup(
                    group_id="batched-a",
                    topics=(module.OffsetFetchRequestTopics(name=TOPIC, partition_indexes=(0,)),),
                    **member,
                ),
                module.OffsetFetchRequestGroup(group_id="batched-b", topics=None),
                module.OffsetFetchRequestGroup(group_id="batched-none", topics=None),
            )
        )
        response = wire.request(OFFSET_FETCH, version, request)
    answers = {
        g.group_id: (
            g.error_code,
            [
                (t.name, p.partition_index, p.committed_offset, p.error_code)
                for t in g.topics
                for p in t.partitions
            ],
        )
        for g in response.groups
    }
    assert answers == {
        "batched-a": (0, [(TOPIC, 0, 3, 0)]),
        "batched-b": (0, [(TOPIC, 0, 4, 0)]),
        "batched-none": (0, []),
    }


def test_list_groups_v5_reports_classic_groups_and_filters_by_type(broker: BrokerProcess) -> None:
    module = _schema(LIST_GROUPS, 5)
    with _wire(broker) as wire:
        _commit(wire, "typed-group", 1)
        every = wire.request(LIST_GROUPS, 5, module.ListGroupsRequest())
        classic = wire.request(LIST_GROUPS, 5, module.ListGroupsRequest(types_filter=("Classic",)))
        consumer = wire.request(LIST_GROUPS, 5, module.ListGroupsRequest(types_filter=("consumer",)))
    assert {(g.group_id, g.group_type) for g in every.groups} >= {("typed-group", "classic")}
    assert {g.group_id for g in classic.groups} == {g.group_id for g in every.groups}
    assert (consumer.error_code, consumer.groups) == (0, ())


@pytest.mark.parametrize(("version", "expected"), [(5, (0, "Dead")), (6, (GROUP_ID_NOT_FOUND, "Dead"))])
def test_describe_groups_of_an_unknown_group_is_group_id_not_found_from_v6(
    broker: BrokerProcess, version: int, expected: tuple[int, str]
) -> None:
    module = _schema(DESCRIBE_GROUPS, version)
    with _wire(broker) as wire:
        request = module.DescribeGroupsRequest(groups=("no-such-group",), include_authorized_operations=False)
        (group,) = wire.request(DESCRIBE_GROUPS, version, request).groups
    assert (group.error_code, group.group_state) == expected
    assert group.members == ()


def test_describe_cluster_v2_lists_this_broker_unfenced(broker: BrokerProcess) -> None:
    module = _schema(DESCRIBE_CLUSTER, 2)
    with _wire(broker) as wire:
        request = module.DescribeClusterRequest(
            include_cluster_authorized_operations=False, include_fenced_brokers=True
        )
        response = wire.request(DESCRIBE_CLUSTER, 2, request)
    host, port = broker.bootstrap.rsplit(":", 1)
    assert response.error_code == 0
    assert [(b.host, b.port, b.is_fenced) for b in response.brokers] == [(host, int(port), False)]


@pytest.mark.parametrize("version", [16, 18])
def test_fetch_leader_hints_from_v16_decode_as_kafka_defines_them(version: int) -> None:
    """Our hand-written Fetch encoder against kio's reading of Kafka's schema: KIP-951's CurrentLeader
    (partition tag 1) and NodeEndpoints (response tag 0)."""
    topic_id = uuid.uuid4()
    results = [
        FetchPartitionResult(0, error_code=6, current_leader=(2, 7)),
        FetchPartitionResult(1, high_watermark=5, last_stable_offset=5, log_start_offset=0),
    ]
    endpoints = [NodeEndpoint(2, "broker-2.example", 9093, None), NodeEndpoint(3, "b3", 9094, "rack-a")]
    parts = encode_fetch_response(
        version, 41, [FetchTopicResult("t", results, topic_id=topic_id)], node_endpoints=endpoints
    )
    frame = b"".join(p for p in parts if isinstance(p, bytes))[4:]
    cls: Any = load_response_schema(FETCH, version)
    response, _ = entity_reader(cls)(frame, 5)  # correlation id and the empty header tagged fields
    (topic,) = response.responses
    assert topic.topic_id == topic_id
    hinted, plain = topic.partitions
    assert (hinted.error_code, hinted.current_leader.leader_id, hinted.current_leader.leader_epoch) == (
        6,
        2,
        7,
    )
    assert (plain.current_leader.leader_id, plain.high_watermark) == (-1, 5)
    assert [(n.node_id, n.host, n.port, n.rack) for n in response.node_endpoints] == [
        (2, "broker-2.example", 9093, None),
        (3, "b3", 9094, "rack-a"),
    ]


def test_list_offsets_v11_earliest_pending_upload_is_none_without_tiered_storage(
    broker: BrokerProcess,
) -> None:
    """KIP-1023's -6 asks for the first offset not yet in remote storage; with none (as Kafka without
    remote storage) the answer is offset -1, beside an ordinary latest (-1) query in the same request."""
    module = _schema(LIST_OFFSETS, 11)
    request = module.ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        timeout=datetime.timedelta(seconds=5),
        topics=(
            module.ListOffsetsTopic(
                name=TOPIC,
                partitions=(module.ListOffsetsPartition(partition_index=0, timestamp=-6),),
            ),
            module.ListOffsetsTopic(
                name=TOPIC,
                partitions=(module.ListOffsetsPartition(partition_index=0, timestamp=-1),),
            ),
        ),
    )
    with _wire(broker) as wire:
        pending, latest = wire.request(LIST_OFFSETS, 11, request).topics
    assert [(p.error_code, p.offset) for p in pending.partitions] == [(0, -1)]
    assert [(p.error_code, p.offset) for p in latest.partitions] == [(0, len(VALUES))]


def test_offset_commit_and_fetch_v10_name_topics_by_id(broker: BrokerProcess) -> None:
    """v10 of both (KIP-848's forms) carry topic ids: a commit by id is read back by id and by name, and an
    id no topic has is UNKNOWN_TOPIC_ID in either."""
    commit, fetch = _schema(OFFSET_COMMIT, 10), _schema(OFFSET_FETCH, 10)
    stranger = uuid.uuid4()
    with _wire(broker) as wire:
        topic_id = _topic_id(wire)
        committed = wire.request(
            OFFSET_COMMIT,
            10,
            commit.OffsetCommitRequest(
                group_id="by-id",
                generation_id_or_member_epoch=-1,
                member_id="",
                topics=tuple(
                    commit.OffsetCommitRequestTopic(
                        topic_id=tid,
                        partitions=(
                            commit.OffsetCommitRequestPartition(
                                partition_index=0, committed_offset=2, committed_metadata=None
                            ),
                        ),
                    )
                    for tid in (topic_id, stranger)
                ),
            ),
        )
        fetched = wire.request(
            OFFSET_FETCH,
            10,
            fetch.OffsetFetchRequest(
                groups=(
                    fetch.OffsetFetchRequestGroup(
                        group_id="by-id",
                        topics=tuple(
                            fetch.OffsetFetchRequestTopics(topic_id=tid, partition_indexes=(0,))
                            for tid in (topic_id, stranger)
                        ),
                    ),
                    fetch.OffsetFetchRequestGroup(group_id="by-id", topics=None),
                )
            ),
        )
        by_name = _schema(OFFSET_FETCH, 8)
        named = wire.request(
            OFFSET_FETCH,
            8,
            by_name.OffsetFetchRequest(
                groups=(by_name.OffsetFetchRequestGroup(group_id="by-id", topics=None),)
            ),
        )
    assert [
        (t.topic_id, [(p.partition_index, p.error_code) for p in t.partitions]) for t in committed.topics
    ] == [
        (topic_id, [(0, 0)]),
        (stranger, [(0, UNKNOWN_TOPIC_ID)]),
    ]
    asked, every = fetched.groups
    assert [
        (t.topic_id, [(p.committed_offset, p.error_code) for p in t.partitions]) for t in asked.topics
    ] == [
        (topic_id, [(2, 0)]),
        (stranger, [(-1, UNKNOWN_TOPIC_ID)]),
    ]
    assert [(t.topic_id, [p.committed_offset for p in t.partitions]) for t in every.topics] == [
        (topic_id, [2])
    ]
    (group,) = named.groups
    assert [(t.name, [p.committed_offset for p in t.partitions]) for t in group.topics] == [(TOPIC, [2])]
