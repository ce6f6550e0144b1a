"""Open-loop end-to-end latency: records sent on a fixed schedule, arrivals recorded in HDR histograms.

Why open loop: a closed-loop sender (send, wait, send) slows down whenever the system does, so a stall
delays the records that would have been sent during it without counting their wait ("coordinated
omission"). Here record ``i`` is due at ``t0 + i / rate`` and carries that *intended* time in its payload;
latency = arrival - intended time, so a stall anywhere (sender, client, broker, consumer) is charged to
every record scheduled during it.

The harness floor (what it adds on its own) is kept low by: no client-side batching delay (librdkafka
``linger.ms=0``), Nagle off on every client socket, a consumer that returns the first fetched record at
once (``poll``, then drain without waiting: ``consume(n, timeout)`` would wait for ``n`` records or the
timeout), one arrival timestamp per fetched batch taken as ``poll`` returns, producer, consumer and
coordinator in separate processes (none competes with the others' interpreter), and CLOCK_MONOTONIC,
which is system-wide on Linux, shared by the producer and consumer processes.

Two transports use the same scheduler, payloads, processes and recording: Kafka (confluent-kafka against
either system) and a loopback TCP relay (a process that copies bytes from the producer's socket to the
consumer's), which measures the harness alone. See ``floor.py``.
"""

from __future__ import annotations

import array
import collections
import multiprocessing as mp
import multiprocessing.queues
import multiprocessing.synchronize
import queue
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from hdrh.histogram import HdrHistogram

# HDR range in microseconds: 1 us to 120 s, 3 significant digits (0.1% value precision).
HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS = 1, 120_000_000, 3

