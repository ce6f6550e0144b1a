"""max.message.bytes (topic) and message.max.bytes (broker) are bounded as Kafka types them (INT: at most
2147483647), and the broker setting is the limit of every topic that sets none of its own."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from kio.schema.create_topics.v7 import request as ct
from kio.schema.describe_configs.v4 import request as dc
from kio.schema.produce.v9 import request as pr
from streamraft_broker.config import ConfigError, load_config
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch
from streamraft_broker.topics.configs import InvalidTopicConfigError, validate_topic_configs

from tests.support.broker import running_broker
from tests.support.wire import WireClient

MESSAGE_TOO_LARGE = 10
INVALID_CONFIG = 40


@pytest.mark.parametrize("value", ["2147483648", "99999999999999999999", "-1"])
def test_topic_max_message_bytes_outside_kafkas_int_range_is_refused(value: str) -> None:
    with pytest.raises(InvalidTopicConfigError, match=r"max\.message\.bytes"):
        validate_topic_configs({"max.message.bytes": value})
    assert validate_topic_configs({"max.message.bytes": "2147483647"})


@pytest.mark.parametrize("value", ["2147483648", "-1", "lots"])
def test_broker_message_max_bytes_is_bounded(value: str) -> None:
    with pytest.raises(ConfigError, match="message-max-bytes"):
        load_config({"message_max_bytes": value}, {})
    assert load_config({"message_max_bytes": "2000"}, {}).message_max_bytes == 2000


def _create(c: WireClient, name: str, configs: dict[str, str]) -> int:
    topic = build(
        ct.CreatableTopic,
        name=name,
        num_partitions=1,
        replication_factor=1,
        assignments=(),
        configs=tuple(build(ct.CreatableTopicConfig, name=k, value=v) for k, v in configs.items()),
    )
    req = build(
        ct.CreateTopicsRequest, topics=(topic,), timeout=datetime.timedelta(seconds=5), validate_only=False
    )
    return int(c.request(19, 7, req).topics[0].error_code)


def _produce(c: WireClient, topic: str, value_bytes: int) -> int:
    batch = build_batch(
        [SimpleRecord(key=None, value=b"v" * value_bytes)], timestamp_ms=int(time.time() * 1000)
    )
    part = build(pr.PartitionProduceData, index=0, records=batch)
    req = build(
        pr.ProduceRequest,
        transactional_id=None,
        acks=1,
        timeout=5000,
        topic_data=(build(pr.TopicProduceData, name=topic, partition_data=(part,)),),
    )
    return int(c.request(0, 9, req).responses[0].partition_responses[0].error_code)


def _described(c: WireClient, resource_type: int, name: str, key: str) -> str:
    res = build(
        dc.DescribeConfigsResource, resource_type=resource_type, resource_name=name, configuration_keys=None
    )
    req = build(
        dc.DescribeConfigsRequest, resources=(res,), include_synonyms=False, include_documentation=False
    )
    (result,) = c.request(32, 4, req).results
    return str(next(entry.value for entry in result.configs if entry.name == key))


def test_broker_message_max_bytes_limits_topics_without_their_own(tmp_path: Path) -> None:
    with (
        running_broker(
            tmp_path / "data", metrics=False, extra_args=["--message-max-bytes", "2000"]
        ) as broker,
        WireClient(broker.host, broker.port) as c,
    ):
        assert _create(c, "follows-broker", {}) == 0
        assert _create(c, "own-limit", {"max.message.bytes": "10000"}) == 0
        assert _create(c, "absurd", {"max.message.bytes": "2147483648"}) == INVALID_CONFIG
        assert _produce(c, "follows-broker", 1000) == 0
        assert _produce(c, "follows-broker", 3000) == MESSAGE_TOO_LARGE
        assert _produce(c, "own-limit", 3000) == 0
        assert _described(c, 2, "follows-broker", "max.message.bytes") == "2000"
        assert _described(c, 4, "0", "message.max.bytes") == "2000"
