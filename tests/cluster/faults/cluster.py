"""A 3-broker replicated cluster whose Raft links all run through the fault-injecting proxies.

Each broker gets its own ``--cluster-members``: its own entry carries its real raft address (it listens
there, ``--raft-listen``), every peer's entry the port of the proxy for that directed link. Brokers would
derive different cluster ids from such lists, and the controller refuses a registration carrying another
id, so all get one ``--cluster-id``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.cluster.faults.net import FaultyNet
from tests.support.broker_process import BrokerProcess
from tests.support.launcher import Cluster
from tests.support.ports import free_port

CLUSTER_ID = "faults-cluster"


class ProxiedCluster(Cluster):
    def __init__(self, base: Path, size: int = 3) -> None:
        assert 1 <= size <= 9, size
        self.base = base
        self.kafka_ports = {n: free_port() for n in range(1, size + 1)}
        self.raft_ports = {n: free_port() for n in range(1, size + 1)}
        self.net = FaultyNet(self.raft_ports).start()
        self.paused: set[int] = set()
        self.brokers = {n: self._broker(n) for n in self.kafka_ports}

    def _broker(self, n: int) -> BrokerProcess:
        members = ",".join(
            f"{m}=127.0.0.1:{self.kafka_ports[m]}/127.0.0.1:"
            f"{self.raft_ports[m] if m == n else self.net.ports[(n, m)]}"
            for m in self.kafka_ports
        )
        return BrokerProcess(
            self.base / f"b{n}",
            node_id=n,
            # Metrics on: tests read them (the admin port serves /admin/rejoin for ``fully_replicated``).
            metrics=True,
            extra_args=[
                "--listen",
                f"127.0.0.1:{self.kafka_ports[n]}",
                "--replication",
                "raft",
                "--cluster-members",
                members,
                "--raft-listen",
                f"127.0.0.1:{self.raft_ports[n]}",
                "--cluster-id",
                CLUSTER_ID,
            ],
        )

    def pause(self, n: int) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a long GC pause, a frozen VM)."""
        pid = self.brokers[n].pid
        assert pid is not None and self.brokers[n].running, f"broker {n} is not running"
        os.kill(pid, signal.SIGSTOP)
        self.paused.add(n)

    def resume(self, n: int) -> None:
        pid = self.brokers[n].pid
        if n in self.paused and pid is not None and self.brokers[n].running:
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(n)

    def _rejoin_status(self, n: int) -> dict[str, object]:
        port = self.brokers[n].admin_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/rejoin", timeout=5) as resp:
            status: dict[str, object] = json.loads(resp.read())
        return status

    def fully_replicated(self) -> bool:
        """Every broker is up, none is rebuilding from an empty disk, and no Raft group it hosts has a
        learner (a replica still catching up after a rebuild or a move)."""
        for n, broker in self.brokers.items():
            if not broker.running or n in self.paused:
                return False
            try:
                status = self._rejoin_status(n)
            except OSError:
                return False
            groups = status.get("groups")
            # "fresh": a new cluster's first life; "undecided"/"rejoin": a wiped disk not yet rebuilt.
            if status.get("state") not in ("none", "fresh", "done") or not isinstance(groups, dict):
                return False
            if any(g["learners"] or g["recovering"] for g in groups.values()):
                return False
        return True

    def wait_fully_replicated(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.fully_replicated():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)  # polling the brokers' admin endpoints against a deadline
        return True

    def wipe(self, n: int) -> None:
        """Delete a stopped broker's data directory (the empty-disk restart)."""
        assert not self.brokers[n].running, f"broker {n} is still running"
        shutil.rmtree(self.brokers[n].data_dir, ignore_errors=True)

    def close(self) -> None:
        for n in list(self.paused):
            self.resume(n)
        for b in self.brokers.values():
            b.kill()
        self.net.stop()

    def __enter__(self) -> ProxiedCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
