"""What TLS and SASL_SSL cost, side by side: Apache Kafka and Streamraft, 3-node RF=3 clusters on loopback,
each with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) listeners and the same certificate (EC P-256, TLS 1.3).

    python -m tests.bench.kafka_compare.tls [--records N] [--runs N] [--out DIR]

Per protocol, Kafka's own ProducerPerformance (acks=all, 1 KiB records, linger.ms=5, 128 KiB batches) and
ConsumerPerformance run against both systems, alternating which goes first; the first round is a warm-up
and is not reported. Prints ``figure | Kafka | Streamraft | ratio`` with the medians, then each system's
throughput over TLS relative to its own PLAINTEXT throughput (the issue's "TLS costs Streamraft no more,
relatively, than it costs Kafka"), and writes tls_compare.json into --out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from streamraft_broker.security import pki

from tests.bench.kafka_compare.report import SYSTEMS, Results
from tests.bench.kafka_compare.workloads import consumer_perf, producer_perf
from tests.javakafka.cluster import KafkaCluster, SecureListeners
from tests.support.launcher import Cluster, wait_controller
from tests.support.ports import free_port

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
USER, PASSWORD = "bench", "bench-secret"
RECORD_SIZE = 1024
NODES = 3


def log(msg: str) -> None:
    print(f"[tls_compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Material:
    ca: Path
    cert: Path
    key: Path
    keystore: Path
    """Key and certificate in one PEM file, as Kafka's ssl.keystore.type=PEM wants it."""


def make_material(directory: Path) -> Material:
    ca = pki.create_ca(directory / "ca")
    broker = pki.issue_broker(ca, directory / "broker", 1, ["127.0.0.1", "localhost"])
    keystore = directory / "keystore.pem"
    keystore.write_bytes(broker.key.read_bytes() + broker.cert.read_bytes())
    return Material(ca.cert, broker.cert, broker.key, keystore)


@dataclass
class System:
    name: str
    bootstrap: dict[str, str]
    """Bootstrap list per protocol."""
    stop: Callable[[], None]


def start_kafka(m: Material, work: Path) -> tuple[System, KafkaCluster]:
    secure = SecureListeners(m.keystore, m.ca, USER, PASSWORD)
    cluster = KafkaCluster(NODES, workdir=work / "kafka", secure=secure)
    cluster.start()
    return System("Kafka", {p: cluster.bootstrap_for(p) for p in PROTOCOLS}, cluster.close), cluster


def start_streamraft(m: Material, work: Path) -> tuple[System, Cluster]:
    cluster = Cluster(work / "streamraft", NODES)
    secure: dict[int, tuple[int, int]] = {}
    for n, broker in cluster.brokers.items():
        secure[n] = (free_port(), free_port())
        listeners = (
            f"PLAINTEXT://127.0.0.1:{cluster.kafka_ports[n]},SSL://127.0.0.1:{secure[n][0]},"
            f"SASL_SSL://127.0.0.1:{secure[n][1]}"
        )
        broker.extra_args += [
            "--listeners", listeners,
            "--ssl-keystore-certificate-chain", str(m.cert),
            "--ssl-keystore-key", str(m.key),
            "--ssl-truststore-location", str(m.ca),
            "--sasl-enabled-mechanisms", "SCRAM-SHA-512",
        ]  # fmt: skip
    cluster.start()
    wait_controller(cluster, timeout=60)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    upsert = UserScramCredentialUpsertion(
        USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), PASSWORD.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    bootstrap = {
        "PLAINTEXT": cluster.bootstrap,
        "SSL": ",".join(f"127.0.0.1:{secure[n][0]}" for n in cluster.brokers),
        "SASL_SSL": ",".join(f"127.0.0.1:{secure[n][1]}" for n in cluster.brokers),
    }

    def stop() -> None:
        cluster.__exit__(None, None, None)

    return System("Streamraft", bootstrap, stop), cluster


def client_properties(m: Material, protocol: str, bootstrap: str, path: Path) -> Path:
    """A Java client config for one protocol (the same for both systems)."""
    props = {"bootstrap.servers": bootstrap, "security.protocol": protocol}
    if protocol != "PLAINTEXT":
        props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(m.ca)})
    if protocol == "SASL_SSL":
        props.update(
            {
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{USER}" password="{PASSWORD}";',
            }
        )
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.cimpl import NewTopic  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(timeout=60)


def one_round(m: Material, s: System, records: int, work: Path, res: Results | None) -> None:
    for protocol in PROTOCOLS:
        topic = f"tls-{protocol.lower()}-{uuid.uuid4().hex[:8]}"
        bootstrap = s.bootstrap[protocol]
        config = client_properties(m, protocol, bootstrap, work / f"{s.name}-{protocol}.properties")
        create_topic(s.bootstrap["PLAINTEXT"], topic)
        p = producer_perf(bootstrap, topic, RECORD_SIZE, "all", records, client_config=config)
        c = consumer_perf(bootstrap, topic, records, client_config=config)
        log(f"{s.name} {protocol}: produce {p.mb_per_s:.1f} MB/s, consume {c.mb_per_s:.1f} MB/s")
        if res is not None:
            res.add(s.name, f"produce acks=all 1 KiB, {protocol}", "MB/s", p.mb_per_s, higher=True)
            res.add(s.name, f"consume 1 KiB, {protocol}", "MB/s", c.mb_per_s, higher=True)


def relative_cost(res: Results) -> str:
    """Each system's TLS / SASL_SSL throughput as a fraction of its own PLAINTEXT throughput."""
    rows = [("throughput relative to own PLAINTEXT", "Kafka", "Streamraft")]
    for kind in ("produce acks=all 1 KiB", "consume 1 KiB"):
        for protocol in PROTOCOLS[1:]:
            cells = []
            for system in SYSTEMS:
                base = res.figures[f"{kind}, PLAINTEXT"].value(system)
                secured = res.figures[f"{kind}, {protocol}"].value(system)
                cells.append(f"{secured / base:.2f}" if base and secured is not None else "n/a")
            rows.append((f"{kind}, {protocol}", *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="records per produce/consume (1 KiB each)")
    ap.add_argument("--runs", type=int, default=3, help="measured rounds per system, after one warm-up")
    ap.add_argument("--out", type=Path, default=Path("tests/bench/kafka_compare/results"))
    args = ap.parse_args(argv)
    if not 1_000 <= args.records <= 2_000_000 or not 1 <= args.runs <= 10:
        ap.error("--records must be 1,000..2,000,000 and --runs 1..10")
    res = Results()
    res.meta = {"records": args.records, "runs": args.runs, "record_size": RECORD_SIZE}
    with tempfile.TemporaryDirectory(prefix="tls-compare-") as tmp:
        work = Path(tmp)
        m = make_material(work / "pki")
        log("starting both clusters")
        kafka, _k = start_kafka(m, work)
        try:
            streamraft, _s = start_streamraft(m, work)
            try:
                systems = [kafka, streamraft]
                for run in range(args.runs + 1):
                    order = systems if run % 2 == 0 else systems[::-1]
                    for s in order:
                        log(f"round {run} ({'warm-up' if run == 0 else 'measured'}): {s.name}")
                        one_round(m, s, args.records, work, res if run else None)
            finally:
                streamraft.stop()
        finally:
            kafka.stop()
    print(res.table())
    print()
    print(relative_cost(res))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tls_compare.txt").write_text(res.table() + "\n\n" + relative_cost(res) + "\n")
    with tempfile.TemporaryDirectory() as tmp:  # Results.dump names its file kafka_compare.json
        shutil.move(res.dump(Path(tmp)), args.out / "tls_compare.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
