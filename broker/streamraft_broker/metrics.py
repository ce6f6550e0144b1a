"""Prometheus metrics (prefix streamraft_), one registry per broker so tests can run several in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
        self._partitions: _PartitionCollector | None = None

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


def start_metrics_server(metrics: BrokerMetrics, host: str, port: int) -> tuple[Any, int]:
    """Serve /metrics; returns (server, bound port) so port 0 works in tests."""
    from prometheus_client import start_http_server  # noqa: PLC0415

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)
