"""Peak resident memory of a process (Linux /proc), for tests that bound what hostile input may cost."""

from __future__ import annotations

from pathlib import Path

KIB = 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def peak_rss(pid: int) -> int:
    """VmHWM in bytes: the most resident memory the process ever had (a brief spike counts)."""
    return _status_kib(pid, "VmHWM") * KIB


def rss(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * KIB


def reset_peak_rss(pid: int) -> None:
    """Sets VmHWM back to the current RSS (Linux >= 4.0), so a later peak_rss measures from now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
