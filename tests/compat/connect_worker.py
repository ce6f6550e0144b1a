"""A real Kafka Connect 4.3.1 worker in distributed mode (``ConnectDistributed``) as a JVM the tests can
SIGKILL, and a small client for its REST API.

The worker keeps its state where Connect always does, in three topics on the cluster under test: connector
configs, source offsets and connector/task status, each compacted with the cluster's replication factor
(Connect creates them itself and refuses to start if they are not compacted). Workers find each other, and
share out connectors and tasks, through the consumer group protocol with Connect's own protocol type.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.compat.target import Target
from tests.javakafka.tools import java_cmd
from tests.support.poll import wait_for
from tests.support.ports import free_port

CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"

T = TypeVar("T")

REST_TIMEOUT_S = 15.0
START_TIMEOUT_S = 90.0


class ConnectDied(RuntimeError):
    """The worker JVM exited on its own: no point waiting for it."""


@dataclass(frozen=True)
class InternalTopics:
    configs: str
    offsets: str
    status: str


class ConnectWorker:
    """One distributed-mode worker; ``kill()`` is SIGKILL, a crash with no chance to flush offsets or leave
    the group. A restarted worker keeps its REST port and its group, like a pod with a stable address."""

    def __init__(
        self,
        cluster: Target,
        group: str,
        workdir: Path,
        *,
        offset_flush_interval_ms: int = 500,
        extra_props: dict[str, str] | None = None,
    ) -> None:
        self.cluster, self.group, self.workdir = cluster, group, workdir
        self.topics = InternalTopics(f"{group}-configs", f"{group}-offsets", f"{group}-status")
        self.port = free_port()
        self.out = workdir / "connect.log"
        self.proc: subprocess.Popen[bytes] | None = None
        rf = str(cluster.replication_factor)
        props = {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": group,
            "config.storage.topic": self.topics.configs,
            "config.storage.replication.factor": rf,
            "offset.storage.topic": self.topics.offsets,
            "offset.storage.replication.factor": rf,
            "offset.storage.partitions": "3",
            "status.storage.topic": self.topics.status,
            "status.storage.replication.factor": rf,
            "status.storage.partitions": "1",
            "key.converter": STRING_CONVERTER,
            "value.converter": STRING_CONVERTER,
            "offset.flush.interval.ms": str(offset_flush_interval_ms),
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            # Plugins come from the classpath's service manifests: no reflective scan of ~100 jars at start.
            "plugin.discovery": "service_load",
            # A worker that died is not coming back under its old member id: hand its connectors and tasks
            # to the restarted worker at once instead of after Connect's default grace of five minutes.
            "scheduled.rebalance.max.delay.ms": "0",
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "rebalance.timeout.ms": "20000",
            # The same for the sink tasks' consumer group: a restarted sink task joins it beside the dead
            # task's member, and the group waits for that one until its session expires (45 s by default).
            "consumer.session.timeout.ms": "6000",
            "consumer.heartbeat.interval.ms": "1000",
            **(extra_props or {}),
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.props_file = workdir / "worker.properties"
        self.props_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the process

    def start(self) -> None:
        assert not self.alive(), "the worker is already running"
        with self.out.open("ab") as fh:
            self.proc = subprocess.Popen(
                java_cmd(CONNECT_MAIN, [str(self.props_file)]),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        # The REST server answers before the worker has created its topics, joined its group and read its
        # configs; its health check (KIP-1017) says 200 only once it has.
        self.wait("the worker to be healthy", lambda: self.request("GET", "/health") is not None)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        if not self.out.exists():
            return ""
        return "\n".join(self.out.read_text(errors="replace").splitlines()[-60:])

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float = START_TIMEOUT_S) -> T:
        def checked() -> T | None:
            if not self.alive():
                raise ConnectDied(f"the Connect worker exited while waiting for {what}:\n{self.log()}")
            return probe()

        return wait_for(what, checked, timeout=timeout, logs=self.log)

    # --- the REST API

    def request(self, method: str, path: str, body: object | None = None) -> object | None:
        """The decoded JSON answer of a 2xx; None for a 409 (rebalance in progress) or a 404; raises
        ``OSError`` (which ``wait_for`` retries) when the worker does not answer, AssertionError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=REST_TIMEOUT_S) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            if exc.code in (404, 409):
                return None
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {text}") from exc
        return json.loads(raw) if raw else {}

    def create_connector(self, name: str, config: dict[str, str]) -> None:
        self.wait(
            f"connector {name} created",
            lambda: self.request("POST", "/connectors", {"name": name, "config": config}) is not None,
            timeout=60,
        )

    def running(self, name: str) -> bool:
        """The connector and every one of its tasks (at least one) are RUNNING."""
        status = self.request("GET", f"/connectors/{name}/status")
        if not isinstance(status, dict):
            return False
        tasks = status.get("tasks", [])
        failed = [t for t in tasks if t.get("state") == "FAILED"]
        assert not failed, f"{name}: task failed: {failed[0].get('trace', '')[:3000]}"
        return status.get("connector", {}).get("state") == "RUNNING" and bool(
            tasks and all(t.get("state") == "RUNNING" for t in tasks)
        )

    def offsets(self, name: str) -> list[dict[str, object]]:
        """The source offsets Connect has committed for ``name`` (KIP-875's GET .../offsets), as
        ``[{"partition": {...}, "offset": {...}}, ...]``."""
        got = self.request("GET", f"/connectors/{name}/offsets")
        assert isinstance(got, dict), got
        offsets = got["offsets"]
        assert isinstance(offsets, list), got
        return offsets
