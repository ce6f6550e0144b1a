"""Asking brokers about themselves over the network: Kafka metadata and Prometheus metrics.

The operator never imports broker code (an import-linter contract); everything here is what any client
could see. Blocking calls, bounded by explicit timeouts; handlers run them in a thread.
"""

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streamraft_operator.admin_token import AdminTokenError, admin_token, auth_headers
from streamraft_operator.rollout import PartitionState

# Exported by every replicated broker on its metrics port (a leader reports its followers' lag).
RAFT_LAG_METRIC = "streamraft_raft_follower_lag_entries"
UNDER_REPLICATED_METRIC = "streamraft_under_replicated_partitions"
LEADERLESS_METRIC = "streamraft_leaderless_partitions"
CONTROLLER_METRIC = "streamraft_controller_leader_id"
DECOMMISSION_PATH = "/admin/brokers/{id}/decommission"
ADMIN_TIMEOUT_S = 10.0
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
        # Asking about a topic must never create it (brokers default to Kafka's auto.create.topics.enable
        # true, and librdkafka lets producer-type handles such as AdminClient ask for creation).
        "allow.auto.create.topics": False,
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


Lag = dict[tuple[str, int], dict[int, int]]  # (topic, partition) -> follower node id -> lag in entries


@dataclass(frozen=True)
class BrokerHealth:
    """One broker's replication gauges; None where the broker does not export the metric."""

    under_replicated: int | None = None
    leaderless: int | None = None
    controller: int | None = None  # node id of the controller group's leader as this broker sees it
    follower_lag: Lag = field(default_factory=dict)

    @property
    def max_lag(self) -> int | None:
        lags = [n for followers in self.follower_lag.values() for n in followers.values()]
        return max(lags) if lags else None


def parse_health(metrics_text: str) -> BrokerHealth:
    sums: dict[str, float] = {}
    lag: Lag = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in (UNDER_REPLICATED_METRIC, LEADERLESS_METRIC, CONTROLLER_METRIC):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            elif sample.name == RAFT_LAG_METRIC:
                labels = sample.labels
                if {"topic", "partition", "follower"} <= labels.keys():
                    key = (labels["topic"], int(labels["partition"]))
                    lag.setdefault(key, {})[int(labels["follower"])] = int(sample.value)

    def gauge(name: str) -> int | None:
        return int(sums[name]) if name in sums else None

    controller = gauge(CONTROLLER_METRIC)
    return BrokerHealth(
        under_replicated=gauge(UNDER_REPLICATED_METRIC),
        leaderless=gauge(LEADERLESS_METRIC),
        controller=controller if controller is not None and controller > 0 else None,
        follower_lag=lag,
    )


def health(host: str, port: int) -> BrokerHealth | None:
    try:
        return parse_health(scrape(host, port))
    except (OSError, ValueError):
        return None


def decommission(host: str, port: int, node: int, token: str | None = None) -> tuple[bool, str]:
    """Asks the controller (through the broker at host:port, its admin port; any broker forwards it) to
    move every replica off broker `node`. (accepted, what happened in words for a condition message).
    Repeating it is safe: the broker answers with the drain's progress. ``token`` (default: the configured
    admin token, see ``admin_token``) is sent as a bearer token."""
    path = DECOMMISSION_PATH.format(id=node)
    if token is None:
        try:
            token = admin_token()
        except AdminTokenError as exc:
            return False, f"cannot ask for the drain of broker {node}: {exc}"
    req = urllib.request.Request(
        f"http://{host}:{port}{path}", data=b"", method="POST", headers=auth_headers(token)
    )
    try:
        with urllib.request.urlopen(req, timeout=ADMIN_TIMEOUT_S) as resp:
            try:
                answer = json.loads(resp.read(64 * 1024))
            except ValueError:
                answer = None
            if isinstance(answer, dict) and "state" in answer:
                left = answer.get("replicas_left")
                more = f", {left} replica(s) left to move" if isinstance(left, int) else ""
                return True, f"draining broker {node}: {answer['state']}{more}"
            return True, f"draining broker {node} (decommission requested)"
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read(64 * 1024)).get("error")
        except (ValueError, AttributeError, OSError):
            detail = None
        # The admin router answers an unknown path with 404 "no admin route ...": an older broker.
        no_route = detail is None or str(detail).startswith("no admin route")
        if exc.code == 405 or (exc.code == 404 and no_route):
            return False, f"the brokers have no decommission endpoint (POST {path} answered {exc.code})"
        return False, f"the controller refused to drain broker {node}: HTTP {exc.code} {detail or exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"cannot reach the controller at {host}:{port} to drain broker {node}: {exc}"
