"""Prometheus metrics (prefix streamraft_), one registry per broker so tests can run several in-process, and
the HTTP server that serves them together with the admin routes (``streamraft_broker.admin``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from streamraft_broker.admin import (
    MAX_BODY_BYTES,
    AdminError,
    AdminRequest,
    AdminResponse,
    AdminRouter,
    Handler,
    MethodNotAllowedError,
)

log = logging.getLogger(__name__)

_TP = ["topic", "partition"]
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class _PartitionCollector(Collector):
    """Reads log sizes/offsets and group lag at scrape time instead of updating gauges on every append."""

    def __init__(self, source: Callable[[], Iterator[tuple[str, int, int, int, int]]]) -> None:
        self._source = source
        self.lag_source: Callable[[], Iterator[tuple[str, str, int, int]]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "streamraft_log_size_bytes", "Partition log size", labels=["topic", "partition"]
        )
        start = GaugeMetricFamily(
            "streamraft_log_start_offset", "Log start offset", labels=["topic", "partition"]
        )
        end = GaugeMetricFamily("streamraft_log_end_offset", "Log end offset", labels=_TP)
        for topic, part, nbytes, s, e in self._source():
            labels = [topic, str(part)]
            size.add_metric(labels, nbytes)
            start.add_metric(labels, s)
            end.add_metric(labels, e)
        yield size
        yield start
        yield end
        lag = GaugeMetricFamily(
            "streamraft_consumer_group_lag",
            "High watermark minus committed offset",
            labels=["group", "topic", "partition"],
        )
        if self.lag_source is not None:
            for group, topic, part, value in self.lag_source():
                lag.add_metric([group, topic, str(part)], value)
        yield lag


async def _health(_request: AdminRequest) -> AdminResponse:
    return AdminResponse({"status": "ok"})


async def _nothing_to_hand_off(_request: AdminRequest) -> AdminResponse:
    return AdminResponse({"moved": 0, "of": 0})


class BrokerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("streamraft_requests", "Requests handled", ["api"], registry=r)
        self.latency = Histogram(
            "streamraft_request_latency_seconds",
            "Request latency",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_in = Counter("streamraft_bytes_in", "Record bytes produced", ["topic"], registry=r)
        self.bytes_out = Counter("streamraft_bytes_out", "Record bytes fetched", ["topic"], registry=r)
        self.messages_in = Counter("streamraft_messages_in", "Records produced", ["topic"], registry=r)
        self.connections = Gauge("streamraft_connections", "Open client connections", registry=r)
        self.connections_total = Counter(
            "streamraft_connections_accepted", "Accepted connections", registry=r
        )
        self.errors = Counter("streamraft_errors", "Error codes returned to clients", ["code"], registry=r)
        self.protocol_errors = Counter(
            "streamraft_protocol_errors", "Connections closed for malformed requests", ["reason"], registry=r
        )
        self.authentications = Counter(
            "streamraft_authentications",
            "SASL logins by listener, mechanism and result (success, failure, reauthentication)",
            ["listener", "mechanism", "result"],
            registry=r,
        )
        self._partitions: _PartitionCollector | None = None
        self.admin = AdminRouter()
        """Admin HTTP routes served beside /metrics (see ``streamraft_broker.admin``)."""
        self.admin.route("GET", "/admin/health", _health)
        self.admin.route("GET", "/admin/routes", self._list_routes)
        # Replaced by the replication service when there is one: a single node leads nothing to hand over.
        self.admin.route("POST", "/admin/leadership/handoff", _nothing_to_hand_off)

    async def _list_routes(self, _request: AdminRequest) -> AdminResponse:
        return AdminResponse({"routes": [list(r) for r in self.admin.routes()]})

    def watch_partitions(self, source: Callable[[], Iterator[tuple[str, int, int, int, int]]]) -> None:
        assert self._partitions is None, "partition source registered twice"
        self._partitions = _PartitionCollector(source)
        self.registry.register(self._partitions)

    def watch_group_lag(self, source: Callable[[], Iterator[tuple[str, str, int, int]]]) -> None:
        assert self._partitions is not None, "register the partition source first"
        self._partitions.lag_source = source

    def observe_request(self, api: str, seconds: float) -> None:
        self.requests.labels(api).inc()
        self.latency.labels(api).observe(seconds)

    def record_produce(self, topic: str, nbytes: int, records: int) -> None:
        self.bytes_in.labels(topic).inc(nbytes)
        self.messages_in.labels(topic).inc(records)

    def record_fetch(self, topic: str, nbytes: int) -> None:
        self.bytes_out.labels(topic).inc(nbytes)

    def record_error(self, code: int) -> None:
        self.errors.labels(str(code)).inc()


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], metrics: BrokerMetrics, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.metrics = metrics
        self.loop = loop
        super().__init__(address, _Handler)

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/metrics", "/"):
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(self.server.metrics.registry), content_type)
            return
        self._admin("GET")

    def do_POST(self) -> None:
        self._admin("POST")

    def do_PUT(self) -> None:
        self._admin("PUT")

    def do_DELETE(self) -> None:
        self._admin("DELETE")

    def do_PATCH(self) -> None:
        self._admin("PATCH")

    def _admin(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        headers: dict[str, str] = {}
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be parsed as the next request
                raise AdminError(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
            body = self.rfile.read(length) if length else b""
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
        self._send(response.status, response.encode(), "application/json", headers)

    def _send(
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
        log.debug("metrics http: " + format, *args)


async def _call(handler: Handler, request: AdminRequest) -> AdminResponse:
    response = await handler(request)
    if not isinstance(response, AdminResponse):
        raise TypeError(f"admin handler for {request.path} returned {type(response).__name__}")
    return response


def start_metrics_server(metrics: BrokerMetrics, host: str, port: int) -> tuple[Any, int]:
    """Serve /metrics and the admin routes (``admin``) in a thread; returns (server, bound port) so port 0
    works in tests. Called on the broker's event loop, which runs the admin handlers."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    server = _MetricsServer((host, port), metrics, loop)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, int(server.server_address[1])
