"""Asking brokers about themselves over the network: Kafka metadata and Prometheus metrics.

The operator never imports broker code (an import-linter contract); everything here is what any client
could see. Blocking calls, bounded by explicit timeouts; handlers run them in a thread.
"""

import logging
import urllib.request
from collections.abc import Sequence
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streamraft_operator.rollout import PartitionState

# Largest Raft replication lag (entries) of a broker's follower replicas, exported by the broker.
RAFT_LAG_METRIC = "streamraft_raft_follower_lag_entries"
METADATA_TIMEOUT_S = 5.0
_KAFKA_LOG = logging.getLogger("streamraft_operator.kafka")
SCRAPE_TIMEOUT_S = 3.0


class BrokersUnreachable(RuntimeError):
    pass


def admin_client(bootstrap: Sequence[str]) -> AdminClient:
    if not bootstrap:
        raise BrokersUnreachable("no broker addresses known (no pod has an IP yet)")
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(bootstrap),
        "socket.timeout.ms": int(METADATA_TIMEOUT_S * 1000),
        "client.id": "streamraft-operator",
        # librdkafka's own log lines go through Python logging instead of stderr.
        "logger": _KAFKA_LOG,
    }
    return AdminClient(conf)


def partition_states(bootstrap: Sequence[str]) -> list[PartitionState]:
    """Every partition of every topic (internal ones included: they need a quorum too)."""
    try:
        meta = admin_client(bootstrap).list_topics(timeout=METADATA_TIMEOUT_S)
    except BrokersUnreachable:
        raise
    except Exception as exc:  # librdkafka raises KafkaException with many codes; all mean "ask later"
        raise BrokersUnreachable(f"metadata request to {', '.join(bootstrap)} failed: {exc}") from exc
    out: list[PartitionState] = []
    for topic in meta.topics.values():
        if topic.error is not None:
            continue
        for p in topic.partitions.values():
            out.append(PartitionState(str(topic.topic), p.id, p.leader, tuple(p.replicas), tuple(p.isrs)))
    return sorted(out, key=lambda s: (s.topic, s.partition))


def parse_raft_lag(metrics_text: str) -> int | None:
    """Max over the lag samples; None if the broker does not export the metric."""
    lag: float | None = None
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == RAFT_LAG_METRIC:
                lag = sample.value if lag is None else max(lag, sample.value)
    return None if lag is None else int(lag)


def scrape(host: str, port: int) -> str:
    url = f"http://{host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:
        body: bytes = resp.read(16 * 1024 * 1024)
    return body.decode("utf-8", "replace")


def raft_lag(host: str, port: int) -> int | None:
    try:
        return parse_raft_lag(scrape(host, port))
    except (OSError, ValueError):
        return None
