"""Leader-epoch cache: where each leader epoch (the batches' partitionLeaderEpoch, later the Raft term)
starts in the log. Answers OffsetForLeaderEpoch and Raft's "where does term T end" without scanning.

Persisted as "leader-epoch.checkpoint" (version line, count line, then "epoch start_offset" lines), replaced
atomically whenever it changes, which only happens when the epoch changes or the log is truncated.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from pathlib import Path

from .fileio import atomic_write

FILE_NAME = "leader-epoch.checkpoint"
UNDEFINED = -1
_VERSION = "0"

logger = logging.getLogger(__name__)


class LeaderEpochCache:
    def __init__(self, directory: Path, entries: list[tuple[int, int]]) -> None:
        self.path = directory / FILE_NAME
        self._epochs = [e for e, _ in entries]
        self._starts = [s for _, s in entries]

    @classmethod
    def load(cls, directory: Path) -> LeaderEpochCache | None:
        """The persisted cache, or None when missing or unreadable (the caller rebuilds it)."""
        path = directory / FILE_NAME
        try:
            lines = path.read_text(encoding="ascii").split("\n")
            if lines[0] != _VERSION:
                raise ValueError(f"unknown version {lines[0]!r}")
            count = int(lines[1])
            entries = [(int(a), int(b)) for a, b in (line.split() for line in lines[2 : 2 + count])]
            if len(entries) != count:
                raise ValueError(f"{len(entries)} entries, header says {count}")
            for (e1, s1), (e2, s2) in itertools.pairwise(entries):
                if e2 <= e1 or s2 < s1:
                    raise ValueError(f"entries out of order: {(e1, s1)} then {(e2, s2)}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError, IndexError) as exc:
            logger.warning("event=epoch_checkpoint_invalid file=%s error=%s", path, exc)
            return None
        return cls(directory, entries)

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._starts, strict=True))

    @property
    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def _persist(self) -> None:
        lines = [_VERSION, str(len(self._epochs))]
        lines += [f"{e} {s}" for e, s in zip(self._epochs, self._starts, strict=True)]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode("ascii"))

    def assign(self, epoch: int, start_offset: int, *, persist: bool = True) -> bool:
        """Record that ``epoch`` starts at ``start_offset`` if it is newer than the latest; returns whether
        the cache changed. Older or equal epochs are ignored (epochs never go back within one log)."""
        if epoch < 0 or (self._epochs and epoch <= self._epochs[-1]):
            return False
        assert not self._starts or start_offset >= self._starts[-1], (epoch, start_offset, self._starts[-1])
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        if persist:
            self._persist()
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs starting at or after ``end_offset`` (the log was truncated there)."""
        keep = bisect.bisect_left(self._starts, end_offset)
        if keep < len(self._starts):
            del self._epochs[keep:]
            del self._starts[keep:]
            self._persist()

    def clear(self) -> None:
        self._epochs.clear()
        self._starts.clear()
        self._persist()

    def persist(self) -> None:
        self._persist()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest known epoch <= ``epoch``, the offset where it ends) with Kafka's OffsetForLeaderEpoch
        rules: the latest epoch ends at the log end; an epoch above the latest is unknown (-1, -1); an epoch
        below the earliest ends where the earliest starts."""
        if epoch < 0 or not self._epochs:
            return UNDEFINED, UNDEFINED
        if epoch == self._epochs[-1]:
            return epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, epoch)
        if higher == len(self._epochs):
            return UNDEFINED, UNDEFINED
        if higher == 0:
            return epoch, self._starts[0]
        return self._epochs[higher - 1], self._starts[higher]
