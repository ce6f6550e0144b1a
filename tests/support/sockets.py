"""Raw-socket helpers for listener tests: is a connection closed by the server, push bytes without blocking,
a minimal ApiVersions round trip."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 7, -1)
"""A whole ApiVersions v0 request, correlation id 7, null client id."""


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A connection from ``source`` (any 127.0.0.0/8 address works on Linux loopback)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s: socket.socket, within: float) -> bool:
    """True once the server closes ``s`` (EOF or reset) within ``within`` seconds; data is discarded."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def api_versions_answered(s: socket.socket, timeout: float = 5.0) -> bool:
    """Sends ApiVersions v0 on ``s`` and reads the answer; False when the connection is gone or silent."""
    s.settimeout(timeout)
    try:
        s.sendall(API_VERSIONS_V0)
        header = _recv_exact(s, 4)
        body = _recv_exact(s, struct.unpack(">i", header)[0])
    except (OSError, ConnectionError):
        return False
    return struct.unpack_from(">ih", body) == (7, 0)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        got = s.recv(n - len(out))
        if not got:
            raise ConnectionError("closed")
        out += got
    return bytes(out)


def push(sockets: list[socket.socket], data: bytes, seconds: float) -> list[int]:
    """Sends ``data`` on every socket without blocking, for at most ``seconds`` (a muted peer stops
    taking bytes); returns how many bytes each socket got out."""
    sent = [0] * len(sockets)
    for s in sockets:
        s.setblocking(False)
    deadline = time.monotonic() + seconds
    view = memoryview(data)
    while time.monotonic() < deadline and any(n < len(data) for n in sent):
        progress = False
        for i, s in enumerate(sockets):
            if sent[i] >= len(data):
                continue
            with contextlib.suppress(BlockingIOError):
                n = s.send(view[sent[i] : sent[i] + (1 << 20)])
                sent[i] += n
                progress = progress or n > 0
        if not progress:
            time.sleep(0.02)  # every socket's send buffer is full: give the peer time to read, bounded above
    for s in sockets:
        s.setblocking(True)
    return sent
