"""Console producer and consumer round-trip, keys included, in order on one partition."""

from __future__ import annotations

import pytest

from tests.compat.helpers import create_topic, end_offsets
from tests.compat.target import Target
from tests.javakafka.tools import CONSOLE_CONSUMER, CONSOLE_PRODUCER, run_tool

pytestmark = [pytest.mark.java]

COUNT = 200


def test_console_round_trip(target: Target, topic_name: str) -> None:
    create_topic(target, topic_name, 1)
    lines = [f"key{i % 7}:value-{i}" for i in range(COUNT)]
    run_tool(
        CONSOLE_PRODUCER,
        [
            "--bootstrap-server", target.bootstrap, "--topic", topic_name,
            "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
            "--command-property", "acks=all",
        ],
        stdin="\n".join(lines) + "\n",
    )  # fmt: skip
    assert end_offsets(target, topic_name, 1) == {0: COUNT}

    out = run_tool(
        CONSOLE_CONSUMER,
        [
            "--bootstrap-server", target.bootstrap, "--topic", topic_name, "--from-beginning",
            "--max-messages", str(COUNT), "--timeout-ms", "30000",
            "--formatter-property", "print.key=true", "--formatter-property", "key.separator=:",
        ],
    ).stdout  # fmt: skip
    got = [ln for ln in out.splitlines() if ln.startswith("key")]
    assert got == lines
