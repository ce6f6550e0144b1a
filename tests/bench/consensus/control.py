"""A tiny JSON-lines TCP control channel between the benchmark driver and its node processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_LINE = 1 << 20


async def serve(handler: Handler) -> asyncio.Server:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                try:
                    reply = await handler(request)
                except Exception as err:  # the driver decides what an error means
                    reply = {"error": type(err).__name__, "detail": str(err)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_client, "127.0.0.1", 0, limit=MAX_LINE)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def call(self, request: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        async with self._lock:
            try:
                async with asyncio.timeout(timeout_s):
                    if self._conn is None:
                        self._conn = await asyncio.open_connection("127.0.0.1", self.port, limit=MAX_LINE)
                    reader, writer = self._conn
                    writer.write(json.dumps(request).encode() + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                    if not line:
                        raise ConnectionError("control connection closed")
                    reply: dict[str, Any] = json.loads(line)
                    return reply
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize(latencies: list[float], elapsed_s: float, errors: int) -> dict[str, Any]:
    lat = sorted(latencies)
    return {
        "ops": len(lat),
        "elapsed": elapsed_s,
        "rate": len(lat) / elapsed_s if elapsed_s > 0 else 0.0,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "errors": errors,
    }
