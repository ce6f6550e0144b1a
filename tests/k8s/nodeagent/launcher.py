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


def _bind(libc: ctypes.CDLL, source_fd: int, is_dir: bool, target: str, read_only: bool) -> None:
    dst = Path(target)
    # The mount point must exist; it is created on the host filesystem (the bind itself stays private).
    if is_dir:
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.touch()
    source = f"/proc/self/fd/{source_fd}".encode()
    _check(libc.mount(source, target.encode(), None, _MS_BIND | _MS_REC, None), f"bind {target}")
    if read_only:
        flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
        _check(libc.mount(None, target.encode(), None, flags, None), f"read-only {target}")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(_CLONE_NEWUTS), "unshare(CLONE_NEWUTS)")
    hostname = spec["hostname"].encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    mounts: list[dict[str, object]] = spec["mounts"]
    # Open every source before mounting anything: a volume mounted at /tmp (say) would otherwise hide
    # sources that live under /tmp. Parents are mounted before their children, as runtimes do.
    opened = [(os.open(str(m["source"]), os.O_PATH), os.path.isdir(str(m["source"])), m) for m in mounts]
    # The process runs host programs (the venv, the checkout as working directory): a volume mounted above
    # them (an emptyDir at /tmp while the checkout lives under /tmp, say) would hide them, so they are
    # bound back on top, as an image's own files would be visible beside its volumes.
    targets = [str(m["target"]).rstrip("/") for m in mounts]
    path_dirs = [p for p in spec["env"].get("PATH", "").split(":") if p]
    # A venv's bin/ alone is not enough: its python finds site-packages through ../pyvenv.cfg and ../lib.
    venvs = [str(Path(p).parent) for p in path_dirs if (Path(p).parent / "pyvenv.cfg").is_file()]
    # The checkout holds the editable install's sources.
    checkout = str(Path(__file__).resolve().parents[3])
    keep = [spec["cwd"], *path_dirs, *venvs, checkout]
    hidden = sorted(
        {p for p in keep if p and os.path.isdir(p) and any(p.startswith(t + "/") for t in targets)},
        key=lambda p: len(Path(p).parts),
    )
    kept = [(os.open(p, os.O_PATH), p) for p in hidden]
    for fd, is_dir, mount in sorted(opened, key=lambda o: len(Path(str(o[2]["target"])).parts)):
        _bind(libc, fd, is_dir, str(mount["target"]), bool(mount.get("readOnly")))
        os.close(fd)
    restored: list[str] = []
    for fd, path in kept:
        # A parent bound back already brings its whole host subtree with it.
        if not any(path.startswith(r + "/") for r in restored):
            _bind(libc, fd, True, path, False)
            restored.append(path)
        os.close(fd)
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
