"""Kafka's topic-name rule (1..249 of [a-zA-Z0-9._-], not "." or "..") wherever a name enters the broker:
the shared validator, CreateTopics and auto-creation on Metadata, answered with INVALID_TOPIC_EXCEPTION."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from streamraft_broker.topics.names import InvalidTopicNameError, check_topic_name, topic_name_problem

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

INVALID_TOPIC_EXCEPTION = 17
ILLEGAL = ["abc\n", "", ".", "..", "a" * 250, "a b", "ü", "a/b", "\nabc", "abc\x00", "tab\t"]
LEGAL = ["a", "a" * 249, "Orders_v1.2-x", "...", "-", "_"]


@pytest.mark.parametrize("name", ILLEGAL)
def test_illegal_names_are_refused_with_the_reason(name: str) -> None:
    problem = topic_name_problem(name)
    assert problem is not None
    with pytest.raises(InvalidTopicNameError, match="topic name") as info:
        check_topic_name(name)
    assert info.value.error_code == INVALID_TOPIC_EXCEPTION


@pytest.mark.parametrize("name", LEGAL)
def test_legal_names_pass(name: str) -> None:
    assert topic_name_problem(name) is None
    assert check_topic_name(name) == name


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, metrics=False, extra_args=["--auto-create-topics", "true"])


def _create(client: WireClient, name: str) -> tuple[int, str | None]:
    topic = CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=(), configs=())
    req = CreateTopicsRequest(topics=(topic,), timeout=datetime.timedelta(seconds=5), validate_only=False)
    result = client.request(19, 7, req).topics[0]
    return int(result.error_code), result.error_message


def _metadata_names(client: WireClient, names: list[str]) -> dict[str, int]:
    req = MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=n) for n in names),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )
    return {t.name: int(t.error_code) for t in client.request(3, 12, req).topics}


def test_create_topics_refuses_a_trailing_newline(broker: BrokerProcess) -> None:
    """``abc\\n`` used to pass: the rule's regex ended in ``$``, which matches before a final newline."""
    with WireClient(broker.host, broker.port) as client:
        code, message = _create(client, "abc\n")
        assert code == INVALID_TOPIC_EXCEPTION
        assert message is not None and "may only hold" in message
        for name in ("..", "a" * 250, "a b"):
            assert _create(client, name)[0] == INVALID_TOPIC_EXCEPTION, name
        assert _create(client, "abc") == (0, None)
        assert _metadata_names(client, ["abc"]) == {"abc": 0}


def test_auto_creation_refuses_illegal_names(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        answered = _metadata_names(client, ["bad\n", "fine-auto"])
        assert answered == {"bad\n": INVALID_TOPIC_EXCEPTION, "fine-auto": 0}
        listed = client.request(
            3,
            12,
            MetadataRequest(
                topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
            ),
        )
        assert "bad\n" not in {t.name for t in listed.topics}
