"""Prometheus metrics (prefix streamraft_), one registry per broker so tests can run several in-process, and
the HTTP server that serves them together with the admin routes (``streamraft_broker.admin``)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from streamraft_broker.admin import AdminRequest, AdminResponse, AdminRouter
from streamraft_broker.admin_http import BoundedHandler, BoundedHTTPServer, HttpLimits

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
        self.connections_refused = Counter(
            "streamraft_connections_refused",
            "Connections closed at accept: max_connections or max_connections_per_ip reached",
            ["reason"],
            registry=r,
        )
        self.connections_closed = Counter(
            "streamraft_connections_closed_by_broker",
            "Connections the broker closed for a resource bound (idle, request_read_timeout)",
            ["reason"],
            registry=r,
        )
        self.accept_failures = Counter(
            "streamraft_accept_failures",
            "accept() failures for lack of resources (fd limit); accepting pauses after each",
            registry=r,
        )
        self.request_memory_waits = Counter(
            "streamraft_request_memory_waits",
            "Times a connection stopped reading because queued.max.request.bytes was reached",
            registry=r,
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


class _MetricsServer(BoundedHTTPServer):
    def __init__(self, address: tuple[str, int], metrics: BrokerMetrics, limits: HttpLimits) -> None:
        self.metrics = metrics
        super().__init__(address, _MetricsHandler, limits)


class _MetricsHandler(BoundedHandler):
    """/metrics only, read-only and open: the admin API has its own listener (``admin_http``)."""

    server: _MetricsServer

    def do_GET(self) -> None:
        self.request_read()
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/metrics", "/"):
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self.send_bytes(200, encoder(self.server.metrics.registry), content_type)
            return
        message = f"no route {path!r} here: this port serves /metrics; the admin API listens on admin_listen"
        self.send_json(404, json.dumps({"error": message}).encode())

    def _read_only(self) -> None:
        self.close_connection = True  # a body, if any, is not read
        self.send_json(405, b'{"error": "read-only: only GET /metrics"}', {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only


def start_metrics_server(
    metrics: BrokerMetrics, host: str, port: int, limits: HttpLimits | None = None
) -> tuple[Any, int]:
    """Serve /metrics in a thread; returns (server, bound port) so port 0 works in tests."""
    server = _MetricsServer((host, port), metrics, limits or HttpLimits())
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, int(server.server_address[1])
