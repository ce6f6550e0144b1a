"""One client connection: frames in, dispatch in order (replicated produce requests pipelined), responses
out in request order (sendfile for file slices)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from typing import Any

from streamraft_broker.handlers import HANDLERS
from streamraft_broker.handlers.api_versions import UNSUPPORTED_VERSION, api_versions_response
from streamraft_broker.handlers.context import BrokerContext, RawResponse
from streamraft_broker.protocol.codec import decode_request, encode_response, is_flexible_request
from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.framing import FrameDecoder
from streamraft_broker.protocol.header import RequestHeader, parse_request_header, peek_fixed
from streamraft_broker.protocol.produce_request import parse_produce_request
from streamraft_broker.protocol.versions import ApiKey, is_supported
from streamraft_broker.quotas.accounting import RequestAccount, bind_account, reset_account, timed
from streamraft_broker.quotas.responses import with_throttle
from streamraft_broker.security.principal import Session, bind_session

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
MAX_PIPELINED_REQUESTS = 8
"""Produce requests of one connection handled at once (librdkafka and the Java client keep at most 5 in
flight with idempotence); bounds the memory one connection holds to this many max-size requests."""


def _is_produce(frame: bytes) -> bool:
    return len(frame) >= 2 and int.from_bytes(frame[:2], "big", signed=True) == ApiKey.PRODUCE


class CloseConnection(Exception):
    """Raised to end a connection after logging why."""


class Connection:
    def __init__(
        self,
        ctx: BrokerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_request_size: int,
        zero_copy: bool,
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(max_request_size)
        self.zero_copy = zero_copy
        self.peer = str(writer.get_extra_info("peername"))
        peername = writer.get_extra_info("peername")
        self.session = Session(client_host=str(peername[0]) if peername else "unknown")
        """Who this connection is; handlers read it through ``current_session()``."""
        self._inline = False
        self._pipeline: collections.deque[asyncio.Task[None]] = collections.deque()
        self.pipelined = "replication" in ctx.extra
        """Replicated produce requests are pipelined (see ``_start_pipelined``)."""
        self.closing = False
        self._muted_until = 0.0
        """Monotonic time until which no further request is read: a quota's throttle (Kafka mutes too)."""

    @property
    def busy(self) -> bool:
        """A request is being handled (graceful shutdown waits for these)."""
        return self._inline or bool(self._pipeline)

    async def run(self) -> None:
        bind_session(self.session)  # this task's context: every request it dispatches sees it
        try:
            while not self.closing:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    return
                self.decoder.feed(data)
                while not self.closing:
                    try:
                        frame = self.decoder.next_frame()
                    except ProtocolError as exc:
                        self._protocol_error("bad_frame", str(exc))
                        return
                    if frame is None:
                        break
                    await self._wait_unmuted()
                    if self.pipelined and _is_produce(frame):
                        await self._start_pipelined(frame)
                        continue
                    await self._drain_pipeline()
                    self._inline = True
                    try:
                        await self._handle(frame)
                    finally:
                        self._inline = False
            # Shutting down: requests already started still get their answers (the broker waits for busy
            # connections, bounded, before cutting them).
            with contextlib.suppress(Exception):
                await self._drain_pipeline()
        except CloseConnection:
            return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            # Ended by the client, an error or the shutdown's deadline: answers still pending cannot be
            # delivered in order any more (the batches stay proposed; the client retries elsewhere).
            for task in self._pipeline:
                task.cancel()
            self.writer.close()

    async def _start_pipelined(self, frame: bytes) -> None:
        """Starts handling a Produce request while earlier ones on this connection still wait for their
        Raft commits (a client keeps up to max.in.flight requests outstanding; handled one at a time, each
        would cost a full replication round trip). Responses still go out in request order: each task
        writes only after the one before it. Proposal order is request order because tasks start in
        creation order and the produce handler proposes every batch before its first wait. Any other
        request first waits for the pipeline to drain, so it sees every earlier produce applied."""
        while len(self._pipeline) >= MAX_PIPELINED_REQUESTS:
            await self._next_done()
        before = self._pipeline[-1] if self._pipeline else None
        task = asyncio.get_running_loop().create_task(self._handle(frame, after=before))
        self._pipeline.append(task)
        task.add_done_callback(self._pipelined_done)

    def _pipelined_done(self, task: asyncio.Task[None]) -> None:
        while self._pipeline and self._pipeline[0].done():
            self._pipeline.popleft()
        if not task.cancelled() and task.exception() is not None:
            # The reader may be idle in read(): closing the transport ends it.
            self.closing = True
            self.writer.close()

    async def _next_done(self) -> None:
        """Waits for the oldest pipelined request (re-raising its failure) and drops it."""
        oldest = self._pipeline[0]
        await oldest
        if self._pipeline and self._pipeline[0] is oldest:
            self._pipeline.popleft()

    async def _drain_pipeline(self) -> None:
        while self._pipeline:
            await self._next_done()

    def _protocol_error(self, reason: str, message: str) -> None:
        self.ctx.metrics.protocol_errors.labels(reason).inc()
        log.warning("closing connection: %s", message, extra={"peer": self.peer, "reason": reason})

    async def _handle(self, frame: bytes, after: asyncio.Task[None] | None = None) -> None:
        """Handles one request; with ``after`` (pipelined), its response is written only once that earlier
        request's is."""
        try:
            api_key, version, corr = peek_fixed(frame)
        except ProtocolError as exc:
            self._protocol_error("bad_header", str(exc))
            raise CloseConnection from exc
        if not is_supported(api_key, version):
            if api_key == ApiKey.API_VERSIONS:
                # Answer in v0 (whose layout every client can read) with the versions we do support.
                body = api_versions_response(0, error_code=UNSUPPORTED_VERSION)
                await self._write(encode_response(ApiKey.API_VERSIONS, 0, corr, body))
                return
            self._protocol_error(
                "unsupported_api", f"unsupported API key {api_key} version {version} (correlation id {corr})"
            )
            raise CloseConnection
        started = time.perf_counter()
        try:
            header, offset = parse_request_header(frame, flexible=is_flexible_request(api_key, version))
            if api_key == ApiKey.PRODUCE:
                request: Any = parse_produce_request(frame, offset, version)
            else:
                request = decode_request(api_key, version, frame, offset)
        except ProtocolError as exc:
            self._protocol_error("bad_request", f"{ApiKey(api_key).name} v{version}: {exc}")
            raise CloseConnection from exc
        account = self.ctx.quotas.begin(header.client_id, len(frame)) if self.ctx.quotas is not None else None
        token = bind_account(account)
        try:
            result = await self._dispatch(header, request, account)
        finally:
            reset_account(token)
        if after is not None:
            await after  # re-raises if it failed: this connection is being closed then
        throttle_ms = 0
        if account is not None and self.ctx.quotas is not None:
            throttle_ms = self.ctx.quotas.finish(account, api_key)
            result = with_throttle(api_key, version, result, throttle_ms)
        if result is not None:
            if isinstance(result, RawResponse):
                await self._write_parts(result.parts)
            else:
                await self._write(encode_response(api_key, version, corr, result))
        self.ctx.metrics.observe_request(ApiKey(api_key).name, time.perf_counter() - started)
        if throttle_ms > 0:
            # Kafka 2.0+: the response goes out at once and the channel stays muted for the throttle time.
            self._muted_until = max(self._muted_until, time.monotonic() + throttle_ms / 1000.0)

    async def _wait_unmuted(self) -> None:
        delay = self._muted_until - time.monotonic()
        if delay > 0:
            # A stopping broker does not wait out a throttle.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ctx.shutting_down.wait(), delay)

    async def _dispatch(
        self, header: RequestHeader, request: Any, account: RequestAccount | None = None
    ) -> Any:
        handler = HANDLERS.get(ApiKey(header.api_key))
        if handler is None:
            self._protocol_error("no_handler", f"{ApiKey(header.api_key).name} has no handler in this build")
            raise CloseConnection
        try:
            if account is None:
                return await handler(self.ctx, header, request)
            return await timed(handler(self.ctx, header, request), account)
        except CloseConnection:
            raise
        except Exception as exc:
            # A handler bug must not take the broker down; the client sees a closed connection and retries.
            log.exception("handler failed", extra={"api": ApiKey(header.api_key).name, "peer": self.peer})
            self.ctx.metrics.protocol_errors.labels("handler_failure").inc()
            raise CloseConnection from exc

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _write_parts(self, parts: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        for part in parts:
            if isinstance(part, bytes | bytearray | memoryview):
                self.writer.write(part)
                continue
            await self.writer.drain()
            await self._send_slice(loop, part)
        await self.writer.drain()

    async def _send_slice(self, loop: asyncio.AbstractEventLoop, part: Any) -> None:
        """Send one FileSlice; sendfile on plaintext sockets, a positional read otherwise."""
        position, size = int(part.position), int(part.size)
        file_obj = getattr(part, "file", None)
        opened = None
        if file_obj is None:
            opened = await asyncio.to_thread(open, part.path, "rb")
            file_obj = opened
        try:
            if self.zero_copy:
                sent = await loop.sendfile(self.writer.transport, file_obj, position, size, fallback=True)
            else:
                data = os.pread(file_obj.fileno(), size, position)
                self.writer.write(data)
                sent = len(data)
        finally:
            if opened is not None:
                opened.close()
        if sent != size:
            # The response size prefix already promised `size` bytes; a short file means the stream is broken.
            log.error("file slice shorter than promised", extra={"expected": size, "sent": sent})
            raise CloseConnection
