"""Context-manager entry points to a real broker subprocess (see broker_process.BrokerProcess)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.broker_process import BrokerProcess


@contextmanager
def running_broker(data_dir: Path | None = None, **options: Any) -> Iterator[BrokerProcess]:
    """A started broker (free ports, ready), SIGTERMed on exit; a temporary data dir unless one is given."""
    if data_dir is not None:
        with BrokerProcess(data_dir, **options) as broker:
            yield broker
        return
    with (
        tempfile.TemporaryDirectory(prefix="streamraft-broker-") as tmp,
        BrokerProcess(Path(tmp) / "data", **options) as broker,
    ):
        yield broker
