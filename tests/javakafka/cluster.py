"""A real Apache Kafka KRaft cluster on loopback: combined broker+controller nodes, free ports.

Settings mirror Streamraft's: replication factor 3, min.insync.replicas 2, the same segment size, and
either an fsync per batch (``fsync=True``: flush.messages=1) or Kafka's default of leaving it to the OS.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from tests.javakafka.fetch import classpath
from tests.javakafka.ports import free_ports, port_open
from tests.javakafka.tools import KAFKA_MAIN, STORAGE_TOOL, run_tool

# Streamraft's default segment.bytes (its LogConfig, like Kafka's): both roll at the same byte count.
DEFAULT_SEGMENT_BYTES = 1024 * 1024 * 1024
READY_TIMEOUT_S = 180.0


class ClusterError(RuntimeError):
    """The cluster did not reach the asked state; the message names the node and its log tail."""


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _log_file: object | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"node {self.node_id} is not running"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


@dataclass(frozen=True)
class SecureListeners:
    """SSL and SASL_SSL (SCRAM-SHA-512) listeners beside PLAINTEXT: one PEM keystore (private key and
    certificate chain in one file, valid for 127.0.0.1) and a PEM truststore, and one SCRAM user made
    when the storage is formatted."""

    keystore: Path
    truststore: Path
    scram_user: str
    scram_password: str


def _cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. One starting with "-" would
    # be read as an option by the storage tool (1 in 64 starts failed so); Kafka's Uuid.randomUuid skips them.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaCluster:
    """Start with ``start()`` (or use as a context manager); ``close()`` kills everything and cleans up."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        fsync: bool = False,
        heap: str = "1g",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        workdir: Path | None = None,
        extra_config: dict[str, str] | None = None,
        secure: SecureListeners | None = None,
    ) -> None:
        assert 1 <= nodes <= 9, f"cluster size {nodes} out of range"
        self.size = nodes
        self.fsync = fsync
        self.heap = heap
        self.segment_bytes = segment_bytes
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kafka-cluster-"))
        self.extra_config = dict(extra_config or {})
        self.cluster_id = _cluster_id()
        self.secure = secure
        ports = free_ports(4 * nodes if secure else 2 * nodes)
        # Per node: (SSL port, SASL_SSL port), after the plaintext and controller ports.
        self.secure_ports = (
            {i + 1: (ports[2 * nodes + 2 * i], ports[2 * nodes + 2 * i + 1]) for i in range(nodes)}
            if secure
            else {}
        )
        self.nodes = [
            KafkaNode(
                node_id=i + 1,
                port=ports[2 * i],
                controller_port=ports[2 * i + 1],
                data_dir=self.workdir / f"node{i + 1}" / "data",
                config_path=self.workdir / f"node{i + 1}" / "server.properties",
                log_path=self.workdir / f"node{i + 1}" / "server.log",
            )
            for i in range(nodes)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def bootstrap_for(self, protocol: str) -> str:
        """The bootstrap list of the PLAINTEXT, SSL or SASL_SSL listener."""
        if protocol == "PLAINTEXT":
            return self.bootstrap_servers
        index = {"SSL": 0, "SASL_SSL": 1}[protocol]
        return ",".join(f"127.0.0.1:{self.secure_ports[n.node_id][index]}" for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id} in a {self.size}-node cluster")

    def _config(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = min(3, self.size)
        isr = min(2, rf)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(isr),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(isr),
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(isr),
            "log.segment.bytes": str(self.segment_bytes),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.network.threads": "3",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }
        if self.secure is not None:
            ssl_port, sasl_port = self.secure_ports[node.node_id]
            extra = f",SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_port}"
            props["listeners"] += extra
            props["advertised.listeners"] += extra
            props["listener.security.protocol.map"] += ",SSL:SSL,SASL_SSL:SASL_SSL"
            props.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(self.secure.keystore),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(self.secure.truststore),
                    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    ),
                }
            )
        if self.fsync:
            props["log.flush.interval.messages"] = "1"
        props.update(self.extra_config)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def format_storage(self) -> None:
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(self._config(node))
            run_tool(
                STORAGE_TOOL,
                [
                    "format",
                    "-t",
                    self.cluster_id,
                    "-c",
                    str(node.config_path),
                    "--ignore-formatted",
                    *self._scram_args(),
                ],
                timeout_s=180,
            )

    def _scram_args(self) -> list[str]:
        if self.secure is None:
            return []
        user, password = self.secure.scram_user, self.secure.scram_password
        return ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]

    def _jvm_cmd(self, node: KafkaNode) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ClusterError("`java` is not on PATH; a JDK 17+ is needed for Apache Kafka")
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-cp",
            classpath(),
            KAFKA_MAIN,
            str(node.config_path),
        ]

    def start_node(self, node_id: int) -> None:
        node = self.node(node_id)
        assert not node.alive(), f"node {node_id} already running"
        log = node.log_path.open("ab")
        node.started_at = time.monotonic()
        node.proc = subprocess.Popen(
            self._jvm_cmd(node), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> KafkaCluster:
        self.format_storage()
        for node in self.nodes:
            self.start_node(node.node_id)
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S, expect: int | None = None) -> float:
        """Block until every live node listens and the metadata shows ``expect`` brokers; returns seconds."""
        want = expect if expect is not None else sum(1 for n in self.nodes if n.alive())
        start = time.monotonic()
        end = start + timeout_s
        live = [n for n in self.nodes if n.alive()]
        while time.monotonic() < end:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None and n in live:
                    raise ClusterError(
                        f"kafka node {n.node_id} exited with {n.proc.returncode}:\n{n.log_tail()}"
                    )
            if all(port_open("127.0.0.1", n.port) for n in live):
                admin = AdminClient({"bootstrap.servers": ",".join(n.address for n in live)})
                try:
                    md = admin.list_topics(timeout=5)
                    if len(md.brokers) >= want and md.controller_id is not None and md.controller_id >= 0:
                        return time.monotonic() - start
                except Exception:
                    pass  # not ready yet; the deadline bounds the loop
            time.sleep(0.2)
        tails = "\n".join(f"--- node {n.node_id}\n{n.log_tail(1500)}" for n in live)
        raise ClusterError(f"kafka cluster not ready within {timeout_s}s (want {want} brokers)\n{tails}")

    def kill(self, node_id: int) -> None:
        """SIGKILL: no shutdown hooks, no flush — the crash case."""
        node = self.node(node_id)
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGKILL)
            node.proc.wait(timeout=30)

    def stop(self, node_id: int, timeout_s: float = 60.0) -> None:
        node = self.node(node_id)
        if node.proc is None or node.proc.poll() is not None:
            return
        node.proc.terminate()
        try:
            node.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(timeout=30)

    def restart(self, node_id: int) -> None:
        self.kill(node_id)
        self.start_node(node_id)

    def close(self) -> None:
        for node in self.nodes:
            self.kill(node.node_id)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def partition_leader(bootstrap: str, topic: str, partition: int, timeout_s: float = 10.0) -> int:
    """The broker id leading ``topic``/``partition`` per fresh metadata (-1 if none)."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=timeout_s)
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        return -1
    return int(t.partitions[partition].leader)


def main() -> int:
    """Manual smoke: start 3 nodes, print the bootstrap string and time-to-ready, then stop."""
    with KafkaCluster() as c:
        print(f"ready: {c.bootstrap_servers} ({c.workdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
