"""Entering a pod's network namespace from one thread of the agent.

setns(CLONE_NEWNET) moves only the calling thread, so a per-pod prober thread can open sockets that
live in the pod's namespace (as a real kubelet's probes reach the pod) while the rest of the agent
keeps talking to the apiserver on the host's loopback. Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os

_CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Moves the calling thread into /run/netns/<name>; raises OSError if that fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)
