"""Partition-log benchmark: builds a multi-GiB log, then prints a table of append throughput (1 MiB produce
requests), clean and crash-recovery open() times, and fetch-read throughput.

    .venv/bin/python -m tests.bench.broker_log.bench_log                 # 2 GiB (default)
    .venv/bin/python -m tests.bench.broker_log.bench_log --size-gib 10   # the documented large run
    .venv/bin/python -m tests.bench.broker_log.bench_log --size-gib 0.25 --segment-mib 64  # quick look

Numbers on a shared 2-core CI machine are noisy; the table is for trends, not assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.checkpoint import RECOVERY_POINT_FILE
from streamraft_broker.records import SimpleRecord, build_batch, iter_batches

MIB = 1024 * 1024


def produce_request(batch_kib: int, request_mib: float, seed: int) -> bytes:
    """A produce request's records field: consecutive uncompressed batches of about ``batch_kib`` each."""
    rng = random.Random(seed)
    value = rng.randbytes(1000)
    per_batch = max(batch_kib * 1024 // 1030, 1)
    batches: list[bytes] = []
    total = 0
    while total < request_mib * MIB:
        records = [SimpleRecord(None, value) for _ in range(per_batch)]
        batch = build_batch(records, timestamp_ms=1_700_000_000_000 + len(batches))
        batches.append(batch)
        total += len(batch)
    return b"".join(batches)


def abandon(log: PartitionLog) -> None:
    """Stop using the log without the clean-close checkpoint, as a SIGKILL would."""
    for segment in log._segments:
        segment.close()
        segment.close_reader()


def timed_open(directory: Path, config: LogConfig) -> tuple[float, PartitionLog]:
    start = time.perf_counter()
    log = PartitionLog.open(directory, config)
    return time.perf_counter() - start, log


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=2.0, help="log size to build (default 2; try 10)")
    parser.add_argument("--segment-mib", type=int, default=1024, help="segment.bytes in MiB (default 1024)")
    parser.add_argument("--batch-kib", type=int, default=16, help="record batch size in KiB (default 16)")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the log directory afterwards")
    parser.add_argument("--full-scan", action="store_true", help="also time an open with no checkpoint")
    args = parser.parse_args()

    size = int(args.size_gib * 1024 * MIB)
    base = args.dir or Path(tempfile.mkdtemp(prefix="streamraft-bench-log-"))
    directory = base / "bench-0"
    free = shutil.disk_usage(base).free
    if free < size * 1.2:
        raise SystemExit(f"need {size * 1.2 / MIB:.0f} MiB free in {base}, have {free / MIB:.0f} MiB")
    config = LogConfig(segment_bytes=min(args.segment_mib * MIB, (1 << 31) - 1), retention_ms=None)
    request = produce_request(args.batch_kib, 1.0, seed=1)
    rows: list[tuple[str, str]] = []
    try:
        log = PartitionLog.open(directory, config)
        appended = 0
        append_s = 0.0
        while appended < size:
            start = time.perf_counter()
            log.append(request)
            append_s += time.perf_counter() - start
            appended += len(request)
        requests = appended // len(request)
        rows.append(("log size", f"{log.size_bytes / MIB:,.0f} MiB in {log.segment_count} segments"))
        rows.append(("batches per 1 MiB request", str(sum(1 for _ in iter_batches(request)))))
        rows.append(("append 1 MiB request (mean)", f"{append_s / requests * 1e3:.2f} ms"))
        rows.append(("append throughput", f"{appended / MIB / append_s:,.0f} MiB/s (page cache, flush=none)"))

        start = time.perf_counter()
        log.close()
        rows.append(("close (fsync + checkpoint)", f"{time.perf_counter() - start:.2f} s"))

        took, log = timed_open(directory, config)
        rows.append(
            ("open after clean close", f"{took * 1e3:.1f} ms (scanned {log.recovery_scanned_bytes} B)")
        )

        read_total = 0
        offset = log.log_start_offset
        start = time.perf_counter()
        while read_total < min(size, 1024 * MIB) and offset < log.log_end_offset:
            data = log.read_bytes(offset, MIB)
            read_total += len(data)
            for _, header in iter_batches(data):
                offset = header.next_offset
        took = time.perf_counter() - start
        rows.append(("fetch 1 MiB (read_bytes + header walk)", f"{read_total / MIB / took:,.0f} MiB/s"))

        tail = 0
        while tail < config.recovery_checkpoint_bytes - len(request):
            log.append(request)
            tail += len(request)
        abandon(log)
        took, log = timed_open(directory, config)
        scanned = log.recovery_scanned_bytes / MIB
        rows.append(
            ("open after crash (unflushed tail)", f"{took * 1e3:.1f} ms (CRC-scanned {scanned:.0f} MiB)")
        )
        if args.full_scan:
            abandon(log)
            os.remove(directory / RECOVERY_POINT_FILE)
            took, log = timed_open(directory, config)
            scanned = log.recovery_scanned_bytes / MIB
            rows.append(("open without any checkpoint", f"{took:.2f} s (CRC-scanned {scanned:,.0f} MiB)"))
        log.close()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}} | value")
    print(f"{'-' * width}-+-{'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
