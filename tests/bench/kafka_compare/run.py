"""Side-by-side benchmark: Apache Kafka vs Streamraft, both 3-node replicated clusters, A B A B.

    python -m tests.bench.kafka_compare.run [--quick] [--runs N] [--kills N] [--failover-only] [--out DIR]
        [--latency-only] [--rates 1,5,20,50] [--latency-seconds S]

Both: RF=3 topics, acks=all meaningful (Kafka min.insync.replicas=2; Streamraft commits on a Raft
majority), 1 GiB segments. Every throughput and latency row is measured twice: with each system's default
durability ("fsync: default") and with an fsync per batch ("fsync: per batch", topic flush.messages=1 on
both). Prints ``figure | Kafka | Streamraft | ratio`` on stdout, progress on stderr, and writes
kafka_compare.json (every run) plus PNG plots into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.bench.kafka_compare import workloads as w
from tests.bench.kafka_compare.latency import kafka_open_loop
from tests.bench.kafka_compare.report import Results
from tests.bench.kafka_compare.systems import Running, Unavailable, start_kafka, start_streamraft
from tests.javakafka.fetch import KAFKA_VERSION, fetch


@dataclass(frozen=True)
class Plan:
    runs: int
    produce_records_1k: int
    produce_records_100b: int
    latency_rates: tuple[float, ...]
    latency_seconds: float  # measured, per rate, after a warm-up of LATENCY_WARMUP_S that is left out
    kills: int
    failover_budget_s: float


QUICK = Plan(3, 20_000, 60_000, (1.0, 5.0, 20.0, 50.0), 4.0, 5, 600.0)
# Sized so three A B A B runs plus 20 kills per system fit in about 45 minutes on a shared 2-core machine.
FULL = Plan(3, 40_000, 120_000, (1.0, 5.0, 20.0, 50.0), 8.0, 20, 1500.0)
JIT_WARMUP_S = 8.0
LATENCY_WARMUP_S = 3.0  # left out of each rate: connections, and Kafka's JIT after a fresh start
DEFAULT, PER_BATCH = "fsync: default", "fsync: per batch"


def log(msg: str) -> None:
    print(f"[kafka_compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _produce_rows(
    sys_: Running,
    plan: Plan,
    res: Results,
    run_idx: int,
    rec: dict[str, Any],
    *,
    sample_rss: Callable[[], None],
) -> None:
    name = sys_.name
    cases: list[tuple[int, int, str, bool]] = [
        (1024, plan.produce_records_1k, "all", False),
        (1024, plan.produce_records_1k, "1", False),
        (100, plan.produce_records_100b, "all", False),
        (100, plan.produce_records_100b, "1", False),
        (1024, plan.produce_records_1k, "all", True),
    ]
    for size, count, acks, fsync in cases:
        mode = PER_BATCH if fsync else DEFAULT
        label = f"{'1KiB' if size == 1024 else '100B'} acks={acks}, {mode}"
        topic = w.new_topic(sys_, "thr", 3, fsync=fsync)
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
        if size == 1024 and acks == "all" and not fsync:
            log(f"{name} run {run_idx}: ConsumerPerformance x{2 * count}")
            c = w.consume_java(sys_, topic, 2 * count)
            res.add(name, "consume 1KiB (Java perf)", "MB/s", c.mb_per_s, higher=True)
            rec["consume 1KiB"] = c.__dict__


def _one_run(
    sys_: Running,
    plan: Plan,
    res: Results,
    run_idx: int,
    *,
    latency_only: bool = False,
    producer_conf: dict[str, str | int | bool] | None = None,
) -> dict[str, Any]:
    name = sys_.name
    rec: dict[str, Any] = {"system": name, "run": run_idx, "start_to_ready_s": sys_.start_to_ready_s}
    res.add(name, "start to ready (3-node cluster)", "s", sys_.start_to_ready_s, higher=False)
    idle = sys_.rss_mib()
    rec["rss_idle_mib"] = idle
    if idle:
        res.add(name, "RSS per broker, idle", "MiB", statistics.mean(idle), higher=False)

    peak: list[float] = []

    def sample_rss() -> None:
        vals = sys_.rss_mib()
        if vals:
            peak.append(max(vals))

    if not latency_only:
        _produce_rows(sys_, plan, res, run_idx, rec, sample_rss=sample_rss)
    if peak:
        res.add(name, "RSS per broker, peak under load", "MiB", max(peak), higher=False)
        rec["rss_load_peak_mib"] = max(peak)
    _latency_rows(sys_, plan, res, run_idx, rec, jit_warmup=latency_only, producer_conf=producer_conf or {})
    return rec


def _latency_rows(
    sys_: Running,
    plan: Plan,
    res: Results,
    run_idx: int,
    rec: dict[str, Any],
    *,
    jit_warmup: bool,
    producer_conf: dict[str, str | int | bool],
) -> None:
    """Open-loop end-to-end latency (latency.py): fixed rates, HDR histograms, intended send times."""
    name = sys_.name
    if jit_warmup:
        # Alone, the latency rows would meet a JVM that has only just started (interpreted code, no
        # C2-compiled hot paths yet); the produce rows warm it otherwise. Unmeasured, both systems alike.
        topic = w.new_topic(sys_, "warm", 1)
        log(f"{name} run {run_idx}: unmeasured warm-up load, 5 MB/s for {JIT_WARMUP_S:g}s")
        kafka_open_loop(
            sys_.bootstrap, topic, 5.0, seconds=1.0, warmup_s=JIT_WARMUP_S, producer_conf=producer_conf
        )
    latency_cases = [(rate, False) for rate in plan.latency_rates] + [(5.0, True)]
    for rate, fsync in latency_cases:
        mode = PER_BATCH if fsync else DEFAULT
        topic = w.new_topic(sys_, "e2e", 1, fsync=fsync)
        log(f"{name} run {run_idx}: e2e latency at {rate:g} MB/s ({mode}) for {plan.latency_seconds:g}s")
        lat = kafka_open_loop(
            sys_.bootstrap,
            topic,
            rate,
            seconds=plan.latency_seconds,
            warmup_s=LATENCY_WARMUP_S,
            producer_conf=producer_conf,
        )
        rec[f"e2e {rate:g}MB/s {mode}"] = {k: v for k, v in lat.__dict__.items() if k != "hdr"}
        if lat.received < lat.sent or lat.send_errors:
            log(f"{name}: {lat.received}/{lat.sent} records read back, {lat.send_errors} send errors")
        label = f"e2e latency (open loop) {rate:g} MB/s, {mode}"
        for q, v in (("p50", lat.p50_ms), ("p99", lat.p99_ms), ("p99.9", lat.p999_ms)):
            res.add(name, f"{label}, {q}", "ms", v, higher=False)
        res.add(name, f"{label}, max", "ms", lat.max_ms, higher=False, agg="max")
        res.latency_curves.setdefault(f"{name} {rate:g} MB/s {mode}", {"hdr": []})["hdr"].append(lat.hdr)


def _start(name: str, attempts: int = 3) -> Running:
    """Start a fresh cluster; a start that fails (e.g. a picked free port taken by another process before
    the JVM bound it, on a busy shared machine) is retried on new ports, and logged."""
    for attempt in range(1, attempts + 1):
        try:
            return start_kafka() if name == "Kafka" else start_streamraft()
        except Unavailable:
            raise
        except Exception as exc:
            log(f"{name}: start attempt {attempt}/{attempts} failed: {str(exc)[:300]}")
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _failover(name: str, plan: Plan, res: Results) -> None:
    label, unit = "failover: SIGKILL leader -> next acked produce, default timeouts", "s"
    try:
        sys_ = _start(name)
    except Unavailable as exc:
        for suffix in ("p50", "max"):
            res.mark(
                name, f"{label}, {suffix}", unit, f"n/a: {exc}", agg="max" if suffix == "max" else "median"
            )
        return
    try:
        log(f"{name}: failover, {plan.kills} leader kills (budget {plan.failover_budget_s:g}s)")
        gaps: list[float] = []
        try:
            w.failover(sys_, plan.kills, plan.failover_budget_s, log, gaps=gaps)
        except Exception as exc:  # keep the kills measured so far; the table says how many there were
            log(f"{name}: failover loop stopped after {len(gaps)} kills: {exc}")
        res.runs.append({"system": name, "failover_gaps_s": gaps})
        for g in gaps:
            res.add(name, f"{label}, p50", unit, g, higher=False)
            res.add(name, f"{label}, max", unit, g, higher=False, agg="max")
    finally:
        sys_.close()


def _caveats(meta: dict[str, Any]) -> str:
    lines = [
        f"Both: 3 nodes on one machine, topics RF=3, acks=all, 1 GiB segments. Kafka {KAFKA_VERSION} KRaft "
        "(combined broker+controller), min.insync.replicas=2. Streamraft --replication raft.",
        "fsync: default = Kafka: none (page cache; durability from replication) / Streamraft: Raft log "
        "fsynced (group commit) on a majority before the ack, partition log left to the page cache.",
        "fsync: per batch = topic flush.messages=1 on both: Kafka fsyncs every appended batch on every "
        "replica; Streamraft additionally fsyncs the partition log after every applied batch.",
        f"{meta['cpus']} cores shared with other work, load average at start "
        f"{meta['loadavg_at_start'][0]:.1f}, at end {meta['loadavg_at_end'][0]:.1f}: absolute numbers are "
        "noisy, compare within a run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts and fewer kills")
    ap.add_argument("--runs", type=int, default=None, help="runs per system (>= 3)")
    ap.add_argument("--kills", type=int, default=None, help="leader kills per system in the failover test")
    ap.add_argument("--failover-only", action="store_true", help="skip the A/B runs; only the kill loop")
    ap.add_argument("--no-failover", action="store_true", help="skip the kill loop")
    ap.add_argument(
        "--latency-only", action="store_true", help="only the open-loop latency rows (implies --no-failover)"
    )
    ap.add_argument("--rates", default=None, help="latency rates in MB/s, comma-separated (e.g. 1,5,20,50)")
    ap.add_argument(
        "--latency-producer-conf",
        default="{}",
        help="JSON of librdkafka settings over the latency producer's (e.g. '{\"linger.ms\": 5}')",
    )
    ap.add_argument("--latency-seconds", type=float, default=None, help="measured seconds per rate (1-60)")
    ap.add_argument("--systems", default="Kafka,Streamraft", help="comma-separated subset to run")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="add to the results already in --out (replacing re-measured rows)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench-results") / "kafka_compare")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.runs is not None:
        if not 3 <= args.runs <= 20:
            ap.error("--runs must be between 3 and 20 (medians of fewer runs mean little)")
        plan = Plan(**{**plan.__dict__, "runs": args.runs})
    if args.kills is not None:
        if not 1 <= args.kills <= 100:
            ap.error("--kills must be between 1 and 100")
        # A kill cycle (detect, restart, catch up) takes tens of seconds on a busy machine.
        budget = max(plan.failover_budget_s, 75.0 * args.kills)
        plan = Plan(**{**plan.__dict__, "kills": args.kills, "failover_budget_s": budget})
    if args.rates is not None:
        try:
            rates = tuple(float(r) for r in args.rates.split(","))
        except ValueError:
            ap.error(f"--rates must be numbers separated by commas, got {args.rates!r}")
        if not all(0 < r <= 200 for r in rates):
            ap.error("--rates must each be in (0, 200] MB/s")
        plan = Plan(**{**plan.__dict__, "latency_rates": rates})
    if args.latency_seconds is not None:
        if not 1 <= args.latency_seconds <= 60:
            ap.error("--latency-seconds must be between 1 and 60")
        plan = Plan(**{**plan.__dict__, "latency_seconds": args.latency_seconds})
    try:
        producer_conf = json.loads(args.latency_producer_conf)
    except json.JSONDecodeError as exc:
        ap.error(f"--latency-producer-conf is not JSON: {exc}")
    if not isinstance(producer_conf, dict):
        ap.error("--latency-producer-conf must be a JSON object")
    if args.latency_only:
        args.no_failover = True
    if args.failover_only and args.no_failover:
        ap.error("--failover-only and --no-failover exclude each other")

    systems = tuple(n for n in ("Kafka", "Streamraft") if n in args.systems.split(","))
    if not systems or set(args.systems.split(",")) - set(systems):
        ap.error(f"--systems must name Kafka and/or Streamraft, got {args.systems!r}")

    fetch()
    res = Results()
    merged_from = args.out / "kafka_compare.json"
    if args.merge:
        if not merged_from.exists():
            ap.error(f"--merge: no earlier results in {merged_from}")
        res = Results.load(merged_from)
        res.meta.setdefault("merged_runs", []).append(
            {"argv": sys.argv[1:], "loadavg_at_start": os.getloadavg(), "started": time.strftime("%H:%M:%SZ")}
        )
        if not args.no_failover:
            for f in res.figures.values():  # this run re-measures failover for these systems
                if f.name.startswith("failover"):
                    for name in systems:
                        f.samples[name] = []
                        f.notes.pop(name, None)
    else:
        res.meta = {
            "kafka_version": KAFKA_VERSION,
            "latency_producer_conf": producer_conf,
            "plan": plan.__dict__,
            "nodes": 3,
            "cpus": os.cpu_count(),
            "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "loadavg_at_start": os.getloadavg(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    unavailable: dict[str, str] = {}
    for run_idx in range(0 if args.failover_only else plan.runs):
        for name in systems:  # A B A B: drift on a shared machine hits both alike
            if name in unavailable:
                continue
            log(f"run {run_idx + 1}/{plan.runs}: starting {name} (load average {os.getloadavg()[0]:.1f})")
            try:
                sys_ = _start(name)
            except Unavailable as exc:
                unavailable[name] = str(exc)
                log(f"{name} unavailable: {exc}")
                continue
            try:
                res.runs.append(
                    _one_run(
                        sys_, plan, res, run_idx, latency_only=args.latency_only, producer_conf=producer_conf
                    )
                )
            except Exception as exc:  # one failed run must not lose the others: logged, run left out
                log(f"{name} run {run_idx}: FAILED, left out of the medians: {exc!r}")
                res.runs.append({"system": name, "run": run_idx, "failed": repr(exc)})
            finally:
                sys_.close()
            res.dump(args.out)  # partial results survive a later crash
    for name, why in unavailable.items():
        for f in list(res.figures.values()):
            f.notes.setdefault(name, f"n/a: {why}")
    if not args.no_failover:
        for name in systems:
            try:
                _failover(name, plan, res)
            except Exception as exc:
                log(f"{name}: failover not measured: {exc!r}")
            res.dump(args.out)
    res.meta["loadavg_at_end"] = os.getloadavg()
    res.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = res.dump(args.out)
    pngs = res.plot(args.out)
    table = res.table() + "\n" + _caveats(res.meta)
    (args.out / "table.txt").write_text(table + "\n")
    print(table)
    log(f"wrote {path}, {args.out / 'table.txt'} and {', '.join(str(p) for p in pngs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
