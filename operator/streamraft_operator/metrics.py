"""The operator's own Prometheus metrics (reconciles, errors, durations), served on /metrics."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("streamraft_operator_reconciles_total", "Reconciles run.", ["kind", "result"])
ERRORS = Counter("streamraft_operator_errors_total", "Reconciles that failed.", ["kind", "reason"])
DURATION = Histogram(
    "streamraft_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RESTARTS = Counter("streamraft_operator_broker_restarts_total", "Broker pods restarted for rollouts.")


@contextmanager
def timed(kind: str) -> Iterator[None]:
    start = time.monotonic()
    result = "ok"
    try:
        yield
    except BaseException:
        result = "error"
        raise
    finally:
        DURATION.labels(kind).observe(time.monotonic() - start)
        RECONCILES.labels(kind, result).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr)


# Cluster health as the operator last saw it over the network; the chart's PrometheusRule alerts on these.
_CLUSTER = ["namespace", "cluster"]
BROKERS_DESIRED = Gauge("streamraft_operator_cluster_brokers_desired", "Brokers in the spec.", _CLUSTER)
BROKERS_READY = Gauge("streamraft_operator_cluster_brokers_ready", "Broker pods Ready.", _CLUSTER)
UNDER_REPLICATED = Gauge(
    "streamraft_operator_cluster_under_replicated_partitions", "Partitions with ISR < replicas.", _CLUSTER
)
LEADERLESS = Gauge(
    "streamraft_operator_cluster_leaderless_partitions", "Partitions without a leader.", _CLUSTER
)
UNREACHABLE = Gauge(
    "streamraft_operator_cluster_unreachable", "1 when no broker answered the metadata request.", _CLUSTER
)

LEADER = Gauge(
    "streamraft_operator_leader",
    "1 while this replica holds the leader-election Lease and runs the handlers, 0 while on standby.",
)
