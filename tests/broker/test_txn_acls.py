"""Transactions under ACLs with real clients (PLAINTEXT: every client is User:ANONYMOUS): a transactional
producer needs Write on its transactional id, as in Kafka; without it init_transactions fails with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourceType,
)

from tests.support.broker_process import BrokerProcess
from tests.support.txn_clients import read_partition

AUTHORIZER = ["--authorizer-class-name", "streamraft.acl"]
ANONYMOUS = "User:ANONYMOUS"
TIMEOUT_S = 30


def allow(rtype: ResourceType, name: str, op: ACLOperation) -> ACL:
    return ACL(
        ANONYMOUS,
        "*",
        op,
        ACLPermissionType.ALLOW,
        ResourcePattern(rtype, name, ACLResourcePatternType.LITERAL),
    )


GRANTS = [
    allow(ResourceType.TOPIC, "audited", ACLOperation.WRITE),
    allow(ResourceType.TOPIC, "audited", ACLOperation.READ),
    allow(ResourceType.TOPIC, "audited", ACLOperation.DESCRIBE),
    allow(ResourceType.GROUP, "*", ACLOperation.READ),
    allow(ResourceType.TRANSACTIONAL_ID, "granted", ACLOperation.WRITE),
    allow(ResourceType.TRANSACTIONAL_ID, "granted", ACLOperation.DESCRIBE),
]


def test_transactional_id_write_is_required(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with BrokerProcess(data, extra_args=[*AUTHORIZER, "--super-users", ANONYMOUS]) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
        admin.create_topics([NewTopic("audited", 1, 1)])
        created = admin.create_acls(GRANTS)
        assert created["failed"] == [], created
        admin.close()
    with BrokerProcess(data, extra_args=AUTHORIZER) as broker:
        granted = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "granted"})
        granted.init_transactions(TIMEOUT_S)
        granted.begin_transaction()
        granted.produce("audited", b"allowed")
        granted.commit_transaction(TIMEOUT_S)
        denied = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "denied"})
        with pytest.raises(KafkaException) as refused:
            denied.init_transactions(TIMEOUT_S)
        assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, refused.value
        assert read_partition(broker.bootstrap, "audited", 0, isolation="read_committed") == [b"allowed"]
