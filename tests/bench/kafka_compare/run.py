"""Side-by-side benchmark: Apache Kafka (3-node KRaft) vs Streamraft, same workloads, A B A B.

    python -m tests.bench.kafka_compare.run [--quick] [--runs N] [--kills N] [--fsync] [--out DIR]

Prints ``figure | Kafka | Streamraft | ratio`` on stdout, progress on stderr, and writes
bench-results/kafka_compare/kafka_compare.json (every run) plus PNG plots beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.bench.kafka_compare import workloads as w
from tests.bench.kafka_compare.report import Results
from tests.bench.kafka_compare.systems import Running, Unavailable, start_kafka, start_streamraft
from tests.javakafka.fetch import KAFKA_VERSION, fetch


@dataclass(frozen=True)
class Plan:
    runs: int
    produce_records_1k: int
    produce_records_100b: int
    latency_rates: tuple[float, ...]
    latency_seconds: float
    kills: int
    failover_budget_s: float


QUICK = Plan(3, 20_000, 100_000, (1.0, 5.0, 20.0), 4.0, 5, 300.0)
FULL = Plan(5, 200_000, 1_000_000, (1.0, 5.0, 20.0), 20.0, 20, 1200.0)


def log(msg: str) -> None:
    print(f"[kafka_compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _one_run(sys_: Running, plan: Plan, res: Results, run_idx: int) -> dict[str, Any]:
    name = sys_.name
    rec: dict[str, Any] = {"system": name, "run": run_idx, "start_to_ready_s": sys_.start_to_ready_s}
    res.add(name, "start to ready (cluster)", "s", sys_.start_to_ready_s, higher=False)
    idle = sys_.rss_mib()
    rec["rss_idle_mib"] = idle
    if idle:
        res.add(name, "RSS per broker, idle", "MiB", statistics.mean(idle), higher=False)

    peak: list[float] = []

    def sample_rss() -> None:
        vals = sys_.rss_mib()
        if vals:
            peak.append(max(vals))

    for size, count in ((1024, plan.produce_records_1k), (100, plan.produce_records_100b)):
        for acks in ("all", "1"):
            label = f"{'1KiB' if size == 1024 else '100B'} acks={acks}"
            topic = w.new_topic(sys_, "thr", 3)
            log(f"{name} run {run_idx}: ProducerPerformance {label} x{count}")
            t = w.produce_java(sys_, topic, size, acks, count)
            sample_rss()
            res.add(name, f"produce {label} (Java perf)", "MB/s", t.mb_per_s, higher=True)
            rec[f"java {label}"] = t.__dict__
            log(f"{name} run {run_idx}: confluent-kafka {label} x{count}")
            t2 = w.produce_confluent(sys_, topic, size, acks, count)
            sample_rss()
            res.add(name, f"produce {label} (confluent)", "MB/s", t2.mb_per_s, higher=True)
            rec[f"confluent {label}"] = t2.__dict__
            if size == 1024 and acks == "all":
                log(f"{name} run {run_idx}: ConsumerPerformance x{2 * count}")
                c = w.consume_java(sys_, topic, 2 * count)
                res.add(name, "consume 1KiB (Java perf)", "MB/s", c.mb_per_s, higher=True)
                rec["consume 1KiB"] = c.__dict__
    if peak:
        res.add(name, "RSS per broker, under load", "MiB", max(peak), higher=False, agg="median")
        rec["rss_load_peak_mib"] = max(peak)

    for rate in plan.latency_rates:
        topic = w.new_topic(sys_, "e2e", 1)
        log(f"{name} run {run_idx}: e2e latency at {rate:g} MB/s for {plan.latency_seconds:g}s")
        lat, samples = w.e2e_latency(sys_, topic, rate, plan.latency_seconds)
        rec[f"e2e {rate:g}MB/s"] = lat.__dict__
        if lat.received < lat.sent:
            log(f"{name}: only {lat.received}/{lat.sent} records seen by the e2e consumer")
        for q, v in (("p50", lat.p50_ms), ("p99", lat.p99_ms), ("p99.9", lat.p999_ms)):
            res.add(name, f"e2e latency {rate:g} MB/s {q}", "ms", v, higher=False)
        curve = res.latency_curves.setdefault(f"{name} {rate:g} MB/s", {"samples_ms": []})
        curve["samples_ms"].extend(samples)
    return rec


def _start(name: str, fsync: bool, kafka_nodes: int) -> Running:
    return start_kafka(fsync, kafka_nodes) if name == "Kafka" else start_streamraft(fsync)


def _failover(name: str, plan: Plan, fsync: bool, kafka_nodes: int, res: Results) -> None:
    label, unit = "failover: SIGKILL leader -> next acked produce", "s"
    try:
        sys_ = _start(name, fsync, kafka_nodes)
    except Unavailable as exc:
        for suffix in ("median", "max"):
            res.mark(name, f"{label} {suffix}", unit, f"n/a: {exc}", agg=suffix)
        return
    try:
        if not sys_.can_failover:
            for suffix in ("median", "max"):
                res.mark(name, f"{label} {suffix}", unit, f"n/a: {sys_.brokers} node(s)", agg=suffix)
            return
        log(f"{name}: failover, {plan.kills} leader kills")
        gaps = w.failover(sys_, plan.kills, plan.failover_budget_s)
        res.runs.append({"system": name, "failover_gaps_s": gaps})
        for g in gaps:
            res.add(name, label + " median", unit, g, higher=False)
            res.add(name, label + " max", unit, g, higher=False, agg="max")
    finally:
        sys_.close()


def _caveats(kafka_nodes: int, fsync: bool, meta: dict[str, Any]) -> str:
    rf = min(3, kafka_nodes)
    lines = [
        f"Kafka {KAFKA_VERSION}: {kafka_nodes} KRaft node(s), topics RF={rf}"
        + (", min.insync.replicas=2" if rf == 3 else "")
        + "; Streamraft: 1 node, RF=1 (replication has not landed)"
        + (" -- produce and latency figures are NOT like for like" if kafka_nodes != 1 else ""),
        f"fsync per batch: {'yes, both' if fsync else 'no (OS page cache, both defaults)'}; "
        f"{meta['cpus']} cores shared with other work, load average at start "
        f"{meta['loadavg_at_start'][0]:.1f}: absolute numbers are noisy, compare within a run",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts and fewer kills")
    ap.add_argument("--runs", type=int, default=None, help="runs per system (>= 3)")
    ap.add_argument("--kills", type=int, default=None, help="leader kills in the failover test")
    ap.add_argument("--fsync", action="store_true", help="both fsync every batch (topic flush.messages=1)")
    ap.add_argument(
        "--kafka-nodes",
        type=int,
        choices=(1, 3),
        default=3,
        help="1: like for like with 1-node Streamraft",
    )
    ap.add_argument("--failover-only", action="store_true", help="skip the A/B runs; only the kill loop")
    ap.add_argument("--out", type=Path, default=Path("bench-results") / "kafka_compare")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.runs is not None:
        if args.runs < 3:
            ap.error("--runs must be at least 3 (medians of fewer runs mean little)")
        plan = Plan(**{**plan.__dict__, "runs": args.runs})
    if args.kills is not None:
        if not 1 <= args.kills <= 100:
            ap.error("--kills must be between 1 and 100")
        # A kill cycle (detect, restart, re-sync) takes tens of seconds on a busy machine.
        budget = max(plan.failover_budget_s, 60.0 * args.kills)
        plan = Plan(**{**plan.__dict__, "kills": args.kills, "failover_budget_s": budget})

    fetch()
    res = Results()
    res.meta = {
        "kafka_version": KAFKA_VERSION,
        "plan": plan.__dict__,
        "fsync": args.fsync,
        "kafka_nodes": args.kafka_nodes,
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    unavailable: dict[str, str] = {}
    for run_idx in range(0 if args.failover_only else plan.runs):
        for name in ("Kafka", "Streamraft"):  # A B A B: drift on a shared machine hits both alike
            if name in unavailable:
                continue
            log(f"run {run_idx + 1}/{plan.runs}: starting {name}")
            try:
                sys_ = _start(name, args.fsync, args.kafka_nodes)
            except Unavailable as exc:
                unavailable[name] = str(exc)
                log(f"{name} unavailable: {exc}")
                continue
            try:
                res.runs.append(_one_run(sys_, plan, res, run_idx))
            finally:
                sys_.close()
    for name, why in unavailable.items():
        for f in list(res.figures.values()):
            f.notes.setdefault(name, f"n/a: {why}")
    for name in ("Kafka", "Streamraft"):
        _failover(name, plan, args.fsync, args.kafka_nodes, res)
    res.meta["loadavg_at_end"] = os.getloadavg()
    path = res.dump(args.out)
    pngs = res.plot(args.out)
    print(res.table())
    print(_caveats(args.kafka_nodes, args.fsync, res.meta))
    log(f"wrote {path} and {', '.join(str(p) for p in pngs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
