"""Atomic whole-file writes with a CRC-32C: used for hard state and snapshots.

A file is written to a temporary name, fsynced, renamed over the target and the directory fsynced, so a
crash leaves either the old or the new content, never a mix. The CRC catches media corruption.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import crc32c

from streamraft_consensus.storage.errors import CorruptFileError

_HEADER = struct.Struct(">4sII")  # magic, crc32c(payload), len(payload)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cached_pages(directory: Path) -> None:
    """Ask the kernel to forget the cached pages of every file under ``directory`` before it is read
    again after a failed write or fsync: Linux may keep pages whose write-back failed in its cache, marked
    clean, and reading them back would trust data the disk never got. Best effort: dirty pages stay, and
    some filesystems (tmpfs) have nothing else to read from."""
    if not hasattr(os, "posix_fadvise") or not directory.exists():
        return
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, magic: bytes, payload: bytes) -> None:
    assert len(magic) == 4
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, _HEADER.pack(magic, crc32c.crc32c(payload), len(payload)) + payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_checked(path: Path, magic: bytes) -> bytes:
    raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise CorruptFileError(path, f"{len(raw)} bytes is shorter than the {_HEADER.size}-byte header")
    got_magic, crc, length = _HEADER.unpack_from(raw)
    if got_magic != magic:
        raise CorruptFileError(path, f"magic {got_magic!r}, expected {magic!r}")
    payload = raw[_HEADER.size :]
    if len(payload) != length:
        raise CorruptFileError(path, f"payload is {len(payload)} bytes, header says {length}")
    if crc32c.crc32c(payload) != crc:
        raise CorruptFileError(path, "CRC-32C mismatch")
    return payload
