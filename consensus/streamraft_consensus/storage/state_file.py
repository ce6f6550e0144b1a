"""Hard state and configuration of one Raft group in one atomic file (``state``), as both durable logs keep
them (``SegmentLog`` and a log kept by the embedding application, such as the broker's partition logs).

A term or vote change must be durable before the node answers anyone (``dirty`` until ``write``); a
commit-only change need not be (the commit index is recovered from the leader), so it is written with the
next term/vote change, a snapshot, or on close (``commit_dirty``).
"""

from __future__ import annotations

from pathlib import Path

from streamraft_consensus.core.types import ConfState, HardState
from streamraft_consensus.storage import codec
from streamraft_consensus.storage.files import atomic_write, read_checked

STATE_MAGIC = b"SRHS"


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.hard_state = HardState()
        self.conf_state = ConfState()
        self.dirty = False
        self.commit_dirty = False
        if path.exists():
            self.hard_state, self.conf_state = codec.decode_state(read_checked(path, STATE_MAGIC))

    def set_hard_state(self, hs: HardState) -> None:
        if hs == self.hard_state:
            return
        if hs.term != self.hard_state.term or hs.vote != self.hard_state.vote:
            self.dirty = True
        else:
            self.commit_dirty = True
        self.hard_state = hs

    def set_conf_state(self, cs: ConfState) -> None:
        if cs != self.conf_state:
            self.conf_state = cs
            self.dirty = True

    def install(self, commit_at_least: int, cs: ConfState) -> None:
        """A snapshot at ``commit_at_least`` replaced the log: its configuration, commit at least there."""
        hs = self.hard_state
        self.hard_state = HardState(hs.term, hs.vote, max(hs.commit, commit_at_least))
        self.conf_state = cs
        self.write()

    def write(self) -> None:
        self.dirty = False
        self.commit_dirty = False
        atomic_write(self.path, STATE_MAGIC, codec.encode_state(self.hard_state, self.conf_state))

    def write_if_commit_dirty(self) -> None:
        """Before anything that assumes the commit index is on disk (a snapshot, closing)."""
        if self.commit_dirty:
            self.write()
