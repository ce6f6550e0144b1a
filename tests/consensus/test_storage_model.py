"""SegmentLog behaves like the core's MemoryStorage (the reference model) under random appends, conflict
truncations, snapshots and compactions, and after a reopen it still does."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, EntryType
from streamraft_consensus.storage import SegmentLog

# An op is ("append", back, count, term) | ("snapshot", back) with ``back`` counted from the last index.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 12), st.integers(0, 2)),
        st.tuples(st.just("snapshot"), st.integers(0, 10), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


def observe(s: SegmentLog | MemoryStorage) -> tuple[object, ...]:
    first, last = s.first_index(), s.last_index()
    ents = s.entries(first, last + 1) if last >= first else []
    with_limit = s.entries(first, last + 1, max_bytes=100) if last >= first else []
    snap = s.snapshot()
    return (first, last, s.term(first - 1), ents, with_limit, snap.meta.index, snap.meta.term, snap.data)


def term_error(s: SegmentLog | MemoryStorage, index: int) -> type[Exception] | None:
    try:
        s.term(index)
    except (Compacted, Unavailable) as err:
        return type(err)
    return None


@settings(max_examples=40, deadline=None)
@given(ops)
def test_segment_log_matches_memory_storage(script: list[tuple[str, int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        real = SegmentLog(Path(d), segment_bytes=1024)
        model = MemoryStorage(ConfState(voters=(1,)))
        term = 1
        for op, back, count, bump in script:
            last = model.last_index()
            if op == "append":
                start = max(model.first_index(), last + 1 - back)
                term += bump
                batch = [
                    Entry(term, i, EntryType.NORMAL, b"%d@%d" % (i, term) * 3)
                    for i in range(start, start + count)
                ]
                model.append(batch)
                real.append(batch)
                real.sync()
            else:
                index = last - back
                if index <= model.snapshot().meta.index or index < model.first_index():
                    continue
                data = b"snap@%d" % index
                model.create_snapshot(index, None, data)
                model.compact(index)
                real.create_snapshot(index, ConfState(voters=(1,)), data)
                real.compact(index)
            assert observe(real) == observe(model)
        for probe in (model.first_index() - 2, model.last_index() + 1):
            assert term_error(real, probe) is term_error(model, probe)
        real.close()
        reopened = SegmentLog(Path(d), segment_bytes=1024)
        # A reopen serves from the snapshot onwards (compaction is exact at the snapshot index).
        assert observe(reopened) == observe(model)
        reopened.close()
