"""The latency harness's own floor, and the same path measured by Kafka's own tool, on both systems.

    python -m tests.bench.kafka_compare.floor [--seconds S] [--records N] [--rates 1,5,20,50]
        [--systems Kafka,Streamraft] [--variants JSON]

1. relay: the open-loop harness of latency.py (same scheduler, payloads, processes, clock and HDR
   recording) through a loopback TCP relay process instead of a broker: what the harness adds on its own.
   A relay rather than an in-process echo because the real harness crosses processes (producer, broker,
   consumer), and the wake-ups and clock reads between processes are part of its floor.
2. EndToEndLatency: Kafka's own org.apache.kafka.tools.EndToEndLatency (Java client; one record at a time,
   produce acks=all, then poll until it arrives; linger.ms=0, fetch.max.wait.ms=0) on an RF=3 topic.
3. harness: latency.py's open loop against the same cluster at ``--harness-rates`` (the lowest, 0.05 MB/s =
   51 records/s, leaves the brokers nearly idle, as EndToEndLatency does): near 2., the harness adds
   little; far above it, the harness (or the Python client) is the floor.

``--variants`` takes a JSON list of [producer_conf, consumer_conf] overrides measured as extra rows of 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from tests.bench.kafka_compare import workloads as w
from tests.bench.kafka_compare.latency import LatencyResult, kafka_open_loop, relay_open_loop
from tests.bench.kafka_compare.systems import Running, start_kafka, start_streamraft
from tests.javakafka.fetch import fetch
from tests.javakafka.tools import END_TO_END_LATENCY, run_tool

_AVG = re.compile(r"Avg latency: ([\d.]+) ms")
_PCT = re.compile(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)")


def log(msg: str) -> None:
    print(f"[floor {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def row(what: str, r: LatencyResult) -> str:
    return (
        f"{what:<58} | p50 {r.p50_ms:8.2f} | p99 {r.p99_ms:8.2f} | p99.9 {r.p999_ms:8.2f}"
        f" | max {r.max_ms:8.2f} | {r.received}/{r.sent} read back"
    )


def end_to_end_latency(system: Running, records: int) -> str:
    topic = w.new_topic(system, "e2e-java", 1)
    out = run_tool(
        END_TO_END_LATENCY, [system.bootstrap, topic, str(records), "all", "1024"], timeout_s=300, fast=False
    ).stdout
    avg, pct = _AVG.search(out), _PCT.search(out)
    if avg is None or pct is None:
        raise RuntimeError(f"no latency lines in EndToEndLatency output:\n{out[-1500:]}")
    what = f"{system.name}: EndToEndLatency (Java), {records} records"
    return (
        f"{what:<58} | avg {avg.group(1)} ms"
        f" | p50 {pct.group(1)} | p99 {pct.group(2)} | p99.9 {pct.group(3)} ms (whole ms, as the tool prints)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per rate (1-60)")
    ap.add_argument(
        "--warmup", type=float, default=3.0, help="seconds sent first and not counted (JIT, connections)"
    )
    ap.add_argument("--records", type=int, default=2000, help="EndToEndLatency records (100-20000)")
    ap.add_argument("--rates", default="1,5,20,50", help="relay rates in MB/s")
    ap.add_argument("--harness-rates", default="0.05,1", help="rates in MB/s of the harness on each system")
    ap.add_argument("--systems", default="Kafka,Streamraft")
    ap.add_argument("--variants", default="[]", help="JSON [[producer_conf, consumer_conf], ...]")
    ap.add_argument("--skip-relay", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.seconds <= 60 or not 100 <= args.records <= 20000 or not 0 <= args.warmup <= 30:
        ap.error("--seconds must be in [1, 60], --warmup in [0, 30] and --records in [100, 20000]")
    rates = [float(r) for r in args.rates.split(",")]
    if not rates or not all(0 < r <= 200 for r in rates):
        ap.error("--rates must each be in (0, 200] MB/s")
    harness_rates = [float(r) for r in args.harness_rates.split(",")]
    if not harness_rates or not all(0 < r <= 200 for r in harness_rates):
        ap.error("--harness-rates must each be in (0, 200] MB/s")
    variants = json.loads(args.variants)
    systems = [s for s in args.systems.split(",") if s]
    if set(systems) - {"Kafka", "Streamraft"}:
        ap.error("--systems must name Kafka and/or Streamraft")

    lines = [f"load average at start {os.getloadavg()[0]:.1f} (2 shared cores: noisy)"]
    if not args.skip_relay:
        for rate in rates:
            log(f"relay at {rate:g} MB/s for {args.seconds:g}s")
            r = relay_open_loop(rate, seconds=args.seconds, warmup_s=args.warmup)
            lines.append(row(f"relay (harness alone), {rate:g} MB/s", r))
            print(lines[-1], flush=True)
    fetch()
    for name in systems:
        log(f"starting {name}")
        system = start_kafka() if name == "Kafka" else start_streamraft()
        try:
            lines.append(end_to_end_latency(system, args.records))
            print(lines[-1], flush=True)
            for rate in harness_rates:
                for pconf, cconf in [({}, {}), *variants]:
                    topic = w.new_topic(system, "e2e", 1)
                    r = kafka_open_loop(
                        system.bootstrap,
                        topic,
                        rate,
                        seconds=args.seconds,
                        warmup_s=args.warmup,
                        producer_conf=pconf,
                        consumer_conf=cconf,
                    )
                    extra = f" {json.dumps(pconf)} {json.dumps(cconf)}" if pconf or cconf else ""
                    lines.append(row(f"{name}: harness, {rate:g} MB/s{extra}", r))
                    print(lines[-1], flush=True)
        finally:
            system.close()
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
