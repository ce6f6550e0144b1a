"""Topic administration on a single broker as Kafka clients use it: auto-creation on by default,
ListOffsets by timestamps past the end, every topic config Kafka 4 documents (validated and described),
and DeleteRecords."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin import NewTopic as ConfluentNewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource as KafkaConfigResource
from kafka.admin import ConfigResourceType, NewTopic
from kio.schema.describe_configs.v4 import request as dc_req
from kio.schema.list_offsets.v10 import request as lo_req
from kio.schema.metadata.v13 import request as md_req
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    # Default settings: auto.create.topics.enable is true, as in Kafka.
    yield from module_broker(tmp_path_factory)


def _produce(bootstrap: str, topic: str, timestamps: list[int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, ts in enumerate(timestamps):
        producer.send(topic, value=f"v{i}".encode(), partition=0, timestamp_ms=ts)
    producer.flush(timeout=DEADLINE_S)
    producer.close(timeout=10)


def test_offsets_for_times_after_the_last_record_is_none(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("by-time", num_partitions=1, replication_factor=1)])
    admin.close()
    base = 1_700_000_000_000
    _produce(broker.bootstrap, "by-time", [base + 10 * i for i in range(5)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition("by-time", 0)
    try:
        found = consumer.offsets_for_times({tp: base + 15})
        assert (found[tp].offset, found[tp].timestamp) == (2, base + 20)
        # Kafka answers offset -1 and timestamp -1; kafka-python turns that into None.
        assert consumer.offsets_for_times({tp: base + 41}) == {tp: None}
    finally:
        consumer.close()


def test_producing_to_an_unknown_topic_creates_it(broker: BrokerProcess) -> None:
    _produce(broker.bootstrap, "made-on-produce", [1, 2])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        assert consumer.partitions_for_topic("made-on-produce") == {0}
        assert consumer.end_offsets([TopicPartition("made-on-produce", 0)]) == {
            TopicPartition("made-on-produce", 0): 2
        }
    finally:
        consumer.close()


# A valid value other than the default for every topic config Kafka 4 defines.
EVERY_TOPIC_CONFIG = {
    "cleanup.policy": "compact,delete",
    "compression.gzip.level": "5",
    "compression.lz4.level": "10",
    "compression.type": "zstd",
    "compression.zstd.level": "7",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "1000",
    "flush.messages": "1000",
    "flush.ms": "60000",
    "follower.replication.throttled.replicas": "0:1",
    "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "1000",
    "local.retention.ms": "1000",
    "max.compaction.lag.ms": "100000",
    "max.message.bytes": "500000",
    "message.timestamp.after.max.ms": "1000",
    "message.timestamp.before.max.ms": "1000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25",
    "min.compaction.lag.ms": "10",
    "min.insync.replicas": "2",
    "preallocate": "true",
    "remote.log.copy.disable": "true",
    "remote.log.delete.on.disable": "true",
    "remote.storage.enable": "false",
    "retention.bytes": "-5",
    "retention.ms": "3600000",
    "segment.bytes": "1048576",
    "segment.index.bytes": "1000",
    "segment.jitter.ms": "100",
    "segment.ms": "3600000",
    "unclean.leader.election.enable": "true",
}
# Kafka's config types, as DescribeConfigs reports them.
KAFKA_TYPES = {
    "cleanup.policy": "LIST",
    "compression.type": "STRING",
    "follower.replication.throttled.replicas": "LIST",
    "index.interval.bytes": "INT",
    "max.message.bytes": "INT",
    "message.timestamp.type": "STRING",
    "min.cleanable.dirty.ratio": "DOUBLE",
    "min.insync.replicas": "INT",
    "preallocate": "BOOLEAN",
    "retention.bytes": "LONG",
    "retention.ms": "LONG",
    "segment.bytes": "INT",
    "segment.jitter.ms": "LONG",
    "unclean.leader.election.enable": "BOOLEAN",
}


def _describe(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [KafkaConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True, config_filter="all"
        )
    finally:
        admin.close()
    configs: dict[str, dict[str, Any]] = described["topic"][topic]
    return configs


def test_every_kafka_topic_config_is_accepted_and_described(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([ConfluentNewTopic("all-configs", 1, 1, config=EVERY_TOPIC_CONFIG)])[
        "all-configs"
    ].result(timeout=DEADLINE_S)
    described = _describe(broker.bootstrap, "all-configs")
    assert set(described) == set(EVERY_TOPIC_CONFIG)
    for name, value in EVERY_TOPIC_CONFIG.items():
        entry = described[name]
        assert (entry["value"], entry["config_source"]) == (value, "DYNAMIC_TOPIC_CONFIG"), (name, entry)
    for name, kind in KAFKA_TYPES.items():
        assert described[name]["config_type"] == kind, (name, described[name])
    # The synonyms, most specific first: the topic's override, then the broker-level default.
    assert [(s["name"], s["value"], s["source"]) for s in described["retention.ms"]["synonyms"]] == [
        ("retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG"),
        ("log.retention.ms", "604800000", "DEFAULT_CONFIG"),
    ]


def test_defaults_are_described_with_their_kafka_types(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([ConfluentNewTopic("plain-configs", 1, 1)])["plain-configs"].result(
        timeout=DEADLINE_S
    )
    described = _describe(broker.bootstrap, "plain-configs")
    retention = described["retention.bytes"]
    assert (retention["value"], retention["config_source"], retention["config_type"]) == (
        "-1",
        "DEFAULT_CONFIG",
        "LONG",
    )
    assert [(s["name"], s["source"]) for s in retention["synonyms"]] == [
        ("log.retention.bytes", "DEFAULT_CONFIG")
    ]
    assert described["min.cleanable.dirty.ratio"]["value"] == "0.5"
    assert described["segment.jitter.ms"]["value"] == "0"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("min.cleanable.dirty.ratio", "1.5", "no more than 1"),
        ("min.cleanable.dirty.ratio", "half", "DOUBLE"),
        ("segment.jitter.ms", "-1", "at least 0"),
        ("preallocate", "yes", "true or false"),
        ("compression.gzip.level", "0", "between 1 and 9 or equal to -1"),
        ("compression.zstd.level", "23", "no more than 22"),
        ("follower.replication.throttled.replicas", "x", "[partitionId]:[brokerId]"),
        ("max.message.bytes", "3000000000", "INT"),
        ("retention.ms", "-2", "at least -1"),
        ("remote.storage.enable", "true", "Tiered Storage"),
        ("message.downconversion.enable", "true", "Unknown topic config"),  # removed in Kafka 4.0
    ],
)
def test_bad_topic_config_values_are_invalid_config(
    broker: BrokerProcess, name: str, value: str, says: str
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    future = admin.create_topics([ConfluentNewTopic("bad-config", 1, 1, config={name: value})])["bad-config"]
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=DEADLINE_S)
    error = raised.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG
    assert name in error.str() and says in error.str(), error.str()


def test_list_configs_take_append_and_subtract(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([ConfluentNewTopic("listy", 1, 1)])["listy"].result(timeout=DEADLINE_S)
    resource = ConfigResource(
        "TOPIC",
        "listy",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
            ConfigEntry(
                "leader.replication.throttled.replicas", "0:0", incremental_operation=AlterConfigOpType.APPEND
            ),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=DEADLINE_S)
    described = _describe(broker.bootstrap, "listy")
    assert described["cleanup.policy"]["value"] == "delete,compact"
    assert described["leader.replication.throttled.replicas"]["value"] == "0:0"
    resource = ConfigResource(
        "TOPIC",
        "listy",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=DEADLINE_S)
    assert _describe(broker.bootstrap, "listy")["cleanup.policy"]["value"] == "compact"


def _earliest_first_offset(bootstrap: str, topic: str, group: str) -> int:
    """The first offset a new consumer group reads with auto.offset.reset=earliest."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                return int(records[0].offset)
        raise AssertionError(f"{group} read nothing from {topic}")
    finally:
        consumer.close()


