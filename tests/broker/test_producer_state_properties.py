"""Property test of producer state against a model client: whatever mix of sends, retries of any of the
last five batches, sequence gaps and epoch bumps, every batch is in the log exactly once, retries are
answered with the original offsets, and gaps/stale epochs are refused without writing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from streamraft_broker.producer import Duplicate, Ok, ProducerStateManager, Rejected
from streamraft_broker.producer.types import MAX_SEQUENCE, increment_sequence

from tests.support.producer_state import Appender, header

ops = st.lists(
    st.tuples(
        st.sampled_from(["send", "send", "send", "retry", "gap", "bump", "stale"]),
        st.integers(0, 1),  # producer
        st.integers(1, 4),  # records in the batch / which retry
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([0, MAX_SEQUENCE - 5]))
def test_exactly_once_under_retries_gaps_and_bumps(seq: list[tuple[str, int, int]], start: int) -> None:
    # Starting near the wrap means the producers' earlier history is gone (expired): not a complete state.
    log = Appender(ProducerStateManager(complete=start == 0))
    pids = (100, 200)
    epoch = {p: 0 for p in pids}
    next_seq = {p: start for p in pids}
    sent: dict[int, list[tuple[int, int, int, int]]] = {p: [] for p in pids}  # (epoch, seq, count, offset)
    appended: list[tuple[int, int, int]] = []  # (pid, epoch, seq) of every batch written, in log order
    for kind, which, n in seq:
        pid = pids[which]
        end_before = log.next_offset
        if kind == "send":
            verdict = log.produce(header(next_seq[pid], n, pid=pid, epoch=epoch[pid]))
            assert isinstance(verdict, Ok)
            sent[pid].append((epoch[pid], next_seq[pid], n, end_before))
            appended.append((pid, epoch[pid], next_seq[pid]))
            next_seq[pid] = increment_sequence(next_seq[pid], n)
        elif kind == "retry" and sent[pid]:
            same_epoch = [b for b in sent[pid] if b[0] == epoch[pid]][-5:]
            if not same_epoch:
                continue
            b_epoch, b_seq, b_count, b_offset = same_epoch[-1 - (n - 1) % len(same_epoch)]
            verdict = log.produce(header(b_seq, b_count, pid=pid, epoch=b_epoch))
            assert isinstance(verdict, Duplicate) and verdict.base_offset == b_offset
            assert verdict.last_offset == b_offset + b_count - 1
        elif kind == "gap" and sent[pid]:
            verdict = log.produce(header(increment_sequence(next_seq[pid], n), 1, pid=pid, epoch=epoch[pid]))
            assert isinstance(verdict, Rejected)
            assert verdict.error_code == ErrorCode.out_of_order_sequence_number
        elif kind == "bump":
            epoch[pid] += 1
            next_seq[pid] = 0
        elif kind == "stale" and sent[pid] and sent[pid][-1][0] > 0:
            # One below the newest epoch the partition has seen from this producer.
            verdict = log.produce(header(next_seq[pid], 1, pid=pid, epoch=sent[pid][-1][0] - 1))
            assert isinstance(verdict, Rejected) and verdict.error_code == ErrorCode.invalid_producer_epoch
        if kind != "send":
            assert log.next_offset == end_before, f"{kind} must not write"
    assert len(appended) == len(set(appended)), "a batch was written twice"
