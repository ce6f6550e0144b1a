"""One request's quota accounting, carried from the connection to its handler and back.

The connection opens a :class:`RequestAccount` per request (who, which client-id, how many bytes) and binds it
for the handler, which adds its bandwidth throttle; :func:`timed` measures the time the handler's coroutine
spends running on the event loop (Kafka's request-handler thread time), not the time it waits.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class RequestAccount:
    user: str
    """The principal's name (``ANONYMOUS`` on a PLAINTEXT listener)."""
    client_id: str
    size: int
    """Request size in bytes, header included (what Kafka's produce quota counts)."""
    busy_s: float = 0.0
    """Time the handler ran on the event loop so far."""
    bandwidth_throttle_ms: int = 0
    """Set by the produce or fetch handler when its byte-rate quota is exceeded."""
    bandwidth_type: str = ""
    request_quota_exempt: bool = False
    """Kafka exempts acks=0 produce requests from the request-time quota."""


_ACCOUNT: contextvars.ContextVar[RequestAccount | None] = contextvars.ContextVar("streamraft_quota_account")


def current_account() -> RequestAccount | None:
    return _ACCOUNT.get(None)


def bind_account(account: RequestAccount | None) -> contextvars.Token[RequestAccount | None]:
    return _ACCOUNT.set(account)


def reset_account(token: contextvars.Token[RequestAccount | None]) -> None:
    _ACCOUNT.reset(token)


class _Timed:
    """Drives an awaitable step by step, adding the wall time of each step to ``account.busy_s``."""

    __slots__ = ("_account", "_awaitable")

    def __init__(self, awaitable: Awaitable[Any], account: RequestAccount) -> None:
        self._awaitable = awaitable
        self._account = account

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self._awaitable.__await__()
        account = self._account
        send: Any = None
        error: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                yielded = inner.throw(error) if error is not None else inner.send(send)
            except StopIteration as stop:
                account.busy_s += time.perf_counter() - started
                return stop.value
            except BaseException:
                account.busy_s += time.perf_counter() - started
                raise
            account.busy_s += time.perf_counter() - started
            try:
                send, error = (yield yielded), None
            except BaseException as exc:  # cancellation and the like go on into the handler
                send, error = None, exc


async def timed(awaitable: Awaitable[T], account: RequestAccount) -> T:
    result: T = await _Timed(awaitable, account)
    return result