def test_delete_records_moves_the_log_start(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("trimmed", num_partitions=1, replication_factor=1)])
    tp = TopicPartition("trimmed", 0)
    # Ten records, in few batches: the new log start may fall inside one (Kafka allows that).
    _produce(broker.bootstrap, "trimmed", list(range(1, 11)))
    try:
        answer = admin.delete_records({tp: 4})
        assert answer[tp]["low_watermark"] == 4
    finally:
        admin.close()
    assert _earliest_first_offset(broker.bootstrap, "trimmed", "after-trim") == 4
    confluent = AdminClient({"bootstrap.servers": broker.bootstrap})
    deleted = confluent.delete_records([ConfluentTopicPartition("trimmed", 0, 7)])
    assert next(iter(deleted.values())).result(timeout=DEADLINE_S).low_watermark == 7
    # Past the high watermark: OFFSET_OUT_OF_RANGE; -1 means "up to the high watermark".
    beyond = confluent.delete_records([ConfluentTopicPartition("trimmed", 0, 11)])
    with pytest.raises(KafkaException) as raised:
        next(iter(beyond.values())).result(timeout=DEADLINE_S)
    assert raised.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    everything = confluent.delete_records([ConfluentTopicPartition("trimmed", 0, -1)])
    assert next(iter(everything.values())).result(timeout=DEADLINE_S).low_watermark == 10


