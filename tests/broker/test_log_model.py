"""Random operation sequences on a real PartitionLog checked against a plain in-memory model of the
log (a list of batches), including clean reopens and crash reopens between operations."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.compaction import compact_batch
from streamraft_broker.records import (
    SimpleRecord,
    build_batch,
    decode_records,
    parse_header,
    rewrite_for_append,
)

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=90)


@dataclass
class Model:
    batches: list[tuple[int, int, bytes]] = field(default_factory=list)  # (base, last, stored bytes)
    log_start: int = 0
    end: int = 0
    timestamps: dict[int, int] = field(default_factory=dict)  # offset -> record timestamp
    # (epoch, start offset) as appends introduced them; compaction does not change them, truncation does.
    epoch_entries: list[tuple[int, int]] = field(default_factory=list)

    def first_at_or_after(self, ts: int) -> tuple[int, int] | None:
        for offset in range(self.log_start, self.end):
            if offset in self.timestamps and self.timestamps[offset] >= ts:
                return offset, self.timestamps[offset]
        return None

    def visible_from(self, offset: int) -> list[tuple[int, int, bytes]]:
        return [b for b in self.batches if b[1] >= offset]


def _raw(records: int, size: int, ts: int) -> bytes:
    # Few distinct keys, so compaction has something to remove.
    values = [
        SimpleRecord(b"k%d" % ((ts + r) % 4), bytes([ts % 251]) * size, (), 0, r) for r in range(records)
    ]
    return build_batch(values, timestamp_ms=ts)


_append = st.tuples(
    st.just("append"),
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 300)), min_size=1, max_size=3),
    st.integers(0, 6),  # leader epoch; sometimes lower than before, which the epoch cache ignores
)
_read = st.tuples(st.just("read"), st.integers(0, 10**6), st.integers(0, 1500))
_read_exact = st.tuples(st.just("read_exact"), st.integers(0, 10**6), st.integers(1, 6), st.integers(-1, 1))
_truncate = st.tuples(st.just("truncate"), st.integers(0, 10**6))
_delete = st.tuples(st.just("delete"), st.integers(0, 10**6))
_reopen = st.tuples(st.just("reopen"), st.booleans())
_compact = st.tuples(st.just("compact"))
_op = st.one_of(_append, _append, _read, _read_exact, _truncate, _delete, _reopen, _compact)
_ops = st.lists(_op, min_size=5, max_size=30)


def _compact_model(model: Model, active_base: int) -> None:
    """Expected effect of compaction, batch by batch (compact_batch itself is covered by its own tests)."""
    latest: dict[bytes, int] = {}
    for base, _, data in model.batches:
        if base < active_base:
            for record in decode_records(data):
                assert record.key is not None
                latest[record.key] = base + record.offset_delta
    kept: list[tuple[int, int, bytes]] = []
    for base, last, data in model.batches:
        new = compact_batch(data, parse_header(data), latest)[0] if base < active_base else data
        if new is not None:
            kept.append((base, last, new))
    model.batches = kept
    alive = {b + r.offset_delta for b, _, d in kept for r in decode_records(d)}
    model.timestamps = {o: t for o, t in model.timestamps.items() if o in alive}


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _crash(log: PartitionLog) -> None:
    for segment in log._segments:
        segment.close()
        segment.close_reader()


def _check(log: PartitionLog, model: Model) -> None:
    assert (log.log_start_offset, log.log_end_offset) == (model.log_start, model.end)
    expected = b"".join(b[2] for b in model.visible_from(model.log_start))
    assert log.read_bytes(model.log_start, 1 << 30) == expected
    assert log.epoch_entries() == model.epoch_entries
    live = {o: t for o, t in model.timestamps.items() if o < model.end}
    model.timestamps = live
    for target in [*sorted(set(live.values()))[::3], max(live.values(), default=0) + 1]:
        assert log.offset_for_timestamp(target) == model.first_at_or_after(target)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_log_matches_model(ops: list[tuple[object, ...]]) -> None:
    directory = Path(tempfile.mkdtemp(prefix="log-model-"))
    log = PartitionLog.open(directory, CONFIG)
    model = Model()
    ts = 0
    try:
        for op in ops:
            kind = op[0]
            if kind == "append":
                specs = op[1]
                assert isinstance(specs, list)
                raws = []
                for records, size in specs:
                    ts += 1
                    raws.append(_raw(records, size, ts))
                epoch = _int(op[2])
                info = log.append(b"".join(raws), leader_epoch=epoch)
                assert info.base_offset == model.end
                for raw in raws:
                    stored = bytearray(raw)
                    rewrite_for_append(stored, model.end, leader_epoch=epoch, log_append_time=None)
                    if not model.epoch_entries or epoch > model.epoch_entries[-1][0]:
                        model.epoch_entries.append((epoch, model.end))
                    count = int.from_bytes(raw[57:61], "big")
                    base_ts = int.from_bytes(raw[27:35], "big")
                    for r in range(count):
                        model.timestamps[model.end + r] = base_ts + r
                    model.batches.append((model.end, model.end + count - 1, bytes(stored)))
                    model.end += count
                assert info.last_offset == model.end - 1
            elif kind in ("read", "read_exact"):
                offset = model.log_start + _int(op[1]) % (model.end - model.log_start + 1)
                if kind == "read":
                    budget = _int(op[2])
                else:  # exactly k batches' worth, or one byte less/more: the boundary cases
                    sizes = [len(b[2]) for b in model.visible_from(offset)][: _int(op[2])]
                    budget = sum(sizes) + _int(op[3])
                expected: list[bytes] = []
                used = 0
                for _, _, stored in model.visible_from(offset):
                    if expected and used + len(stored) > budget:
                        break
                    if not expected and len(stored) > budget:
                        expected.append(stored)  # min_one_message
                        break
                    expected.append(stored)
                    used += len(stored)
                assert log.read_bytes(offset, budget) == b"".join(expected)
            elif kind == "truncate":
                offset = _int(op[1]) % (model.end + 1)
                first_segment_base = log.segment_base_offsets[0]
                log.truncate_to(offset)
                if offset < model.log_start:
                    model.batches, model.end, model.log_start = [], offset, offset
                    model.epoch_entries = []
                elif offset < model.end:
                    # The end becomes the end of the last surviving batch (never below the first segment's
                    # base): with compaction gaps that can be below the removed batch's base.
                    kept = [b for b in model.batches if b[1] < offset]
                    model.batches = kept
                    first_base = first_segment_base
                    model.end = max(kept[-1][1] + 1, first_base) if kept else first_base
                    model.log_start = min(model.log_start, model.end)
                    model.epoch_entries = [e for e in model.epoch_entries if e[1] < model.end]
            elif kind == "delete":
                offset = model.log_start + _int(op[1]) % (model.end - model.log_start + 1)
                log.delete_records_before(offset)
                model.log_start = max(model.log_start, offset)
            elif kind == "compact":
                _compact_model(model, log.segment_base_offsets[-1])
                log.compact()
            else:
                if op[1]:
                    log.close()
                else:
                    _crash(log)
                log = PartitionLog.open(directory, CONFIG)
            _check(log, model)
    finally:
        if not log.closed:
            log.close()
        shutil.rmtree(directory, ignore_errors=True)
