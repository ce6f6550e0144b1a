"""kafka-metadata-quorum: `describe --status` and `--replication` read the controller group's Raft state."""

from __future__ import annotations

import re

import pytest

from tests.compat.target import Target
from tests.javakafka.tools import METADATA_QUORUM, run_tool

pytestmark = [pytest.mark.java]


def _fields(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()) if v}


def test_describe_status_and_replication(target: Target) -> None:
    status = run_tool(
        METADATA_QUORUM, ["--bootstrap-server", target.bootstrap, "describe", "--status"], check=False
    )
    if target.name == "streamraft":
        # One plain broker has no controller quorum, and says so rather than inventing one.
        assert status.returncode != 0
        assert "no controller quorum" in status.stdout + status.stderr
        return
    assert status.returncode == 0, status.stderr[-2000:]
    fields = _fields(status.stdout)
    leader = int(fields["LeaderId"])
    voters = [int(v) for v in re.findall(r'"id":\s*(\d+)', fields["CurrentVoters"])]
    assert sorted(voters) == list(range(min(voters), min(voters) + target.brokers)), fields
    assert leader in voters and int(fields["LeaderEpoch"]) >= 1 and int(fields["HighWatermark"]) > 0, fields

    replication = run_tool(
        METADATA_QUORUM, ["--bootstrap-server", target.bootstrap, "describe", "--replication"]
    ).stdout
    rows = [ln.split() for ln in replication.splitlines()[1:] if ln.strip()]
    assert sorted(int(r[0]) for r in rows) == sorted(voters), replication
    statuses = {int(r[0]): r[-1] for r in rows}
    assert statuses[leader] == "Leader" and list(statuses.values()).count("Follower") == len(voters) - 1
