"""Benchmark of a 3-broker replicated cluster (RF=3, acks=all); prints one table.

    .venv/bin/python -m tests.bench.cluster.replicated_cluster [--messages 150000] [--rounds 3] [--kills 20]

Sections (each can be skipped: --skip throughput,failover,idle):
- throughput: 1 KiB records to a 6-partition RF=3 topic with acks=all, linger 5 ms, once leaders are spread
  over the brokers, everything enqueued as fast as the client accepts; --rounds alternating rounds of two
  confluent-kafka producers: librdkafka's defaults (not idempotent) and an idempotent one. Per kind: MB/s
  (median, min-max), produce -> ack p50/p99 (under that full load it measures queueing), and the client's own
  CPU seconds and librdkafka broker-thread loop wakeups per round: while librdkafka's idempotent producer
  waits for its requests its broker threads spin (millions of wakeups per round, a whole core of the two
  that the brokers also run on), which is what separates the two rows. Then p50/p99
  with one record in flight (request latency).
- failover: a producer sends to a 1-partition RF=3 topic every 2 ms; the partition's leader (from the
  brokers' metadata once every broker reports nothing under-replicated, and the producer, which keeps a
  connection to every broker, has reconnected to all of them) is SIGKILLed; the figure is the time from the
  kill to the first acknowledgement of a record produced after it. The victim is restarted before the next
  kill. --no-client-wait kills once the cluster healed without waiting for the producer's reconnections, so
  the figure includes librdkafka's reconnect backoff to a broker it saw fail seconds before (it doubles per
  attempt up to 10 s and resets only after 10 s without attempts); --settle S produces S seconds more before
  each kill. Client defaults otherwise (--client KEY=VALUE adds settings, --log-dir keeps the brokers' logs).
  Beside it, the time until a surviving broker's Metadata (asked over a connection opened before the kill)
  names the new leader: the cluster's side of failover.
- idle: CPU (% of one core, user+system from psutil over --window seconds, nothing scraped meanwhile) and
  RSS per broker with 10 partitions in total, then with 1,000 (RF=3 each, so every broker hosts all).
Targets (reported, not gated): failover p50 <= 0.5 s, max <= 1.5 s; 1,000 idle <= 10 % core per broker;
>= 50 MB/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tests.support.launcher import Cluster, create_topic, partition_leader
from tests.support.metrics import scrape, value

MAX_MESSAGES = 2_000_000
MAX_KILLS = 100
RECORD = 1024
STATS_INTERVAL_MS = 200
MAX_ROUNDS = 20
CLIENT_WAIT_S = 30.0
Row = tuple[str, str]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout}s: {what}")
        time.sleep(0.2)  # pacing between metric scrapes


def _metric_sum(cluster: Cluster, name: str) -> float:
    return sum(value(scrape(b.metrics_port), name) for b in cluster.brokers.values() if b.running)


def _produce(producer: Producer, topic: str, count: int, partitions: int) -> list[float]:
    """Enqueue ``count`` records as fast as the client takes them; returns produce -> ack latencies.
    One shared callback reading ``Message.latency()`` keeps the client's own Python work per record small
    (it shares the two cores with the brokers)."""
    payload = bytes(range(256)) * (RECORD // 256)
    latencies: list[float] = []
    failures: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err)
        else:
            latencies.append(msg.latency())

    for i in range(count):
        while True:
            try:
                producer.produce(topic, payload, partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0, "records left unacknowledged after 120 s"
    assert not failures, failures[:3]
    return latencies


def _sequential(producer: Producer, topic: str, count: int, partitions: int) -> list[float]:
    """One record in flight at a time: the request latency itself, no client queueing."""
    payload = bytes(range(256)) * (RECORD // 256)
    latencies = []
    for i in range(count):
        start = time.perf_counter()
        producer.produce(topic, payload, partition=i % partitions)
        assert producer.flush(30) == 0, "record not acknowledged within 30 s"
        latencies.append(time.perf_counter() - start)
    return latencies


def _leaders_spread(cluster: Cluster, partitions: int) -> Callable[[], bool]:
    # Preferred-leader balancing (every 10 s) spreads leaders one per broker per rotation of replicas.
    share = partitions // len(cluster.brokers)
    return lambda: all(
        value(scrape(b.metrics_port), "streamraft_partitions_led") >= share for b in cluster.brokers.values()
    )


class _Client:
    """One confluent-kafka producer for the throughput rounds, with its librdkafka statistics (the broker
    threads' loop wakeups show when the client itself is spinning) and this process's CPU time."""

    def __init__(self, bootstrap: str, idempotent: bool) -> None:
        self.stats: list[dict[str, Any]] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": idempotent,
                "linger.ms": 5,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": lambda raw: self.stats.append(json.loads(raw)),
            }
        )

    def wakeups(self) -> int:
        """Broker-thread wakeups so far, from a statistics report emitted after this call."""
        seen = len(self.stats)
        deadline = time.monotonic() + 5
        while len(self.stats) == seen and time.monotonic() < deadline:
            self.producer.poll(0.05)  # serves the statistics callback
        assert len(self.stats) > seen, "no librdkafka statistics report within 5 s"
        return sum(int(b.get("wakeups", 0)) for b in self.stats[-1]["brokers"].values())

    def run(self, topic: str, messages: int, partitions: int) -> tuple[float, list[float], float, int]:
        """MB/s, latencies, client CPU seconds, wakeups."""
        me = psutil.Process()
        woke = self.wakeups()
        cpu = me.cpu_times()
        start = time.perf_counter()
        latencies = _produce(self.producer, topic, messages, partitions)
        took = time.perf_counter() - start
        used = me.cpu_times()
        cpu_s = used.user + used.system - cpu.user - cpu.system
        return messages * RECORD / took / 1e6, latencies, cpu_s, self.wakeups() - woke


def throughput(cluster: Cluster, messages: int, rounds: int) -> list[Row]:
    """Alternating rounds of a librdkafka-default producer (not idempotent) and an idempotent one."""
    topic, partitions = "bench-throughput", 6
    create_topic(cluster, topic, partitions)
    clients = {"plain": _Client(cluster.bootstrap, False), "idempotent": _Client(cluster.bootstrap, True)}
    for c in clients.values():
        _produce(c.producer, topic, min(2000, messages), partitions)  # warm-up: connections, metadata
    _wait("leaders spread over the brokers", _leaders_spread(cluster, partitions), 60)
    for c in clients.values():
        _produce(c.producer, topic, 10, partitions)  # the clients learn the moved leaders
    results: dict[str, list[tuple[float, list[float], float, int]]] = {name: [] for name in clients}
    for r in range(rounds):
        for name, c in clients.items():
            results[name].append(c.run(topic, messages, partitions))
            mbs, _, cpu_s, woke = results[name][-1]
            print(
                f"round {r + 1}/{rounds} {name}: {mbs:.1f} MB/s, client CPU {cpu_s:.2f} s, {woke:,} wakeups"
            )
    one = _sequential(clients["idempotent"].producer, topic, 500, partitions)
    ms = 1000
    rows: list[Row] = []
    for name, label in (("plain", "librdkafka defaults"), ("idempotent", "idempotent producer")):
        runs = results[name]
        rates = [x[0] for x in runs]
        latencies = [v for x in runs for v in x[1]]
        rows += [
            (
                f"produce 1 KiB acks=all, {partitions} partitions RF=3, {label}, "
                f"{messages:,} records x{rounds}: MB/s median (min-max)",
                f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})",
            ),
            ("  produce->ack p50 / p99, all enqueued at once (ms, mostly queueing)", _p50_p99(latencies, ms)),
            (
                "  client: CPU s per round / librdkafka broker-thread wakeups per round (medians)",
                f"{statistics.median(x[2] for x in runs):.2f} / {statistics.median(x[3] for x in runs):,.0f}",
            ),
        ]
    rows.append(("produce->ack p50 / p99, one record in flight, idempotent (ms)", _p50_p99(one, ms, 1)))
    return rows


def _p50_p99(values: list[float], scale: float, digits: int = 0) -> str:
    return f"{_percentile(values, 0.5) * scale:.{digits}f} / {_percentile(values, 0.99) * scale:.{digits}f}"


def _healthy(cluster: Cluster) -> bool:
    if not all(b.running for b in cluster.brokers.values()):
        return False
    return (
        _metric_sum(cluster, "streamraft_under_replicated_partitions") == 0
        and _metric_sum(cluster, "streamraft_leaderless_partitions") == 0
    )


def _acked_after(acked: list[tuple[float, float]], t: float) -> Callable[[], bool]:
    return lambda: any(sent >= t for sent, _ in acked)


def failover(
    cluster: Cluster, kills: int, client: dict[str, str], settle: float, wait_client: bool
) -> list[Row]:
    topic = "bench-failover"
    create_topic(cluster, topic, 1)
    states: dict[int, str] = {}

    def on_stats(raw: str) -> None:
        brokers = json.loads(raw)["brokers"].values()
        states.clear()
        states.update({int(b["nodeid"]): str(b["state"]) for b in brokers if int(b["nodeid"]) > 0})

    conf = {
        "bootstrap.servers": cluster.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 0,
        "statistics.interval.ms": 100,
        "stats_cb": on_stats,
        # A connection to every broker, not only to those it needs now, so "reconnected" is observable.
        "enable.sparse.connections": False,
    }
    producer = Producer({**conf, **client})
    acked: list[tuple[float, float]] = []
    errors: list[Any] = []

    def client_connected() -> bool:
        return all(states.get(n) == "UP" for n in cluster.brokers)

    def pump(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            sent = time.monotonic()

            def on_delivery(err: Any, _msg: Any, sent: float = sent) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    acked.append((sent, time.monotonic()))

            with contextlib.suppress(BufferError):
                producer.produce(topic, b"f" * RECORD, partition=0, on_delivery=on_delivery)
            producer.poll(0.002)

    gaps: list[float] = []
    elected: list[float] = []
    for k in range(kills):
        _wait("cluster healthy", lambda: _healthy(cluster), 60)
        pump(0.5 + settle)
        if wait_client:
            pump(CLIENT_WAIT_S, client_connected)
            print(f"client connections before kill {k + 1}: {dict(sorted(states.items()))}", flush=True)
        victim = partition_leader(producer, topic, 0)
        survivor = min(n for n in cluster.brokers if n != victim)
        probe = _LeaderProbe(f"127.0.0.1:{cluster.kafka_ports[survivor]}", topic, victim)
        killed = time.monotonic()
        cluster.brokers[victim].kill()
        probe.start()
        pump(30, _acked_after(acked, killed))
        probe.join(30)
        if probe.named_at is not None:
            elected.append(probe.named_at - killed)
        after = [a for s, a in acked if s >= killed]
        if not after:
            raise TimeoutError(
                f"kill {k + 1}: no produce acknowledged within 30 s of killing broker {victim}"
            )
        gaps.append(min(after) - killed)
        at = time.time() - (time.monotonic() - killed)
        wall = time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"
        named = f"{elected[-1]:.3f} s" if probe.named_at is not None else "not seen"
        print(
            f"kill {k + 1}/{kills}: broker {victim} at {wall}, new leader in broker {survivor}'s Metadata "
            f"after {named}, first ack after {gaps[-1]:.3f} s",
            flush=True,
        )
        acked.clear()
        cluster.brokers[victim].start()
    assert producer.flush(60) == 0
    assert not errors, errors[:3]
    return [
        (f"failover, SIGKILL of the leader x{kills}: first ack p50 (s)", f"{statistics.median(gaps):.3f}"),
        ("  p90 (s)", f"{_percentile(gaps, 0.9):.3f}"),
        ("  max (s)", f"{max(gaps):.3f}"),
        ("  min (s)", f"{min(gaps):.3f}"),
        (
            f"  new leader named by a survivor's Metadata ({len(elected)} of {kills}): p50 / max (s)",
            f"{statistics.median(elected):.3f} / {max(elected):.3f}" if elected else "-",
        ),
    ]


class _LeaderProbe(threading.Thread):
    """Asks one surviving broker's Metadata, over a connection opened before the kill, until it names a
    leader other than the victim: the cluster's own failover time, without the producer's reconnect
    backoff and metadata scans (librdkafka re-bootstraps when its only connection was to the dead leader)."""

    def __init__(self, bootstrap: str, topic: str, victim: int) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.victim = victim
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.admin.list_topics(topic, timeout=10)  # connected before the kill
        self.named_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                md = self.admin.list_topics(self.topic, timeout=2)
            except KafkaException:
                continue
            t = md.topics.get(self.topic)
            leader = t.partitions[0].leader if t is not None and 0 in t.partitions else -1
            if leader not in (-1, self.victim):
                self.named_at = time.monotonic()
                return


def _all_led(cluster: Cluster, at_least: int) -> Callable[[], bool]:
    def check() -> bool:
        hosted = _hosted(cluster)
        return hosted >= at_least and _metric_sum(cluster, "streamraft_partitions_led") == hosted

    return check


def _idle_usage(cluster: Cluster, window: float) -> tuple[list[float], list[float]]:
    procs = {n: psutil.Process(b.pid) for n, b in cluster.brokers.items() if b.pid is not None}
    before = {n: p.cpu_times() for n, p in procs.items()}
    start = time.monotonic()
    time.sleep(window)  # the measured window itself: nothing to wait for
    took = time.monotonic() - start
    cpu = []
    rss = []
    for n, p in sorted(procs.items()):
        t = p.cpu_times()
        cpu.append(100 * (t.user + t.system - before[n].user - before[n].system) / took)
        rss.append(p.memory_info().rss / (1 << 20))
    return cpu, rss


def _hosted(cluster: Cluster) -> int:
    """Partitions broker 1 hosts: with RF=3 on 3 brokers, every partition of every topic (internal too)."""
    return len(scrape(cluster.brokers[1].metrics_port).get("streamraft_raft_term", []))


def idle(cluster: Cluster, window: float) -> list[Row]:
    rows: list[Row] = []
    for target in (10, 1000):
        hosted = _hosted(cluster)
        if hosted < target:
            create_topic(cluster, f"bench-idle-{target}", target - hosted)
        _wait(f">= {target} partitions, each led once", _all_led(cluster, target), 180)
        hosted = _hosted(cluster)
        _wait("no leaderless partition", lambda: _healthy(cluster), 120)
        time.sleep(5)  # settle: idle groups quiesce after 30 ticks (1.5 s); no condition to poll from outside
        cpu, rss = _idle_usage(cluster, window)
        label = f"{hosted} partitions RF=3 idle: CPU % of one core per broker"
        rows.append((label, " / ".join(f"{c:.1f}" for c in cpu)))
        rows.append(("  RSS per broker (MiB)", " / ".join(f"{r:.0f}" for r in rss)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=150_000)
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per producer kind (alternating)")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--window", type=float, default=20.0, help="idle CPU measurement window in seconds")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: throughput,failover,idle")
    ap.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka setting for the failover producer (repeatable), e.g. debug=metadata,broker",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds more of producing between a healed cluster and the next kill (default 0: kill at once)",
    )
    ap.add_argument(
        "--no-client-wait",
        action="store_true",
        help="kill once the cluster healed, without waiting for the producer to reconnect to every broker",
    )
    ap.add_argument("--log-dir", type=Path, help="keep the brokers' data and logs here (default: a temp dir)")
    args = ap.parse_args()
    assert 1 <= args.messages <= MAX_MESSAGES, args.messages
    assert 1 <= args.kills <= MAX_KILLS, args.kills
    assert 1 <= args.rounds <= MAX_ROUNDS, args.rounds
    assert 1 <= args.window <= 600, args.window
    assert 0 <= args.settle <= 120, args.settle
    skip = {s for s in args.skip.split(",") if s}
    assert skip <= {"throughput", "failover", "idle"}, skip
    rows: list[Row] = []
    load = psutil.getloadavg()
    with contextlib.ExitStack() as stack:
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=False)
            base = args.log_dir
        else:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cluster = Cluster(base, 3)
        for b in cluster.brokers.values():
            b.metrics = True
        with cluster:
            if "throughput" not in skip:
                rows += throughput(cluster, args.messages, args.rounds)
            if "failover" not in skip:
                client = dict(kv.split("=", 1) for kv in args.client)
                rows += failover(cluster, args.kills, client, args.settle, not args.no_client_wait)
            if "idle" not in skip:
                rows += idle(cluster, args.window)
    rows.append(("load average before / after", f"{load[0]:.2f} / {psutil.getloadavg()[0]:.2f}"))
    width = max(len(name) for name, _ in rows)
    print(f"{'figure (3 brokers, RF=3, acks=all)':<{width}}  value")
    for name, val in rows:
        print(f"{name:<{width}}  {val}")


if __name__ == "__main__":
    main()
