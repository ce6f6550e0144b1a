"""An in-process broker on its own event-loop thread, for clients that block."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from streamraft_broker.config import BrokerConfig
from streamraft_broker.server.broker import Broker


class ThreadedBroker:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broker", daemon=True)
        self.broker: Broker | None = None

    def __enter__(self) -> ThreadedBroker:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.broker = Broker(
            BrokerConfig(data_dir=self.data_dir, listen_port=0, metrics_port=None, admin_port=None)
        )
        await self.broker.start()
        assert self.broker.ctx is not None and self.broker.ctx.groups is not None

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return f"127.0.0.1:{self.broker.port}"

    async def _stop(self) -> None:
        assert self.broker is not None
        await self.broker.stop()
        # Let cancelled background tasks (the group deadline task) finish before the loop stops.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()
