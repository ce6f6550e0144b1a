"""Chaos on the local control plane: broker pods deleted while producers write with acks=all.

Brokers are not Raft-replicated yet: each broker of a StreamCluster is its own one-node log and
advertises only itself in Metadata (it leads every partition it holds). So a 2-broker StreamCluster gets
the 2-partition topic created on each broker, and one writer per broker pod produces to both of that
broker's partitions through the pod's DNS name (the agent keeps the host's /etc/hosts current, so a
recreated pod's new IP is found). Pods are deleted three times: chaos-0 gracefully, chaos-1 with
--grace-period=0 --force, chaos-0 forced again, each checked to be the leader of its partitions just
before. The StatefulSet recreates each pod, it rejoins from its volume and takes writes again, and the
StreamCluster returns to Ready. Writes to a broker that is down fail and are retried as new writes; only
acknowledged ones count. The history check then reads every partition of every broker back from offset 0:
each acknowledged (partition, offset, value) must be there, and no offset was acknowledged twice.

Pod recovery (delete issued -> replacement pod Ready) is measured and printed per deletion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.k8s import history
from tests.k8s.cluster import Cluster
from tests.k8s.release import Release, installed_release, ready, resource

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "chaos"
TOPIC = "ledger"
PARTITIONS = 2
MAX_RECORDS = 100_000
PRODUCE_DEADLINE_S = 300
BURST = 5
BURST_PERIOD_S = 0.025  # 200 records/s per writer: enough history, and the shared CPUs stay usable


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with installed_release(k8s, "chaos") as rel:
        yield rel


def _bootstrap(ns: str, pod: str) -> str:
    # A name, not an IP: a recreated pod gets a new IP, and the agent keeps the host's /etc/hosts current.
    return f"{pod}.{NAME}-headless.{ns}.svc.cluster.local:9092"


@dataclass
class Writer:
    """Produces `v<i>` to partition i % PARTITIONS with acks=all until stopped (bounded in count and time)."""

    bootstrap: str
    log: history.History = field(default_factory=history.History)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    fatal: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def _producer(self) -> Producer:
        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self.fatal.append(str(err))

        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 8000,
                "linger.ms": 5,
                "reconnect.backoff.max.ms": 1000,
                "error_cb": on_error,
            }
        )

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished.set()

    def _run(self) -> None:
        def delivered(err: object, msg: Any) -> None:
            if err is None:
                self.log.ack(int(msg.partition()), int(msg.offset()), bytes(msg.value()))
            else:
                self.log.fail()

        producer = self._producer()
        fatal_seen = 0
        deadline = time.monotonic() + PRODUCE_DEADLINE_S
        next_burst = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline and self.sent < MAX_RECORDS:
            if len(self.fatal) > fatal_seen:
                # An idempotent producer that hit a fatal error is unusable: fail its queue, start afresh.
                fatal_seen = len(self.fatal)
                producer.flush(0)
                producer = self._producer()
            # Pacing through poll (it returns early once it served a delivery report): no catch-up bursts.
            now = time.monotonic()
            if now < next_burst:
                producer.poll(next_burst - now)
                continue
            for _ in range(BURST):
                try:
                    producer.produce(
                        TOPIC, value=f"v{self.sent}".encode(), partition=self.sent % PARTITIONS,
                        on_delivery=delivered,
                    )  # fmt: skip
                    self.sent += 1
                except BufferError:
                    break
                except KafkaException as exc:
                    # e.g. unknown topic/partition while metadata is stale: a failed attempt, retried anew.
                    self.rejected.append(str(exc))
                    break
            next_burst = time.monotonic() + BURST_PERIOD_S
        producer.flush(30)


def _leaders(bootstrap: str) -> dict[int, str]:
    """Partition -> pod leading it, from the broker's Metadata (broker id = pod ordinal)."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=10)
    return {p: f"{NAME}-{m.leader}" for p, m in meta.topics[TOPIC].partitions.items()}


def _create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)