_HEADER = 21  # 20 decimal digits of the intended send time (monotonic ns) + one kind byte
MEASURED, WARMUP, PROBE = b"M", b"W", b"P"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def record_us(hist: HdrHistogram, latency_ns: int, count: int = 1) -> None:
    # Out-of-range values are clamped, not dropped: a lost percentile would flatter the result.
    hist.record_value(min(HDR_HIGHEST_US, max(HDR_LOWEST_US, latency_ns // 1000)), count)


def payload(intended_ns: int, kind: bytes, pad: bytes) -> bytes:
    return b"%020d" % intended_ns + kind + pad


def run_schedule(
    send: Callable[[bytes], None],
    service: Callable[[], None],
    *,
    rate_per_s: float,
    warmup_s: float,
    seconds: float,
    record_size: int,
) -> int:
    """Send ``rate_per_s`` records a second for ``warmup_s + seconds``; record ``i`` carries its intended
    time ``t0 + i / rate`` (not the time ``send`` was called: that is the coordinated-omission correction).
    Records of the first ``warmup_s`` are marked so the receiver leaves them out. A late sender catches up
    by sending every overdue record at once. ``service`` runs between bursts (client callbacks). Returns the
    number of measured records sent."""
    assert record_size >= _HEADER and rate_per_s > 0
    interval_ns = 1e9 / rate_per_s
    n_warm = int(rate_per_s * warmup_s)
    n_total = n_warm + int(rate_per_s * seconds)
    pad = b"x" * (record_size - _HEADER)
    t0 = time.monotonic_ns()
    i = 0
    while i < n_total:
        due = min(n_total, int((time.monotonic_ns() - t0) / interval_ns) + 1)
        while i < due:
            send(payload(t0 + round(i * interval_ns), MEASURED if i >= n_warm else WARMUP, pad))
            i += 1
        service()
        if i < n_total:
            wait_s = (t0 + i * interval_ns - time.monotonic_ns()) / 1e9
            if wait_s > 0:
                time.sleep(wait_s)
    return n_total - n_warm


def record_arrivals(
    receive: Callable[[float], list[bytes]], hist: HdrHistogram, expect: int, deadline_s: float
) -> int:
    """Receive until ``expect`` measured records arrived or ``deadline_s`` passed; each measured record's
    latency (arrival - intended time) goes into ``hist``. Returns how many measured records arrived.
    ``receive`` may return just each record's first 21 bytes. Latencies are kept in a flat array and put
    into the histogram after the run: the pure-Python HDR insert costs more per record than the rest of
    the loop, and at 50,000 records/s on two shared cores it would make the consumer the bottleneck."""
    lat = array.array("q")
    deadline = time.monotonic() + deadline_s
    while len(lat) < expect and time.monotonic() < deadline:
        batch = receive(0.05)
        arrived = time.monotonic_ns()  # once per batch: the moment the application holds the records
        lat.extend(arrived - int(v[:20]) for v in batch if v[20:21] == MEASURED)
    for latency_ns, count in collections.Counter(x // 1000 for x in lat).items():
        record_us(hist, latency_ns * 1000, count)
    return len(lat)


@dataclass(frozen=True)
class LatencyResult:
    rate_mb_s: float
    sent: int
    received: int
    send_errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    hdr: str  # the encoded histogram (microseconds), for merging runs and plotting

    @classmethod
    def of(cls, rate_mb_s: float, sent: int, received: int, errors: int, hist: HdrHistogram) -> LatencyResult:
        pct = hist.get_percentile_to_value_dict([50.0, 99.0, 99.9])
        return cls(
            rate_mb_s,
            sent,
            received,
            errors,
            pct[50.0] / 1000,
            pct[99.0] / 1000,
            pct[99.9] / 1000,
            hist.get_max_value() / 1000,
            hist.encode().decode(),
        )


def decode(hdr: str) -> HdrHistogram:
    return HdrHistogram.decode(hdr.encode())


# ---------- the processes: producer and consumer over Kafka, or over a loopback relay ----------

_Queue: TypeAlias = "multiprocessing.queues.Queue[tuple[str, Any]]"


@dataclass(frozen=True)
class Spec:
    """What both ends need: where to send (a Kafka bootstrap + topic, or a relay's port), and the schedule."""

    rate_mb_s: float
    warmup_s: float
    seconds: float
    record_size: int
    bootstrap: str = ""
    topic: str = ""
    relay_port: int = 0
    producer_conf: dict[str, str | int | bool] = field(default_factory=dict)  # overrides, for experiments
    consumer_conf: dict[str, str | int | bool] = field(default_factory=dict)

    @property
    def rate_per_s(self) -> float:
        return self.rate_mb_s * 2**20 / self.record_size

    @property
    def measured(self) -> int:
        return int(self.rate_per_s * self.seconds)


def _kafka_producer(spec: Spec, ready: multiprocessing.synchronize.Event, out: _Queue) -> None:
    errors = 0

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        nonlocal errors
        if err is not None:
            errors += 1

    p = Producer(
        {
            "bootstrap.servers": spec.bootstrap,
            "acks": "all",
            "linger.ms": 0,  # send at once; the default (5 ms) is a floor under every record
            "socket.nagle.disable": True,  # small requests are not held back waiting for an ACK
            # Java's default: what queues while 5 requests are out rides in the next one. librdkafka's
            # default (a million) sends every few records as their own request; at 1,000 records/s on a
            # busy machine that overran both systems' per-request work and built a queue of seconds.
            "max.in.flight": 5,
            "enable.idempotence": False,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            **spec.producer_conf,
        }
    )
    # Probe records until the consumer has fetched one, so connection set-up is not counted.
    deadline = time.monotonic() + 90
    while not ready.is_set():
        assert time.monotonic() < deadline, "latency consumer never received a probe record"
        p.produce(spec.topic, payload(0, PROBE, b""))
        p.flush(10)
        ready.wait(0.2)

    def send(value: bytes) -> None:
        while True:
            try:
                p.produce(spec.topic, value)
                return
            except BufferError:  # the client's queue is full: the records wait, and that is counted
                p.poll(0.001)
                assert time.monotonic() < deadline, "producer queue stuck full"

    deadline = time.monotonic() + spec.warmup_s + spec.seconds + 60
    sent = run_schedule(
        send,
        lambda: p.poll(0),
        rate_per_s=spec.rate_per_s,
        warmup_s=spec.warmup_s,
        seconds=spec.seconds,
        record_size=spec.record_size,
    )
    left = p.flush(30)
    out.put(("producer", (sent, errors + left)))


def _kafka_consumer(spec: Spec, ready: multiprocessing.synchronize.Event, out: _Queue) -> None:
    c = Consumer(
        {
            "bootstrap.servers": spec.bootstrap,
            "group.id": f"latency-{uuid.uuid4().hex[:6]}",  # never joined: the partition is assigned
            "enable.auto.commit": False,
            "socket.nagle.disable": True,
            # A long poll the broker answers as soon as a record is there (fetch.min.bytes=1); a shorter
            # wait would only add empty fetches competing for the same two cores.
            "fetch.wait.max.ms": 100,
            "fetch.min.bytes": 1,
            **spec.consumer_conf,
        }
    )
    c.assign([TopicPartition(spec.topic, 0, OFFSET_BEGINNING)])

    def receive(timeout_s: float) -> list[bytes]:
        first = c.poll(timeout_s)  # returns with the first record there is
        if first is None:
            return []
        values: list[bytes] = []
        for m in [first, *c.consume(num_messages=1000, timeout=0)]:  # drain what is queued, no waiting
            if m.error() is None:
                v = m.value()
                assert v is not None
                if v[20:21] == PROBE:
                    ready.set()
                values.append(v)
        return values

    hist = new_histogram()
    deadline = time.monotonic() + 90
    while not ready.is_set() and time.monotonic() < deadline:
        receive(0.1)
    got = record_arrivals(receive, hist, spec.measured, spec.warmup_s + spec.seconds + 60)
    c.close()
    out.put(("consumer", (got, hist.encode().decode())))


def _relay(out: _Queue) -> None:
    """The zero-work 'broker': accept the consumer, then the producer, and copy bytes between them."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        out.put(("relay", srv.getsockname()[1]))
        srv.settimeout(60)
        downstream, _ = srv.accept()
        upstream, _ = srv.accept()
    for s in (downstream, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream.settimeout(120)
    with downstream, upstream:
        while chunk := upstream.recv(1 << 20):
            downstream.sendall(chunk)


def _relay_producer(spec: Spec, ready: multiprocessing.synchronize.Event, out: _Queue) -> None:
    assert ready.wait(60), "relay consumer never connected"
    with socket.create_connection(("127.0.0.1", spec.relay_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending: list[bytes] = []  # the records due in one burst go out in one write, as a client batches

        def flush() -> None:
            if pending:
                s.sendall(b"".join(pending))
                pending.clear()

        sent = run_schedule(
            pending.append,
            flush,
            rate_per_s=spec.rate_per_s,
            warmup_s=spec.warmup_s,
            seconds=spec.seconds,
            record_size=spec.record_size,
        )
    out.put(("producer", (sent, 0)))


def _relay_consumer(spec: Spec, ready: multiprocessing.synchronize.Event, out: _Queue) -> None:
    with socket.create_connection(("127.0.0.1", spec.relay_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ready.set()
        buf = bytearray()
        size = spec.record_size

        def receive(timeout_s: float) -> list[bytes]:
            s.settimeout(timeout_s)
            try:
                chunk = s.recv(1 << 20)
            except TimeoutError:
                return []
            if not chunk:
                return []
            buf.extend(chunk)
            whole = len(buf) // size * size
            heads = [bytes(buf[i : i + _HEADER]) for i in range(0, whole, size)]  # all the recorder reads
            del buf[:whole]
            return heads

        hist = new_histogram()
        got = record_arrivals(receive, hist, spec.measured, spec.warmup_s + spec.seconds + 60)
    out.put(("consumer", (got, hist.encode().decode())))


def _run(
    spec: Spec,
    producer: Callable[[Spec, multiprocessing.synchronize.Event, _Queue], None],
    consumer: Callable[[Spec, multiprocessing.synchronize.Event, _Queue], None],
    *,
    with_relay: bool = False,
) -> LatencyResult:
    ctx = mp.get_context("spawn")
    out: _Queue = ctx.Queue()
    ready = ctx.Event()
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        if with_relay:
            relay = ctx.Process(target=_relay, args=(out,), daemon=True)
            relay.start()
            procs.append(relay)
            kind, port = out.get(timeout=60)
            assert kind == "relay"
            spec = Spec(**{**spec.__dict__, "relay_port": port})
        cons = ctx.Process(target=consumer, args=(spec, ready, out), daemon=True)
        cons.start()
        procs.append(cons)
        prod = ctx.Process(target=producer, args=(spec, ready, out), daemon=True)
        prod.start()
        procs.append(prod)
        results: dict[str, Any] = {}
        deadline = time.monotonic() + 2 * 90 + spec.warmup_s + spec.seconds + 60
        while len(results) < 2:
            left = deadline - time.monotonic()
            assert left > 0, f"latency run did not finish; got {sorted(results)}"
            try:
                kind, value = out.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [p.name for p in (cons, prod) if p.exitcode not in (None, 0)]
                assert not dead, f"latency process failed: {dead}"
                continue
            results[kind] = value
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
    sent, errors = results["producer"]
    got, encoded = results["consumer"]
    return LatencyResult.of(spec.rate_mb_s, sent, got, errors, decode(encoded))


def kafka_open_loop(
    bootstrap: str,
    topic: str,
    rate_mb_s: float,
    *,
    seconds: float,
    warmup_s: float = 1.0,
    record_size: int = 1024,
    producer_conf: dict[str, str | int | bool] | None = None,
    consumer_conf: dict[str, str | int | bool] | None = None,
) -> LatencyResult:
    """acks=all records of ``record_size`` bytes at ``rate_mb_s`` into partition 0 of ``topic``, read back
    by a consumer assigned to it, for ``warmup_s`` (not counted) + ``seconds``. ``*_conf`` override the
    clients' settings (to measure what a setting costs)."""
    spec = Spec(
        rate_mb_s,
        warmup_s,
        seconds,
        record_size,
        bootstrap=bootstrap,
        topic=topic,
        producer_conf=producer_conf or {},
        consumer_conf=consumer_conf or {},
    )
    return _run(spec, _kafka_producer, _kafka_consumer)


def relay_open_loop(
    rate_mb_s: float, *, seconds: float, warmup_s: float = 1.0, record_size: int = 1024
) -> LatencyResult:
    """The same schedule, processes and recording through a loopback TCP relay: the harness's own floor."""
    spec = Spec(rate_mb_s, warmup_s, seconds, record_size)
    return _run(spec, _relay_producer, _relay_consumer, with_relay=True)
