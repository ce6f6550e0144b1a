"""A real Prometheus scrapes broker pods run by the operator on the local control plane.

Discovery is file-based: Debian's Prometheus (2.42.0+ds) is built without `kubernetes_sd_configs`, so
`tests.k8s.prom.PodDiscovery` lists the broker pods from the local API server (with the harness
kubeconfig) and keeps a `file_sd_configs` targets file in step with their pod IPs. Prometheus listens on
a free 127.0.0.1 port; its only targets are broker pod IPs in this cluster's 10.244.<x>.0/24 subnet. The
test reads `up` and the brokers' `streamraft_` counters through /api/v1/query after a produce.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.k8s import prom
from tests.k8s.cluster import Cluster
from tests.k8s.release import Release, installed_release, ready, resource

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

RECORDS = 300


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with installed_release(k8s, "prom") as rel:
        yield rel


def _produce(bootstrap: str, values: list[bytes]) -> None:
    """Creates topic `metered` (2 partitions, one replica each: placement puts them on different brokers)
    in the replicated cluster and writes `values` with acks=all, alternating partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("metered", 2, 1)])["metered"].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list[str] = []

    def delivered(err: object, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for i, value in enumerate(values):
        producer.produce("metered", value=value, partition=i % 2, on_delivery=delivered)
    assert producer.flush(30) == 0 and not errors, f"records not acknowledged: {errors[:5]}"


def test_prometheus_discovers_and_scrapes_broker_pods(k8s: Cluster, release: Release, tmp_path: Path) -> None:
    ns = release.namespace
    spec = {"replicas": 2, "storage": {"size": "1Gi"}}
    k8s.apply(resource("StreamCluster", "scraped", spec), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", "scraped"), 240, "StreamCluster scraped Ready")
    pods = {p: k8s.pod_ready(ns, p) for p in ("scraped-0", "scraped-1")}
    pod_ips = {name: str(pod["status"]["podIP"]) for name, pod in pods.items() if pod}
    assert sorted(pod_ips) == ["scraped-0", "scraped-1"], f"broker pods not Ready: {pods}"
    subnet = ipaddress.ip_network(f"10.244.{k8s.subnet.octet}.0/24")

    with prom.scraping_brokers(k8s.api, ns, k8s.subnet.octet, tmp_path / "prometheus") as server:
        expected_up = {"scraped-0": 1.0, "scraped-1": 1.0}
        try:
            k8s.wait_for(lambda: server.query('up{job="streamraft-brokers"}') == expected_up, 60, "up == 1")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ntargets: {server.active_targets()}\n{server.logs()}") from exc

        targets = server.active_targets()
        scraped = sorted(urllib.parse.urlsplit(t["scrapeUrl"]).hostname or "" for t in targets)
        assert scraped == sorted(pod_ips.values()), f"targets {scraped} are not the broker pod IPs {pod_ips}"
        assert all(ipaddress.ip_address(ip) in subnet for ip in scraped), scraped
        assert {t["labels"]["pod"] for t in targets} == set(pod_ips)
        assert all(t["health"] == "up" for t in targets), targets

        # One cluster-wide topic; each partition's single replica (and leader) sits on its own broker, so
        # each broker counts the bytes of the half of the records its partition took.
        values = [f"metered-{i:05d}".encode() for i in range(RECORDS)]
        _produce(",".join(f"{ip}:9092" for ip in pod_ips.values()), values)

        # Bytes, not records: a replicated broker's produce path counts batches' bytes (its
        # streamraft_messages_in_total stays 0 for now).
        payload = sum(len(v) for v in values)
        inbound = 'sum(streamraft_bytes_in_total{job="streamraft-brokers",topic="metered"})'

        def counted() -> float | None:
            value = server.query(inbound).get("", 0.0)
            return value if value >= payload else None

        total = k8s.wait_for(counted, 60, f"{inbound} >= {payload}")
        assert total < 4 * payload, f"brokers counted {total} bytes in for {payload} payload bytes"
        per_pod = server.query('sum by (pod) (streamraft_bytes_in_total{topic="metered"})')
        assert set(per_pod) == set(pod_ips) and all(v >= payload / 2 for v in per_pod.values()), per_pod

        # Discovery follows a recreated pod (new uid, possibly a new IP): its new address is scraped.
        old_uid = pods["scraped-1"]["metadata"]["uid"] if pods["scraped-1"] else ""
        k8s.kubectl("delete", "pod", "scraped-1", "-n", ns, "--grace-period=0", "--force", "--wait=false")

        def replaced() -> str | None:
            pod = k8s.pod_ready(ns, "scraped-1")
            return str(pod["status"]["podIP"]) if pod and pod["metadata"]["uid"] != old_uid else None

        new_ip = k8s.wait_for(replaced, 120, "scraped-1 recreated and Ready")
        port = urllib.parse.urlsplit(targets[0]["scrapeUrl"]).port
        fresh = f'up{{job="streamraft-brokers",pod="scraped-1",instance="{new_ip}:{port}"}}'
        try:
            k8s.wait_for(lambda: server.query(fresh) == {"scraped-1": 1.0}, 60, f"{fresh} == 1")
        except AssertionError as exc:
            files = (tmp_path / "prometheus" / "brokers.json").read_text()
            raise AssertionError(f"{exc}\ntargets: {server.active_targets()}\nfile_sd: {files}") from exc
        hosts = {t["labels"]["pod"]: t["labels"]["instance"] for t in server.active_targets()}
        expected = {"scraped-0": f"{pod_ips['scraped-0']}:{port}", "scraped-1": f"{new_ip}:{port}"}
        assert hosts == expected, hosts
