"""Transactions with real clients on a single-node broker: a read_committed consumer sees committed
records and never aborted ones, offsets sent with a transaction count only once it commits, a zombie
producer with the same transactional.id is fenced, and a transaction left open by a killed broker is
aborted when the producer comes back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.static.primitive import i8

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.poll import poll
from tests.support.txn_clients import read_partition
from tests.support.wire import WireClient

TIMEOUT_S = 30
FIND_COORDINATOR = 10


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory)


def create(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def txn_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(TIMEOUT_S)
    return producer


def test_read_committed_sees_committed_records_never_aborted_ones(broker: BrokerProcess) -> None:
    create(broker.bootstrap, "orders")
    producer = txn_producer(broker.bootstrap, "orders-writer")
    producer.begin_transaction()
    producer.produce("orders", b"c1")
    producer.produce("orders", b"c2")
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce("orders", b"aborted")
    producer.flush(TIMEOUT_S)  # the aborted record really is in the log
    producer.abort_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce("orders", b"c3")
    producer.commit_transaction(TIMEOUT_S)
    assert read_partition(broker.bootstrap, "orders", 0, isolation="read_committed") == [b"c1", b"c2", b"c3"]
    assert read_partition(broker.bootstrap, "orders", 0, isolation="read_uncommitted") == [
        b"c1",
        b"c2",
        b"aborted",
        b"c3",
    ]


def test_open_transaction_holds_back_read_committed_until_it_ends(broker: BrokerProcess) -> None:
    create(broker.bootstrap, "ledger")
    producer = txn_producer(broker.bootstrap, "ledger-writer")
    producer.begin_transaction()
    producer.produce("ledger", b"pending")
    producer.flush(TIMEOUT_S)
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "ledger-lso", "isolation.level": "read_committed"}
    )
    try:
        # ListOffsets with isolation level 1: "latest" is the last stable offset (0), not the log end (1).
        assert consumer.get_watermark_offsets(
            TopicPartition("ledger", 0), timeout=TIMEOUT_S, cached=False
        ) == (0, 0)
        assert read_partition(broker.bootstrap, "ledger", 0, isolation="read_committed") == []
        producer.commit_transaction(TIMEOUT_S)
        assert consumer.get_watermark_offsets(
            TopicPartition("ledger", 0), timeout=TIMEOUT_S, cached=False
        ) == (0, 2)
    finally:
        consumer.close()
    assert read_partition(broker.bootstrap, "ledger", 0, isolation="read_committed") == [b"pending"]


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
        return int(tp.offset)
    finally:
        consumer.close()


def test_offsets_sent_with_a_transaction_count_only_when_it_commits(broker: BrokerProcess) -> None:
    create(broker.bootstrap, "input")
    create(broker.bootstrap, "output")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "transformer"})
    producer = txn_producer(broker.bootstrap, "transformer-1")
    try:
        metadata = consumer.consumer_group_metadata()
        producer.begin_transaction()
        producer.produce("output", b"x")
        producer.send_offsets_to_transaction([TopicPartition("input", 0, 7)], metadata, TIMEOUT_S)
        assert committed_offset(broker.bootstrap, "transformer", "input") < 0, "not before the commit"
        producer.abort_transaction(TIMEOUT_S)
        assert committed_offset(broker.bootstrap, "transformer", "input") < 0, "never after an abort"
        producer.begin_transaction()
        producer.produce("output", b"y")
        producer.send_offsets_to_transaction([TopicPartition("input", 0, 11)], metadata, TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S)
        assert committed_offset(broker.bootstrap, "transformer", "input") == 11
    finally:
        consumer.close()
    assert read_partition(broker.bootstrap, "output", 0, isolation="read_committed") == [b"y"]


def test_zombie_producer_is_fenced(broker: BrokerProcess) -> None:
    create(broker.bootstrap, "fenced")
    zombie = txn_producer(broker.bootstrap, "fenced-writer")
    zombie.begin_transaction()
    zombie.produce("fenced", b"zombie")
    zombie.flush(TIMEOUT_S)
    successor = txn_producer(broker.bootstrap, "fenced-writer")  # aborts the zombie's open transaction
    # The partition already belongs to the zombie's transaction, so this goes straight to the partition,
    # which knows the bumped epoch from the abort marker and refuses it.
    zombie.produce("fenced", b"late")
    with pytest.raises(KafkaException) as fenced:
        zombie.flush(TIMEOUT_S)
        zombie.commit_transaction(TIMEOUT_S)
    error = fenced.value.args[0]
    assert error.fatal() and error.code() == KafkaError._FENCED, (
        f"the zombie must be fenced for good: {error}"
    )
    successor.begin_transaction()
    successor.produce("fenced", b"successor")
    successor.commit_transaction(TIMEOUT_S)
    assert read_partition(broker.bootstrap, "fenced", 0, isolation="read_committed") == [b"successor"]
    assert read_partition(broker.bootstrap, "fenced", 0, isolation="read_uncommitted") == [
        b"zombie",
        b"successor",
    ], "the fenced producer's late record was never appended"


def test_transaction_open_at_a_crash_times_out_after_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with BrokerProcess(tmp_path_factory.mktemp("txn-crash") / "data") as broker:
        create(broker.bootstrap, "crash")
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "transactional.id": "crash-writer",
                "transaction.timeout.ms": 2000,
            }
        )
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        producer.produce("crash", b"in-doubt")
        producer.flush(TIMEOUT_S)
        broker.kill()
        broker.start()
        producer.purge()  # its broker is gone (new port): it never comes back to end the transaction
        plain = Producer({"bootstrap.servers": broker.bootstrap})
        plain.produce("crash", b"plain")
        assert plain.flush(TIMEOUT_S) == 0
        # The restarted coordinator aborts the in-doubt transaction once its timeout passes, without any
        # producer's help, so the last stable offset moves on and read_committed consumers see "plain".
        poll(
            "in-doubt transaction aborted by its timeout",
            lambda: read_partition(broker.bootstrap, "crash", 0, isolation="read_committed") == [b"plain"],
            timeout=TIMEOUT_S,
        )
        successor = txn_producer(broker.bootstrap, "crash-writer")
        successor.begin_transaction()
        successor.produce("crash", b"after")
        successor.commit_transaction(TIMEOUT_S)
        assert read_partition(broker.bootstrap, "crash", 0, isolation="read_committed") == [
            b"plain",
            b"after",
        ]
        assert read_partition(broker.bootstrap, "crash", 0, isolation="read_uncommitted") == [
            b"in-doubt",
            b"plain",
            b"after",
        ]


def test_kafka_python_transactional_producer(broker: BrokerProcess) -> None:
    from kafka import KafkaProducer  # noqa: PLC0415 -- only this test uses kafka-python

    create(broker.bootstrap, "kp")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-writer")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("kp", b"kept")
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send("kp", b"dropped")
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close(timeout=10)
    assert read_partition(broker.bootstrap, "kp", 0, isolation="read_committed") == [b"kept"]


def test_in_memory_broker_says_it_has_no_transaction_coordinator(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with (
        BrokerProcess(tmp_path_factory.mktemp("txn-mem") / "data", in_memory=True) as broker,
        WireClient(broker.host, broker.port) as client,
    ):
        answer = client.request(
            FIND_COORDINATOR, 4, FindCoordinatorRequest(key_type=i8(1), coordinator_keys=("any-id",))
        )
        [coordinator] = answer.coordinators
        assert coordinator.error_code == ErrorCode.coordinator_not_available
        assert "on disk" in str(coordinator.error_message)
