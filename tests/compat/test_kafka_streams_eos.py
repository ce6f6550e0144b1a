"""Apache Kafka Streams 4.3.1 with processing.guarantee=exactly_once_v2 against ONE Streamraft broker
(transactions are single-node only today: a replicated cluster answers COORDINATOR_NOT_AVAILABLE for
transactional ids, so this test cannot run there yet).

The topology is the at-least-once test's (tests/compat/java/StreamsTopology.java). The first instance commits
only every five minutes, so everything it does for the first batch stays in one open transaction: the
enriched clicks and windowed counts it wrote, their changelog updates and the input offsets (the per-page
counts wait behind the repartition topic, which downstream reads read_committed). It is SIGKILLed in that
state, the second batch arrives while it is down, and it restarts on the same state directory, so its
producer has the same transactional.id and its initTransactions aborts the open transaction at once.

Exactly once: a read_committed consumer then sees every expected output exactly once, counts going 1, 2, ...
with no repeat, where the at-least-once test shows batch A's join results twice after the same kill. The
aborted first attempt is still in the log: a read_uncommitted reader sees batch A's join results twice,
which proves the kill hit an open transaction.

``STREAMRAFT_COMPAT_TARGET=kafka`` runs the same test against Apache Kafka, to prove the test right."""

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
    Click,
    StreamsApp,
    by_key,
    clicks,
    produce,
)
from tests.compat.target import Target, java_app_target
from tests.support.topic_read import read_topic

pytestmark = [pytest.mark.java, pytest.mark.timeout(180)]

OUTPUTS = ("click-counts", "enriched", "page-counts")


@pytest.fixture(scope="module")
def broker() -> Iterator[Target]:
    with java_app_target("streamraft") as t:
        yield t


def expected(everything: list[Click]) -> dict[str, dict[str, list[str]]]:
    """Each output's values per key, in order, when every click is processed exactly once."""
    windows, pages = Counter(c.window for c in everything), Counter(c.page for c in everything)
    return {
        "enriched": {
            u: [f"{c.page}|{REGIONS.get(u, '?')}" for c in everything if c.user == u] for u in USERS
        },
        "click-counts": {w: [str(n) for n in range(1, k + 1)] for w, k in windows.items()},
        "page-counts": {p: [str(n) for n in range(1, k + 1)] for p, k in pages.items()},
    }


def test_exactly_once_v2_survives_a_sigkill_mid_transaction(broker: Target, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    prefix, app_id = f"eos-{run}-", f"eos-app-{run}"
    bootstrap = broker.bootstrap
    rf = broker.replication_factor
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(f"{prefix}clicks", PARTITIONS, rf),
        NewTopic(f"{prefix}users", PARTITIONS, rf, config={"cleanup.policy": "compact"}),
        *(NewTopic(f"{prefix}{name}", PARTITIONS, rf) for name in OUTPUTS),
    ]
    for fut in admin.create_topics(topics, operation_timeout=30).values():
        fut.result(60)

    base = (int(time.time() * 1000) // WINDOW_MS - 60) * WINDOW_MS  # ten minutes ago, on a window boundary
    produce(bootstrap, f"{prefix}users", [(u, r, base - 60_000) for u, r in REGIONS.items()])

    def committed(name: str) -> dict[str, list[str]]:
        return by_key(read_topic(bootstrap, f"{prefix}{name}", isolation="read_committed"))

    def written(name: str) -> list[str]:
        return [
            r.value.decode()
            for r in read_topic(bootstrap, f"{prefix}{name}", isolation="read_uncommitted")
            if r.value is not None
        ]

    state = tmp_path / "state"
    app = StreamsApp(broker, app_id, prefix, tmp_path / "streams.out")
    try:
        app.start(state, commit_interval_ms=300_000, guarantee="exactly_once_v2")
        app.wait(
            "the table to hold every user",
            lambda: {ln.split()[1] for ln in app.lines() if ln.startswith("TABLE ")} == set(REGIONS),
        )
        batch_a = clicks(base, 0, 30)
        produce(bootstrap, f"{prefix}clicks", [(c.user, c.page, c.ts) for c in batch_a])
        app.wait("batch A enriched, uncommitted", lambda: len(written("enriched")) >= 30)
        app.wait("batch A windowed counts, uncommitted", lambda: len(written("click-counts")) >= 30)
        # All of it inside the open transaction: a read_committed consumer sees none of it yet.
        assert {name: committed(name) for name in OUTPUTS} == {name: {} for name in OUTPUTS}
        app.kill()

        batch_b = clicks(base, 30, 30)
        produce(bootstrap, f"{prefix}clicks", [(c.user, c.page, c.ts) for c in batch_b])
        app.start(state, commit_interval_ms=200, guarantee="exactly_once_v2")
        want = expected(batch_a + batch_b)

        def caught_up() -> bool:
            return all(
                sum(map(len, committed(name).values())) >= sum(map(len, want[name].values()))
                for name in OUTPUTS
            )

        app.wait("every click's results committed after the restart", caught_up, timeout=90)
        for name in OUTPUTS:
            assert committed(name) == want[name], name

        # The first attempt at batch A is in the log, aborted: read_uncommitted shows its join results too.
        first_attempt = Counter(f"{c.page}|{REGIONS.get(c.user, '?')}" for c in batch_a)
        assert Counter(written("enriched")) == first_attempt + Counter(
            f"{c.page}|{REGIONS.get(c.user, '?')}" for c in batch_a + batch_b
        )
    finally:
        app.kill()
