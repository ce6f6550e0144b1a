"""Fixture bodies for a real broker; a test module wraps them in its own @pytest.fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker_process import BrokerProcess


def module_broker(tmp_path_factory: pytest.TempPathFactory, **options: object) -> Iterator[BrokerProcess]:
    """One real broker subprocess per test module (starting one costs about a second of CPU)."""
    with BrokerProcess(tmp_path_factory.mktemp("broker") / "data", **options) as proc:
        yield proc
