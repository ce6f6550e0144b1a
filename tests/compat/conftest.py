"""Shared fixtures for the Java-client compatibility tests; one target per session (JVMs start slowly).

Every test runs against each target of ``STREAMRAFT_COMPAT_TARGET`` (default: one broker, then a 3-broker
Raft-replicated cluster; see ``target``). Tests that do not yet pass against Streamraft carry
``@pytest.mark.java_pending``; they are deselected unless asked for with ``-m java_pending`` or the only
target is real Kafka (``STREAMRAFT_COMPAT_TARGET=kafka``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.compat.target import Target, open_target, target_names
from tests.javakafka.fetch import FetchError, is_fetched, kafka_home

PENDING = "java_pending"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{PENDING}: Java-client compatibility test not yet passing against Streamraft"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = str(config.getoption("markexpr", "") or "")
    if PENDING in markexpr or target_names() == ["kafka"]:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if item.get_closest_marker(PENDING) is not None else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=target_names())
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if not is_fetched():
        raise FetchError(f"Apache Kafka jars missing from {kafka_home()}; run `bash .ci/prepare-kafka`")
    with open_target(str(request.param)) as t:
        yield t


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return f"{base}-{uuid.uuid4().hex[:8]}"
