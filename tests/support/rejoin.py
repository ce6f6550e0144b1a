"""A Raft cluster's start-up is over when every broker's ``GET /admin/rejoin`` says so.

The launcher starts brokers one after another; a broker that finds the cluster already formed goes through
a rejoin (demoted to learner in every group, promoted back once caught up). Until it is a voter again, the
cluster survives no further failure, so a test that kills a broker waits for this first.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def rejoin_view(metrics_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/admin/rejoin", timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def settled(metrics_ports: list[int]) -> bool:
    """Every broker decided (first life or rebuilt), none recovering, and no group has a learner left."""
    views = [rejoin_view(port) for port in metrics_ports]
    if not all(v["state"] in ("none", "fresh", "done") and not v["recovering"] for v in views):
        return False
    return all(not g["learners"] for v in views for g in v["groups"].values())
