"""Chaos on the local control plane with Raft replication: broker pods deleted under acks=all writes.

The chart is installed with Helm 4 (the other e2e suites use Helm 3). A 3-broker StreamCluster gets a
StreamTopic with 3 partitions and replicas: 3 (RF 3, each partition a Raft group over all brokers). One
idempotent acks=all writer produces `v<i>` round-robin over the partitions, bootstrapped from every pod's
DNS name (the agent keeps the host's /etc/hosts current, so a recreated pod's new IP is found).

Three times, the pod leading the most partitions is deleted: gracefully (preStop hands its leaderships
off first), then twice with --grace-period=0 --force (SIGKILL semantics, no hand-off). Each time the
other two brokers keep a majority, so every partition gets a leader that is not the victim, the
StatefulSet recreates the pod, which rejoins from its volume, and the StreamCluster is Ready again before
the next round. In the first forced round every node is cordoned first, so the replacement stays Pending:
writes to the victim's partitions must be acknowledged by the new leaders while the broker is gone (a
replacement pod can be Ready here within seconds, faster than a client notices a silently dead peer,
so without the hold "produce carried on without the pod" would be a race). Failed writes are never
retried as the same value; only acknowledged ones count.

Afterwards two consumers read every partition from offset 0 and tests/support/history.py checks the
history: no acknowledged write lost, one value per offset, no duplicates, both consumers read the same log.

Printed (run with -s): chart install, cluster Ready, and per deletion the delete -> leaders re-elected,
delete -> first acknowledged write on a partition the victim led, and delete -> replacement pod Ready.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tests.k8s.cluster import Cluster
from tests.k8s.release import Release, installed_release, ready, resource
from tests.support.history import History
from tests.support.launcher import consume_all

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "chaos"
BROKERS = 3
TOPIC = "ledger"
PARTITIONS = 3
MAX_RECORDS = 100_000
PRODUCE_DEADLINE_S = 420
BURST = 5
BURST_PERIOD_S = 0.025  # 200 records/s: enough history, and the shared CPUs stay usable
PODS = [f"{NAME}-{i}" for i in range(BROKERS)]
timings: dict[str, float] = {}


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    t0 = time.monotonic()
    with installed_release(k8s, "chaos", helm="helm4") as rel:
        timings["helm4 install --wait"] = time.monotonic() - t0
        yield rel


def _dns(ns: str, pod: str) -> str:
    return f"{pod}.{NAME}-headless.{ns}.svc.cluster.local:9092"


def _bootstrap(ns: str) -> str:
    return ",".join(_dns(ns, pod) for pod in PODS)


def _pod_of(node: int) -> str:
    return f"{NAME}-{node - 1}"  # node id = StatefulSet ordinal + 1


@dataclass
class Writer:
    """Produces `v<i>` to partition i % PARTITIONS with acks=all until stopped (bounded in count and time);
    records each acknowledgement in the history and its time per partition."""

    bootstrap: str
    topic: str = TOPIC
    history: History = field(default_factory=History)
    acked_at: dict[int, list[float]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    failed: int = 0
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
                "message.timeout.ms": 15000,
                # A SIGKILLed pod's connections die silently (its network namespace is gone, no RST): an
                # idempotent producer holds the partition's later batches until the in-flight request to
                # the dead leader times out, so that timeout bounds the stall (librdkafka default: 30 s).
                "request.timeout.ms": 5000,
                # A leader moving back to a just-recreated pod: connecting to its old address must not
                # hang for librdkafka's default 30 s before the new one is tried.
                "socket.connection.setup.timeout.ms": 5000,
                "linger.ms": 5,
                "reconnect.backoff.max.ms": 1000,
                "topic.metadata.refresh.interval.ms": 2000,
                "error_cb": on_error,
            }
        )

    def count(self, partition: int | None = None) -> int:
        with self.lock:
            return sum(len(v) for p, v in self.acked_at.items() if partition is None or p == partition)

    def largest_gap(self, partitions: tuple[int, ...], start: float, end: float) -> tuple[float, float]:
        """(longest time without an acknowledgement on one of `partitions` from `start` to the first ack
        after `end`, and when that pause ended): how long writes stalled, and when they resumed."""
        longest, resumed = 0.0, start
        with self.lock:
            for p in partitions:
                times = [start] + [t for t in self.acked_at[p] if start < t <= end]
                times += [t for t in self.acked_at[p] if t > end][:1]
                for a, b in itertools.pairwise(times):
                    if b - a > longest:
                        longest, resumed = b - a, b
        return longest, resumed

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished.set()

    def _run(self) -> None:
        def delivered(err: object, msg: Any) -> None:
            if err is None:
                with self.lock:
                    self.history.acked.append((int(msg.partition()), int(msg.offset()), bytes(msg.value())))
                    self.acked_at[int(msg.partition())].append(time.monotonic())
            else:
                self.failed += 1

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
            now = time.monotonic()
            if now < next_burst:
                producer.poll(next_burst - now)  # serves delivery reports; returns early when it did
                continue
            for _ in range(BURST):
                try:
                    producer.produce(
                        self.topic, value=f"v{self.sent}".encode(), partition=self.sent % PARTITIONS,
                        on_delivery=delivered,
                    )  # fmt: skip
                    self.sent += 1
                except BufferError:
                    break
                except KafkaException as exc:
                    self.rejected.append(str(exc))  # e.g. stale metadata: a failed attempt, never resent
                    break
            next_burst = time.monotonic() + BURST_PERIOD_S
        producer.flush(30)


def _leaders(bootstrap: str, name: str = TOPIC) -> dict[int, int]:
    """Partition -> leader node id (-1 when leaderless), from Metadata."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(name, timeout=10)
    topic = meta.topics[name]
    assert topic.error is None, topic.error
    return {p: int(m.leader) for p, m in topic.partitions.items()}


