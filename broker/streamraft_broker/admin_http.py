"""The HTTP servers beside the Kafka listener: the admin API (``admin_listen``) and /metrics
(``metrics_listen``), both bounded.

The admin API changes the cluster (leadership hand-off, decommission), so it is separate from /metrics: it
binds to loopback unless configured otherwise, and once ``admin_token_file`` and/or ``admin_tls_cert``/
``admin_tls_key``/``admin_tls_ca`` are set every request must authenticate — a bearer token compared in
constant time (401 with ``WWW-Authenticate`` otherwise), a client certificate signed by the CA (the TLS
handshake fails without one), or both when both are configured. /metrics stays open and read-only.

Bounds (a hostile or broken client must not exhaust the broker): at most ``max_connections`` connections
are served at once, each on its own thread; more are closed at once, without a thread. A request (its
line, headers and body) must arrive within ``request_timeout_s`` of its start, and an idle keep-alive
connection is closed after as long: one watchdog thread cuts connections past their deadline (a per-read
socket timeout alone would let a client trickle one byte at a time). Bodies above ``MAX_BODY_BYTES`` are
refused from the header (413).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamraft_broker.admin import (
    MAX_BODY_BYTES,
    AdminError,
    AdminRequest,
    AdminResponse,
    Handler,
    MethodNotAllowedError,
)

if TYPE_CHECKING:
    from streamraft_broker.metrics import BrokerMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_REQUEST_TIMEOUT_S = 10.0
_WATCHDOG_INTERVAL_S = 0.2
_LOOPBACK = ("127.", "::1", "localhost")


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S


class AdminAuthError(ValueError):
    """The admin authentication settings cannot be used (unreadable or empty token file, bad TLS files)."""


@dataclass(frozen=True)
class AdminAuth:
    """What an admin request must present. Nothing configured: no authentication (loopback by default)."""

    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def required(self) -> bool:
        return self.token_file is not None or self.tls

    def token(self) -> bytes:
        """The token, read now (so a rotated file takes effect at once). AdminAuthError if unusable."""
        assert self.token_file is not None
        try:
            token = self.token_file.read_bytes().strip()
        except OSError as exc:
            raise AdminAuthError(f"admin_token_file {self.token_file}: {exc.strerror}") from None
        if not token:
            raise AdminAuthError(f"admin_token_file {self.token_file} is empty")
        return token

    def check_bearer(self, authorization: str | None) -> bool:
        if self.token_file is None:
            return True
        expected = self.token()
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time: the comparison must not tell how much of a guess was right.
        return hmac.compare_digest(presented.strip().encode(), expected)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        assert self.tls_cert is not None and self.tls_key is not None and self.tls_ca is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS: a client certificate signed by the CA
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
            ctx.load_verify_locations(cafile=str(self.tls_ca))
        except (OSError, ssl.SSLError) as exc:
            raise AdminAuthError(
                f"admin TLS files ({self.tls_cert}, {self.tls_key}, {self.tls_ca}): {exc}"
            ) from None
        return ctx


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # a burst is accepted (and refused past the cap) rather than left in the kernel

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: HttpLimits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits
        self.ssl_context = ssl_context
        self.rejected = 0
        """Connections closed at once because ``max_connections`` were being served."""
        self.timed_out = 0
        """Connections cut by the watchdog (a request too slow to arrive, or idle)."""
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(address, handler)
        threading.Thread(target=self._watchdog, name="http-watchdog", daemon=True).start()

    # -- connection cap ------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.ssl_context is not None:
                self.arm(request)
                raw = request
                try:
                    request = self.ssl_context.wrap_socket(raw, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    log.info("event=admin_tls_refused client=%s error=%r", client_address[0], str(exc))
                    self.shutdown_request(raw)
                    return
                finally:
                    self.disarm(raw)
            super().process_request_thread(request, client_address)
        finally:
            self.disarm(request)
            self._slots.release()

    # -- request deadlines ---------------------------------------------------------------------------
    def arm(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.limits.request_timeout_s

    def disarm(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _watchdog(self) -> None:
        while not self._closing.wait(_WATCHDOG_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                late = [c for c, deadline in self._deadlines.items() if deadline <= now]
                for c in late:
                    del self._deadlines[c]
            for c in late:
                self.timed_out += 1
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)  # the handler thread's blocked read returns at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone mid-answer (or cut by the watchdog) is routine; anything else is logged loudly.
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("event=http_connection_error client=%s", client_address[0], exc_info=True)
            return
        log.exception("event=http_handler_failed client=%s", client_address[0])

    def shutdown(self) -> None:
        super().shutdown()
        self._closing.set()
        self.server_close()


class BoundedHandler(BaseHTTPRequestHandler):
    server: BoundedHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.request_timeout_s)  # each read, beside the deadline

    def handle_one_request(self) -> None:
        # Armed from the first byte of the request (or the idle wait before it) until it is read.
        self.server.arm(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.disarm(self.connection)

    def request_read(self) -> None:
        """The whole request is in: what remains (running it, answering) is not on the read deadline."""
        self.server.disarm(self.connection)

    def send_json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, body, "application/json", headers)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class AdminServer(BoundedHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        metrics: BrokerMetrics,
        loop: asyncio.AbstractEventLoop | None,
        auth: AdminAuth,
        limits: HttpLimits,
    ) -> None:
        self.metrics = metrics
        self.loop = loop
        self.auth = auth
        super().__init__(address, _AdminHandler, limits, auth.ssl_context())


class _AdminHandler(BoundedHandler):
    server: AdminServer

    def do_GET(self) -> None:
        self._admin("GET")

    def do_POST(self) -> None:
        self._admin("POST")

    def do_PUT(self) -> None:
        self._admin("PUT")

    def do_DELETE(self) -> None:
        self._admin("DELETE")

    def do_PATCH(self) -> None:
        self._admin("PATCH")

    def _authenticated(self) -> bool:
        try:
            ok = self.server.auth.check_bearer(self.headers.get("Authorization"))
        except AdminAuthError as exc:
            log.error("event=admin_auth_unavailable error=%r", str(exc))
            ok = False  # fail closed
        if not ok:
            self.close_connection = True  # the unread body must not be parsed as the next request
            log.warning("event=admin_unauthorized client=%s path=%s", self.client_address[0], self.path[:200])
        return ok

    def _admin(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        headers: dict[str, str] = {}
        try:
            if not self._authenticated():
                headers["WWW-Authenticate"] = 'Bearer realm="streamraft-admin"'
                raise AdminError(401, "admin API: missing or wrong bearer token")
            if "Transfer-Encoding" in self.headers:
                self.close_connection = True
                raise AdminError(411, "admin API: send a Content-Length, not a chunked body")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True
                raise AdminError(400, "Content-Length is not an integer") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be parsed as the next request
                raise AdminError(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
            body = self.rfile.read(length) if length else b""
            if len(body) != length:
                self.close_connection = True
                raise AdminError(400, f"request body ended after {len(body)} of {length} bytes")
            self.request_read()
            route, params = self.server.metrics.admin.resolve(method, url.path)
            loop = self.server.loop
            if loop is None or loop.is_closed():
                raise AdminError(503, "the broker's event loop is not running")
            request = AdminRequest(method, url.path, params, dict(urllib.parse.parse_qsl(url.query)), body)
            future = asyncio.run_coroutine_threadsafe(_call(route.handler, request), loop)
            try:
                response = future.result(route.timeout_s)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise AdminError(
                    504, f"{method} {url.path} did not finish within {route.timeout_s} s"
                ) from None
        except MethodNotAllowedError as exc:
            headers["Allow"] = ", ".join(exc.allowed)
            response = AdminResponse({"error": exc.message}, exc.status)
        except AdminError as exc:
            response = AdminResponse({"error": exc.message}, exc.status)
        except Exception as exc:
            # A bug in one route must not kill the server thread: answer 500 and log it loudly.
            log.exception("admin %s %s failed", method, url.path)
            response = AdminResponse({"error": f"internal error: {exc!r}"}, 500)
        self.send_json(response.status, response.encode(), headers)


async def _call(handler: Handler, request: AdminRequest) -> AdminResponse:
    response = await handler(request)
    if not isinstance(response, AdminResponse):
        raise TypeError(f"admin handler for {request.path} returned {type(response).__name__}")
    return response


def is_loopback(host: str) -> bool:
    return host.startswith(_LOOPBACK)


def start_admin_server(
    metrics: BrokerMetrics,
    host: str,
    port: int,
    auth: AdminAuth | None = None,
    limits: HttpLimits | None = None,
) -> tuple[AdminServer, int]:
    """Serve the admin routes (``metrics.admin``) in a thread; returns (server, bound port). Called on the
    broker's event loop, which runs the handlers. AdminAuthError if the auth settings are unusable."""
    auth = auth or AdminAuth()
    if auth.token_file is not None:
        auth.token()  # fail at start-up, naming the file, rather than on the first request
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    server = AdminServer((host, port), metrics, loop, auth, limits or HttpLimits())
    threading.Thread(target=server.serve_forever, name="admin-http", daemon=True).start()
    if not auth.required and not is_loopback(host):
        log.warning(
            "event=admin_unauthenticated host=%s port=%d: the admin API answers anyone who can reach it; "
            "set admin_token_file and/or admin_tls_cert/key/ca",
            host,
            server.server_address[1],
        )
    return server, int(server.server_address[1])
