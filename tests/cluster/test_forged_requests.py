"""A plain Kafka client on the Kafka port of a replicated cluster without any security configured cannot
forge broker-to-broker requests nor damage internal topics:

- a BrokerRegistration for an unknown id (a fake broker that would get replicas and Raft traffic) is
  refused, and so is one moving a registered broker to another address (its address would flap);
- an UnregisterBroker (which decommissions a broker) is refused without a registered broker's proof;
- an AlterPartition (which would end a replica move early) is refused likewise;
- producing to ``__consumer_offsets`` fails (Kafka's INVALID_TOPIC_EXCEPTION), deleting it or adding
  partitions fails, and Metadata flags it internal.
"""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions
from kio.schema.alter_partition.v2 import request as ap_req
from kio.schema.broker_registration.v0 import request as reg_req
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.types import BrokerId, TopicName
from kio.schema.unregister_broker.v0.request import UnregisterBrokerRequest
from kio.static.primitive import i32, i64, u16

from tests.support.launcher import Cluster, wait_controller
from tests.support.membership import metadata_brokers, registered, wire
from tests.support.poll import wait_for

OFFSETS = "__consumer_offsets"
INVALID_TOPIC_EXCEPTION = 17
CLUSTER_AUTHORIZATION_FAILED = 31
INVALID_REQUEST = 42
DUPLICATE_BROKER_REGISTRATION = 101
INCONSISTENT_CLUSTER_ID = 104


def _registration(node: int, kafka_port: int, raft_port: int, cluster_id: str) -> Any:
    """What a plain client can send: a made-up incarnation and addresses it controls."""
    listeners = (
        reg_req.Listener(name="PLAINTEXT", host="127.0.0.1", port=u16(kafka_port), security_protocol=0),
        reg_req.Listener(name="RAFT", host="127.0.0.1", port=u16(raft_port), security_protocol=0),
    )
    return reg_req.BrokerRegistrationRequest(
        broker_id=BrokerId(node),
        cluster_id=cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=listeners,
        features=(),
        rack=None,
    )


def _metadata(port: int) -> Any:
    return wire(
        port,
        3,
        12,
        MetadataRequest(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        ),
    )


def _offsets_topic(port: int) -> Any:
    request = MetadataRequest(
        topics=(MetadataRequestTopic(topic_id=None, name=TopicName(OFFSETS)),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    found = wire(port, 3, 12, request).topics[0]
    return found if found.error_code == 0 and found.partitions else None


def test_plain_client_cannot_forge_broker_requests_or_touch_internal_topics(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 4)  # broker 4 is no controller voter: the one a decommission may take
    for b in cluster.brokers.values():
        b.metrics = True
    with cluster:
        controller = wait_controller(cluster)
        port = cluster.kafka_ports[controller]
        wait_for("all four brokers registered", lambda: len(registered(cluster.brokers[controller])) == 4)
        before = registered(cluster.brokers[controller])
        cluster_id = str(_metadata(port).cluster_id)

        fake = wire(port, 62, 0, _registration(9, 1, 2, cluster_id))
        assert int(fake.error_code) == INVALID_REQUEST, fake
        wrong_cluster = wire(port, 62, 0, _registration(9, 1, 2, "not-this-cluster"))
        assert int(wrong_cluster.error_code) == INCONSISTENT_CLUSTER_ID, wrong_cluster
        flap = wire(port, 62, 0, _registration(2, 1, 2, cluster_id))
        assert int(flap.error_code) == DUPLICATE_BROKER_REGISTRATION, flap
        assert registered(cluster.brokers[controller]) == before, "a forged registration changed the log"
        assert metadata_brokers(port) == {1, 2, 3, 4}

        unregister = wire(port, 64, 0, UnregisterBrokerRequest(broker_id=BrokerId(4)))
        assert int(unregister.error_code) == CLUSTER_AUTHORIZATION_FAILED, unregister
        assert registered(cluster.brokers[controller])[4]["state"] == "active"

        offsets = wait_for(f"{OFFSETS} created", partial(_offsets_topic, port), logs=cluster.logs)
        assert offsets.is_internal is True
        report = ap_req.AlterPartitionRequest(
            broker_id=BrokerId(1),
            broker_epoch=i64(-1),
            topics=(
                ap_req.TopicData(
                    topic_id=offsets.topic_id,
                    partitions=(
                        ap_req.PartitionData(
                            partition_index=i32(0),
                            leader_epoch=i32(1),
                            new_isr=(BrokerId(1), BrokerId(2), BrokerId(4)),
                            partition_epoch=i32(0),
                        ),
                    ),
                ),
            ),
        )
        altered = wire(port, 56, 2, report)
        assert int(altered.topics[0].partitions[0].error_code) == CLUSTER_AUTHORIZATION_FAILED, altered

        producer = Producer({"bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 15_000})
        outcome: list[KafkaError | None] = []
        producer.produce(OFFSETS, b"forged offset", partition=0, on_delivery=lambda e, _m: outcome.append(e))
        producer.flush(30)
        assert len(outcome) == 1 and outcome[0] is not None, outcome
        assert outcome[0].code() == KafkaError.TOPIC_EXCEPTION, outcome[0]

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        for future in (
            admin.delete_topics([OFFSETS], operation_timeout=10)[OFFSETS],
            admin.create_partitions([NewPartitions(OFFSETS, 50)])[OFFSETS],
        ):
            try:
                future.result(30)
            except KafkaException as exc:
                assert exc.args[0].code() == KafkaError.INVALID_REQUEST, exc
            else:
                raise AssertionError(f"a client changed {OFFSETS}")
        after = _offsets_topic(port)
        assert after is not None and len(after.partitions) == len(offsets.partitions)
