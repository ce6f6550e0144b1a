"""Debezium's PostgreSQL connector (change data capture, pgoutput) in a Kafka Connect 4.3.1 worker whose
state lives on a 3-broker Streamraft cluster.

A PostgreSQL server started by the test (``wal_level=logical``, 127.0.0.1, a temporary directory) holds a
table with two rows. The connector snapshots them, then streams what follows from its logical replication
slot: inserts, updates and a delete, some in one transaction. Every change must arrive on Streamraft as one
Debezium change event, in commit order, with the row before and after (``REPLICA IDENTITY FULL``), and the
delete followed by its tombstone (a null value, so compaction can drop the key).

Then the worker is SIGKILLed, the table changes while it is down, and a new worker process resumes from the
WAL position committed to its offsets topic: every change arrives, and the only repeats allowed are the
at-least-once kind, one run of events replayed from that position (see tests/support/replay.py).

``STREAMRAFT_COMPAT_TARGET=kafka`` runs the same test against Apache Kafka, to prove the test right.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from tests.compat.connect_worker import ConnectWorker
from tests.compat.postgres_server import PostgresServer
from tests.compat.target import Target, java_app_target
from tests.javakafka import debezium
from tests.support.replay import split_replay
from tests.support.topic_read import LogRecord, read_topic

pytestmark = [pytest.mark.java, pytest.mark.timeout(240)]

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"

Row = dict[str, object]
Change = tuple[str, Row | None, Row | None]
"""(op, before, after) of one Debezium event; ("tombstone", None, None) for the null value after a delete."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Target]:
    with java_app_target("streamraft-raft") as t:
        yield t


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its parents are root's alone, and the server runs as postgres.
    with tempfile.TemporaryDirectory(prefix="streamraft-pg-") as base, PostgresServer(Path(base)) as pg:
        yield pg


def row(id_: int, owner: str, balance: int) -> Row:
    return {"id": id_, "owner": owner, "balance": balance}


def changes(records: list[LogRecord]) -> list[Change]:
    out: list[Change] = []
    for r in records:
        if r.value is None:
            out.append(("tombstone", None, None))
            continue
        event = json.loads(r.value)
        out.append((event["op"], event["before"], event["after"]))
    return out


def read_changes(cluster: Target, topic: str) -> list[Change]:
    try:
        return changes(read_topic(cluster.bootstrap, topic))
    except KafkaException:  # the topic is being created: no leader yet
        return []


def test_inserts_updates_and_deletes_arrive_in_commit_order(
    cluster: Target, postgres: PostgresServer, tmp_path: Path
) -> None:
    plugins = debezium.fetch()
    run = uuid.uuid4().hex[:8]
    prefix = f"dbz{run}"
    topic = f"{prefix}.public.accounts"
    postgres.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);"
        "ALTER TABLE accounts REPLICA IDENTITY FULL;"
        "INSERT INTO accounts VALUES (1, 'ada', 100), (2, 'bob', 50);"
    )

    worker = ConnectWorker(
        cluster, f"connect-{run}", tmp_path / "worker", extra_props={"plugin.path": str(plugins)}
    )
    try:
        worker.start()
        worker.create_connector(
            f"pg-{run}",
            {
                "connector.class": POSTGRES_CONNECTOR,
                "tasks.max": "1",
                "database.hostname": "127.0.0.1",
                "database.port": str(postgres.port),
                "database.user": "postgres",
                "database.password": "unused",  # trust authentication on loopback
                "database.dbname": "postgres",
                "topic.prefix": prefix,
                "plugin.name": "pgoutput",
                "slot.name": f"slot_{run}",
                "publication.name": f"pub_{run}",
                "publication.autocreate.mode": "filtered",
                "table.include.list": "public.accounts",
                "key.converter": JSON_CONVERTER,
                "key.converter.schemas.enable": "false",
                "value.converter": JSON_CONVERTER,
                "value.converter.schemas.enable": "false",
                # One partition: the whole table's history in one order, commit order.
                "topic.creation.default.partitions": "1",
                "topic.creation.default.replication.factor": str(cluster.replication_factor),
            },
        )

        # The snapshot: the rows there before the connector, as reads.
        snapshot: list[Change] = [("r", None, row(1, "ada", 100)), ("r", None, row(2, "bob", 50))]
        worker.wait("the snapshot", lambda: len(read_changes(cluster, topic)) >= 2)
        assert read_changes(cluster, topic) == snapshot

        # Streaming from the replication slot: single statements and one transaction of three.
        postgres.sql("INSERT INTO accounts VALUES (3, 'cy', 0);")
        postgres.sql(
            "BEGIN;"
            "UPDATE accounts SET balance = balance - 30 WHERE id = 1;"
            "UPDATE accounts SET balance = balance + 30 WHERE id = 3;"
            "DELETE FROM accounts WHERE id = 2;"
            "COMMIT;"
        )
        postgres.sql("UPDATE accounts SET owner = 'cyd' WHERE id = 3;")
        streamed: list[Change] = [
            ("c", None, row(3, "cy", 0)),
            ("u", row(1, "ada", 100), row(1, "ada", 70)),
            ("u", row(3, "cy", 0), row(3, "cy", 30)),
            ("d", row(2, "bob", 50), None),
            ("tombstone", None, None),
            ("u", row(3, "cy", 30), row(3, "cyd", 30)),
        ]
        want = snapshot + streamed
        worker.wait("every change", lambda: len(read_changes(cluster, topic)) >= len(want))
        records = read_topic(cluster.bootstrap, topic)
        assert changes(records) == want
        # Keyed by the primary key, the tombstone included: compaction keeps each row's latest state.
        keys = [json.loads(r.key) if r.key is not None else None for r in records]
        assert keys == [{"id": i} for i in (1, 2, 3, 1, 3, 2, 2, 3)]

        # The crash: SIGKILL the worker, change the table while it is down, start it again. It resumes
        # from the position in the WAL it last committed to its offsets topic on Streamraft.
        worker.kill()
        postgres.sql("INSERT INTO accounts VALUES (4, 'dee', 10);")
        postgres.sql(
            "BEGIN; UPDATE accounts SET balance = 0 WHERE id = 1; DELETE FROM accounts WHERE id = 3; COMMIT;"
        )
        while_down: list[Change] = [
            ("c", None, row(4, "dee", 10)),
            ("u", row(1, "ada", 70), row(1, "ada", 0)),
            ("d", row(3, "cyd", 30), None),
            ("tombstone", None, None),
        ]
        worker.start()

        def caught_up() -> bool:
            got = read_changes(cluster, topic)
            return while_down[2] in got and got[-1] == while_down[3]

        worker.wait("the changes made while the worker was down", caught_up)
        # At least once: nothing lost, and the only repeats are one run of the events after the committed
        # WAL position, replayed right after the crash point (which is after everything seen before it).
        # The first worker delivered exactly ``want`` (all of it was read before the kill, and the rest did
        # not exist yet), so the resume point follows from how many events came twice.
        got, everything = read_changes(cluster, topic), want + while_down
        resumed = len(want) - (len(got) - len(everything))
        assert split_replay(got, everything, resumed) == len(want)
        print(f"Debezium resumed at event {resumed} of the {len(want)} delivered before the SIGKILL")
    finally:
        worker.kill()
