"""``<data-dir>/local.json``: where a running local cluster's supervisor and brokers are."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from streamraft_broker.config import ConfigError
from streamraft_broker.local.plan import LocalBroker

FILE_NAME = "local.json"


@dataclass(frozen=True)
class BrokerEntry:
    node_id: int
    pid: int | None
    kafka_port: int
    metrics_port: int
    raft_port: int | None
    log: str


@dataclass(frozen=True)
class LocalState:
    supervisor_pid: int
    control_port: int
    brokers: dict[int, tuple[LocalBroker, int | None]]


class StateFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def write(self, state: LocalState) -> None:
        doc = {
            "supervisor_pid": state.supervisor_pid,
            "control_port": state.control_port,
            "brokers": [
                {
                    "node_id": b.node_id,
                    "pid": pid,
                    "kafka_port": b.kafka_port,
                    "metrics_port": b.metrics_port,
                    "raft_port": b.raft_port,
                    "log": str(b.log_path),
                }
                for b, pid in state.brokers.values()
            ],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def read(self) -> tuple[int, int, dict[int, BrokerEntry]]:
        """(supervisor pid, control port, brokers); ConfigError when no cluster runs from this data dir."""
        try:
            doc = json.loads(self.path.read_text())
            entries = {
                int(b["node_id"]): BrokerEntry(
                    int(b["node_id"]),
                    None if b["pid"] is None else int(b["pid"]),
                    int(b["kafka_port"]),
                    int(b["metrics_port"]),
                    None if b["raft_port"] is None else int(b["raft_port"]),
                    str(b["log"]),
                )
                for b in doc["brokers"]
            }
            return int(doc["supervisor_pid"]), int(doc["control_port"]), entries
        except FileNotFoundError:
            raise ConfigError(
                f"no local cluster runs from {self.path.parent} (no {FILE_NAME}; start one with "
                "`streamraft local up --data-dir ...`)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path} is malformed: {exc!r}") from None