def _replicas(bootstrap: str, name: str = TOPIC) -> dict[int, list[int]]:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(name, timeout=10)
    return {p: sorted(m.replicas) for p, m in meta.topics[name].partitions.items()}


def _wait_for_progress(k8s: Cluster, w: Writer, more: int) -> None:
    floor = {p: w.count(p) + more for p in range(PARTITIONS)}

    def progressed() -> bool:
        assert not w.finished.is_set(), "the writer ended early"
        return all(w.count(p) >= n for p, n in floor.items())

    k8s.wait_for(progressed, 120, f"{more} more acknowledged writes per partition (from {floor})")


@dataclass(frozen=True)
class Round:
    victim: str
    how: str
    partitions: tuple[int, ...]  # the ones it led
    reelected_s: float
    stall_s: float  # longest pause in acknowledgements on its partitions, from the deletion on
    produce_s: float  # deletion -> the end of that pause (writes flowing again)
    recovered_s: float


def _schedulable(k8s: Cluster, on: bool) -> None:
    for node in k8s.nodes:
        k8s.kubectl("uncordon" if on else "cordon", node)


def _chaos_round(k8s: Cluster, ns: str, w: Writer, force: bool, hold: bool = False) -> Round:
    """Deletes the pod leading the most partitions. With `hold`, every node is cordoned first, so the
    replacement stays Pending until writes are shown to flow on the survivors; then they are uncordoned."""

    def all_led() -> dict[int, int] | None:
        led = _leaders(_bootstrap(ns))
        return led if all(n > 0 for n in led.values()) else None

    leaders = k8s.wait_for(all_led, 60, "every partition has a leader")
    counts = {node: sum(1 for n in leaders.values() if n == node) for node in set(leaders.values())}
    node = max(counts, key=lambda n: (counts[n], -n))
    victim = _pod_of(node)
    led = tuple(sorted(p for p, n in leaders.items() if n == node))
    old = k8s.pod(ns, victim)
    assert old is not None, f"{victim} not found"
    survivors = ",".join(_dns(ns, p) for p in PODS if p != victim)
    if hold:
        _schedulable(k8s, False)
    t0 = time.monotonic()
    try:
        k8s.kubectl("delete", "pod", victim, "-n", ns, "--wait=false",
                    *(["--grace-period=0", "--force"] if force else []))  # fmt: skip

        def reelected() -> bool:
            now = _leaders(survivors)
            return all(n > 0 and n != node for p, n in now.items() if p in led)

        k8s.wait_for(reelected, 60, f"new leaders for {led} (was broker {node}, {victim})")
        reelected_s = time.monotonic() - t0
        if hold:
            # Acknowledged after the survivors named new leaders: the new leaders took these writes.
            floor = {p: w.count(p) + 20 for p in led}
            k8s.wait_for(lambda: all(w.count(p) >= n for p, n in floor.items()), 60,
                         f"writes to {led} on the new leaders while {victim} is down")  # fmt: skip
            assert k8s.pod_ready(ns, victim) is None, f"{victim} is Ready while every node is cordoned"
    finally:
        if hold:
            _schedulable(k8s, True)

    def replaced() -> dict[str, Any] | None:
        new = k8s.pod_ready(ns, victim)
        return new if new and new["metadata"]["uid"] != old["metadata"]["uid"] else None

    k8s.wait_for(replaced, 180, f"{victim} recreated and Ready")
    t_ready = time.monotonic()
    floor = {p: w.count(p) + 1 for p in led}
    k8s.wait_for(lambda: all(w.count(p) >= n for p, n in floor.items()), 60, f"writes to {led} after Ready")
    stall, resumed = w.largest_gap(led, t0, t_ready)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 180, f"StreamCluster {NAME} Ready again")
    how = ("force" if force else "graceful") + (" (held)" if hold else "")
    return Round(victim, how, led, reelected_s, stall, resumed - t0, t_ready - t0)


