"""Broker-wide resource controls of the Kafka listener: the request-memory budget
(queued.max.request.bytes), connection admission (max.connections, max.connections.per.ip) and a log line
that speaks at most once per interval however often its event happens."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any

UNBOUNDED = -1


class RequestMemory:
    """Bytes of requests held for all connections together. A connection reserves a frame's whole size as
    soon as its 4-byte size prefix arrives (as Kafka's MemoryPool does) and stops reading its socket until
    the reservation fits; it releases once the request is handled. So everything admitted can complete
    (no deadlock on half-read frames) and the broker never buffers more than the budget plus one read
    chunk per connection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Connections not reading because their next frame does not fit yet."""
        return len(self._waiters)

    def _fits(self, size: int) -> bool:
        # An empty budget always admits one frame, so a frame larger than the budget cannot hang forever.
        return self.limit == UNBOUNDED or self.used == 0 or self.used + size <= self.limit

    def try_reserve(self, size: int) -> bool:
        if self._waiters or not self._fits(size):
            return False
        self.used += size
        return True

    def take(self, size: int) -> None:
        """Counts a frame that is already whole in memory: reading it costs nothing more, so it is never
        made to wait (a small request still gets through while large half-read ones fill the budget)."""
        self.used += size

    async def reserve(self, size: int) -> None:
        """Waits, first come first served (a large frame is not starved by small ones), until ``size``
        bytes fit, and takes them."""
        if self.try_reserve(size):
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, granted)
        self._waiters.append(entry)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted, then cancelled before it could be used
            else:
                self._waiters.remove(entry)
                self._grant()
            raise

    def release(self, size: int) -> None:
        self.used -= size
        assert self.used >= 0, "request memory released twice"
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, granted = self._waiters.popleft()
            self.used += size
            granted.set_result(None)


class RateLimitedLog:
    """Logs an event at most once per ``interval_s``, saying how many were suppressed since the last
    line: a condition that repeats (accept failing at the fd limit, refused connections) stays visible
    without flooding the log."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._log = logger
        self._interval = interval_s
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = collections.defaultdict(int)

    def warning(self, key: str, message: str, *args: Any, **extra: Any) -> bool:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] += 1
            return False
        self._next[key] = now + self._interval
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            extra["suppressed_since_last"] = suppressed
        self._log.warning(message, *args, extra=extra)
        return True


@dataclass
class ConnectionAdmission:
    """max.connections and max.connections.per.ip: counts open connections per client address."""

    max_connections: int
    max_per_ip: int
    open_total: int = 0
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)

    def admit(self, host: str) -> str | None:
        """Counts the connection in and returns None, or returns why it is refused (counting nothing)."""
        if self.open_total >= self.max_connections:
            return "max_connections"
        if self.per_ip[host] >= self.max_per_ip:
            return "max_connections_per_ip"
        self.open_total += 1
        self.per_ip[host] += 1
        return None

    def release(self, host: str) -> None:
        self.open_total -= 1
        self.per_ip[host] -= 1
        if self.per_ip[host] <= 0:
            del self.per_ip[host]


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection bounds, from the broker's settings."""

    socket_request_max_bytes: int
    """Kafka's socket.request.max.bytes: larger frames close the connection with a log line."""
    idle_s: float
    """Kafka's connections.max.idle.ms, in seconds: no request for this long closes the connection."""
    request_read_timeout_s: float
    """request.read.timeout.ms (ours, not Kafka's): a started frame must arrive whole within this."""
