"""The history checker finds each kind of violation it claims to find."""

from __future__ import annotations

from tests.support.history import History


def _good() -> History:
    h = History(acked=[(0, 0, b"a"), (0, 1, b"b")])
    h.reads = {"c1": {0: [(0, b"a"), (1, b"b")]}, "c2": {0: [(0, b"a"), (1, b"b")]}}
    h.watermarks[0] = [1, 2, 2]
    return h


def test_clean_history_passes() -> None:
    assert _good().check() == []


def test_lost_acknowledged_write_is_caught() -> None:
    h = _good()
    h.acked.append((0, 2, b"c"))
    assert any("lost" in p for p in h.check())


def test_diverging_consumers_and_duplicates_are_caught() -> None:
    h = _good()
    h.reads["c2"] = {0: [(0, b"a"), (1, b"a")]}
    problems = h.check()
    assert any("different logs" in p for p in problems)
    assert any("duplicated" in p for p in problems)


def test_watermark_going_back_is_caught() -> None:
    h = _good()
    h.watermarks[0].append(1)
    assert any("went back" in p for p in h.check())


def test_nothing_read_is_a_failure() -> None:
    assert History().check() == ["no consumer read anything"]
