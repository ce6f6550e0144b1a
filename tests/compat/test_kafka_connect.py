"""Apache Kafka Connect 4.3.1 in distributed mode against a 3-broker Streamraft cluster.

One real worker (``ConnectDistributed``) keeps its connector configs, source offsets and statuses in three
compacted RF 3 topics on Streamraft and joins its group with Connect's group protocol. Through its REST API
the test creates a FileStreamSource connector (file -> topic) and a FileStreamSink connector (topic -> file).

Before any failure both are exact: every line appended to the source file is in the topic once, in order,
and the sink file holds the topic's records in order. Then the worker is SIGKILLed right after the source
has sent some of a second batch (racing its 500 ms offset flush), more lines are appended while it is down,
and it is started again. Connect's source offsets are at-least-once, so what is asserted is exactly this:
with ``k`` the number of lines covered by the source position last committed to the offsets topic before
the kill, and ``m`` the number of lines the topic held from the first worker, the topic is
``lines[:m] + lines[k:]`` with ``k <= m``: nothing lost, order kept, and the only duplicates are the lines
between the committed position and the crash, replayed once. The sink file is likewise
``topic[:a] + topic[b:]``, ``b`` being the sink group's committed offset before the kill.

``STREAMRAFT_COMPAT_TARGET=kafka`` runs the same test against Apache Kafka, to prove the test right.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.compat.connect_worker import FILE_SINK, FILE_SOURCE, ConnectWorker
from tests.compat.target import Target, java_app_target
from tests.support.replay import split_replay
from tests.support.topic_read import read_topic

pytestmark = [pytest.mark.java, pytest.mark.timeout(240)]

LINES = [f"line-{i:03d} {'abcdefg'[: i % 8]}" for i in range(60)]
FIRST, SECOND = 20, 40  # three batches: [0, 20) before the crash, [20, 40) racing it, [40, 60) while down


@pytest.fixture(scope="module")
def cluster() -> Iterator[Target]:
    with java_app_target("streamraft-raft") as t:
        yield t


def append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(f"{line}\n" for line in lines)


def topic_lines(cluster: Target, topic: str) -> list[str]:
    return [(r.value or b"").decode() for r in read_topic(cluster.bootstrap, topic)]


def arrived(cluster: Target, topic: str) -> int:
    """How many records the topic holds; 0 while it is still being created (no leader elected yet)."""
    try:
        return len(topic_lines(cluster, topic))
    except KafkaException:
        return 0


def file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def committed_source_position(cluster: Target, offsets_topic: str, connector: str, source: Path) -> int:
    """The byte position last committed for ``source``, read with librdkafka straight from Connect's
    compacted offsets topic: key ``["<connector>", {"filename": ...}]``, value ``{"position": n}``."""
    position = 0
    for r in read_topic(cluster.bootstrap, offsets_topic):  # one key lives on one partition: log order
        if r.key is not None and json.loads(r.key) == [connector, {"filename": str(source)}]:
            position = 0 if r.value is None else int(json.loads(r.value)["position"])
    return position


def committed_group_offset(cluster: Target, group: str, topic: str) -> int:
    """The offset ``group`` has committed on partition 0 of ``topic`` (0 when none), asked by a consumer
    that names the group without joining it. Not the admin API's ListConsumerGroupOffsets: librdkafka
    2.16's admin client dereferences a null consumer-group handle when that answer carries a coordinator
    error (NOT_COORDINATOR while a coordinator moves) and takes the whole test process down with SIGSEGV."""
    conf = {"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False}
    consumer = Consumer(conf)
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    except KafkaException as exc:  # what wait_for retries
        raise AssertionError(f"{group}: committed offsets not fetched: {exc}") from exc
    finally:
        consumer.close()
    assert tp.error is None, tp.error
    return max(int(tp.offset), 0)


def lines_within(position: int) -> int:
    """How many whole lines of LINES the first ``position`` bytes of the source file hold."""
    size = 0
    for n, line in enumerate(LINES):
        size += len(line.encode()) + 1
        if size > position:
            return n
    return len(LINES)


def test_file_source_and_sink_survive_a_worker_sigkill(cluster: Target, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    topic, source_name, sink_name = f"connect-{run}-lines", f"file-source-{run}", f"file-sink-{run}"
    source, sink = tmp_path / "source.txt", tmp_path / "sink.txt"
    rf = cluster.replication_factor
    append(source, LINES[:FIRST])

    worker = ConnectWorker(cluster, f"connect-{run}", tmp_path / "worker")
    try:
        worker.start()

        # Connect created its three internal topics compacted, with the replication factor asked for.
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        internal = [worker.topics.configs, worker.topics.offsets, worker.topics.status]
        meta = admin.list_topics(timeout=15).topics
        for name in internal:
            assert name in meta, f"{name} missing: {sorted(meta)}"
            assert all(len(p.replicas) == rf for p in meta[name].partitions.values()), name
        for res, fut in admin.describe_configs([ConfigResource("topic", t) for t in internal]).items():
            assert fut.result(30)["cleanup.policy"].value == "compact", res

        worker.create_connector(
            source_name,
            {
                "connector.class": FILE_SOURCE,
                "tasks.max": "1",
                "file": str(source),
                "topic": topic,
                # Connect creates the topic through the admin API: one partition keeps the lines' order.
                "topic.creation.default.partitions": "1",
                "topic.creation.default.replication.factor": str(rf),
            },
        )
        worker.wait(f"{source_name} running", lambda: worker.running(source_name))
        worker.wait("the first batch in the topic", lambda: arrived(cluster, topic) >= FIRST)
        assert topic_lines(cluster, topic) == LINES[:FIRST]

        worker.create_connector(
            sink_name, {"connector.class": FILE_SINK, "tasks.max": "1", "topics": topic, "file": str(sink)}
        )
        worker.wait(f"{sink_name} running", lambda: worker.running(sink_name))
        worker.wait("the first batch in the sink file", lambda: len(file_lines(sink)) >= FIRST)
        assert file_lines(sink) == LINES[:FIRST]

        # The source's position reaches the offsets topic (read back through the REST API), and the sink's
        # its consumer group.
        size, sink_group = source.stat().st_size, f"connect-{sink_name}"
        worker.wait(
            "the source position committed",
            lambda: [o["offset"] for o in worker.offsets(source_name)] == [{"position": size}],
        )
        worker.wait(
            "the sink offset committed", lambda: committed_group_offset(cluster, sink_group, topic) == FIRST
        )

        # The crash: SIGKILL as soon as the second batch starts arriving, racing the next offset flush.
        append(source, LINES[FIRST:SECOND])
        worker.wait("the second batch arriving", lambda: arrived(cluster, topic) > FIRST)
        worker.kill()
        resumed_at = lines_within(
            committed_source_position(cluster, worker.topics.offsets, source_name, source)
        )
        sink_at = committed_group_offset(cluster, sink_group, topic)
        assert FIRST <= resumed_at <= SECOND, resumed_at
        assert sink_at >= FIRST, sink_at

        # The third batch while the worker is down, then a new worker process in the same group.
        append(source, LINES[SECOND:])
        worker.start()
        want_total = len(LINES)

        def all_lines_in_topic() -> bool:
            got = topic_lines(cluster, topic)
            return len(got) >= want_total and got[-1] == LINES[-1]

        worker.wait("every line in the topic after the restart", all_lines_in_topic)
        got = topic_lines(cluster, topic)
        before_crash = split_replay(got, LINES, resumed_at)
        assert before_crash <= SECOND

        worker.wait("the sink to catch up", lambda: file_lines(sink)[-1:] == [LINES[-1]])
        split_replay(file_lines(sink), got, sink_at)
        assert worker.running(source_name) and worker.running(sink_name)
        print(
            f"source replayed {before_crash - resumed_at} line(s) (committed {resumed_at}, sent"
            f" {before_crash} before the SIGKILL); the sink resumed at offset {sink_at}"
        )
    finally:
        worker.kill()


def test_a_replay_is_accepted_only_as_one_repeated_run_at_the_crash() -> None:
    # The assertion helper itself: a replay passes only in the one shape at-least-once allows.
    want = ["a", "b", "c", "d"]
    assert split_replay(["a", "b", "c", "b", "c", "d"], want, 1) == 3
    assert split_replay(want, want, 2) == 2
    with pytest.raises(AssertionError, match="lost"):
        split_replay(["a", "b", "d"], want, 2)
    with pytest.raises(AssertionError):
        split_replay(["a", "c", "b", "c", "d"], want, 1)  # the right length, the wrong records
    with pytest.raises(AssertionError, match="resumed at 9"):
        split_replay(want, want, 9)
