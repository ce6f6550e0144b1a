"""ACLs end to end with real clients on a single broker (PLAINTEXT: every client is User:ANONYMOUS).

With ``super.users=User:ANONYMOUS`` the admin client creates ACLs (kafka-python's create_acls); restarted
without it, the same client is held to them: Metadata hides topics it may not Describe, produce to a topic
it may not Write fails with TopicAuthorizationFailed in kafka-python and confluent-kafka, a consumer group
it may Read works and one it may not fails with GroupAuthorizationFailed, the authorized-operations
bitfields are the authorizer's, and deleting the Write ACL takes writing away. The ACLs survive the
restart (DATA/acls.json). Without an authorizer the ACL APIs answer SECURITY_DISABLED, as Kafka's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kafka.errors
import pytest
from confluent_kafka import KafkaError, Producer, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from tests.support.broker_process import BrokerProcess

DEADLINE_S = 30.0
AUTHORIZER = ["--authorizer-class-name", "streamraft.acl"]
ANONYMOUS = "User:ANONYMOUS"


def _allow(rtype: ResourceType, name: str, op: ACLOperation) -> ACL:
    pattern = ResourcePattern(rtype, name, ACLResourcePatternType.LITERAL)
    return ACL(ANONYMOUS, "*", op, ACLPermissionType.ALLOW, pattern)


GRANTS = [
    _allow(ResourceType.TOPIC, "open", ACLOperation.READ),
    _allow(ResourceType.TOPIC, "open", ACLOperation.WRITE),
    _allow(ResourceType.GROUP, "readers", ACLOperation.READ),
    _allow(ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER),
]


_EVERYTHING = ACLFilter(
    None,
    None,
    ACLOperation.ANY,
    ACLPermissionType.ANY,
    ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
)


def _admin(broker: BrokerProcess) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)


def _write(broker: BrokerProcess, topic: str, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0, max_block_ms=10_000)
    try:
        producer.send(topic, value).get(timeout=DEADLINE_S)
    finally:
        producer.close(timeout=5)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker with an authorizer whose ACLs were created by ANONYMOUS as a super user; restarted
    without super users."""
    data = tmp_path / "data"
    with BrokerProcess(data, extra_args=[*AUTHORIZER, "--super-users", ANONYMOUS]) as broker:
        admin = _admin(broker)
        admin.create_topics([NewTopic("open", 1, 1), NewTopic("closed", 1, 1)])
        created = admin.create_acls(GRANTS)
        assert created["failed"] == [] and len(created["succeeded"]) == len(GRANTS), created
        admin.close()
        _write(broker, "closed", b"by a super user")
    with BrokerProcess(data, extra_args=AUTHORIZER) as broker:
        yield broker


def test_acls_are_enforced_for_real_clients_and_survive_a_restart(secured: BrokerProcess) -> None:
    admin = _admin(secured)
    try:
        found, _ = admin.describe_acls(_EVERYTHING)
        assert {(a.resource_pattern.resource_name, a.operation) for a in found} == {
            (a.resource_pattern.resource_name, a.operation) for a in GRANTS
        }
        assert set(admin.list_topics()) == {"open"}, "Metadata must hide topics without Describe"
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            admin.create_topics([NewTopic("new", 1, 1)])
    finally:
        admin.close()

    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        _write(secured, "closed", b"denied")
    _write(secured, "open", b"hello")
    confluent = Producer({"bootstrap.servers": secured.bootstrap, "message.timeout.ms": 10_000})
    errors: list[KafkaError] = []
    confluent.produce("closed", b"denied", on_delivery=lambda e, _m: errors.append(e))
    confluent.flush(DEADLINE_S)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors

    consumer = KafkaConsumer(
        "open",
        bootstrap_servers=secured.bootstrap,
        group_id="readers",
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(DEADLINE_S * 1000),
    )
    try:
        assert next(iter(consumer)).value == b"hello"
        consumer.commit()
    finally:
        consumer.close()

    stranger = KafkaConsumer(
        "open", bootstrap_servers=secured.bootstrap, group_id="strangers", auto_offset_reset="earliest"
    )
    try:
        with pytest.raises(kafka.errors.GroupAuthorizationFailedError):
            stranger.poll(timeout_ms=int(DEADLINE_S * 1000))
    finally:
        stranger.close()

    client = AdminClient({"bootstrap.servers": secured.bootstrap})
    topic = client.describe_topics(TopicCollection(["open"]), include_authorized_operations=True)["open"]
    ops = set(topic.result(DEADLINE_S).authorized_operations)
    assert ops == {AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE}, ops
    cluster = client.describe_cluster(include_authorized_operations=True).result(DEADLINE_S)
    assert set(cluster.authorized_operations) == {AclOperation.ALTER, AclOperation.DESCRIBE}

    admin = _admin(secured)
    try:
        write_acl = ACLFilter(
            ANONYMOUS,
            None,
            ACLOperation.WRITE,
            ACLPermissionType.ALLOW,
            ResourcePatternFilter(ResourceType.TOPIC, "open", ACLResourcePatternType.MATCH),
        )
        [(_, deleted, error)] = admin.delete_acls([write_acl])
        assert error is kafka.errors.NoError and [a.operation for a in deleted] == [ACLOperation.WRITE]
    finally:
        admin.close()
    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        _write(secured, "open", b"no longer allowed")


def test_without_an_authorizer_acl_apis_answer_security_disabled(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data") as broker:
        admin = _admin(broker)
        try:
            result = admin.create_acls(GRANTS[:1])
            assert result["failed"] == [kafka.errors.SecurityDisabledError], result
            with pytest.raises(kafka.errors.SecurityDisabledError):
                admin.describe_acls(_EVERYTHING)
        finally:
            admin.close()
