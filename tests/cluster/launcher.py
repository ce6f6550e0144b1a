"""A cluster of real `streamraft broker --replication raft` processes on loopback.

Kafka and Raft ports are picked free up front (every broker must know every other's addresses); a restarted
broker keeps its ports, like a pod behind a stable DNS name.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from tests.support.broker_process import BrokerProcess
from tests.support.ports import free_port


class Cluster:
    def __init__(self, base: Path, size: int = 3) -> None:
        assert 1 <= size <= 9, size
        self.kafka_ports = {n: free_port() for n in range(1, size + 1)}
        self.raft_ports = {n: free_port() for n in range(1, size + 1)}
        members = ",".join(
            f"{n}=127.0.0.1:{self.kafka_ports[n]}/127.0.0.1:{self.raft_ports[n]}" for n in self.kafka_ports
        )
        self.brokers = {
            n: BrokerProcess(
                base / f"b{n}",
                node_id=n,
                metrics=False,
                extra_args=[
                    "--listen",
                    f"127.0.0.1:{self.kafka_ports[n]}",
                    "--replication",
                    "raft",
                    "--cluster-members",
                    members,
                ],
            )
            for n in self.kafka_ports
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports.values())

    def start(self) -> Cluster:
        for b in self.brokers.values():
            b.start()
        return self

    def stop(self) -> None:
        for b in self.brokers.values():
            b.terminate()

    def logs(self) -> str:
        return "\n".join(f"--- broker {n}\n{b.log_tail(30)}" for n, b in self.brokers.items())

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for b in self.brokers.values():
            b.kill()
