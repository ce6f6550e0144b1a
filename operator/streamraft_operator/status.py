"""Status computation: pure functions from observations to the status block, and the minimal patch.

Conditions keep their lastTransitionTime unless their status flips, so re-computing an unchanged state
yields an identical status and `status_patch` returns nothing to write.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamraft_operator.constants import CONDITION_TYPES, REASONS


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str

    def __post_init__(self) -> None:
        assert self.type in CONDITION_TYPES, self.type
        assert self.reason in REASONS, self.reason


def render_conditions(
    wanted: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]] | None,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    old = {str(c.get("type")): c for c in previous or ()}
    out: list[dict[str, Any]] = []
    for cond in wanted:
        status = "True" if cond.status else "False"
        before = old.get(cond.type)
        since = now
        if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
            since = str(before["lastTransitionTime"])
        out.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        )
    return out


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level status fields whose value differs; empty when nothing needs writing."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


@dataclass(frozen=True)
class BrokerObservation:
    id: int
    pod: str
    ready: bool
    partitions_led: int | None = None
    raft_lag: int | None = None
    storage: str | None = None  # the broker PVC's status.capacity.storage

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "pod": self.pod, "ready": self.ready}
        if self.partitions_led is not None:
            out["partitionsLed"] = self.partitions_led
        if self.raft_lag is not None:
            out["raftLag"] = self.raft_lag
        if self.storage is not None:
            out["storage"] = self.storage
        return out


@dataclass(frozen=True)
class ClusterObservation:
    desired_replicas: int
    brokers: tuple[BrokerObservation, ...]
    outdated_pods: tuple[str, ...] = ()
    manual_pods: tuple[str, ...] = ()  # the outdated pods restarted because a manual rolling update asked
    blocked: str | None = None  # why the next step (restart / scale-down) cannot happen now
    blocked_reason: str = "RestartBlocked"
    waiting: str | None = None  # the rollout is pacing itself (a restarted pod starting or catching up)
    unreachable: str | None = None  # why brokers could not be asked over the network
    invalid: str | None = None
    apply_failed: str | None = None  # an object the API server refused (kind name: its message)
    storage_refused: str | None = None  # why spec.storage is not applied (the current template is kept)
    storage_resizing: str | None = None  # PVCs asked to grow whose capacity has not followed yet
    config_failed: str | None = None  # why the dynamic broker configs of spec.config could not be applied


def _pending(o: ClusterObservation) -> str:
    text = f"restart pending for {', '.join(sorted(o.outdated_pods))}"
    if o.manual_pods:
        text += f" (manual rolling update: {', '.join(o.manual_pods)})"
    return text


def cluster_conditions(o: ClusterObservation) -> list[Condition]:
    if o.invalid is not None:
        return [
            Condition("Ready", False, "InvalidSpec", o.invalid),
            Condition("Progressing", False, "InvalidSpec", "fix the spec; nothing is applied until then"),
            Condition("Degraded", True, "InvalidSpec", o.invalid),
        ]
    if o.apply_failed is not None:
        return [
            Condition("Ready", False, "ApplyFailed", o.apply_failed),
            Condition("Progressing", False, "ApplyFailed", f"retrying with backoff; {o.apply_failed}"),
            Condition("Degraded", True, "ApplyFailed", o.apply_failed),
        ]
    ready = [b for b in o.brokers if b.ready]
    not_ready = sorted(b.pod for b in o.brokers if not b.ready)
    existing = len(o.brokers)
    all_ready = existing == o.desired_replicas and len(ready) == o.desired_replicas
    if all_ready and not o.outdated_pods:
        ready_c = Condition(
            "Ready", True, "AllBrokersReady", f"{len(ready)}/{o.desired_replicas} brokers ready"
        )
    elif not_ready:
        ready_c = Condition(
            "Ready",
            False,
            "BrokersNotReady",
            f"{len(ready)}/{o.desired_replicas} brokers ready; waiting for {', '.join(not_ready)}",
        )
    elif existing != o.desired_replicas:
        reason = "ScalingUp" if existing < o.desired_replicas else "ScalingDown"
        ready_c = Condition("Ready", False, reason, f"{existing} brokers exist, {o.desired_replicas} wanted")
    else:
        ready_c = Condition("Ready", False, "RollingRestart", _pending(o))

    if o.blocked is not None:
        progressing = Condition("Progressing", False, o.blocked_reason, o.blocked)
    elif o.storage_refused is not None:
        progressing = Condition("Progressing", False, "StorageResizeRefused", o.storage_refused)
    elif o.outdated_pods:
        pending = _pending(o)
        progressing = Condition(
            "Progressing", True, "RollingRestart", f"{pending}; {o.waiting}" if o.waiting else pending
        )
    elif existing < o.desired_replicas:
        progressing = Condition(
            "Progressing", True, "ScalingUp", f"{existing} -> {o.desired_replicas} brokers"
        )
    elif existing > o.desired_replicas:
        progressing = Condition(
            "Progressing", True, "ScalingDown", f"{existing} -> {o.desired_replicas} brokers"
        )
    elif o.storage_resizing is not None:
        progressing = Condition("Progressing", True, "StorageResizing", o.storage_resizing)
    elif not_ready:
        progressing = Condition("Progressing", True, "Reconciling", "waiting for brokers to become ready")
    else:
        progressing = Condition("Progressing", False, "Reconciled", "nothing to do")

    if o.unreachable is not None:
        degraded = Condition("Degraded", True, "BrokersUnreachable", o.unreachable)
    elif o.config_failed is not None:
        degraded = Condition(
            "Degraded", True, "AdminFailed", f"dynamic broker configs not applied: {o.config_failed}"
        )
    elif o.blocked is not None:
        degraded = Condition("Degraded", True, o.blocked_reason, o.blocked)
    elif o.storage_refused is not None:
        degraded = Condition("Degraded", True, "StorageResizeRefused", o.storage_refused)
    elif not_ready and existing > 0 and len(ready) > 0:
        degraded = Condition("Degraded", True, "BrokersNotReady", f"not ready: {', '.join(not_ready)}")
    else:
        degraded = Condition("Degraded", False, "AsExpected", "no problems seen")
    return [ready_c, progressing, degraded]
