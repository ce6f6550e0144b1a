"""A single broker never lets a client make ``__consumer_offsets`` (where the broker keeps group offsets)
an ordinary topic: not by CreateTopics, not by Metadata auto-creation, so nothing can be produced into
it. (The replicated cluster's internal topic is covered by tests/cluster/test_forged_requests.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker_process import BrokerProcess

OFFSETS = "__consumer_offsets"


def test_clients_cannot_create_or_auto_create_the_offsets_topic(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data", extra_args=["--auto-create-topics", "true"]) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        with pytest.raises(KafkaException) as raised:
            admin.create_topics([NewTopic(OFFSETS, 1, 1)])[OFFSETS].result(20)
        assert raised.value.args[0].code() == KafkaError.INVALID_REQUEST
        # The broker answers UNKNOWN_TOPIC_OR_PARTITION, which the client retries until this timeout.
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 1000})
        outcome: list[KafkaError | None] = []
        producer.produce(OFFSETS, b"forged", on_delivery=lambda e, _m: outcome.append(e))
        producer.flush(20)
        assert len(outcome) == 1 and outcome[0] is not None, outcome
        assert OFFSETS not in admin.list_topics(timeout=10).topics
        # Auto-creation still works for ordinary names.
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 15000})
        producer.produce("ordinary", b"fine", on_delivery=lambda e, _m: outcome.append(e))
        producer.flush(20)
        assert outcome[1:] == [None], outcome
