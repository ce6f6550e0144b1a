"""Replication metrics (prefix streamraft_) and the leadership hand-off admin route.

Cost at 1,000 partitions: nothing is updated per request except the commit-latency histogram. A sampler
on the event loop walks the hosted groups once per ``SAMPLE_INTERVAL_S`` (a few dict reads per group; the
match indexes are copied only for groups led here and awake) and stores an immutable snapshot; the
Prometheus collector, which runs on the HTTP thread, only reads that snapshot, never runtime state that
the loop is mutating. Elections and leader changes are counted from the runtime's leadership stream.

Under-replicated (Kafka's ISR shrink, by time): a partition led here is under-replicated when some voter
is not connected, or its match index is still below the commit index the previous sample saw, i.e. it
has not caught up with what was committed at least one interval ago. Learners do not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from streamraft_consensus.runtime.errors import StoppedError

from streamraft_broker.admin import AdminRequest, AdminResponse
from streamraft_broker.controller.state import CONTROLLER_GROUP

if TYPE_CHECKING:
    from streamraft_broker.metrics import BrokerMetrics
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0
HANDOFF_TIMEOUT_S = 10.0
HANDOFF_ROUNDS = 2
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ReplicationSnapshot:
    """One sample of this broker's replication state; built on the loop, read by the scrape thread."""

    at: float = 0.0
    partitions_led: int = 0
    under_replicated: int = 0
    leaderless: int = 0
    controller_leader: int = -1
    terms: list[tuple[str, int, int]] = field(default_factory=list)
    """(topic, partition, term) for every hosted partition."""
    lag: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    """(topic, partition, follower, lag entries, lag bytes) for partitions led here."""
    storage_failed: list[tuple[str, str]] = field(default_factory=list)
    """(group label: topic-partition or __controller, error) of groups stopped by a storage error."""
    storage_failures: int = 0
    storage_recoveries: int = 0
    refused_streams: int = 0
    dropped_inbound_frames: int = 0
    dropped_non_member_messages: int = 0
    rejected_controller_commands: int = 0


