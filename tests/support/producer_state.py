"""Batch headers and an appender that drive a ProducerStateManager the way the produce path does."""

from __future__ import annotations

from dataclasses import dataclass

from streamraft_broker.producer import (
    Duplicate,
    Ok,
    ProducerStateManager,
    Rejected,
)
from streamraft_broker.records import BatchHeader, SimpleRecord, build_batch, parse_header

PID = 4242


@dataclass(frozen=True)
class Appended:
    """The two AppendInfo fields the state reads."""

    base_offset: int
    log_append_time: int = -1


def header(seq: int, count: int = 1, *, pid: int = PID, epoch: int = 0, base_offset: int = 0) -> BatchHeader:
    records = [SimpleRecord(None, f"v{i}".encode()) for i in range(count)]
    raw = build_batch(
        records,
        base_offset=base_offset,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        timestamp_ms=1_700_000_000_000,
    )
    return parse_header(raw)


class Appender:
    """Drives a ProducerStateManager the way the produce path does: check, then append, then update."""

    def __init__(self, state: ProducerStateManager) -> None:
        self.state = state
        self.next_offset = 0

    def produce(self, *headers: BatchHeader) -> Ok | Duplicate | Rejected:
        verdict = self.state.check(headers)
        if isinstance(verdict, Ok):
            self.state.update(headers, Appended(self.next_offset))
            self.next_offset += sum(h.last_offset_delta + 1 for h in headers)
        return verdict
