"""One client connection: frames in, dispatch in order, responses out (sendfile for file slices)."""

from __future__ import annotations

import asyncio
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

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20


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
        self.busy = False
        self.closing = False

    async def run(self) -> None:
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
                    self.busy = True
                    try:
                        await self._handle(frame)
                    finally:
                        self.busy = False
        except CloseConnection:
            return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writer.close()

    def _protocol_error(self, reason: str, message: str) -> None:
        self.ctx.metrics.protocol_errors.labels(reason).inc()
        log.warning("closing connection: %s", message, extra={"peer": self.peer, "reason": reason})

    async def _handle(self, frame: bytes) -> None:
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
        result = await self._dispatch(header, request)
        if result is not None:
            if isinstance(result, RawResponse):
                await self._write_parts(result.parts)
            else:
                await self._write(encode_response(api_key, version, corr, result))
        self.ctx.metrics.observe_request(ApiKey(api_key).name, time.perf_counter() - started)

    async def _dispatch(self, header: RequestHeader, request: Any) -> Any:
        handler = HANDLERS.get(ApiKey(header.api_key))
        if handler is None:
            self._protocol_error("no_handler", f"{ApiKey(header.api_key).name} has no handler in this build")
            raise CloseConnection
        try:
            return await handler(self.ctx, header, request)
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
