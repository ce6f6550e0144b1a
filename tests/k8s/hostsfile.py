"""Cluster DNS names for processes on the host (test code, Kafka clients) via a tagged block in the
host's /etc/hosts, like `minikube tunnel` makes a cluster reachable from a laptop.

Pods never see this block (they get their own hosts file through `ip netns exec`). Each cluster owns
one block, tagged with its subnet; writes take an flock so parallel clusters do not lose each other's
updates, and rewrite the file in place because /etc/hosts may itself be a bind mount.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

HOSTS = Path(os.environ.get("STREAMRAFT_HOSTS_FILE", "/etc/hosts"))
_LOCK = Path("/run/streamraft-k8s/hosts.lock")


def _markers(tag: str) -> tuple[str, str]:
    return f"# BEGIN streamraft-k8s {tag}", f"# END streamraft-k8s {tag}"


def _rewrite(tag: str, lines: list[str]) -> None:
    begin, end = _markers(tag)
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = HOSTS.read_text().splitlines() if HOSTS.exists() else []
        kept: list[str] = []
        inside = False
        for line in current:
            if line == begin:
                inside = True
            elif line == end and inside:
                inside = False
            elif not inside:
                kept.append(line)
        if lines:
            kept += [begin, *lines, end]
        text = "\n".join(kept) + "\n"
        if text != "\n".join(current) + "\n":
            with open(HOSTS, "r+") as f:
                f.write(text)
                f.truncate()


def update_block(tag: str, lines: list[str]) -> None:
    _rewrite(tag, sorted(set(lines)))


def remove_block(tag: str) -> None:
    _rewrite(tag, [])
