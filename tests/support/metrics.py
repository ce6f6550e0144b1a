"""Scraping a broker's Prometheus endpoint, and a launcher cluster that serves it."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.launcher import Cluster

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def value(samples: Samples, name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


def hosted(samples: Samples, topic: str | None = None) -> int:
    """Partitions hosted by the scraped broker (of ``topic``, or all)."""
    return sum(1 for labels, _ in samples.get("streamraft_raft_term", []) if topic in (None, labels["topic"]))


def metrics_cluster(tmp_path: Path) -> Cluster:
    cluster = Cluster(tmp_path, 3)
    for b in cluster.brokers.values():
        b.metrics = True  # the launcher turns metrics off; these tests read them
    return cluster


def scrape_flat(url: str) -> dict[str, float]:
    """Every sample on the page at ``url``: 'name{labels}' -> value (for exact series lookups)."""
    values: dict[str, float] = {}
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
    return values