@pytest.fixture(scope="module")
def stream(k8s: Cluster, release: Release) -> str:
    """The 3-broker StreamCluster, Ready; returns its namespace."""
    ns = release.namespace
    t0 = time.monotonic()
    cluster = {"replicas": BROKERS, "storage": {"size": "1Gi"}}
    k8s.apply(resource("StreamCluster", NAME, cluster), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 240, f"StreamCluster {NAME} Ready")
    timings["StreamCluster Ready"] = time.monotonic() - t0
    return ns


def _rf3_topic(k8s: Cluster, ns: str, name: str) -> None:
    spec = {"clusterRef": NAME, "partitions": PARTITIONS, "replicas": 3}
    k8s.apply(resource("StreamTopic", name, spec), namespace=ns)
    k8s.wait_for(lambda: ready(k8s, ns, "streamtopics", name), 120, f"StreamTopic {name} Ready")
    # RF from the StreamTopic spec: every partition is replicated on all three brokers.
    assert _replicas(_bootstrap(ns), name) == {p: [1, 2, 3] for p in range(PARTITIONS)}


def _check_history(ns: str, w: Writer) -> None:
    ends = {p: 1 + max((o for (q, o, _) in w.history.acked if q == p), default=-1) for p in range(PARTITIONS)}
    assert all(end > 0 for end in ends.values()), f"a partition never acknowledged a write: {ends}"
    consume_all(_bootstrap(ns), "reader-a", w.topic, ends, w.history)
    consume_all(_dns(ns, PODS[-1]), "reader-b", w.topic, ends, w.history)
    problems = w.history.check()
    assert not problems, f"{len(problems)} history violations: {problems}"


def test_leader_pods_deleted_under_acks_all_keep_producing_and_lose_no_acknowledged_write(
    k8s: Cluster, stream: str
) -> None:
    ns = stream
    _rf3_topic(k8s, ns, TOPIC)

    w = Writer(_bootstrap(ns))
    thread = threading.Thread(target=w.run, name="writer")
    thread.start()
    rounds: list[Round] = []
    try:
        for force, hold in ((False, False), (True, True), (True, False)):
            _wait_for_progress(k8s, w, 100)  # every partition takes writes before each deletion
            rounds.append(_chaos_round(k8s, ns, w, force, hold))
            print(f"{rounds[-1]}; acknowledged {w.count()}", flush=True)
        _wait_for_progress(k8s, w, 100)
    finally:
        w.stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the writer did not stop"

    print("\nsetup:")
    for what, seconds in timings.items():
        print(f"  {what:<24} {seconds:>7.1f} s")
    print(f"\nchaos rounds ({BROKERS} brokers, RF 3, acks=all, {1 / BURST_PERIOD_S * BURST:.0f} records/s):")
    columns = ("victim", "deletion", "led", "re-elected", "ack stall", "produce ok", "pod Ready")
    print("{:<9} {:<16} {:<6} {:>11} {:>10} {:>11} {:>10}".format(*columns))
    for r in rounds:
        print(f"{r.victim:<9} {r.how:<16} {','.join(map(str, r.partitions)):<6} {r.reelected_s:>10.1f}s "
              f"{r.stall_s:>9.1f}s {r.produce_s:>10.1f}s {r.recovered_s:>9.1f}s")  # fmt: skip
    print(f"writer: sent {w.sent}, acknowledged {w.count()}, failed {w.failed}, "
          f"rejected by the client {len(w.rejected)}, fatal {w.fatal}")  # fmt: skip

    _check_history(ns, w)


