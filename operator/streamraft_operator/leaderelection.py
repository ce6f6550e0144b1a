"""Leader election over a coordination.k8s.io/v1 Lease: the pure decisions (no I/O, no clocks).

The operator Deployment runs several replicas; only the one holding the Lease runs the kopf handlers
(`leaderlease.py` is the I/O shell that reads and writes the Lease and calls these functions).

Timing follows client-go's leaderelection package: a candidate may take a Lease held by someone else only
once it has seen the same Lease record unchanged for `lease_duration` by its *own* monotonic clock (the
`observed_at` of `Observed`), never by comparing the record's renewTime with its wall clock. So wall-clock
skew between nodes cannot make a candidate take a live lease early; what must stay bounded is the drift
in clock *rate* over one lease duration, which the gap between `renew_deadline` and `lease_duration` covers:
the holder stops acting `renew_deadline` after its last successful renew, while a candidate waits at least
`lease_duration` after it saw that renew (which happened after the holder timed it).

Every write carries the resourceVersion it was computed from, so of two candidates racing for one Lease the
API server accepts exactly one write and answers the other 409 Conflict.
"""

import datetime
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LEASE_API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class Timing:
    lease_duration_s: float = 15.0
    """How long a candidate waits, after the last change it saw, before it takes the Lease over."""
    renew_deadline_s: float = 10.0
    """The holder stops acting when it has not renewed for this long."""
    renew_period_s: float = 5.0
    """How often the holder renews."""
    retry_period_s: float = 2.0
    """How often a candidate looks at the Lease, and how soon a holder retries a failed renew."""

    def __post_init__(self) -> None:
        problems = []
        if not self.retry_period_s > 0:
            problems.append(f"retry period must be > 0, got {self.retry_period_s}")
        if not self.retry_period_s <= self.renew_period_s < self.renew_deadline_s:
            problems.append(
                f"renew period ({self.renew_period_s}s) must lie between the retry period "
                f"({self.retry_period_s}s) and the renew deadline ({self.renew_deadline_s}s)"
            )
        # The margin absorbs clock-rate drift and the time the holder needs to stop once its deadline
        # passes; client-go's defaults (15/10/2) leave 5 s.
        if not self.lease_duration_s >= self.renew_deadline_s + self.retry_period_s:
            problems.append(
                f"lease duration ({self.lease_duration_s}s) must exceed the renew deadline "
                f"({self.renew_deadline_s}s) by at least the retry period ({self.retry_period_s}s)"
            )
        if problems:
            raise ValueError("invalid leader election timing: " + "; ".join(problems))


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec, as far as the election reads it."""

    holder: str
    """holderIdentity; empty when nobody holds it (released)."""
    duration_s: int
    acquire_time: str
    renew_time: str
    transitions: int
    resource_version: str


@dataclass(frozen=True)
class Observed:
    record: LeaseRecord
    observed_at: float
    """The observer's monotonic time when it first saw this record (this resourceVersion)."""


class Action(enum.Enum):
    CREATE = "create"  # no Lease exists: create it holding it
    ACQUIRE = "acquire"  # free or expired: write ourselves as holder (conditional on resourceVersion)
    RENEW = "renew"  # ours: write a new renewTime (conditional on resourceVersion)
    WAIT = "wait"  # held by another live candidate: look again after the retry period


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    """Keep the first time this exact record was seen; every write (a renew too) changes resourceVersion,
    so an unchanged resourceVersion means the holder has not renewed since."""
    if previous is not None and previous.record.resource_version == record.resource_version:
        return previous
    return Observed(record, now)


def decide(now: float, observed: Observed | None, me: str) -> Action:
    """What a candidate (or the holder) does next, from what it last read of the Lease."""
    if observed is None:
        return Action.CREATE
    record = observed.record
    if record.holder == me:
        return Action.RENEW
    if not record.holder or now - observed.observed_at >= record.duration_s:
        return Action.ACQUIRE
    return Action.WAIT


def must_step_down(now: float, last_renewed: float, timing: Timing) -> bool:
    """The holder has not renewed within its deadline: a candidate may take the Lease soon, so the holder
    must stop acting now (before `lease_duration` has passed since anyone saw its last renew)."""
    return now - last_renewed >= timing.renew_deadline_s


def micro_time(at: datetime.datetime) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_record(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(lease.get("metadata", {}).get("resourceVersion") or ""),
    )


def lease_spec(
    action: Action, previous: LeaseRecord | None, me: str, wall_now: datetime.datetime, timing: Timing
) -> dict[str, Any]:
    """The spec written for CREATE, ACQUIRE or RENEW: acquireTime and leaseTransitions change only when
    the holder does."""
    stamp = micro_time(wall_now)
    # Rounded up: a candidate waits out the duration written here, never less than the holder assumes.
    duration = math.ceil(timing.lease_duration_s)
    if action is Action.RENEW and previous is not None and previous.holder == me:
        return {
            "holderIdentity": me,
            "leaseDurationSeconds": duration,
            "acquireTime": previous.acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": previous.transitions,
        }
    if action in (Action.CREATE, Action.ACQUIRE):
        changed = previous is not None and previous.holder != me
        return {
            "holderIdentity": me,
            "leaseDurationSeconds": duration,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": (previous.transitions if previous else 0) + (1 if changed else 0),
        }
    raise ValueError(f"no Lease write for {action.value} (holder {previous.holder if previous else None!r})")


def released_spec(record: LeaseRecord, me: str, wall_now: datetime.datetime) -> dict[str, Any] | None:
    """On a clean stop: give the Lease up (empty holder, 1 s duration, as client-go's ReleaseOnCancel does)
    so a standby takes over on its next look instead of after a full lease duration. None when the Lease
    is not ours any more (never clear someone else's)."""
    if record.holder != me:
        return None
    stamp = micro_time(wall_now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": record.acquire_time or stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }
