"""The dead-dialer diagnosis reads broker logs the way the transport writes them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.cluster.faults.diagnose import dead_dialers

NOW = time.mktime((2026, 11, 22, 7, 10, 0, 0, 0, -1))


@dataclass
class _Broker:
    log_path: Path
    running: bool = True


def _cluster(tmp_path: Path, logs: dict[int, str]) -> Any:
    brokers = {}
    for n, text in logs.items():
        path = tmp_path / f"b{n}.log"
        path.write_text(text)
        brokers[n] = _Broker(path)
    return cast(Any, type("C", (), {"brokers": brokers}))


def _line(stamp: str, event: str, node: int, peer: int) -> str:
    return f"{stamp} INFO    streamraft.consensus.transport: event={event} node={node} peer={peer}\n"


def test_a_dialer_silent_after_a_disconnect_is_reported(tmp_path: Path) -> None:
    log = (
        _line("07:09:00", "peer_connected", 1, 2)
        + _line("07:09:10", "peer_disconnected", 1, 2)  # nothing after: the dialer died
        + _line("07:09:10", "peer_disconnected", 1, 3)
        + _line("07:09:58", "peer_connect_timeout", 1, 3)  # still trying: alive
    )
    found = dead_dialers(_cluster(tmp_path, {1: log}), now=NOW)
    assert found == [
        (
            1,
            "dead Raft dialer: broker 1 stopped dialing broker 2 after a disconnect at 07:09:10 "
            "(50 s without a connect attempt)",
        )
    ]


def test_recent_disconnects_lower_peers_and_earlier_incarnations_are_not_reported(tmp_path: Path) -> None:
    log = (
        _line("07:00:00", "peer_disconnected", 2, 3)  # an earlier incarnation's dead dialer
        + "07:01:00 INFO    streamraft.consensus.runtime: event=runtime_started node=2 address=x\n"
        + _line("07:09:58", "peer_disconnected", 2, 3)  # 2 s ago: may still redial
        + _line("07:05:00", "peer_disconnected", 2, 1)  # the higher id never dials
    )
    assert dead_dialers(_cluster(tmp_path, {2: log}), now=NOW) == []