def test_list_offsets_v10_earliest_local_and_latest_tiered(broker: BrokerProcess) -> None:
    """ListOffsets v8+ asks for the earliest local offset (-4) and v9+ for the latest tiered one (-5): with
    no tiered storage, the log start and "none" (offset -1), as Kafka answers. Metadata v13 answers too."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("local-only", num_partitions=1, replication_factor=1)])
    _produce(broker.bootstrap, "local-only", [1, 2, 3])
    tp = TopicPartition("local-only", 0)
    try:
        admin.delete_records({tp: 1})
    finally:
        admin.close()

    def list_offset(timestamp: int) -> tuple[int, int, int]:
        with WireClient(broker.host, broker.port) as wire:
            answer = wire.request(
                2,
                10,
                lo_req.ListOffsetsRequest(
                    replica_id=BrokerId(-1),
                    isolation_level=i8(0),
                    topics=(
                        lo_req.ListOffsetsTopic(
                            name=TopicName("local-only"),
                            partitions=(
                                lo_req.ListOffsetsPartition(
                                    partition_index=i32(0),
                                    current_leader_epoch=i32(-1),
                                    timestamp=i64(timestamp),
                                ),
                            ),
                        ),
                    ),
                    timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
                ),
            )
        part = answer.topics[0].partitions[0]
        return int(part.error_code), int(part.offset), int(part.timestamp)

    assert list_offset(-4) == (0, 1, -1)
    assert list_offset(-5) == (0, -1, -1)
    assert list_offset(-2) == (0, 1, -1)
    with WireClient(broker.host, broker.port) as wire:
        meta = wire.request(
            3,
            13,
            md_req.MetadataRequest(
                topics=(md_req.MetadataRequestTopic(topic_id=None, name=TopicName("local-only")),),
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            ),
        )
    assert int(meta.error_code) == 0 and meta.topics[0].name == "local-only"


def test_documentation_says_which_configs_streamraft_applies(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([ConfluentNewTopic("documented", 1, 1)])["documented"].result(timeout=DEADLINE_S)
    with WireClient(broker.host, broker.port) as wire:
        answer = wire.request(
            32,
            4,
            dc_req.DescribeConfigsRequest(
                resources=(
                    dc_req.DescribeConfigsResource(
                        resource_type=i8(2),
                        resource_name="documented",
                        configuration_keys=("retention.ms", "min.cleanable.dirty.ratio", "preallocate"),
                    ),
                ),
                include_synonyms=False,
                include_documentation=True,
            ),
        )
    docs = {c.name: c.documentation for c in answer.results[0].configs}
    assert docs["retention.ms"] == "Applied by the partition log."
    assert docs["min.cleanable.dirty.ratio"] == "Applied by the partition log."
    assert docs["preallocate"].startswith("Streamraft: accepted")
