"""The open-loop latency harness: intended send times (coordinated omission), warm-up exclusion, HDR
merging, and its floor through a loopback relay."""

from __future__ import annotations

import time
from pathlib import Path

from tests.bench.kafka_compare.latency import (
    MEASURED,
    new_histogram,
    record_arrivals,
    record_us,
    relay_open_loop,
    run_schedule,
)
from tests.bench.kafka_compare.report import Results, curve_percentiles


def test_a_stalled_sender_is_charged_to_every_record_scheduled_during_the_stall() -> None:
    # 1,000 records/s for 0.5 s; the sender blocks 200 ms once, at the 100th record. Latency from the
    # intended time charges the stall to the ~200 records that were due during it; latency from the moment
    # send() was called would record a single slow record (or none).
    hist = new_histogram()
    calls = 0

    def send(value: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 100:
            time.sleep(0.2)
        if value[20:21] == MEASURED:
            record_us(hist, time.monotonic_ns() - int(value[:20]))

    measured = run_schedule(send, lambda: None, rate_per_s=1000, warmup_s=0.05, seconds=0.5, record_size=64)
    assert measured == 500 and hist.get_total_count() == 500  # the 50 warm-up records are left out
    # ~150 of the 500 measured records were due 50-200 ms before the stalled sender got to them.
    assert hist.get_value_at_percentile(75) >= 50_000, hist.get_value_at_percentile(75)
    assert hist.get_max_value() >= 190_000


def test_record_arrivals_counts_only_measured_records() -> None:
    now = time.monotonic_ns()
    batches = [[b"%020d" % (now - 5_000_000) + b"W", b"%020d" % (now - 3_000_000) + b"M"], []]
    hist = new_histogram()
    got = record_arrivals(lambda _t: batches.pop(0) if batches else [], hist, expect=1, deadline_s=5)
    assert got == 1 and hist.get_total_count() == 1
    assert 3_000 <= hist.get_min_value() < 1_000_000  # microseconds: from the intended time, 3 ms ago


def test_runs_merge_into_one_curve_and_survive_a_dump(tmp_path: Path) -> None:
    fast, slow = new_histogram(), new_histogram()
    for _ in range(99):
        record_us(fast, 1_000_000)  # 1 ms
    record_us(slow, 100_000_000)  # 100 ms
    r = Results()
    r.latency_curves["Kafka 1 MB/s"] = {"hdr": [fast.encode().decode(), slow.encode().decode()]}
    back = Results.load(r.dump(tmp_path))
    p50, p99, top = curve_percentiles(back.latency_curves["Kafka 1 MB/s"], [0.5, 0.99, 1.0]) or []
    assert abs(p50 - 1.0) < 0.01 and abs(p99 - 1.0) < 0.01 and abs(top - 100.0) < 0.1


def test_relay_floor_reads_back_every_record() -> None:
    r = relay_open_loop(1.0, seconds=1.0, warmup_s=0.2)
    assert r.sent == 1024 and r.received == r.sent and r.send_errors == 0
    # The harness alone on a quiet machine: well under a millisecond at p50; loose for a shared one.
    assert r.p50_ms < 50, r
