"""Which brokers a local cluster runs and with which flags: a pure function of the user's choices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamraft_broker.config import ConfigError

MAX_LOCAL_BROKERS = 9
PORTS_PER_BROKER = 3
"""Kafka, metrics/admin, Raft."""


@dataclass(frozen=True)
class LocalBroker:
    node_id: int
    kafka_port: int
    metrics_port: int
    raft_port: int | None
    data_dir: Path
    args: tuple[str, ...]
    """`streamraft broker` flags that run this broker."""

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def ready_file(self) -> Path:
        return self.data_dir / "ready.json"


def plan_cluster(
    brokers: int, base_port: int, data_dir: Path, replicated: bool, raft_tls: bool = False
) -> list[LocalBroker]:
    """Broker n (from 1) uses BASE+3(n-1) for Kafka, the next port for metrics, the one after for Raft;
    one broker without ``replicated`` is a plain single node (node 0, no Raft). With ``raft_tls`` the Raft
    transport runs over mutual TLS with certificates made (once) under DATA_DIR/pki."""
    if not 1 <= brokers <= MAX_LOCAL_BROKERS:
        raise ConfigError(f"--brokers {brokers} is outside 1..{MAX_LOCAL_BROKERS}")
    replicated = brokers > 1 or replicated
    if not 1 <= base_port <= 65535 - PORTS_PER_BROKER * brokers:
        raise ConfigError(f"--base-port {base_port} leaves no room for {brokers} brokers' ports")
    if not replicated:
        d = data_dir / "broker-0"
        return [
            LocalBroker(
                0,
                base_port,
                base_port + 1,
                None,
                d,
                _common(0, d, base_port, base_port + 1),
            )
        ]
    ports = {n: base_port + PORTS_PER_BROKER * (n - 1) for n in range(1, brokers + 1)}
    members = ",".join(f"{n}=127.0.0.1:{p}/127.0.0.1:{p + 2}" for n, p in ports.items())
    tls: dict[int, tuple[str, ...]] = {n: () for n in ports}
    if raft_tls:
        from streamraft_broker.security.raft_tls import local_certificates  # noqa: PLC0415

        for n, files in local_certificates(data_dir / "pki", list(ports)).items():
            tls[n] = ("--raft-tls-cert", str(files.cert), "--raft-tls-key", str(files.key))
            tls[n] += ("--raft-tls-ca", str(files.ca))
    out = []
    for n, p in ports.items():
        d = data_dir / f"broker-{n}"
        args = (*_common(n, d, p, p + 1), "--replication", "raft", "--cluster-members", members, *tls[n])
        out.append(LocalBroker(n, p, p + 1, p + 2, d, args))
    return out


def _common(node: int, data_dir: Path, kafka: int, metrics: int) -> tuple[str, ...]:
    return (
        "--node-id",
        str(node),
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{kafka}",
        "--metrics-listen",
        f"127.0.0.1:{metrics}",
        # The admin API is loopback-only; an ephemeral port (printed from the ready file) keeps the
        # Kafka/metrics/Raft port layout users know.
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--ready-file",
        str(data_dir / "ready.json"),
    )
