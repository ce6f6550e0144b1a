"""The system under test for the compatibility tests: Streamraft (default) or real Apache Kafka.

``STREAMRAFT_COMPAT_TARGET=kafka`` runs every compatibility test against a 3-node KRaft cluster, which
proves the tests themselves right; the default runs them against a Streamraft broker.
``STREAMRAFT_BOOTSTRAP=host:port`` points the Streamraft target at a broker that is already running.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from tests.javakafka.cluster import KafkaCluster

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


def _support_launcher() -> Callable[[], AbstractContextManager[Any]] | None:
    """The shared Streamraft broker launcher in tests/support, once it has landed."""
    try:
        mod = importlib.import_module("tests.support.broker")
    except ImportError:
        return None
    for name in ("running_broker", "start_broker", "broker"):
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def _bootstrap_of(handle: Any) -> str:
    for attr in ("bootstrap", "bootstrap_servers", "address"):
        value = getattr(handle, attr, None)
        if isinstance(value, str):
            return value
    port = getattr(handle, "port", None)
    if isinstance(port, int):
        return f"127.0.0.1:{port}"
    raise RuntimeError(f"cannot find a bootstrap address on the Streamraft broker handle {handle!r}")


@contextmanager
def _streamraft() -> Iterator[Target]:
    fixed = os.environ.get(BOOTSTRAP_ENV)
    if fixed:
        yield Target("streamraft", fixed, len(fixed.split(",")))
        return
    launcher = _support_launcher()
    if launcher is None:
        raise RuntimeError(
            "no Streamraft broker launcher yet (tests/support/broker.py); set "
            f"{BOOTSTRAP_ENV}=host:port or {TARGET_ENV}=kafka"
        )
    with launcher() as handle:
        yield Target("streamraft", _bootstrap_of(handle), 1)


def open_target() -> AbstractContextManager[Target]:
    return _kafka() if target_name() == "kafka" else _streamraft()
