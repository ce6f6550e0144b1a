"""The Kafka Streams test application (tests/compat/java/StreamsTopology.java) run as a JVM the tests can
SIGKILL, its input (clicks with explicit event times, so every output is known in advance) and the shape of
its outputs. Shared by the at-least-once and the exactly-once Streams tests."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

from tests.compat.target import Target
from tests.javakafka.tools import compiled_test_clients, java_cmd
from tests.support.poll import wait_for
from tests.support.topic_read import LogRecord

PARTITIONS = 3
WINDOW_MS = 10_000
REGIONS = {"u0": "eu", "u1": "us", "u2": "apac", "u3": "eu", "u4": "us"}  # u5 has no row: left join gives "?"
USERS = [*REGIONS, "u5"]
PAGES = ["home", "cart", "search", "help"]


@dataclass(frozen=True)
class Click:
    user: str
    page: str
    ts: int

    @property
    def window(self) -> str:
        return f"{self.user}@{self.ts - self.ts % WINDOW_MS}"


def clicks(base: int, first: int, count: int) -> list[Click]:
    """Clicks number ``first``..``first+count-1``: users and pages in turn, 700 ms of event time apart, so
    a window holds clicks of both batches."""
    return [Click(USERS[i % 6], PAGES[i % 4], base + i * 700) for i in range(first, first + count)]


class StreamsDied(RuntimeError):
    """The application exited on its own: no point waiting for its output."""


class StreamsApp:
    """The topology's JVM; ``kill()`` is SIGKILL, a crash with no chance to commit or leave the group."""

    def __init__(self, cluster: Target, app_id: str, prefix: str, out: Path) -> None:
        self.cluster, self.app_id, self.prefix, self.out = cluster, app_id, prefix, out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, state_dir: Path, commit_interval_ms: int, guarantee: str = "at_least_once") -> None:
        args = [
            self.cluster.bootstrap,
            self.app_id,
            self.prefix,
            str(state_dir),
            str(self.cluster.replication_factor),
            str(commit_interval_ms),
            guarantee,
        ]
        with self.out.open("ab") as fh:
            self.proc = subprocess.Popen(
                java_cmd("StreamsTopology", args, extra_cp=[str(compiled_test_clients())]),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines() if self.out.exists() else []

    def log(self) -> str:
        return "\n".join(self.lines()[-60:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def wait(self, what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        def checked() -> bool:
            if not self.alive():
                raise StreamsDied(f"the Streams JVM exited while waiting for {what}:\n{self.log()}")
            return probe()

        wait_for(what, checked, timeout=timeout, logs=self.log)


def produce(bootstrap: str, topic: str, rows: list[tuple[str, str | None, int]]) -> None:
    errors: list[str] = []
    # murmur2 is the Java client's partitioner: clicks and users must land on the same partition per user
    # for the stream-table join, as Streams' co-partitioning requires.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random", "linger.ms": 5}
    )

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value, ts in rows:
        producer.produce(topic, value, key, timestamp=ts, on_delivery=delivered)
    assert producer.flush(30) == 0, f"{topic}: records still in flight after 30 s"
    assert not errors, errors


def by_key(records: list[LogRecord]) -> dict[str, list[str]]:
    """Values per key in log order (Streams writes one key to one partition, so this is emit order)."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in records:
        assert r.key is not None and r.value is not None, r
        out[r.key.decode()].append(r.value.decode())
    return dict(out)
