"""The system under test for the compatibility tests: Streamraft (default) or real Apache Kafka.

``STREAMRAFT_COMPAT_TARGET=kafka`` runs every compatibility test against a 3-node KRaft cluster, which
proves the tests themselves right; the default runs them against a Streamraft broker.
``STREAMRAFT_BOOTSTRAP=host:port`` points the Streamraft target at a broker that is already running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from tests.javakafka.cluster import KafkaCluster
from tests.support.broker import running_broker

TARGET_ENV = "STREAMRAFT_COMPAT_TARGET"
BOOTSTRAP_ENV = "STREAMRAFT_BOOTSTRAP"


@dataclass(frozen=True)
class Target:
    name: str
    bootstrap: str
    brokers: int

    @property
    def replication_factor(self) -> int:
        # Streamraft is single-node until replication lands; never ask for more replicas than brokers.
        return min(3, self.brokers)


def target_name() -> str:
    name = os.environ.get(TARGET_ENV, "streamraft").strip().lower()
    if name not in ("streamraft", "kafka"):
        raise ValueError(f"{TARGET_ENV}={name!r}: expected 'streamraft' or 'kafka'")
    return name


@contextmanager
def _kafka() -> Iterator[Target]:
    cluster = KafkaCluster(3).start()
    try:
        yield Target("kafka", cluster.bootstrap_servers, 3)
    finally:
        cluster.close()


@contextmanager
def _streamraft() -> Iterator[Target]:
    fixed = os.environ.get(BOOTSTRAP_ENV)
    if fixed:
        yield Target("streamraft", fixed, len(fixed.split(",")))
        return
    with running_broker() as broker:
        yield Target("streamraft", broker.bootstrap, 1)


def open_target() -> AbstractContextManager[Target]:
    return _kafka() if target_name() == "kafka" else _streamraft()