class ReplicationMetrics(Collector):
    def __init__(self, metrics: BrokerMetrics, service: ReplicationService) -> None:
        self.service = service
        self.snapshot = ReplicationSnapshot()
        self._commit_seen: dict[int, int] = {}
        """group -> commit index at the previous sample (leaders only)."""
        self._leaders: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        r = metrics.registry
        self.elections = Counter(
            "streamraft_raft_elections", "Raft leaderships won by this broker (any group)", registry=r
        )
        self.leader_changes = Counter(
            "streamraft_raft_leader_changes",
            "Leader changes seen by this broker in the groups it hosts",
            registry=r,
        )
        self.commit_latency = Histogram(
            "streamraft_raft_commit_latency_seconds",
            "Produce batch proposed on the leader until committed and applied there",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        r.register(self)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._sample_loop(), name="replication-metrics"),
            loop.create_task(self._watch_leaders(), name="replication-leader-watch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _sample_loop(self) -> None:
        while True:
            try:
                self.snapshot = self.sample()
            except StoppedError:
                return
            except Exception:
                log.exception("replication metrics sample failed")
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def _watch_leaders(self) -> None:
        runtime = self.service.runtime
        async for change in runtime.leadership_changes():
            if change.is_self:
                self.elections.inc()
            if change.leader and self._leaders.get(change.group) != change.leader:
                if change.group in self._leaders:
                    self.leader_changes.inc()
                self._leaders[change.group] = change.leader

    def sample(self) -> ReplicationSnapshot:
        service = self.service
        runtime = service.runtime
        transport = runtime.transport
        hosted = set(runtime.groups())
        led = under = leaderless = 0
        terms: list[tuple[str, int, int]] = []
        lag: list[tuple[str, int, int, int, int]] = []
        seen: dict[int, int] = {}
        for gid, (topic, index) in list(service._partitions.items()):
            if gid not in hosted:
                continue
            terms.append((topic, index, runtime.term(gid)))
            if runtime.leader(gid) == 0:
                leaderless += 1
            if not runtime.is_leader(gid):
                continue
            led += 1
            conf = runtime.conf_state(gid)
            voters = [v for v in conf.voters if v != service.node_id]
            if runtime.is_quiesced(gid):
                # Quiet leaders have every member caught up; only a lost connection can change that. Zero
                # lag is still reported so the series do not come and go as groups quiesce and wake.
                if any(not transport.is_connected(v) for v in voters):
                    under += 1
                lag.extend((topic, index, p, 0, 0) for p in (*voters, *conf.learners) if p != service.node_id)
                continue
            progress = runtime.leader_progress(gid)
            if progress is None:
                continue
            seen[gid] = progress.commit
            before = self._commit_seen.get(gid, 0)
            if any(not transport.is_connected(v) or progress.match.get(v, 0) < before for v in voters):
                under += 1
            for peer in progress.match:
                lag.append((topic, index, peer, progress.lag_entries(peer), progress.lag_bytes(peer)))
        self._commit_seen = seen
        controller = runtime.leader(CONTROLLER_GROUP) if CONTROLLER_GROUP in hosted else 0
        failed: list[tuple[str, str]] = []
        for gid, err in runtime.failed_groups().items():
            where = service._partitions.get(gid)
            name = (
                "__controller" if gid == CONTROLLER_GROUP else f"{where[0]}-{where[1]}" if where else str(gid)
            )
            failed.append((name, err.strerror or type(err).__name__))
        return ReplicationSnapshot(
            at=time.time(),
            partitions_led=led,
            under_replicated=under,
            leaderless=leaderless,
            controller_leader=controller if controller else -1,
            terms=terms,
            lag=lag,
            storage_failed=failed,
            storage_failures=runtime.storage_failures,
            storage_recoveries=runtime.storage_recoveries,
            refused_streams=transport.refused_streams,
            dropped_inbound_frames=transport.dropped_inbound_frames,
            dropped_non_member_messages=runtime.dropped_from_non_members(),
            rejected_controller_commands=service.controller_rejected,
        )

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.snapshot
        g = GaugeMetricFamily
        c = CounterMetricFamily
        yield c(
            "streamraft_raft_refused_streams",
            "Raft peer streams refused for who the peer is: unknown node id, missing or wrong certificate id",
            s.refused_streams,
        )
        yield c(
            "streamraft_raft_dropped_frames",
            "Raft frames dropped on accepted streams: malformed, misaddressed or naming another sender",
            s.dropped_inbound_frames,
        )
        yield c(
            "streamraft_raft_non_member_messages_dropped",
            "Raft messages dropped because their sender is not a member of the group nor a cluster node",
            s.dropped_non_member_messages,
        )
        yield c(
            "streamraft_controller_commands_rejected",
            "Controller log entries refused when applied (invalid commands; the state was left unchanged)",
            s.rejected_controller_commands,
        )
        yield g("streamraft_partitions_led", "Partitions whose Raft leader is this broker", s.partitions_led)
        yield g(
            "streamraft_under_replicated_partitions",
            "Partitions led here with a voter disconnected or behind the commit index of the last sample",
            s.under_replicated,
        )
        yield g("streamraft_leaderless_partitions", "Hosted partitions with no known leader", s.leaderless)
        yield g("streamraft_controller_leader_id", "Controller group leader (-1: none)", s.controller_leader)
        term = g("streamraft_raft_term", "Raft term per hosted partition", labels=["topic", "partition"])
        for topic, index, t in s.terms:
            term.add_metric([topic, str(index)], t)
        yield term
        labels = ["topic", "partition", "follower"]
        entries = g(
            "streamraft_raft_follower_lag_entries",
            "Leader's last index minus the follower's match index",
            labels=labels,
        )
        nbytes = g(
            "streamraft_raft_follower_lag_bytes",
            "Follower lag in entries times the mean recent entry size (an estimate)",
            labels=labels,
        )
        for topic, index, peer, n, b in s.lag:
            entries.add_metric([topic, str(index), str(peer)], n)
            nbytes.add_metric([topic, str(index), str(peer)], b)
        yield entries
        yield nbytes
        failed = g(
            "streamraft_storage_failed_groups",
            "Raft groups stopped on this broker by a storage error (disk full, I/O error) until re-opened",
            labels=["group", "error"],
        )
        for name, error in s.storage_failed:
            failed.add_metric([name, error], 1)
        yield failed
        yield CounterMetricFamily(
            "streamraft_storage_failures",
            "Raft groups stopped on this broker by a failed write or fsync",
            s.storage_failures,
        )
        yield CounterMetricFamily(
            "streamraft_storage_recoveries",
            "Raft groups re-opened from disk and resumed after a storage error",
            s.storage_recoveries,
        )


def install(metrics: BrokerMetrics, service: ReplicationService) -> ReplicationMetrics:
    """Register the replication metrics and the hand-off route; call on the event loop after the
    service exists (before or after its start)."""
    collector = ReplicationMetrics(metrics, service)
    service.observe_commit = collector.commit_latency.observe

    async def handoff(_request: AdminRequest) -> AdminResponse:
        runtime = service.runtime

        def led_now() -> set[int]:
            return {g for g in runtime.groups() if runtime.is_leader(g)}

        held = led_now()
        for _ in range(HANDOFF_ROUNDS):
            await service._hand_over_leaderships()
            # Another broker's preferred-leader balancing may hand a group straight back: go again.
            if not led_now():
                break
        still = held & led_now()
        moved, of = len(held) - len(still), len(held)
        # Refresh now: the preStop hook next polls streamraft_partitions_led until it reads 0.
        collector.snapshot = collector.sample()
        return AdminResponse({"moved": moved, "of": of})

    async def health(_request: AdminRequest) -> AdminResponse:
        snap = collector.snapshot
        return AdminResponse(
            {
                "status": "ok",
                "node_id": service.node_id,
                "replication": "raft",
                "controller": snap.controller_leader,
                "partitions_led": snap.partitions_led,
                "under_replicated": snap.under_replicated,
                "leaderless": snap.leaderless,
                "sampled_at": snap.at,
            }
        )

    metrics.admin.route(
        "POST", "/admin/leadership/handoff", handoff, timeout_s=HANDOFF_TIMEOUT_S, replace=True
    )
    metrics.admin.route("GET", "/admin/health", health, replace=True)
    service.membership.install_routes(metrics)  # GET /admin/brokers, POST .../decommission
    service.rejoin.install_routes(metrics)  # GET /admin/rejoin
    collector.start()
    return collector
