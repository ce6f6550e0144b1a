"""`streamraft local kill|start|status`: act on the cluster a `local up` in the same data dir runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streamraft_broker.config import ConfigError
from streamraft_broker.local.state import BrokerEntry, StateFile

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT}


def _is_our_broker(pid: int, node: int) -> bool:
    """The pid still runs broker ``node`` of ours (pids are reused once a process is gone)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"streamraft_broker.cli" in argv and b"--node-id" in argv and str(node).encode() in argv


def kill(data_dir: Path, node: int, sig: str) -> str:
    _, _, brokers = StateFile(data_dir).read()
    entry = brokers.get(node)
    if entry is None:
        raise ConfigError(f"no broker {node} in the local cluster at {data_dir} ({sorted(brokers)})")
    if entry.pid is None or not _is_our_broker(entry.pid, node):
        raise ConfigError(f"broker {node} is not running (start it: streamraft local start {node})")
    os.kill(entry.pid, SIGNALS[sig])
    return f"sent SIG{sig} to broker {node} (pid {entry.pid})"


def start(data_dir: Path, node: int, timeout_s: float = 90.0) -> str:
    _, port, _ = StateFile(data_dir).read()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        conn.sendall(json.dumps({"op": "start", "node": node}).encode() + b"\n")
        reply = json.loads(conn.makefile().readline() or "{}")
    if not reply.get("ok"):
        raise ConfigError(str(reply.get("error") or f"broker {node} did not start; see its log"))
    return f"broker {node} started (pid {reply['pid']}, log {reply['log']})"


@dataclass(frozen=True)
class PartitionRow:
    topic: str
    partition: int
    leader: int
    replicas: list[int]
    term: int
    max_lag: int


@dataclass(frozen=True)
class Status:
    brokers: list[tuple[BrokerEntry, bool]]
    """Each broker and whether it answers."""
    controller: int
    partitions: list[PartitionRow]


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def status(data_dir: Path, timeout_s: float = 5.0) -> Status:
    """Leaders and replicas from Kafka Metadata (what clients see); Raft terms and follower lag from each
    live broker's metrics (the highest term any replica reports; the lag its leader reports)."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415  (heavy; only this command needs it)

    _, _, brokers = StateFile(data_dir).read()
    alive: list[tuple[BrokerEntry, bool]] = []
    controllers: set[int] = set()
    terms: dict[tuple[str, int], int] = {}
    lag: dict[tuple[str, int], int] = {}
    for entry in brokers.values():
        try:
            samples = _scrape(entry.metrics_port)
        except OSError:
            alive.append((entry, False))
            continue
        alive.append((entry, True))
        controllers |= {int(v) for _, v in samples.get("streamraft_controller_leader_id", []) if v >= 0}
        for labels, v in samples.get("streamraft_raft_follower_lag_entries", []):
            key = (labels["topic"], int(labels["partition"]))
            lag[key] = max(lag.get(key, 0), int(v))
        for labels, v in samples.get("streamraft_raft_term", []):
            key = (labels["topic"], int(labels["partition"]))
            terms[key] = max(terms.get(key, 0), int(v))
    rows: list[PartitionRow] = []
    live = [e for e, up in alive if up]
    if live:
        bootstrap = ",".join(f"127.0.0.1:{e.kafka_port}" for e in live)
        # log_level 0: a broker that is down is reported in the table, not as librdkafka's retry noise.
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        md = admin.list_topics(timeout=timeout_s)
        for name, topic in sorted(md.topics.items()):
            for p, pm in sorted(topic.partitions.items()):
                key = (name, p)
                rows.append(
                    PartitionRow(name, p, pm.leader, list(pm.replicas), terms.get(key, 0), lag.get(key, 0))
                )
    return Status(alive, controllers.pop() if len(controllers) == 1 else -1, rows)


def render(s: Status, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "controller": s.controller,
                "brokers": [
                    {"node_id": e.node_id, "pid": e.pid, "up": up, "kafka_port": e.kafka_port}
                    for e, up in s.brokers
                ],
                "partitions": [r.__dict__ for r in s.partitions],
            },
            indent=2,
        )
    lines = [
        f"controller: {s.controller if s.controller >= 0 else 'none agreed'}",
        "",
        "BROKER  PID      STATE  KAFKA",
    ]
    for e, up in s.brokers:
        lines.append(
            f"{e.node_id:<7} {e.pid or '-'!s:<8} {'up' if up else 'down':<6} 127.0.0.1:{e.kafka_port}"
        )
    lines += ["", "TOPIC                     PART  LEADER  REPLICAS  TERM  MAX-LAG"]
    for r in s.partitions:
        leader = str(r.leader) if r.leader >= 0 else "none"
        replicas = ",".join(map(str, r.replicas))
        lines.append(f"{r.topic:<25} {r.partition:<5} {leader:<7} {replicas:<9} {r.term:<5} {r.max_lag}")
    return "\n".join(lines)
