"""Start a real `streamraft broker` subprocess, wait until it answers, SIGTERM or SIGKILL it.

The broker binds port 0 and writes its real ports to a ready file, so there is no port race:

    with BrokerProcess(tmp_path / "data") as broker:
        confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
        broker.kill()      # SIGKILL
        broker.start()     # same data dir, new ports
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.support.wire import api_versions_ok

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


class BrokerProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        node_id: int = 0,
        extra_args: list[str] | None = None,
        metrics: bool = True,
        in_memory: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.node_id = node_id
        self.extra_args = list(extra_args or [])
        self.metrics = metrics
        self.in_memory = in_memory
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.admin_port = 0
        self.listener_ports: dict[str, int] = {}
        """Bound port of each listener by name (``--listeners``); the first one is ``port``."""
        self.log_path = data_dir.parent / f"{data_dir.name}-broker-{node_id}.log"
        self._log_file: object | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    def command(self, ready_file: Path) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "streamraft_broker.cli",
            "broker",
            "--node-id",
            str(self.node_id),
            "--data-dir",
            str(self.data_dir),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0" if self.metrics else "off",
            "--admin-listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready_file),
        ]
        if self.in_memory:
            cmd += ["--in-memory", "true"]
        return cmd + self.extra_args

    def start(self, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir.parent / f"{self.data_dir.name}-ready-{self.node_id}.json"
        ready.unlink(missing_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._log_file = log
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.command(ready), stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"broker exited with {self.proc.returncode} during start:\n{self.log_tail()}"
                )
            if ready.exists():
                info = json.loads(ready.read_text())
                self.port = int(info["port"])
                self.metrics_port = int(info["metrics_port"])
                self.admin_port = int(info["admin_port"])
                self.listener_ports = {str(k): int(v) for k, v in info.get("listeners", {}).items()}
                if api_versions_ok(self.host, self.port):
                    return self
            time.sleep(0.05)  # polling the ready file and a real ApiVersions round trip, bounded above
        self.kill()
        raise TimeoutError(f"broker not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye — the durability tests' crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._close_log()

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (0 for a graceful stop)."""
        assert self.proc is not None, "broker was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self._close_log()
        return int(self.proc.returncode)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> BrokerProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate()
        self._close_log()
