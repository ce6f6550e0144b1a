"""kafka-consumer-groups: --describe reports lag, --reset-offsets moves committed offsets."""

from __future__ import annotations

import re

import pytest

from tests.compat.helpers import create_topic
from tests.compat.target import Target
from tests.javakafka.tools import CONSOLE_CONSUMER, CONSUMER_GROUPS, PRODUCER_PERF, run_tool

pytestmark = [pytest.mark.java]

PRODUCED = 300
CONSUMED = 120


def _describe(target: Target, group: str) -> dict[int, tuple[int, int, int]]:
    """partition -> (current offset, log end offset, lag) parsed from the --describe table."""
    out = run_tool(
        CONSUMER_GROUPS, ["--bootstrap-server", target.bootstrap, "--describe", "--group", group]
    ).stdout
    rows: dict[int, tuple[int, int, int]] = {}
    header: list[str] | None = None
    for line in out.splitlines():
        cols = line.split()
        if "CURRENT-OFFSET" in cols:
            header = cols
            continue
        if header is None or len(cols) < len(header):
            continue
        rec = dict(zip(header, cols, strict=False))
        if re.fullmatch(r"\d+", rec.get("PARTITION", "")) and re.fullmatch(r"\d+", rec["CURRENT-OFFSET"]):
            rows[int(rec["PARTITION"])] = (
                int(rec["CURRENT-OFFSET"]),
                int(rec["LOG-END-OFFSET"]),
                int(rec["LAG"]),
            )
    assert rows, f"no partition rows in consumer-groups --describe:\n{out}"
    return rows


def test_describe_lag_and_reset_offsets(target: Target, topic_name: str) -> None:
    create_topic(target, topic_name, 1)
    group = f"g-{topic_name}"
    run_tool(
        PRODUCER_PERF,
        [
            "--topic", topic_name, "--num-records", str(PRODUCED), "--record-size", "50",
            "--throughput", "-1", "--producer-props", f"bootstrap.servers={target.bootstrap}", "acks=all",
        ],
    )  # fmt: skip
    run_tool(
        CONSOLE_CONSUMER,
        [
            "--bootstrap-server", target.bootstrap, "--topic", topic_name, "--group", group,
            "--from-beginning", "--max-messages", str(CONSUMED), "--timeout-ms", "30000",
            "--command-property", "max.poll.records=10",
        ],
    )  # fmt: skip
    current, end, lag = _describe(target, group)[0]
    assert end == PRODUCED
    # The console consumer commits what it fetched, which may run ahead of what it printed.
    assert CONSUMED <= current <= PRODUCED
    assert lag == end - current

    run_tool(
        CONSUMER_GROUPS,
        [
            "--bootstrap-server", target.bootstrap, "--group", group, "--topic", topic_name,
            "--reset-offsets", "--to-offset", "17", "--execute",
        ],
    )  # fmt: skip
    assert _describe(target, group)[0] == (17, PRODUCED, PRODUCED - 17)

    run_tool(
        CONSUMER_GROUPS,
        [
            "--bootstrap-server", target.bootstrap, "--group", group, "--topic", topic_name,
            "--reset-offsets", "--to-earliest", "--execute",
        ],
    )  # fmt: skip
    assert _describe(target, group)[0] == (0, PRODUCED, PRODUCED)
