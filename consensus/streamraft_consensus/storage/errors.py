"""Errors raised by durable storage."""

from __future__ import annotations

from pathlib import Path


class CorruptLogError(Exception):
    """A damaged record that is not a torn tail: valid data follows it, so truncating would lose
    acknowledged entries. Start-up must stop and a human must look."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"corrupt record in {path} at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class CorruptFileError(Exception):
    """A hard-state or snapshot file whose checksum or framing does not verify."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"corrupt file {path}: {reason}")
        self.path = path
        self.reason = reason
