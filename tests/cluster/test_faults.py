"""The randomized fault suite in CI: 50 seeded schedules (partitions, one-way cuts, a leader cut off from the
majority, delays, SIGKILL/SIGTERM restarts, SIGSTOP pauses, whole-cluster SIGKILL, concurrent CreateTopics)
against one proxied 3-broker cluster under idempotent acks=all load, the history checked after every
schedule.

A failure prints the seed, the schedule's steps and the one-line command that reruns exactly it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.cluster.faults.driver import run
from tests.cluster.faults.kinds import REGISTRY, Env, Kind, Step

SCHEDULES = 50
BUDGET_S = 8 * 60
"""The hard CI budget of this test on a 2-core machine."""
SEED = int(os.environ.get("STREAMRAFT_FAULT_SEED", "0"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUDGET_S + 60)]


def test_fault_schedules_keep_every_acknowledged_write(tmp_path: Path) -> None:
    started = time.monotonic()

    def say(line: str) -> None:
        print(line, flush=True)  # progress shows with -s, and in the log if the timeout strikes

    outcome = run(SEED, list(range(SCHEDULES)), tmp_path, say=say)
    took = time.monotonic() - started
    assert outcome.ok, outcome.report
    assert outcome.ran == list(range(SCHEDULES)), outcome.ran
    print(f"{SCHEDULES} schedules in {took:.0f}s (budget {BUDGET_S}s)")


def _forge_ack(env: Env, step: Step) -> None:
    """Records an acknowledgement no broker gave: what a broker acknowledging before commit would cause."""
    env.history.acked.append((0, 10**9, b"forged-ack"))


def test_a_lost_ack_fails_the_run_with_a_replay_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        REGISTRY, "forge_ack", Kind("forge_ack", 1, lambda rng, brokers: (1, 0.0, ""), _forge_ack)
    )
    lines: list[str] = []
    outcome = run(7, [3], tmp_path, kinds=["forge_ack"], say=lines.append)
    assert not outcome.ok and outcome.failed == 3 and outcome.ran == [3]
    assert "acknowledged b'forged-ack' at 0@1000000000 lost" in outcome.report, outcome.report
    assert "  1. forge_ack      broker=1 hold=0.00s" in outcome.report, outcome.report
    assert "replay: python -m tests.cluster.faults --seed 7 --only 3 --kinds forge_ack\n" in outcome.report
