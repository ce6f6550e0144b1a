"""Reads the brokers' logs for the failure report: which Raft links stayed down.

Only the lower-id node of a pair dials (consensus transport), and while a dialer is alive and not connected
it logs an attempt outcome (``peer_connect_timeout``, ``peer_stream_failed`` or ``peer_connected``) every
couple of seconds. A pair whose last transport event on the dialing side is ``peer_disconnected``, long
ago, therefore has a dialer that stopped: that pair never reconnects until the dialing broker restarts.
"""

from __future__ import annotations

import re
import time

from tests.cluster.faults.cluster import ProxiedCluster

DIALER_SILENT_S = 6.0
"""Longer than a connect timeout (2 s) plus the longest redial backoff (0.5 s), with room for load."""
_EVENT = re.compile(
    r"^(\d\d):(\d\d):(\d\d) .*event="
    r"(peer_connected|peer_disconnected|peer_connect_timeout|peer_stream_failed|peer_dial_failed)"
    r" node=(\d+) peer=(\d+)"
)
_STARTED = "event=runtime_started"
DEAD_DIALER = "dead Raft dialer"


def dead_dialers(cluster: ProxiedCluster, now: float | None = None) -> list[tuple[int, str]]:
    """(dialing broker, description) per (node → higher peer) link whose dialer went silent after a
    disconnect."""
    clock = time.localtime(now)
    now_s = clock.tm_hour * 3600 + clock.tm_min * 60 + clock.tm_sec
    found = []
    for n, broker in sorted(cluster.brokers.items()):
        if not broker.running:
            continue
        try:
            lines = broker.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        # Only the current incarnation: the log file is appended to across restarts.
        starts = [i for i, line in enumerate(lines) if _STARTED in line]
        last: dict[int, tuple[str, int, str]] = {}
        for line in lines[starts[-1] if starts else 0 :]:
            m = _EVENT.match(line)
            if m is None or int(m.group(5)) != n or int(m.group(6)) <= n:
                continue
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
            last[int(m.group(6))] = (m.group(4), h * 3600 + mi * 60 + s, f"{h:02}:{mi:02}:{s:02}")
        for peer, (event, at, stamp) in sorted(last.items()):
            silent = (now_s - at) % 86400
            if event == "peer_disconnected" and silent > DIALER_SILENT_S:
                found.append(
                    (
                        n,
                        f"{DEAD_DIALER}: broker {n} stopped dialing broker {peer} after a disconnect at "
                        f"{stamp} ({silent} s without a connect attempt)",
                    )
                )
    return found
