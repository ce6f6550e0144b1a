"""Apache Kafka Streams 4.3.1 (at_least_once) against a 3-broker Streamraft cluster.

The topology (tests/compat/java/StreamsTopology.java) counts clicks per user in 10 s tumbling windows,
left-joins each click with the user's region from a KTable read from a compacted topic, and counts clicks per
page after selectKey + groupByKey, which goes through a repartition topic that Streams purges with
DeleteRecords. Input comes from librdkafka with explicit event times, so every output is known in advance.

Before any failure the outputs are exact (at_least_once without a crash delivers each update once). Then the
application's JVM, which has not committed yet, is SIGKILLed part-way through the second batch and started
again with an empty state directory: its stores are rebuilt from their changelog topics and it processes
every click again from offset 0. Afterwards every expected output is present (batch A's join results twice)
and every count reaches at least its expected value (at-least-once lets a reprocessed record count twice).

``STREAMRAFT_COMPAT_TARGET=kafka`` runs the same test against Apache Kafka, to prove the test right.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.compat.streams_app import (
    PARTITIONS,
    REGIONS,
    USERS,
    WINDOW_MS,
    StreamsApp,
    by_key,
    clicks,
    produce,
)
from tests.compat.target import Target, java_app_target
from tests.support.topic_read import read_topic, watermarks

pytestmark = [pytest.mark.java, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Target]:
    with java_app_target("streamraft-raft") as t:
        yield t


def test_windowed_count_table_join_and_repartition_survive_a_sigkill(cluster: Target, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    prefix, app_id = f"ks-{run}-", f"ks-app-{run}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    rf = cluster.replication_factor
    topics = [
        NewTopic(f"{prefix}clicks", PARTITIONS, rf),
        NewTopic(f"{prefix}users", PARTITIONS, rf, config={"cleanup.policy": "compact"}),
        *(
            NewTopic(f"{prefix}{name}", PARTITIONS, rf)
            for name in ("click-counts", "enriched", "page-counts")
        ),
    ]
    for fut in admin.create_topics(topics, operation_timeout=30).values():
        fut.result(60)

    base = (int(time.time() * 1000) // WINDOW_MS - 60) * WINDOW_MS  # ten minutes ago, on a window boundary
    produce(cluster.bootstrap, f"{prefix}users", [(u, r, base - 60_000) for u, r in REGIONS.items()])

    app = StreamsApp(cluster, app_id, prefix, tmp_path / "streams.out")
    try:
        # The first instance never reaches a commit: everything it processes is processed again after the
        # crash, which is what at-least-once promises (and no more).
        app.start(tmp_path / "state-1", commit_interval_ms=600_000)
        app.wait(
            "the table to hold every user",
            lambda: {ln.split()[1] for ln in app.lines() if ln.startswith("TABLE ")} == set(REGIONS),
        )

        # Batch A, no failure: exactly one update per click on every output.
        batch_a = clicks(base, 0, 30)
        produce(cluster.bootstrap, f"{prefix}clicks", [(c.user, c.page, c.ts) for c in batch_a])
        app.wait("batch A enriched", lambda: len(read_topic(cluster.bootstrap, f"{prefix}enriched")) >= 30)
        app.wait(
            "batch A page counts", lambda: len(read_topic(cluster.bootstrap, f"{prefix}page-counts")) >= 30
        )
        app.wait(
            "batch A windowed counts",
            lambda: len(read_topic(cluster.bootstrap, f"{prefix}click-counts")) >= 30,
        )

        enriched = by_key(read_topic(cluster.bootstrap, f"{prefix}enriched"))
        assert enriched == {
            u: [f"{c.page}|{REGIONS.get(u, '?')}" for c in batch_a if c.user == u] for u in USERS
        }
        windows = Counter(c.window for c in batch_a)
        assert by_key(read_topic(cluster.bootstrap, f"{prefix}click-counts")) == {
            w: [str(n) for n in range(1, k + 1)] for w, k in windows.items()
        }
        pages = Counter(c.page for c in batch_a)
        assert by_key(read_topic(cluster.bootstrap, f"{prefix}page-counts")) == {
            p: [str(n) for n in range(1, k + 1)] for p, k in pages.items()
        }

        # Batch B: half while the application runs, SIGKILL as soon as it has emitted some of it, the other
        # half while it is down; then a restart on an empty disk, committing every 500 ms.
        batch_b1, batch_b2 = clicks(base, 30, 15), clicks(base, 45, 15)
        produce(cluster.bootstrap, f"{prefix}clicks", [(c.user, c.page, c.ts) for c in batch_b1])
        app.wait("some of batch B", lambda: len(read_topic(cluster.bootstrap, f"{prefix}enriched")) > 30)
        app.kill()
        produce(cluster.bootstrap, f"{prefix}clicks", [(c.user, c.page, c.ts) for c in batch_b2])
        app.start(tmp_path / "state-2", commit_interval_ms=500)

        everything = batch_a + batch_b1 + batch_b2
        windows, pages = Counter(c.window for c in everything), Counter(c.page for c in everything)

        def caught_up() -> bool:
            counts = by_key(read_topic(cluster.bootstrap, f"{prefix}click-counts"))
            per_page = by_key(read_topic(cluster.bootstrap, f"{prefix}page-counts"))
            return all(int(counts.get(w, ["0"])[-1]) >= k for w, k in windows.items()) and all(
                int(per_page.get(p, ["0"])[-1]) >= k for p, k in pages.items()
            )

        app.wait("every click counted after the restart", caught_up, timeout=90)

        # At least once: nothing was committed before the crash, so the restarted instance read the clicks
        # from offset 0 and every join result of batch A is there twice; every other one at least once.
        # Each count reached its expected total, continuing from the counts restored from the changelogs.
        enriched = by_key(read_topic(cluster.bootstrap, f"{prefix}enriched"))
        for u in USERS:
            once = Counter(f"{c.page}|{REGIONS.get(u, '?')}" for c in everything if c.user == u)
            twice = Counter(f"{c.page}|{REGIONS.get(u, '?')}" for c in batch_a if c.user == u)
            got = Counter(enriched.get(u, []))
            assert all(got[v] >= once[v] + twice[v] for v in once), f"{u}: want {once + twice}, got {got}"
            assert set(got) == set(once), f"{u}: unexpected join results {set(got) - set(once)}"
        counts = by_key(read_topic(cluster.bootstrap, f"{prefix}click-counts"))
        assert set(counts) == set(windows)
        for w, k in windows.items():
            assert max(map(int, counts[w])) >= k, f"window {w}: counts {counts[w]}, want {k}"
        per_page = by_key(read_topic(cluster.bootstrap, f"{prefix}page-counts"))
        assert set(per_page) == set(pages)

        # Streams deletes what it has consumed from its repartition topic (DeleteRecords after a commit):
        # every partition's log start offset catches up with its end, and some data went through.
        repartition = f"{app_id}-by-page-repartition"

        def purged() -> bool:
            marks = watermarks(cluster.bootstrap, repartition)
            return sum(high for _, high in marks.values()) >= len(everything) and all(
                low == high for low, high in marks.values()
            )

        app.wait(f"{repartition} purged up to its end", purged, timeout=30)
        assert any(low > 0 for low, _ in watermarks(cluster.bootstrap, repartition).values())
    finally:
        app.kill()
