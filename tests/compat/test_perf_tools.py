"""kafka-producer-perf-test (ProducerPerformance) and ConsumerPerformance against the target."""

from __future__ import annotations

import re

import pytest

from tests.compat.helpers import create_topic, end_offsets
from tests.compat.target import Target
from tests.javakafka.tools import CONSUMER_PERF, PRODUCER_PERF, run_tool

pytestmark = [pytest.mark.java]

RECORDS = 5000


@pytest.mark.parametrize("acks", ["1", "all"])
def test_producer_perf_then_consumer_perf(target: Target, topic_name: str, acks: str) -> None:
    create_topic(target, topic_name, 2)
    out = run_tool(
        PRODUCER_PERF,
        [
            "--topic", topic_name, "--num-records", str(RECORDS), "--record-size", "200",
            "--throughput", "-1", "--producer-props", f"bootstrap.servers={target.bootstrap}", f"acks={acks}",
        ],
    ).stdout  # fmt: skip
    summary = re.search(r"^(\d+) records sent", out, re.MULTILINE)
    assert summary is not None, out
    assert int(summary.group(1)) == RECORDS
    assert sum(end_offsets(target, topic_name, 2).values()) == RECORDS

    out = run_tool(
        CONSUMER_PERF,
        ["--bootstrap-server", target.bootstrap, "--topic", topic_name, "--messages", str(RECORDS),
         "--timeout", "30000"],
    ).stdout  # fmt: skip
    # Last line: start, end, MB, MB/s, nMsg, nMsg/s, ... (CSV); the message count is the fifth column.
    data = [ln for ln in out.splitlines() if ln and ln[0].isdigit()]
    assert data, out
    assert int(data[-1].split(",")[4].strip()) == RECORDS
