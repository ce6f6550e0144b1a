"""ACLs in a replicated cluster live in the controller log: created or deleted through any broker (one
that does not lead the controller forwards the change, signed), every broker answers DescribeAcls with
them and enforces them."""

from __future__ import annotations

import datetime
from functools import partial
from pathlib import Path
from typing import Any

import kafka.errors
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kio.schema.create_acls.v3 import request as create_req
from kio.schema.delete_acls.v3 import request as delete_req
from kio.schema.describe_acls.v3.request import DescribeAclsRequest
from kio.schema.elect_leaders.v2 import request as elect_req
from kio.schema.types import TopicName
from kio.static.primitive import i8, i32, i32Timedelta

from tests.support.launcher import Cluster, create_topic, wait_controller
from tests.support.membership import registered, wire
from tests.support.poll import wait_for
from tests.support.wire import WireClient

TOPIC, GROUP, LITERAL, ALLOW, READ, WRITE = 2, 3, 3, 3, 3, 4


def _described(port: int) -> set[tuple[int, str, str, int]]:
    """(resource type, name, principal, operation) of every ACL this broker describes."""
    anything = DescribeAclsRequest(
        resource_type_filter=i8(1),
        resource_name_filter=None,
        pattern_type_filter=i8(1),
        principal_filter=None,
        host_filter=None,
        operation=i8(1),
        permission_type=i8(1),
    )
    answer: Any = wire(port, 29, 3, anything)
    assert int(answer.error_code) == 0, answer
    return {
        (int(r.resource_type), str(r.resource_name), str(a.principal), int(a.operation))
        for r in answer.resources
        for a in r.acls
    }


def _everywhere(cluster: Cluster, expected: set[tuple[int, str, str, int]]) -> bool:
    return all(_described(port) == expected for port in cluster.kafka_ports.values())


def _election(topic: str) -> elect_req.ElectLeadersRequest:
    return elect_req.ElectLeadersRequest(
        election_type=i8(0),
        topic_partitions=(elect_req.TopicPartitions(topic=TopicName(topic), partitions=(i32(0),)),),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
    )


def test_acls_change_through_any_broker_and_hold_on_every_broker(tmp_path: Path) -> None:
    secured = ("--authorizer-class-name", "streamraft.acl", "--super-users", "User:alice")
    cluster = Cluster(tmp_path, 3, extra_args=secured)
    for b in cluster.brokers.values():
        b.metrics = True
    with cluster:
        controller = wait_controller(cluster)
        # Brokers are User:ANONYMOUS on PLAINTEXT, no super users: they still register at their addresses.
        wait_for("every broker registered", lambda: len(registered(cluster.brokers[controller])) == 3)
        follower = cluster.kafka_ports[next(n for n in cluster.kafka_ports if n != controller)]
        creation = create_req.AclCreation(
            resource_type=i8(TOPIC),
            resource_name="events",
            resource_pattern_type=i8(LITERAL),
            principal="User:ANONYMOUS",
            host="*",
            operation=i8(WRITE),
            permission_type=i8(ALLOW),
        )
        # ANONYMOUS (every PLAINTEXT client) is no super user here: it may not create ACLs.
        refused: Any = wire(follower, 30, 3, create_req.CreateAclsRequest(creations=(creation,)))
        assert int(refused.results[0].error_code) == 31, refused
        # Nor elect leaders (Alter on the cluster), even naming itself a broker: only a registered broker's
        # proof lets a forwarded ElectLeaders through (replication.elections).
        for client_id in ("tool", "streamraft-broker/1/" + "0" * 64):
            with WireClient("127.0.0.1", follower, client_id=client_id) as c:
                elected: Any = c.request(43, 2, _election("events"))
            assert int(elected.error_code) == 31, elected
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, retries=0, max_block_ms=15_000)
        try:
            with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
                producer.send("events", b"not allowed").get(timeout=30)
        finally:
            producer.close(timeout=5)

    # The same cluster shape, with ANONYMOUS as super user, so the test's clients may administer ACLs.
    admin_too = ("--authorizer-class-name", "streamraft.acl", "--super-users", "User:ANONYMOUS")
    with Cluster(tmp_path / "second", 3, extra_args=admin_too) as cluster:
        controller = wait_controller(cluster)
        follower = cluster.kafka_ports[next(n for n in cluster.kafka_ports if n != controller)]
        created: Any = wire(follower, 30, 3, create_req.CreateAclsRequest(creations=(creation,)))
        assert [int(r.error_code) for r in created.results] == [0], created
        client = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=15_000)
        try:
            pattern = ResourcePattern(ResourceType.GROUP, "readers", ACLResourcePatternType.LITERAL)
            grant = ACL("User:ANONYMOUS", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern)
            result = client.create_acls([grant])
            assert result["failed"] == [], result
        finally:
            client.close()
        both = {(TOPIC, "events", "User:ANONYMOUS", WRITE), (GROUP, "readers", "User:ANONYMOUS", READ)}
        wait_for("the ACLs on every broker", partial(_everywhere, cluster, both), logs=cluster.logs)

        exact = delete_req.DeleteAclsFilter(
            resource_type_filter=i8(TOPIC),
            resource_name_filter="events",
            pattern_type_filter=i8(LITERAL),
            principal_filter=None,
            host_filter=None,
            operation=i8(1),
            permission_type=i8(1),
        )
        deleted: Any = wire(follower, 31, 3, delete_req.DeleteAclsRequest(filters=(exact,)))
        [outcome] = deleted.filter_results
        assert int(outcome.error_code) == 0 and [str(m.resource_name) for m in outcome.matching_acls] == [
            "events"
        ]
        rest = {(GROUP, "readers", "User:ANONYMOUS", READ)}
        wait_for("the deletion on every broker", partial(_everywhere, cluster, rest), logs=cluster.logs)

        create_topic(cluster, "events", 1)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", max_block_ms=15_000)
        try:
            producer.send("events", b"super users may").get(timeout=30)
        finally:
            producer.close(timeout=5)
