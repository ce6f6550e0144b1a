"""Rolling-restart and scale-down safety: pure decisions from what the brokers report over the network.

A broker may be taken down only if every partition it replicates keeps a Raft majority of in-sync replicas
among the *other* brokers; otherwise writes to that partition would stop.

Raft has no ISR, and the brokers' Metadata names every replica as in sync. The operator derives its own
in-sync view (`in_sync_view`): a replica counts only if its pod is Ready and its partition's leader reports
its Raft lag (streamraft_raft_follower_lag_entries) at most LAG_LIMIT entries. Broker ids are node ids:
StatefulSet ordinal + 1.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from streamraft_operator.resources import node_id

# A follower this close to its leader catches up within a heartbeat or two under load; restarting
# another replica meanwhile would leave the partition one slow follower away from losing its majority.
LAG_LIMIT = 100


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1 when leaderless
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


def in_sync_view(
    partitions: Iterable[PartitionState],
    lag: Mapping[tuple[str, int], Mapping[int, int]],
    up: Iterable[int],
    limit: int = LAG_LIMIT,
) -> list[PartitionState]:
    """Partitions with `isr` narrowed to replicas that are up (pod Ready) and not lagging per their leader."""
    alive = set(up)
    out: list[PartitionState] = []
    for p in partitions:
        behind = lag.get((p.topic, p.partition), {})
        isr = tuple(r for r in p.isr if r in alive and (r == p.leader or behind.get(r, 0) <= limit))
        out.append(replace(p, isr=isr))
    return out


def majority(n: int) -> int:
    assert n >= 1
    return n // 2 + 1


def quorum_blockers(broker: int, partitions: Iterable[PartitionState]) -> list[str]:
    """Partitions that would lose their majority (or already lack one) if `broker` went down."""
    out: list[str] = []
    for p in partitions:
        if broker not in p.replicas:
            continue
        others_in_sync = [r for r in p.isr if r != broker and r in p.replicas]
        if len(others_in_sync) < majority(len(p.replicas)):
            out.append(p.name)
    return sorted(out)


def leaderless(partitions: Iterable[PartitionState]) -> list[str]:
    return sorted(p.name for p in partitions if p.leader < 0)


def under_replicated(partitions: Iterable[PartitionState]) -> list[str]:
    return sorted(p.name for p in partitions if len(p.isr) < len(p.replicas))


def partitions_led(partitions: Iterable[PartitionState]) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in partitions:
        if p.leader >= 0:
            out[p.leader] = out.get(p.leader, 0) + 1
    return out


def hosted_by(broker: int, partitions: Iterable[PartitionState]) -> list[str]:
    return sorted(p.name for p in partitions if broker in p.replicas)


def _ordinal(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


def broker_of(pod: str) -> int:
    return node_id(_ordinal(pod))


@dataclass(frozen=True)
class RestartDecision:
    pod: str | None  # the pod to delete now, or None
    blocked: str | None  # why nothing can be restarted now (None when nothing is outdated)
    waiting: bool = False  # blocked only by the normal pace of a rollout (a pod starting, catching up)


def next_restart(
    outdated: Sequence[str],
    ready: Mapping[str, bool],
    partitions: Sequence[PartitionState] | None,
    led: Mapping[int, int] | None = None,
    behind: str | None = None,
) -> RestartDecision:
    """One pod at a time: wait while any pod is not Ready (catching up), then restart the outdated pod that
    leads the fewest partitions (highest ordinal first on ties), if every partition keeps its quorum.

    `behind` is what the brokers themselves report as not yet caught up (under-replicated or leaderless
    partitions, from their metrics); the rollout waits on it like on a pod that is not Ready."""
    if not outdated:
        return RestartDecision(None, None)
    # An outdated pod that is not Ready serves nothing: restarting it costs no availability, and it may be
    # failing precisely because of the configuration the restart fixes.
    broken = sorted((p for p in outdated if not ready.get(p, False)), key=_ordinal, reverse=True)
    if broken:
        return RestartDecision(broken[0], None)
    waiting = sorted(p for p, ok in ready.items() if not ok)
    if waiting:
        return RestartDecision(
            None, f"waiting for {', '.join(waiting)} to be ready before the next restart", True
        )
    if partitions is None:
        return RestartDecision(None, "cannot read partition state from the brokers; not restarting blind")
    catching_up = under_replicated(partitions)
    if catching_up:
        shown = ", ".join(catching_up[:5])
        return RestartDecision(None, f"waiting for catch-up of under-replicated partitions: {shown}", True)
    no_leader = leaderless(partitions)
    if no_leader:
        return RestartDecision(None, f"waiting for a leader of {', '.join(no_leader[:5])}", True)
    if behind is not None:
        return RestartDecision(None, f"waiting for catch-up: {behind}", True)
    led = led if led is not None else partitions_led(partitions)
    order = sorted(outdated, key=lambda p: (led.get(broker_of(p), 0), -_ordinal(p)))
    reasons: list[str] = []
    for pod in order:
        blockers = quorum_blockers(broker_of(pod), partitions)
        if not blockers:
            return RestartDecision(pod, None)
        reasons.append(f"{pod} would break the quorum of {', '.join(blockers[:5])}")
    return RestartDecision(None, "; ".join(reasons))


def scale_down_blocker(broker: int, partitions: Sequence[PartitionState] | None) -> str | None:
    """Why the broker with this id cannot be removed yet, or None if it holds nothing."""
    if partitions is None:
        return f"cannot read partition state from the brokers; broker {broker} is kept until they answer"
    hosted = hosted_by(broker, partitions)
    if hosted:
        shown = ", ".join(hosted[:5]) + (" ..." if len(hosted) > 5 else "")
        return (
            f"broker {broker} still hosts replicas of {len(hosted)} partition(s) ({shown}); "
            "reassign them to other brokers before scaling down"
        )
    return None
