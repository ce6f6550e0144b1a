"""A fault-injecting network for the Raft links: one TCP proxy per directed broker pair, in this process.

Broker i reaches peer j's Raft transport through the proxy (i→j): a listener on its own loopback port that
forwards to j's real raft port. Bytes are tagged by the direction they travel (i→j for what the dialing side
sends, j→i for the answers), so a cut of the directed link i→j drops exactly the bytes going from i to j on
every connection between the two, whichever side dialed. Dropped bytes corrupt the gRPC stream they belonged
to; on heal such connections are closed, so both sides redial a clean stream, as after a real outage.

Kafka client traffic is not proxied: clients keep reaching every broker, which is what makes the "leader cut
off from the majority" fault meaningful (the isolated leader still receives produce requests).

Uses plain TCP proxies rather than ``ip netns`` + veth pairs: no privileges, and the brokers stay ordinary
child processes that the suite can SIGKILL/SIGSTOP directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

MAX_DELAY_S = 0.5
"""Bounded delay: beyond the Raft election timeout a delay is a partition, which has its own fault kind."""
_CHUNK = 65536
_QUEUED_CHUNKS = 256

Link = tuple[int, int]
"""(source broker, destination broker): the direction bytes travel."""


@dataclass(eq=False)
class _Conn:
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    dropped: bool = False
    """Some bytes of this connection were dropped by a cut: it cannot carry a valid stream any more."""


class FaultyNet:
    """Owns the proxies; ``cut``/``heal``/``delay`` may be called from any thread."""

    def __init__(self, raft_ports: dict[int, int]) -> None:
        self.raft_ports = dict(raft_ports)
        self.ports: dict[Link, int] = {}
        self._blocked: frozenset[Link] = frozenset()
        self._delays: dict[Link, float] = {}
        self._conns: set[_Conn] = set()
        self._servers: list[asyncio.Server] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-net", daemon=True)

    # ---------------------------------------------------------------- lifecycle (caller's thread)

    def start(self) -> FaultyNet:
        self._thread.start()
        for src in self.raft_ports:
            for dst in self.raft_ports:
                if src != dst:
                    self.ports[(src, dst)] = self._call(self._listen(src, dst))
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---------------------------------------------------------------- faults (caller's thread)

    @property
    def blocked(self) -> frozenset[Link]:
        return self._blocked

    def cut(self, links: list[Link]) -> None:
        for src, dst in links:
            assert src in self.raft_ports and dst in self.raft_ports and src != dst, (src, dst)
        self._blocked = self._blocked | frozenset(links)

    def delay(self, links: list[Link], seconds: float) -> None:
        if not 0 <= seconds <= MAX_DELAY_S:
            raise ValueError(f"delay {seconds}s is outside [0, {MAX_DELAY_S}]")
        delays = dict(self._delays)
        for link in links:
            delays[link] = seconds
        self._delays = delays

    def heal(self) -> None:
        """Every link passes again, undelayed; connections that lost bytes are closed (clean redial)."""
        self._blocked = frozenset()
        self._delays = {}
        self._call(self._close_dropped())

    # ---------------------------------------------------------------- proxying (loop thread)

    async def _listen(self, src: int, dst: int) -> int:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._proxy(src, dst, reader, writer)

        server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _proxy(
        self, src: int, dst: int, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter
    ) -> None:
        conn = _Conn([down_w])
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.raft_ports[dst]), 2.0
            )
        except (OSError, TimeoutError):
            # The destination is down: close at once, as a direct connect would have been refused.
            down_w.close()
            return
        conn.writers.append(up_w)
        self._conns.add(conn)
        try:
            await asyncio.gather(
                self._pump((src, dst), down_r, up_w, conn), self._pump((dst, src), up_r, down_w, conn)
            )
        finally:
            self._conns.discard(conn)
            for w in conn.writers:
                w.close()

    async def _pump(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        """Copy one direction; drop while the link is cut, deliver each chunk ``delay`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                arrived, data = item
                wait = arrived + self._delays.get(link, 0.0) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if link in self._blocked:
                    conn.dropped = True
                    continue
                writer.write(data)
                await writer.drain()

        sender = asyncio.get_running_loop().create_task(deliver())
        try:
            while not sender.done():
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if link in self._blocked:
                    conn.dropped = True
                    continue
                # A full queue holds the reader, and so TCP flow control: order is kept, as on a slow link.
                await queue.put((time.monotonic(), data))
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.wait_for(sender, MAX_DELAY_S + 1)
        except (OSError, ConnectionError, TimeoutError):
            pass
        finally:
            sender.cancel()
            # One side closed or failed: the other side must see the connection end too.
            for w in conn.writers:
                w.close()

    async def _close_dropped(self) -> None:
        for conn in [c for c in self._conns if c.dropped]:
            for w in conn.writers:
                w.close()

    async def _close_all(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._conns):
            for w in conn.writers:
                w.close()
        deadline = time.monotonic() + 2
        while self._conns and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                await asyncio.sleep(0.01)  # lets the pumps observe the closes and unwind
