"""Durable Raft storage: append-only CRC-32C segment files, atomic hard state and snapshot files."""

from streamraft_consensus.storage.errors import CorruptFileError, CorruptLogError
from streamraft_consensus.storage.protocol import LogWriter, RaftStorage
from streamraft_consensus.storage.segment_log import SegmentLog

__all__ = ["CorruptFileError", "CorruptLogError", "LogWriter", "RaftStorage", "SegmentLog"]
