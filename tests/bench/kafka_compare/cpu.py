"""CPU per byte, side by side: the broker processes' CPU seconds (user + system, from /proc through psutil)
per GiB produced at acks=all to an RF=3 topic, Apache Kafka beside Streamraft, both 3-node clusters on
loopback.

    python -m tests.bench.kafka_compare.cpu [--records N] [--runs N] [--out DIR]

Each round: a fresh 3-partition topic, Kafka's own ProducerPerformance (1 KiB records, linger 5 ms, 128 KiB
batches, as the throughput rows), and the sum over the three broker processes of their CPU time before
and after, divided by the GiB the tool reported sent. The first round is a warm-up (Kafka's JIT) and is
not reported; the systems alternate which goes first. Prints ``figure | Kafka | Streamraft | ratio``
(lower is better for CPU) and writes cpu_compare.json into --out. The client's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.bench.kafka_compare import workloads as w
from tests.bench.kafka_compare.report import Results
from tests.bench.kafka_compare.systems import Running, start_kafka, start_streamraft

RECORD_SIZE = 1024


def log(msg: str) -> None:
    print(f"[cpu_compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (their threads included) so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def one_round(system: Running, records: int, res: Results | None) -> None:
    topic = w.new_topic(system, "cpu", 3)
    pids = system.current_pids()
    before = cpu_seconds(pids)
    result = w.produce_java(system, topic, RECORD_SIZE, "all", records)
    used = cpu_seconds(pids) - before
    gib = records * RECORD_SIZE / 2**30
    log(f"{system.name}: {result.mb_per_s:.1f} MB/s, {used:.1f} CPU s for {gib:.2f} GiB")
    if res is not None:
        res.add(
            system.name, "broker CPU per GiB produced, acks=all RF 3", "CPU s/GiB", used / gib, higher=False
        )
        res.add(system.name, "produce acks=all 1 KiB (same runs)", "MB/s", result.mb_per_s, higher=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records per round (1 KiB each)")
    ap.add_argument("--runs", type=int, default=3, help="measured rounds per system, after one warm-up")
    ap.add_argument("--out", type=Path, default=Path("tests/bench/kafka_compare/results"))
    args = ap.parse_args(argv)
    if not 10_000 <= args.records <= 5_000_000 or not 1 <= args.runs <= 10:
        ap.error("--records must be 10,000..5,000,000 and --runs 1..10")
    res = Results()
    res.meta = {"records": args.records, "runs": args.runs, "record_size": RECORD_SIZE}
    kafka = start_kafka()
    try:
        streamraft = start_streamraft()
        try:
            systems = [kafka, streamraft]
            for run in range(args.runs + 1):
                for s in systems if run % 2 == 0 else systems[::-1]:
                    log(f"round {run} ({'warm-up' if run == 0 else 'measured'}): {s.name}")
                    one_round(s, args.records, res if run else None)
        finally:
            streamraft.close()
    finally:
        kafka.close()
    print(res.table())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_compare.txt").write_text(res.table() + "\n")
    with tempfile.TemporaryDirectory() as tmp:  # Results.dump names its file kafka_compare.json
        shutil.move(res.dump(Path(tmp)), args.out / "cpu_compare.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
