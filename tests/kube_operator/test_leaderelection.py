"""Leader election decisions over a Lease: who acquires, renews, waits or steps down, and when.

Times are the observer's monotonic seconds; the Lease's own timestamps are the writer's wall clock and
deliberately play no part in any decision (see test_wall_clock_skew_in_the_record_changes_nothing).
"""

import datetime

import pytest
from streamraft_operator.leaderelection import (
    Action,
    LeaseRecord,
    Observed,
    Timing,
    decide,
    lease_spec,
    must_step_down,
    observe,
    parse_record,
    released_spec,
)
from streamraft_operator.main import identity, parse_args

ME = "op-a_1111"
OTHER = "op-b_2222"
T = Timing()  # 15 s lease, 10 s renew deadline, 5 s renew period, 2 s retry
WALL = datetime.datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def record(holder: str, rv: str = "1", duration: int = 15, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_s=duration,
        acquire_time="2026-12-07T11:00:00.000000Z",
        renew_time="2026-12-07T11:59:58.000000Z",
        transitions=transitions,
        resource_version=rv,
    )


def test_no_lease_means_create_it() -> None:
    assert decide(100.0, None, ME) is Action.CREATE


def test_a_live_lease_of_another_holder_is_waited_for() -> None:
    seen = Observed(record(OTHER), observed_at=100.0)
    assert decide(100.0, seen, ME) is Action.WAIT
    assert decide(114.9, seen, ME) is Action.WAIT


def test_a_lease_unchanged_for_its_duration_has_expired_and_is_acquired() -> None:
    seen = Observed(record(OTHER), observed_at=100.0)
    assert decide(115.0, seen, ME) is Action.ACQUIRE
    # The duration is the one the holder wrote, not ours.
    assert decide(105.0, Observed(record(OTHER, duration=5), 100.0), ME) is Action.ACQUIRE


def test_a_renew_restarts_the_wait() -> None:
    first = observe(None, record(OTHER, rv="7"), now=100.0)
    # Read again 14 s later: same resourceVersion, the holder has not renewed; the wait still counts from 100.
    same = observe(first, record(OTHER, rv="7"), now=114.0)
    assert same.observed_at == 100.0
    assert decide(115.0, same, ME) is Action.ACQUIRE
    # The holder renewed (new resourceVersion): a fresh 15 s from when we saw it.
    renewed = observe(same, record(OTHER, rv="8"), now=114.0)
    assert renewed.observed_at == 114.0
    assert decide(115.0, renewed, ME) is Action.WAIT
    assert decide(128.9, renewed, ME) is Action.WAIT


def test_wall_clock_skew_in_the_record_changes_nothing() -> None:
    """The holder's clock may run hours ahead or behind ours: its renewTime is never compared with our
    clock, only whether the record changed and for how long we have seen it unchanged."""
    for renew_time in ("1970-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"):
        skewed = LeaseRecord(OTHER, 15, renew_time, renew_time, 0, "3")
        seen = observe(None, skewed, now=500.0)
        assert decide(501.0, seen, ME) is Action.WAIT
        assert decide(515.0, seen, ME) is Action.ACQUIRE


def test_our_own_lease_is_renewed_and_a_released_one_taken_at_once() -> None:
    assert decide(100.0, Observed(record(ME), 0.0), ME) is Action.RENEW
    # A released Lease (empty holder) is free now, without waiting out any duration.
    assert decide(100.0, Observed(record("", duration=1), 100.0), ME) is Action.ACQUIRE


def test_the_holder_steps_down_before_a_standby_may_take_over() -> None:
    last_renewed = 100.0
    assert not must_step_down(109.9, last_renewed, T)
    assert must_step_down(110.0, last_renewed, T)
    # A standby that read the Lease right after that renew (at 100 or later) acquires at 115 at the
    # earliest: the holder stopped acting 5 s before (the margin for clock-rate drift and exiting).
    seen = Observed(record(OTHER), observed_at=last_renewed)
    first_takeover = next(t / 10 for t in range(1000, 2000) if decide(t / 10, seen, ME) is Action.ACQUIRE)
    step_down = next(t / 10 for t in range(1000, 2000) if must_step_down(t / 10, last_renewed, T))
    assert first_takeover - step_down == T.lease_duration_s - T.renew_deadline_s == 5.0


