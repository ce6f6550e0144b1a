"""Rebuild a partition's producer state on open: newest valid snapshot (at or below the log end), then the
batch headers the log holds after it (no record is decoded)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

from streamraft_broker.producer.snapshot import load_latest
from streamraft_broker.producer.state import ProducerStateManager
from streamraft_broker.producer.types import HeaderLike, HeaderSource


def recover(
    directory: Path, log: HeaderSource, *, strict_unknown_producer: bool = False
) -> ProducerStateManager:
    start = log.log_start_offset
    loaded = load_latest(directory, log.log_end_offset)
    # Complete (every producer that wrote here known) only if nothing was removed from the log's start and
    # the snapshot, if any, was complete when taken.
    complete = start == 0 and (loaded is None or loaded.complete)
    state = ProducerStateManager(strict_unknown_producer=strict_unknown_producer, complete=complete)
    if loaded is not None:
        # A snapshot older than the log start still counts: as in Kafka since KIP-360, producers outlive
        # the retention of their batches, so a retry after retention is still recognised.
        start = max(start, loaded.offset)
        state.restore(loaded.entries, start)
    else:
        state.map_end_offset = start
    headers = cast("Iterable[HeaderLike]", log.iter_batch_headers(start))
    for header in headers:
        if header.base_offset + header.last_offset_delta < start:
            continue  # the batch straddling `start` was already counted in the snapshot
        state.replay(header)
    return state