def _delete_and_wait(k8s: Cluster, ns: str, pod: str, force: bool) -> float:
    """Deletes `pod`; returns seconds until its replacement (a new uid) is Ready."""
    old = k8s.pod(ns, pod)
    assert old is not None, f"{pod} not found"
    extra = ["--grace-period=0", "--force"] if force else []
    t0 = time.monotonic()
    k8s.kubectl("delete", "pod", pod, "-n", ns, "--wait=false", *extra)

    def replaced() -> dict[str, Any] | None:
        new = k8s.pod_ready(ns, pod)
        return new if new and new["metadata"]["uid"] != old["metadata"]["uid"] else None

    k8s.wait_for(replaced, 120, f"{pod} recreated and Ready")
    return time.monotonic() - t0


def _wait_for_progress(k8s: Cluster, writers: dict[str, Writer], more: int) -> None:
    """Waits until every partition of every broker has `more` further acknowledged writes."""
    floor = {(pod, p): w.log.count(p) + more for pod, w in writers.items() for p in range(PARTITIONS)}

    def progressed() -> bool:
        ended = [pod for pod, w in writers.items() if w.finished.is_set()]
        assert not ended, f"writers ended early: {ended}"
        return all(writers[pod].log.count(p) >= n for (pod, p), n in floor.items())

    k8s.wait_for(progressed, 90, f"{more} more acknowledged writes per broker partition (from {floor})")


def test_broker_pods_deleted_under_acks_all_lose_no_acknowledged_write(
    k8s: Cluster, release: Release
) -> None:
    ns = release.namespace
    k8s.apply(resource("StreamCluster", NAME, {"replicas": 2, "storage": {"size": "1Gi"}}), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 240, f"StreamCluster {NAME} Ready")
    pods = [f"{NAME}-0", f"{NAME}-1"]
    for pod in pods:
        _create_topic(_bootstrap(ns, pod))

    writers = {pod: Writer(_bootstrap(ns, pod)) for pod in pods}
    threads = [threading.Thread(target=w.run, name=f"writer-{pod}") for pod, w in writers.items()]
    for thread in threads:
        thread.start()
    recoveries: list[tuple[str, str, float]] = []
    try:
        for victim, force in ((pods[0], False), (pods[1], True), (pods[0], True)):
            # Every broker must take writes before each deletion: the previous victim is back in service.
            _wait_for_progress(k8s, writers, 100)
            leaders = _leaders(_bootstrap(ns, victim))
            assert set(leaders.values()) == {victim}, f"{victim} does not lead its partitions: {leaders}"
            seconds = _delete_and_wait(k8s, ns, victim, force)
            recoveries.append((victim, "force" if force else "graceful", seconds))
            print(f"deleted {recoveries[-1]}; acked {[w.log.count() for w in writers.values()]}", flush=True)
        _wait_for_progress(k8s, writers, 100)
    finally:
        for w in writers.values():
            w.stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(t.is_alive() for t in threads), "a writer did not stop"
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 120, f"StreamCluster {NAME} Ready again")

    print(f"\npod recovery (delete -> replacement Ready), {len(recoveries)} deletions:")
    print(f"{'pod':<10} {'deletion':<9} {'seconds':>8}")
    for pod, how, seconds in recoveries:
        print(f"{pod:<10} {how:<9} {seconds:>8.1f}")
    for pod, w in writers.items():
        acked = w.log.snapshot()
        print(f"{pod}: sent {w.sent}, acknowledged {len(acked)}, failed {w.log.failed}, "
              f"rejected by the client {len(w.rejected)}, fatal {w.fatal}")  # fmt: skip
        ends = {p: 1 + max((o for (q, o) in acked if q == p), default=-1) for p in range(PARTITIONS)}
        assert all(end > 0 for end in ends.values()), f"{pod}: a partition never acknowledged a write: {ends}"
        stored = history.read_partitions(_bootstrap(ns, pod), TOPIC, ends)
        problems = history.lost_writes(w.log, stored)
        assert not problems, f"{pod}: {len(problems)} violations, first: {problems[:10]}"