@dataclass
class Availability:
    """Samples the broker pods while a rollout runs: how many were unavailable at once (deleting, missing,
    not Ready), and the StreamCluster's Progressing messages."""

    k8s: Cluster
    ns: str
    before: dict[str, str]  # pod name -> uid before the rollout
    worst: int = 0
    messages: list[str] = field(default_factory=list)
    down_at: dict[str, float] = field(default_factory=dict)  # first sample a pod was unavailable
    back_at: dict[str, float] = field(default_factory=dict)  # first sample its replacement was Ready
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            down = 0
            for pod in PODS:
                got = self.k8s.pod_ready(self.ns, pod)
                if got is None:
                    down += 1
                    self.down_at.setdefault(pod, now)
                elif got["metadata"]["uid"] != self.before[pod]:
                    self.down_at.setdefault(pod, now)  # restarted between two samples
                    self.back_at.setdefault(pod, now)
            self.worst = max(self.worst, down)
            obj = self.k8s.api.get(f"/apis/streamraft.io/v1alpha1/namespaces/{self.ns}/streamclusters/{NAME}")
            for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Progressing" and cond.get("message") not in self.messages[-1:]:
                    self.messages.append(str(cond.get("message")))
            self.stop.wait(0.25)  # sampling period, not synchronisation


def test_config_change_restarts_brokers_one_at_a_time_keeping_quorum_under_writes(
    k8s: Cluster, stream: str
) -> None:
    ns = stream
    _rf3_topic(k8s, ns, "rolling")
    before = {}
    for pod in PODS:
        got = k8s.pod_ready(ns, pod)
        assert got is not None, f"{pod} not Ready before the rollout"
        before[pod] = got["metadata"]["uid"]
    w = Writer(_bootstrap(ns), topic="rolling")
    writer = threading.Thread(target=w.run, name="writer")
    watch = Availability(k8s, ns, before)
    sampler = threading.Thread(target=watch.run, name="sampler")
    writer.start()
    try:
        _wait_for_progress(k8s, w, 50)
        sampler.start()
        t0 = time.monotonic()
        patch = '{"spec":{"config":{"num.partitions":2}}}'
        k8s.kubectl("patch", "streamcluster", NAME, "-n", ns, "--type=merge", "-p", patch)

        def rolled() -> bool:
            pods = {pod: k8s.pod_ready(ns, pod) for pod in PODS}
            fresh = all(p is not None and p["metadata"]["uid"] != before[n] for n, p in pods.items())
            return fresh and ready(k8s, ns, "streamclusters", NAME) is not None

        k8s.wait_for(rolled, 420, "every broker restarted with the new config and the cluster Ready")
        rollout_s = time.monotonic() - t0
        stall, _ = w.largest_gap(tuple(range(PARTITIONS)), t0, time.monotonic())
        _wait_for_progress(k8s, w, 50)
    finally:
        watch.stop.set()
        w.stop.set()
        writer.join(60)
        if sampler.is_alive() or sampler.ident is not None:
            sampler.join(10)
    assert not writer.is_alive(), "the writer did not stop"
    print(f"\nrolling restart of {BROKERS} brokers: {rollout_s:.1f}s, at most {watch.worst} unavailable at "
          f"once, longest acknowledgement stall {stall:.1f}s; writer sent {w.sent}, acknowledged "
          f"{w.count()}, failed {w.failed}")  # fmt: skip
    print("Progressing messages seen:", *watch.messages, sep="\n  ")
    assert watch.worst <= 1, f"{watch.worst} brokers were down at once during the rollout"
    # The operator paced itself: each broker went down only after the one restarted before it was Ready
    # again. (Its status says "waiting for ..." while it paces, but a sampler can miss that message when
    # a restarted pod is Ready by the next reconcile.)
    # Samples are 0.25 s apart, so "Ready" can be seen up to one pass late: 1 s of slack, while a broker
    # pod takes several seconds from deletion to Ready, so an unpaced rollout still fails this.
    order = sorted(PODS, key=lambda pod: watch.down_at[pod])
    for earlier, later in itertools.pairwise(order):
        paced = watch.down_at[later] >= watch.back_at[earlier] - 1.0
        assert paced, (earlier, later, watch.down_at, watch.back_at)
    _check_history(ns, w)
