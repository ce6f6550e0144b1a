"""Waiting for a condition with a deadline: the one way tests wait (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

PACE_S = 0.2
"""Pause between two checks of a condition (not a wait for the condition itself)."""


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60.0, logs: Callable[[], str] = str
) -> T:
    """Poll ``probe`` until it returns something truthy (bounded); fail naming ``what``, the last error
    the probe raised and ``logs()``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = probe()
        except (OSError, AssertionError, KeyError, ValueError) as exc:
            got, last = None, exc
        if got:
            return got
        time.sleep(PACE_S)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})\n{logs()}")


def poll(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``check`` until it is true (bounded); its exceptions propagate at once."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {what}"
        time.sleep(PACE_S)


async def wait_until(cond: Callable[[], bool], limit_s: float = 15.0, what: str = "condition") -> None:
    """The asyncio form, for tests whose subjects run on the test's own event loop."""
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached within {limit_s}s"
        await asyncio.sleep(0.01)
