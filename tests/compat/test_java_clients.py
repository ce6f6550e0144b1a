"""Kafka's own Java client: an idempotent producer and a group of three consumers.

Every record is delivered exactly once across the group and in order within each partition.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.compat.helpers import create_topic
from tests.compat.target import Target
from tests.javakafka.tools import compiled_test_clients, java_cmd, run_tool

pytestmark = [pytest.mark.java]

PARTITIONS = 6
RECORDS = 3000
KEYS = 24
MEMBERS = 3


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_idempotent_producer_and_group_of_three(target: Target, topic_name: str, tmp_path: Path) -> None:
    classes = str(compiled_test_clients())
    create_topic(target, topic_name, PARTITIONS)
    group = f"g-{topic_name}"
    stop = tmp_path / "stop"
    outs = [tmp_path / f"member{i}.out" for i in range(MEMBERS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for out in outs:
            with out.open("wb") as fh:
                procs.append(
                    subprocess.Popen(
                        java_cmd(
                            "CompatConsumer",
                            [target.bootstrap, topic_name, group, str(stop), "240000"],
                            extra_cp=[classes],
                        ),
                        stdout=fh,
                        stderr=subprocess.DEVNULL,
                    )
                )
        # Produce only once all three hold partitions, so no rebalance races the records.
        deadline = time.monotonic() + 120
        while True:
            latest = [next((ln for ln in reversed(_lines(o)) if ln.startswith("ASSIGNED")), "") for o in outs]
            owned = [set(ln.split()[1:]) for ln in latest]
            if all(owned) and sum(len(s) for s in owned) == PARTITIONS:
                break
            assert all(p.poll() is None for p in procs), "a consumer exited before being assigned"
            assert time.monotonic() < deadline, f"group never settled: {latest}"
            time.sleep(0.3)

        acks = run_tool(
            "CompatProducer", [target.bootstrap, topic_name, str(RECORDS), str(KEYS)], extra_cp=[classes]
        ).stdout
        acked: dict[int, tuple[int, int]] = {}
        for line in acks.splitlines():
            if line.startswith("ACK "):
                _, part, off, val = line.split()
                acked[int(val)] = (int(part), int(off))
        assert sorted(acked) == list(range(RECORDS))

        deadline = time.monotonic() + 120
        while True:
            recs = [ln for o in outs for ln in _lines(o) if ln.startswith("REC ")]
            if len(recs) >= RECORDS:
                break
            assert time.monotonic() < deadline, f"only {len(recs)}/{RECORDS} consumed"
            time.sleep(0.3)
    finally:
        stop.touch()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    seen: dict[int, tuple[int, int]] = {}
    per_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    members_used = 0
    for o in outs:
        got = [ln.split() for ln in _lines(o) if ln.startswith("REC ")]
        members_used += bool(got)
        for _, part, off, val in got:
            v = int(val)
            assert v not in seen, f"record {v} delivered twice"
            seen[v] = (int(part), int(off))
            per_partition[int(part)].append((int(off), v))
    assert seen == acked, "consumed (partition, offset) differ from what the producer was acked"
    assert members_used == MEMBERS
    for pnum, delivered in per_partition.items():
        offsets = [o for o, _ in delivered]
        values = [v for _, v in delivered]
        assert offsets == sorted(offsets), f"partition {pnum} out of offset order"
        assert values == sorted(values), f"partition {pnum} not in produce order"
