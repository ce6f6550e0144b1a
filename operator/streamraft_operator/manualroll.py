"""Manual rolling updates (Strimzi's `strimzi.io/manual-rolling-update`): a pure plan from annotations.

`streamraft.io/manual-rolling-update: "true"` on a StreamCluster asks for every broker to be restarted; on
one broker pod, for that broker. The pods to restart join the revision-outdated ones in the same quorum-gated,
one-at-a-time rollout (`rollout.next_restart`).

The cluster-wide request is turned into a record of the pods it covers, by name *and uid*, kept in
`streamraft.io/manual-rolling-update-pending`, and the request annotation is removed in the same patch. A
pod is still to roll while a live pod has that name and uid: once it was deleted (by the rollout, or by
anything else) its replacement has a new uid and the entry is done, so a reconcile that crashes between
deleting a pod and updating the record never restarts that broker twice. The record is dropped once
empty. A pod's own annotation needs no record: the pod the StatefulSet creates in its place lacks it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamraft_operator.constants import GROUP

MANUAL_ROLL_ANNOTATION = f"{GROUP}/manual-rolling-update"
MANUAL_ROLL_PENDING_ANNOTATION = f"{GROUP}/manual-rolling-update-pending"


@dataclass(frozen=True)
class PodView:
    uid: str
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManualRoll:
    pods: tuple[str, ...]  # pods to restart because a manual rolling update asked for them
    accepted: tuple[str, ...]  # pods a cluster-wide request newly covers (this reconcile saw the request)
    annotations: Mapping[str, str | None]  # merge patch of the StreamCluster's annotations ({} = none)


def requested(annotations: Mapping[str, str], key: str = MANUAL_ROLL_ANNOTATION) -> bool:
    return str(annotations.get(key, "")).strip().lower() == "true"


def _ordinal(pod: str) -> int:
    tail = pod.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def parse_pending(value: str | None) -> dict[str, str]:
    """`pod=uid,pod=uid` -> {pod: uid}; malformed entries (hand edits) are ignored, never fatal."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        name, sep, uid = item.strip().partition("=")
        if sep and name and uid:
            out[name] = uid
    return out


def render_pending(pending: Mapping[str, str]) -> str:
    return ",".join(f"{n}={pending[n]}" for n in sorted(pending, key=lambda n: (_ordinal(n), n)))


def plan_manual_roll(cluster_annotations: Mapping[str, str], pods: Mapping[str, PodView]) -> ManualRoll:
    """`pods`: the cluster's live broker pods by name (those the rollout may restart)."""
    pending = parse_pending(cluster_annotations.get(MANUAL_ROLL_PENDING_ANNOTATION))
    accepted: tuple[str, ...] = ()
    if requested(cluster_annotations):
        accepted = tuple(sorted(pods, key=_ordinal))
        pending.update({n: p.uid for n, p in pods.items()})
    still = {n: uid for n, uid in pending.items() if n in pods and pods[n].uid == uid}
    per_pod = {n for n, p in pods.items() if requested(p.annotations)}
    patch: dict[str, str | None] = {}
    if MANUAL_ROLL_ANNOTATION in cluster_annotations and requested(cluster_annotations):
        patch[MANUAL_ROLL_ANNOTATION] = None
    record = render_pending(still) if still else None
    if cluster_annotations.get(MANUAL_ROLL_PENDING_ANNOTATION) != record:
        patch[MANUAL_ROLL_PENDING_ANNOTATION] = record
    return ManualRoll(tuple(sorted(set(still) | per_pod, key=_ordinal)), accepted, patch)
