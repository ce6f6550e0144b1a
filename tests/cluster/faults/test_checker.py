"""The history checker flags each violation the fault suite relies on it to find: the suite can fail.

Each test starts from a history that passes and injects exactly one fault into the checker's input."""

from __future__ import annotations

from tests.support.history import History


def _good() -> History:
    h = History(acked=[(0, 0, b"a"), (0, 1, b"b"), (1, 0, b"x")])
    h.reads = {
        "r1": {0: [(0, b"a"), (1, b"b")], 1: [(0, b"x")]},
        # A second reader that stopped earlier: a prefix is not a divergence.
        "r2": {0: [(0, b"a")], 1: [(0, b"x")]},
    }
    h.watermarks[0] = [1, 2, 2]
    h.committed[(0, 0)] = [1, 2]
    h.committed[(1, 0)] = [0, 2]  # a new series may start lower (the coordinator moved)
    h.created.add("t")
    h.topic_ids["t"] = {"broker-1": "id1", "broker-2": "id1"}
    return h


def test_good_history_passes() -> None:
    assert _good().check() == []


def test_lost_acknowledged_write() -> None:
    h = _good()
    h.acked.append((0, 2, b"c"))
    assert any("lost" in p for p in h.check())


def test_acknowledged_write_missing_from_one_reader_that_read_past_it() -> None:
    h = _good()
    h.reads["r2"][0] = [(0, b"a"), (2, b"z")]  # skipped offset 1 that was acknowledged
    h.reads["r1"][0].append((2, b"z"))
    problems = h.check()
    assert any("b'b' at 0@1 missing from r2" in p for p in problems), problems


def test_offset_holding_two_values() -> None:
    h = _good()
    h.acked.append((0, 1, b"other"))
    problems = h.check()
    assert any("two acks at 0@1" in p for p in problems), problems


def test_duplicate_value() -> None:
    h = _good()
    h.reads["r1"][0].append((2, b"b"))
    assert any("duplicated values [b'b']" in p for p in h.check())


def test_reordered_read() -> None:
    h = _good()
    h.reads["r2"][0] = [(1, b"b"), (0, b"a")]
    problems = h.check()
    assert any("r2 partition 0: offsets not strictly increasing" in p for p in problems), problems
    assert any("different logs" in p for p in problems), problems


def test_consumers_disagreeing_on_order() -> None:
    h = _good()
    h.reads["r2"][1] = [(0, b"y")]
    problems = h.check()
    assert any("r1 and r2 read different logs" in p for p in problems), problems


def test_decreasing_committed_offset() -> None:
    h = _good()
    h.committed[(1, 0)].append(1)
    assert any("committed group offset went back from 2 to 1" in p for p in h.check())


def test_decreasing_high_watermark() -> None:
    h = _good()
    h.watermarks[0].append(1)
    assert any("high watermark went back" in p for p in h.check())


def test_created_topic_missing_or_with_two_ids() -> None:
    h = _good()
    h.topic_ids["t"]["broker-3"] = ""
    assert any("missing on ['broker-3']" in p for p in h.check())
    h.topic_ids["t"]["broker-3"] = "id2"
    assert any("several ids" in p for p in h.check())


def test_driver_violations_are_reported() -> None:
    h = _good()
    h.violations.append("liveness: 1 produce(s) not acknowledged")
    assert h.check() == ["liveness: 1 produce(s) not acknowledged"]


def test_many_problems_are_summarised() -> None:
    h = _good()
    h.acked += [(0, 10 + i, b"gone%d" % i) for i in range(20)]
    problems = h.check()
    assert len(problems) == 6 and problems[-1] == "... and 15 more lost problems", problems


def test_an_acknowledgement_without_an_offset_must_still_be_read_back() -> None:
    h = History()
    h.reads["r"] = {0: [(0, b"a"), (1, b"b")]}
    h.acked_unplaced.append((0, b"b"))
    assert h.check() == []
    h.acked_unplaced.append((0, b"missing"))
    assert h.check() == ["acknowledged b'missing' (no offset given) in partition 0 never read"]