def test_timing_must_leave_a_margin_between_the_renew_deadline_and_the_lease_duration() -> None:
    with pytest.raises(ValueError, match="lease duration"):
        Timing(lease_duration_s=10, renew_deadline_s=10)
    with pytest.raises(ValueError, match="lease duration"):
        Timing(lease_duration_s=11, renew_deadline_s=10, retry_period_s=2)
    with pytest.raises(ValueError, match="renew period"):
        Timing(renew_period_s=10)
    with pytest.raises(ValueError, match="retry period must be > 0"):
        Timing(retry_period_s=0, renew_period_s=1)
    Timing(lease_duration_s=4, renew_deadline_s=3, renew_period_s=1, retry_period_s=1)


def test_acquiring_from_another_holder_counts_a_transition_and_stamps_acquire_time() -> None:
    spec = lease_spec(Action.ACQUIRE, record(OTHER, transitions=4), ME, WALL, T)
    assert spec == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-07T12:00:00.123456Z",
        "renewTime": "2026-12-07T12:00:00.123456Z",
        "leaseTransitions": 5,
    }
    # A fractional duration is written rounded up, never shortening the margin the holder relies on.
    odd = Timing(lease_duration_s=12.2, renew_deadline_s=10)
    assert lease_spec(Action.ACQUIRE, None, ME, WALL, odd)["leaseDurationSeconds"] == 13
    created = lease_spec(Action.CREATE, None, ME, WALL, T)
    assert created["leaseTransitions"] == 0 and created["holderIdentity"] == ME


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    spec = lease_spec(Action.RENEW, record(ME, transitions=2), ME, WALL, T)
    assert spec["acquireTime"] == "2026-12-07T11:00:00.000000Z"
    assert spec["renewTime"] == "2026-12-07T12:00:00.123456Z"
    assert spec["leaseTransitions"] == 2
    with pytest.raises(ValueError, match="no Lease write for wait"):
        lease_spec(Action.WAIT, record(OTHER), ME, WALL, T)


def test_release_on_stop_empties_only_our_own_lease() -> None:
    released = released_spec(record(ME, transitions=3), ME, WALL)
    assert released is not None
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 3
    # Someone else took it meanwhile: leave it alone.
    assert released_spec(record(OTHER), ME, WALL) is None
    # What the standby then reads: free at once.
    lease = {"metadata": {"resourceVersion": "9"}, "spec": released}
    assert decide(0.0, observe(None, parse_record(lease), 0.0), OTHER) is Action.ACQUIRE


def test_parse_record_reads_a_lease_object_and_tolerates_missing_fields() -> None:
    lease = {
        "metadata": {"name": "streamraft-operator", "resourceVersion": "42"},
        "spec": {"holderIdentity": OTHER, "leaseDurationSeconds": 15, "leaseTransitions": 1},
    }
    assert parse_record(lease) == LeaseRecord(OTHER, 15, "", "", 1, "42")
    assert parse_record({"metadata": {"resourceVersion": "1"}}).holder == ""


def test_cli_validates_leader_election_flags(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    with pytest.raises(SystemExit):
        parse_args(["--leader-elect"])
    assert "needs --leader-elect-resource-namespace" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(
            ["--leader-elect", "--leader-elect-resource-namespace=x", "--leader-elect-lease-duration=5"]
        )
    assert "lease duration (5.0s) must exceed the renew deadline" in capsys.readouterr().err
    args = parse_args(["--leader-elect", "--leader-elect-resource-namespace=ops"])
    assert args.timing == Timing() and args.leader_elect_resource_name == "streamraft-operator"


def test_identity_is_the_pod_name_plus_a_per_process_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container restarted inside the same pod must not pass for the holder that died there."""
    monkeypatch.setenv("POD_NAME", "streamraft-operator-7d9f-abcde")
    first, second = identity(""), identity("")
    assert first.startswith("streamraft-operator-7d9f-abcde_") and first != second
    assert identity("fixed") == "fixed"
