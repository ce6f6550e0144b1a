"""Exec wrapper that turns a host process into a pod's container process.

Runs as `ip netns exec <pod-netns> python launcher.py <spec.json>`: `ip netns exec` has already put us
in the pod's network namespace, in a private mount namespace, with /etc/netns/<pod>/{hosts,resolv.conf}
bound over /etc. Here we add a private UTS namespace (so the hostname is the pod's), bind the pod's
volumes at their mountPaths, then exec the container command. Deliberately standalone (stdlib only,
no package imports): it must start fast and must not put our code on the container's sys.path.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

_CLONE_NEWUTS = 0x04000000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _bind(libc: ctypes.CDLL, source: str, target: str, read_only: bool) -> None:
    src = Path(source)
    dst = Path(target)
    # The mount point must exist; it is created on the host filesystem (the bind itself stays private).
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.touch()
    _check(libc.mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None), f"bind {target}")
    if read_only:
        flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
        _check(libc.mount(None, target.encode(), None, flags, None), f"read-only {target}")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(_CLONE_NEWUTS), "unshare(CLONE_NEWUTS)")
    hostname = spec["hostname"].encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    for mount in spec["mounts"]:
        _bind(libc, mount["source"], mount["target"], bool(mount.get("readOnly")))
    os.chdir(spec["cwd"])
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"launcher: cannot exec {argv[0]!r}: {exc}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
