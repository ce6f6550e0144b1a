"""A real broker process: readiness, version negotiation, graceful SIGTERM, restart with persisted topics."""

from __future__ import annotations

import datetime
import struct
import time
import urllib.request
from pathlib import Path

import pytest
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from streamraft_broker.protocol.versions import SUPPORTED

from tests.support.broker_process import BrokerProcess
from tests.support.wire import WireClient, api_versions_ok


def _create_topic(client: WireClient, name: str, partitions: int) -> int:
    req = CreateTopicsRequest(
        topics=(
            CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=1, assignments=(), configs=()
            ),
        ),
        timeout=datetime.timedelta(seconds=5),
        validate_only=False,
    )
    resp = client.request(19, 7, req)
    return int(resp.topics[0].error_code)


def test_unsupported_api_versions_version_gets_error_and_version_list(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "b", metrics=False) as broker, WireClient(broker.host, broker.port) as c:
        # ApiVersions v99: answered in v0 layout with UNSUPPORTED_VERSION (35) and our ranges.
        c.send_raw(struct.pack(">ihhih", 10, 18, 99, 5, -1))
        frame = c.recv_frame()
        corr, error, count = struct.unpack_from(">ihi", frame)
        assert (corr, error) == (5, 35)
        ranges = {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", frame[10 : 10 + 6 * count])}
        assert ranges == {int(key): span for key, span in SUPPORTED.items()}
        assert ranges[0][0] == 3 and ranges[1][0] == 4 and ranges[10][0] == 0  # what old clients need


def test_sigterm_exits_zero_and_topics_survive_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b")
    with broker:
        with WireClient(broker.host, broker.port) as c:
            assert _create_topic(c, "kept", 3) == 0
            assert _create_topic(c, "kept", 3) == 36  # TOPIC_ALREADY_EXISTS
            assert _create_topic(c, "bad name!", 1) == 17  # INVALID_TOPIC_EXCEPTION
        body = urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()
        assert 'streamraft_log_end_offset{partition="2",topic="kept"} 0.0' in body
        assert "streamraft_requests_total" in body
        assert broker.terminate() == 0
        broker.start()
        with WireClient(broker.host, broker.port) as c:
            resp = c.request(
                3,
                12,
                MetadataRequest(
                    topics=(
                        MetadataRequestTopic(topic_id=None, name="kept"),
                        MetadataRequestTopic(topic_id=None, name="nope"),
                    ),
                    allow_auto_topic_creation=False,
                    include_topic_authorized_operations=False,
                ),
            )
        by_name = {t.name: t for t in resp.topics}
        assert len(by_name["kept"].partitions) == 3
        assert int(by_name["nope"].error_code) == 3  # the client did not ask for it to be created
        assert broker.terminate() == 0


def _scrape(url: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_count_traffic_errors_and_group_lag(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: PLC0415

    with BrokerProcess(tmp_path / "b") as broker:
        with WireClient(broker.host, broker.port) as c:
            assert _create_topic(c, "m", 1) == 0
            assert _create_topic(c, "m", 1) == 36
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        for i in range(10):
            producer.produce("m", value=b"x" * 100, key=str(i).encode())
        assert producer.flush(30) == 0
        consumer = Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "lagging", "enable.auto.commit": False}
        )
        consumer.commit(offsets=[TopicPartition("m", 0, 4)], asynchronous=False)
        consumer.close()
        m = _scrape(broker.metrics_url)
        assert m['streamraft_messages_in_total{topic="m"}'] == 10
        assert m['streamraft_bytes_in_total{topic="m"}'] > 1000
        assert m['streamraft_log_end_offset{partition="0",topic="m"}'] == 10
        assert m['streamraft_log_size_bytes{partition="0",topic="m"}'] > 1000
        assert m['streamraft_consumer_group_lag{group="lagging",partition="0",topic="m"}'] == 6
        assert m['streamraft_errors_total{code="36"}'] == 1
        assert m['streamraft_request_latency_seconds_count{api="PRODUCE"}'] >= 1
        assert m["streamraft_connections_accepted_total"] >= 2


def test_altered_retention_applies_to_open_partitions(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import (  # noqa: PLC0415
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
    )

    with BrokerProcess(tmp_path / "b", metrics=False, extra_args=["--retention-check-ms", "200"]) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = NewTopic("ret", 1, 1, config={"segment.bytes": "4096"})
        admin.create_topics([topic])["ret"].result(timeout=30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.size": 1000})
        for i in range(100):
            producer.produce("ret", value=b"y" * 500, key=str(i).encode())
            producer.poll(0)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "ret"})
        tp = TopicPartition("ret", 0)
        assert consumer.get_watermark_offsets(tp, timeout=10) == (0, 100)
        bad = ConfigResource(
            "topic",
            "ret",
            incremental_configs=[
                ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        with pytest.raises(Exception, match=r"retention\.ms"):
            admin.incremental_alter_configs([bad])[bad].result(timeout=10)
        res = ConfigResource(
            "topic",
            "ret",
            incremental_configs=[
                ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([res])[res].result(timeout=10)
        described = admin.describe_configs([ConfigResource("topic", "ret")])
        (entries,) = [f.result(timeout=10) for f in described.values()]
        assert entries["retention.ms"].value == "1"
        deadline = time.monotonic() + 30
        while consumer.get_watermark_offsets(tp, timeout=10)[0] == 0:
            assert time.monotonic() < deadline, "retention never deleted a segment"
            time.sleep(0.1)  # polling the log start offset under a deadline
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        assert 0 < low <= high == 100
        consumer.close()


def test_sigterm_answers_a_long_poll_fetch_and_exits_promptly(tmp_path: Path) -> None:
    from kio.schema.fetch.v12 import request as fr  # noqa: PLC0415
    from streamraft_broker.protocol.codec import build  # noqa: PLC0415

    broker = BrokerProcess(tmp_path / "b", metrics=False)
    with broker, WireClient(broker.host, broker.port, timeout=60) as c:
        assert _create_topic(c, "idle", 1) == 0
        part = build(
            fr.FetchPartition,
            partition=0,
            current_leader_epoch=-1,
            fetch_offset=0,
            last_fetched_epoch=-1,
            log_start_offset=-1,
            partition_max_bytes=1024,
        )
        req = build(
            fr.FetchRequest,
            replica_id=-1,
            max_wait=30000,
            min_bytes=1,
            max_bytes=1024,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(build(fr.FetchTopic, topic="idle", partitions=(part,)),),
            forgotten_topics_data=(),
            rack_id="",
        )
        c.send_raw(c.encode_request(1, 12, req, 77))
        # A round trip on another connection after sending lets the broker's loop read the parked fetch.
        assert api_versions_ok(broker.host, broker.port)
        started = time.monotonic()
        assert broker.terminate(timeout=30) == 0
        assert time.monotonic() - started < 8, "shutdown waited for the 30 s long poll"
        frame = c.recv_frame()
        assert struct.unpack_from(">i", frame)[0] == 77
