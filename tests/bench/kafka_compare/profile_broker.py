"""Profile the brokers of a 3-node replicated Streamraft cluster under produce/consume load (pyinstrument).

    python -m tests.bench.kafka_compare.profile_broker [--records 60000] [--out DIR]

Every broker runs under ``python -m pyinstrument`` (statistical sampling of the main thread, where the
asyncio loop runs the Kafka handlers, Raft and the logs; gRPC's own threads are not sampled). The load is
a 1 KiB acks=all producer to a 3-partition RF=3 topic (every broker leads one partition once leaders are
spread, and follows the other two) with a consumer reading the same topic. The brokers are then SIGTERMed
(a graceful stop lets pyinstrument write its session). Prints self time by code area and the top
functions across the cluster (idle epoll and start-up imports set apart) into summary.txt, and each
broker's pyinstrument tree beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from pyinstrument.frame import Frame
from pyinstrument.session import Session

from tests.support.broker_process import BrokerProcess
from tests.support.launcher import Cluster, create_topic

MAX_RECORDS = 1_000_000
RECORD = 1024
PARTITIONS = 3


class ProfiledBroker(BrokerProcess):
    """The same broker command, started under pyinstrument, its session saved on exit."""

    def __init__(self, base: BrokerProcess, session: Path) -> None:
        super().__init__(base.data_dir, node_id=base.node_id, extra_args=base.extra_args, metrics=True)
        self.session = session

    def command(self, ready_file: Path) -> list[str]:
        cmd = super().command(ready_file)
        assert cmd[:3] == [sys.executable, "-m", "streamraft_broker.cli"], cmd[:3]
        profiler = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(self.session)]
        return profiler + cmd[1:]


def _load(bootstrap: str, topic: str, records: int, timeout_s: float) -> tuple[float, int]:
    """Produce ``records`` (acks=all) while a consumer reads them back; returns (seconds, records read)."""
    stop = threading.Event()
    seen = [0]

    def consume() -> None:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "profile", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        while not stop.is_set() and seen[0] < records:
            seen[0] += sum(1 for m in c.consume(num_messages=1000, timeout=0.2) if m.error() is None)
        c.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 131072})
    payload = b"p" * RECORD
    start = time.monotonic()
    deadline = start + timeout_s
    for i in range(records):
        while True:
            try:
                p.produce(topic, payload, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.01)
                assert time.monotonic() < deadline, "producer stuck on a full queue"
        p.poll(0)
    assert p.flush(max(1.0, deadline - time.monotonic())) == 0, "records left unacknowledged"
    took = time.monotonic() - start
    reader.join(timeout=max(1.0, deadline - time.monotonic()))
    stop.set()
    return took, seen[0]


IDLE_FUNCTION = "epoll.poll"  # the event loop waiting for I/O


def _area(file_path: str) -> str:
    """Where a frame's code lives, coarse enough to read as a budget."""
    for marker in ("streamraft_consensus/", "streamraft_broker/"):
        if marker in file_path:
            rest = file_path.split(marker, 1)[1]
            return (
                marker.rstrip("/").removeprefix("streamraft_")
                + "/"
                + rest.split("/", 1)[0].removesuffix(".py")
            )
    for lib in ("grpc", "asyncio", "google/protobuf", "concurrent", "selectors"):
        if f"/{lib}/" in file_path or file_path.endswith(f"/{lib}.py"):
            return lib
    return "built-in (C)" if file_path in ("<built-in>", "") else "other Python"


def _walk(frame: Frame, owner: Frame | None, startup: bool, acc: dict[str, dict[str, float]]) -> None:
    """Self time per function and per area; a synthetic "[self]" leaf counts for its parent, time under an
    import counts as start-up and time in epoll as idle."""
    if "_find_and_load" in (frame.function or ""):
        startup = True
    own = owner if frame.is_synthetic_leaf and owner is not None else frame
    self_time = frame.time - sum(c.time for c in frame.children)
    if self_time > 0:
        if startup:
            kind = "start-up imports"
        elif own.function == IDLE_FUNCTION:
            kind = "idle in epoll"
        else:
            kind = "busy"
            key = f"{own.function}  {own.file_path_short or own.file_path}:{own.line_no}"
            acc["func"][key] = acc["func"].get(key, 0.0) + self_time
            area = _area(own.file_path or "")
            acc["area"][area] = acc["area"].get(area, 0.0) + self_time
        acc["kind"][kind] = acc["kind"].get(kind, 0.0) + self_time
    for child in frame.children:
        _walk(child, frame, startup, acc)


def _summary(sessions: list[Path], top: int) -> str:
    acc: dict[str, dict[str, float]] = {"kind": {}, "func": {}, "area": {}}
    wall = cpu = 0.0
    for path in sessions:
        session = Session.load(str(path))
        wall += session.duration
        cpu += session.cpu_time
        root = session.root_frame()
        assert root is not None, f"empty profile {path}"
        _walk(root, None, False, acc)
    busy = acc["kind"].get("busy", 0.0)
    assert busy > 0, "no busy samples"
    lines = [
        f"{len(sessions)} brokers: {wall:.1f} s wall in total, {cpu:.1f} s process CPU (all threads); "
        "main-thread samples: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(acc["kind"].items())),
        "",
        "busy main-thread time by area (self time):",
    ]
    for area, t in sorted(acc["area"].items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {100 * t / busy:5.1f} %  {t:6.2f} s  {area}")
    lines += ["", f"top {top} functions by self time (share of busy main-thread time):"]
    for key, t in sorted(acc["func"].items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * t / busy:5.1f} %  {t:6.2f} s  {key}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=60_000)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("bench-results") / "kafka_compare" / "profile")
    ap.add_argument(
        "--summarize", action="store_true", help="only re-summarize the sessions already in --out"
    )
    args = ap.parse_args(argv)
    if not 1_000 <= args.records <= MAX_RECORDS:
        ap.error(f"--records must be between 1000 and {MAX_RECORDS}")
    args.out.mkdir(parents=True, exist_ok=True)
    sessions = [args.out / f"broker{n}.pyisession" for n in (1, 2, 3)]
    if not args.summarize:
        with tempfile.TemporaryDirectory(prefix="streamraft-profile-") as tmp:
            cluster = Cluster(Path(tmp), 3)
            cluster.brokers = {n: ProfiledBroker(b, sessions[n - 1]) for n, b in cluster.brokers.items()}
            with cluster:
                create_topic(cluster, "profile", PARTITIONS)
                took, seen = _load(cluster.bootstrap, "profile", args.records, timeout_s=600)
                mb = args.records * RECORD / 2**20
                print(
                    f"load: {args.records} x 1 KiB acks=all in {took:.1f}s ({mb / took:.1f} MB/s), "
                    f"{seen} read"
                )
                codes = {n: b.terminate(timeout=60) for n, b in cluster.brokers.items()}
                print(f"broker exit codes after SIGTERM: {codes}")
        for session in sessions:
            assert session.exists(), f"a broker wrote no profile session ({session})"
            tree = args.out / f"{session.stem}.txt"
            subprocess.run(
                [sys.executable, "-m", "pyinstrument", f"--load={session}", "-r", "text", "-o", str(tree)],
                check=True, timeout=300,
            )  # fmt: skip
    summary = _summary(sessions, args.top)
    (args.out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
