"""One client connection: frames in, dispatch in order (replicated produce requests pipelined), responses
out in request order (sendfile for file slices)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import ssl
import time
from typing import Any

from streamraft_broker.handlers import HANDLERS
from streamraft_broker.handlers.api_versions import UNSUPPORTED_VERSION, api_versions_response
from streamraft_broker.handlers.context import BrokerContext, RawResponse
from streamraft_broker.protocol.codec import decode_request, encode_response, is_flexible_request
from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.framing import MIN_FRAME_SIZE, FrameDecoder
from streamraft_broker.protocol.header import RequestHeader, parse_request_header, peek_fixed
from streamraft_broker.protocol.produce_request import parse_produce_request
from streamraft_broker.protocol.versions import ApiKey, is_supported
from streamraft_broker.quotas.accounting import RequestAccount, bind_account, reset_account, timed
from streamraft_broker.quotas.responses import with_throttle
from streamraft_broker.security.listeners import Listener
from streamraft_broker.security.principal import USER_TYPE, KafkaPrincipal, Session, bind_session
from streamraft_broker.server.limits import ConnectionLimits, RequestMemory
from streamraft_broker.server.sasl_exchange import SaslExchange

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
OFF_LOOP_FRAME_BYTES = 64 * 1024
"""Non-produce requests at least this large are decoded on a worker thread: bounds-checking and decoding
cost microseconds per element in Python, and a request of tens of thousands of elements would otherwise
hold the event loop (and every other client) for a second."""
OFF_LOOP_RESPONSE_ELEMENTS = 2_000
"""Responses with an array this long are encoded on a worker thread, for the same reason."""
TLS_HANDSHAKE_TIMEOUT_S = 10.0
MAX_PIPELINED_REQUESTS = 8
"""Produce requests of one connection handled at once (librdkafka and the Java client keep at most 5 in
flight with idempotence); bounds the memory one connection holds to this many max-size requests."""


def _is_produce(frame: bytes) -> bool:
    return len(frame) >= 2 and int.from_bytes(frame[:2], "big", signed=True) == ApiKey.PRODUCE


def _has_long_array(response: Any) -> bool:
    """Whether the response's arrays (top level and one level down: topics, then their partitions) hold
    enough elements to encode off the event loop."""
    total = 0
    for value in _arrays(response):
        total += len(value)
        for item in value:
            total += sum(len(inner) for inner in _arrays(item))
            if total >= OFF_LOOP_RESPONSE_ELEMENTS:
                return True
    return total >= OFF_LOOP_RESPONSE_ELEMENTS


def _arrays(entity: Any) -> list[tuple[Any, ...]]:
    if not dataclasses.is_dataclass(entity) or isinstance(entity, type):
        return []
    return [v for f in dataclasses.fields(entity) if isinstance(v := getattr(entity, f.name), tuple)]


class CloseConnection(Exception):
    """Raised to end a connection after logging why."""


class Connection:
    def __init__(
        self,
        ctx: BrokerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        limits: ConnectionLimits,
        zero_copy: bool,
        memory: RequestMemory | None = None,
        listener: Listener | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.decoder = FrameDecoder(limits.socket_request_max_bytes)
        self.memory = memory if memory is not None else RequestMemory(-1)
        """The broker-wide budget (queued.max.request.bytes) this connection's frames are reserved from."""
        self._reserved = 0
        """Bytes reserved for the frame being read (handed to its handling once whole)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._last_active = loop.time()
        """Last request received or response written (connections.max.idle.ms counts from here)."""
        self._frame_started: float | None = None
        """When the incomplete frame in the decoder began arriving (request.read.timeout.ms)."""
        self.zero_copy = zero_copy
        self.peer = str(writer.get_extra_info("peername"))
        peername = writer.get_extra_info("peername")
        self.listener = listener or Listener("PLAINTEXT", "PLAINTEXT", "", 0)
        self.tls = tls
        """The TLS server context of an SSL / SASL_SSL listener (the handshake runs in ``run``, so a
        failed one is logged with its reason, as Kafka logs failed SSL authentications)."""
        self.session = Session(
            client_host=str(peername[0]) if peername else "unknown",
            listener=self.listener.name,
            security_protocol=self.listener.security_protocol,
        )
        """Who this connection is; handlers read it through ``current_session()``."""
        self.sasl: SaslExchange | None = (
            SaslExchange(self.session, ctx.extra["authenticators"], self._count_login)
            if self.listener.uses_sasl
            else None
        )
        """The SASL state machine of a SASL_PLAINTEXT / SASL_SSL connection."""
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
            if self.tls is not None:
                if not await self._tls_handshake(self.tls):
                    return
                self._certificate_principal()
            while not self.closing:
                data = await self._read()
                if not data:
                    return
                self.decoder.feed(data)
                while not self.closing:
                    if self.sasl is not None:
                        self._sasl_frame_limits(self.sasl)
                    try:
                        size = self.decoder.next_size()
                    except ProtocolError as exc:
                        self._protocol_error("bad_frame", str(exc))
                        return
                    if size is None:
                        break
                    if not self._reserved:
                        if self.decoder.buffered >= 4 + size:
                            self.memory.take(size)  # already read whole: nothing more to buffer
                            self._reserved = size
                        else:
                            await self._reserve(size)
                    frame = self.decoder.next_frame()
                    if frame is None:
                        break
                    reserved, self._reserved = self._reserved, 0
                    self._frame_started = None
                    self._last_active = self._loop.time()
                    await self._wait_unmuted()
                    raw_token = self.sasl is not None and self.sasl.raw_token_expected
                    if self.pipelined and not raw_token and _is_produce(frame):
                        await self._start_pipelined(frame, reserved)
                        continue
                    await self._drain_pipeline()
                    self._inline = True
                    try:
                        await self._handle(frame)
                    finally:
                        self._inline = False
                        self.memory.release(reserved)
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
            if self._reserved:
                self.memory.release(self._reserved)
                self._reserved = 0
            self.writer.close()

    async def _reserve(self, size: int) -> None:
        """Takes ``size`` bytes of the broker's request budget for the frame whose prefix just arrived; until
        it fits, this connection reads nothing more (backpressure through TCP instead of buffering)."""
        if not self.memory.try_reserve(size):
            self.ctx.metrics.request_memory_waits.inc()
            # The frame's read timeout keeps running while muted: half-sent frames holding the budget are
            # cut after request.read.timeout.ms whether or not their senders are the ones waiting.
            if self._frame_started is None:
                self._frame_started = self._loop.time()
            deadline = self._frame_started + self.limits.request_read_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    await self.memory.reserve(size)
            except TimeoutError:
                self._close_for(
                    "request_read_timeout",
                    f"request of {size} bytes waited {self.limits.request_read_timeout_s:g} s for "
                    f"request memory (queued.max.request.bytes {self.memory.limit} in use)",
                )
        self._reserved = size

    async def _read(self) -> bytes:
        """The next bytes from the client, within the idle bound between requests or the read bound of a
        started frame; closes the connection (with a log line) when a bound passes."""
        while True:
            now = self._loop.time()
            if self.decoder.buffered:
                if self._frame_started is None:
                    self._frame_started = now
                deadline = self._frame_started + self.limits.request_read_timeout_s
            else:
                deadline = self._last_active + self.limits.idle_s
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                if self.decoder.buffered:
                    self._close_for(
                        "request_read_timeout",
                        f"request frame incomplete after {self.limits.request_read_timeout_s:g} s "
                        f"({self.decoder.buffered} bytes received; request.read.timeout.ms)",
                    )
                if self._pipeline:
                    self._last_active = self._loop.time()  # answers still pending: not idle
                    continue
                self._close_for("idle", f"no request for {self.limits.idle_s:g} s (connections.max.idle.ms)")
            if data:
                self._last_active = self._loop.time()
            return data

    def _close_for(self, reason: str, message: str) -> None:
        self.ctx.metrics.connections_closed.labels(reason).inc()
        log.info("closing connection: %s", message, extra={"peer": self.peer, "reason": reason})
        raise CloseConnection

    async def _start_pipelined(self, frame: bytes, reserved: int) -> None:
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
        task.add_done_callback(lambda _t: self.memory.release(reserved))
        task.add_done_callback(self._pipelined_done)

    def _pipelined_done(self, task: asyncio.Task[None]) -> None:
        while self._pipeline and self._pipeline[0].done():
            self._pipeline.popleft()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Never a silent close: the log names the peer and what failed (a request the parser refused
            # or a handler bug), as the inline path does.
            if not isinstance(exc, CloseConnection | ConnectionError):
                log.error(
                    "pipelined request failed; closing the connection",
                    extra={"peer": self.peer},
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
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

    def _sasl_frame_limits(self, sasl: SaslExchange) -> None:
        """Before authentication a SASL connection gets frames of at most sasl.server.max.receive.size (an
        anonymous peer must not make the broker buffer a 100 MiB request); bare v0 tokens may be tiny."""
        if self.session.authenticated:
            self.decoder.set_limits(self.limits.socket_request_max_bytes)
        else:
            limit = min(
                self.limits.socket_request_max_bytes, self.ctx.extra["authenticators"].max_receive_size
            )
            self.decoder.set_limits(limit, 0 if sasl.raw_token_expected else MIN_FRAME_SIZE)

    def _count_login(self, mechanism: str, result: str) -> None:
        self.ctx.metrics.authentications.labels(self.listener.name, mechanism, result).inc()

    async def _tls_handshake(self, tls: ssl.SSLContext) -> bool:
        try:
            await self.writer.start_tls(tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            reason = (
                getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
            )
            self._protocol_error(
                "tls_handshake_failed",
                f"TLS handshake with {self.session.client_host} on {self.listener.name} failed: {reason}",
            )
            return False
        return True

    def _certificate_principal(self) -> None:
        """SSL listeners: the client certificate's subject (mapped) is the principal; without a
        certificate the connection stays ANONYMOUS, as in Kafka. SASL_SSL takes the SASL principal."""
        ssl_object = self.writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return
        from streamraft_broker.security.tls import subject_dn  # noqa: PLC0415 - TLS listeners only

        dn = subject_dn(der)
        self.session.attributes["ssl_subject"] = dn
        if self.listener.uses_sasl:
            return
        try:
            name = self.ctx.extra["authenticators"].mapper.map(dn)
        except ValueError as exc:
            self._protocol_error("authentication_failed", str(exc))
            raise CloseConnection from exc
        self.session.principal = KafkaPrincipal(USER_TYPE, name)
        self.session.authenticated = True

    def _protocol_error(self, reason: str, message: str) -> None:
        self.ctx.metrics.protocol_errors.labels(reason).inc()
        log.warning("closing connection: %s", message, extra={"peer": self.peer, "reason": reason})

    async def _handle(self, frame: bytes, after: asyncio.Task[None] | None = None) -> None:
        """Handles one request; with ``after`` (pipelined), its response is written only once that earlier
        request's is."""
        sasl = self.sasl
        if sasl is not None and sasl.raw_token_expected:
            # After a v0 SaslHandshake the next frame is a bare SASL token, not a Kafka request.
            await self._sasl_answer(await asyncio.to_thread(sasl.raw_token, frame))
            return
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
        if sasl is not None and api_key not in (ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE):
            refused = sasl.refuse(api_key)
            if refused is not None:
                self._protocol_error(*refused)
                raise CloseConnection
        started = time.perf_counter()
        try:
            header, offset = parse_request_header(frame, flexible=is_flexible_request(api_key, version))
            if api_key == ApiKey.PRODUCE:
                request: Any = parse_produce_request(frame, offset, version)
            elif len(frame) >= OFF_LOOP_FRAME_BYTES:
                request = await asyncio.to_thread(decode_request, api_key, version, frame, offset)
            else:
                request = decode_request(api_key, version, frame, offset)
        except ProtocolError as exc:
            self._protocol_error("bad_request", f"{ApiKey(api_key).name} v{version}: {exc}")
            raise CloseConnection from exc
        if sasl is not None and api_key in (ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE):
            # In a thread: a step may fetch an OAUTHBEARER key set over HTTP (seconds, at worst).
            await self._sasl_answer(await asyncio.to_thread(sasl.handle, header, request))
            self.ctx.metrics.observe_request(ApiKey(api_key).name, time.perf_counter() - started)
            return
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
            elif _has_long_array(result):
                await self._write(await asyncio.to_thread(encode_response, api_key, version, corr, result))
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

    async def _sasl_answer(self, answer: tuple[bytes, tuple[str, str] | None, bool]) -> None:
        """Writes a SASL step's response; a failed step closes the connection, after
        ``connection.failed.authentication.delay.ms`` when it was refused credentials (as Kafka does: a
        client retrying bad passwords in a loop is slowed down)."""
        data, failure, delay = answer
        if data:
            await self._write(data)
        if failure is not None:
            self._protocol_error(*failure)
            if delay:
                await asyncio.sleep(self.ctx.extra["authenticators"].failed_delay_s)
            raise CloseConnection

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
        self._last_active = self._loop.time()

    async def _write_parts(self, parts: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        for part in parts:
            if isinstance(part, bytes | bytearray | memoryview):
                self.writer.write(part)
                continue
            await self.writer.drain()
            await self._send_slice(loop, part)
        await self.writer.drain()
        self._last_active = self._loop.time()

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
