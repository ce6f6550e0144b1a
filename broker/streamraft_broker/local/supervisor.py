"""Runs each broker of a local cluster as its own OS process, restarts none by itself, and answers
`local start N` on a loopback control port.

Killing broker 2 (`streamraft local kill 2`, or any kill) takes down that process only: the others keep
serving and elect new leaders, as they would on three machines. The supervisor prints one line per
broker event; each broker's own log goes to ``<data-dir>/broker-N/broker.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamraft_broker.local.plan import LocalBroker
from streamraft_broker.local.state import LocalState, StateFile

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
"""Graceful stop (each broker hands its leaderships over) before the supervisor kills what is left."""
CONTROL_READ_LIMIT = 4096
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the broker child before exec: a SIGTERM when the supervisor dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so a killed supervisor leaves no brokers behind holding the cluster's ports."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass
class _Child:
    broker: LocalBroker
    process: asyncio.subprocess.Process | None = None
    watcher: asyncio.Task[None] | None = None
    stopping: bool = False
    starts: int = field(default=0)


class Supervisor:
    def __init__(self, data_dir: Path, brokers: list[LocalBroker]) -> None:
        self.data_dir = data_dir
        self.children = {b.node_id: _Child(b) for b in brokers}
        self.state_file = StateFile(data_dir)
        self._control: asyncio.Server | None = None
        self._stop = asyncio.Event()

    async def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._control = await asyncio.start_server(self._on_control, "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            started = await asyncio.gather(*(self._start(n) for n in self.children))
            if not all(started):
                _say("not every broker started; stopping the others")
                return 1
            brokers = [c.broker for c in self.children.values()]
            _say("bootstrap servers: " + ",".join(f"127.0.0.1:{b.kafka_port}" for b in brokers))
            for b in brokers:
                _say(f"metrics: http://127.0.0.1:{b.metrics_port}/metrics")
            for c in self.children.values():
                _say(self._describe(c))
            _say("press Ctrl-C to stop")
            await self._stop.wait()
            _say("stopping: each broker hands its leaderships over, then exits")
            return 0
        finally:
            await self._stop_all()
            self._control.close()
            self.state_file.remove()

    def _describe(self, c: _Child) -> str:
        b = c.broker
        pid = c.process.pid if c.process else "-"
        raft = f", raft 127.0.0.1:{b.raft_port}" if b.raft_port else ""
        try:
            admin = f", admin 127.0.0.1:{json.loads(b.ready_file.read_text())['admin_port']}"
        except (OSError, ValueError, KeyError):
            admin = ""
        return (
            f"broker {b.node_id}: pid {pid}, kafka 127.0.0.1:{b.kafka_port}, metrics "
            f"127.0.0.1:{b.metrics_port}{admin}{raft}, log {b.log_path}"
        )

    def _write_state(self) -> None:
        assert self._control is not None
        port = int(self._control.sockets[0].getsockname()[1])
        self.state_file.write(
            LocalState(
                supervisor_pid=os.getpid(),
                control_port=port,
                brokers={
                    n: (c.broker, c.process.pid if c.process and c.process.returncode is None else None)
                    for n, c in self.children.items()
                },
            )
        )

    async def _start(self, node: int) -> bool:
        """Starts broker ``node`` and waits until it listens (bounded); False if it did not come up."""
        c = self.children[node]
        b = c.broker
        b.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            b.ready_file.unlink()
        log = b.log_path.open("ab")
        try:
            c.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamraft_broker.cli",
                "broker",
                *b.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops brokers in order
                preexec_fn=_stop_with_parent,
            )
        finally:
            log.close()
        c.stopping = False
        c.starts += 1
        c.watcher = asyncio.get_running_loop().create_task(self._watch(c, c.process))
        self._write_state()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not b.ready_file.exists():
            if c.process.returncode is not None or time.monotonic() > deadline:
                _say(f"broker {node} did not start; see {b.log_path}")
                return False
            await asyncio.sleep(0.05)  # pacing between looks for the ready file
        return True

    async def _watch(self, c: _Child, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self._write_state()
        if c.stopping:
            return
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        _say(f"broker {c.broker.node_id} {how}; not restarted (streamraft local start {c.broker.node_id})")

    async def _stop_all(self) -> None:
        running = [c for c in self.children.values() if c.process and c.process.returncode is None]
        for c in running:
            c.stopping = True
            assert c.process is not None
            c.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for c in running:
            assert c.process is not None
            try:
                await asyncio.wait_for(c.process.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                _say(f"broker {c.broker.node_id} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
                c.process.kill()
                await c.process.wait()

    async def _on_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            reply = await self._command(line[:CONTROL_READ_LIMIT])
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _command(self, line: bytes) -> dict[str, object]:
        try:
            cmd = json.loads(line)
            op, node = str(cmd["op"]), int(cmd["node"])
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'expected a JSON line like {"op": "start", "node": 2}'}
        c = self.children.get(node)
        if c is None:
            return {"ok": False, "error": f"no broker {node} in this cluster ({sorted(self.children)})"}
        if op != "start":
            return {"ok": False, "error": f"unknown command {op!r} (only start)"}
        if c.process is not None and c.process.returncode is None:
            return {"ok": False, "error": f"broker {node} is already running (pid {c.process.pid})"}
        ok = await self._start(node)
        if ok:
            _say(f"broker {node} started again: {self._describe(c)}")
        assert c.process is not None
        return {"ok": ok, "pid": c.process.pid, "log": str(c.broker.log_path)}
