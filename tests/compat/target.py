"""The systems under test for the compatibility tests: Streamraft and, to prove the tests right, Apache Kafka.

``STREAMRAFT_COMPAT_TARGET`` is a comma-separated list of targets; every test runs against each:
``streamraft`` (one plain broker), ``streamraft-raft`` (three Raft-replicated brokers, topics RF 3) and
``kafka`` (a 3-node KRaft cluster). The default is ``streamraft,streamraft-raft``.
``STREAMRAFT_BOOTSTRAP=host:port[,...]`` points the Streamraft targets at brokers that are already running.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.javakafka.cluster import KafkaCluster
from tests.javakafka.fetch import FetchError, is_fetched, kafka_home
from tests.support.broker import running_broker
from tests.support.launcher import Cluster, wait_controller

TARGET_ENV = "STREAMRAFT_COMPAT_TARGET"
BOOTSTRAP_ENV = "STREAMRAFT_BOOTSTRAP"


@dataclass(frozen=True)
class Target:
    name: str
    bootstrap: str
    brokers: int

    @property
    def replication_factor(self) -> int:
        # Never more replicas than brokers: RF 1 on the single broker, 3 on the clusters.
        return min(3, self.brokers)


KNOWN = ("streamraft", "streamraft-raft", "kafka")
DEFAULT = "streamraft,streamraft-raft"


def target_names() -> list[str]:
    raw = os.environ.get(TARGET_ENV, DEFAULT)
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown or not names:
        raise ValueError(f"{TARGET_ENV}={raw!r}: expected a comma-separated list of {', '.join(KNOWN)}")
    return names


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


@contextmanager
def _streamraft_raft() -> Iterator[Target]:
    fixed = os.environ.get(BOOTSTRAP_ENV)
    if fixed:
        yield Target("streamraft-raft", fixed, len(fixed.split(",")))
        return
    with tempfile.TemporaryDirectory(prefix="compat-raft-") as base, Cluster(Path(base), 3) as cluster:
        wait_controller(cluster)
        yield Target("streamraft-raft", cluster.bootstrap, 3)


def open_target(name: str) -> AbstractContextManager[Target]:
    opener = {"kafka": _kafka, "streamraft": _streamraft, "streamraft-raft": _streamraft_raft}[name]
    return opener()


@contextmanager
def java_app_target(streamraft: str) -> Iterator[Target]:
    """The one target a test running a Java application (Streams, Connect) uses, that application's JVM
    being too slow to start for every target: Apache Kafka when it alone is asked for, else ``streamraft``
    (a target name). Needs the fetched Kafka jars."""
    if not is_fetched():
        raise FetchError(f"Apache Kafka jars missing from {kafka_home()}; run `bash .ci/prepare-kafka`")
    with open_target("kafka" if target_names() == ["kafka"] else streamraft) as target:
        yield target
