"""Free loopback ports for tests (never a fixed port).

A test that must name a port before the server binds it (a cluster's member list) picks it here. The port
comes from below the kernel's ephemeral range: a port the kernel handed out for "bind port 0" lies inside
that range, where any outgoing connection made before the server binds (a broker dialing its peers) can be
given it as its source port, and the server's bind then fails with "address already in use" (CI hit this).
Ports are handed out round robin from a random start, so one process never hands out the same port twice
in a row and concurrent test processes rarely meet; each is checked free by binding it first.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

LOWEST = 10_000
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default lower bound


_SPAN = max(_ephemeral_low() - LOWEST, 1_000)
_lock = threading.Lock()
_cursor = random.randrange(_SPAN)


def free_port(host: str = "127.0.0.1") -> int:
    """A port outside the ephemeral range that nothing was bound to a moment ago."""
    global _cursor
    with _lock:
        for _ in range(_SPAN):
            port = LOWEST + _cursor % _SPAN
            _cursor += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue  # in use (or lingering in TIME_WAIT): try the next one
                return port
    raise RuntimeError(f"no free port on {host} in {LOWEST}..{LOWEST + _SPAN - 1}")
