"""Runtime configuration and the defaults' rationale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimeConfig:
    """Timing defaults: a 50 ms tick with election_tick=10 gives a 0.5-1.0 s randomised election timeout
    after the last heartbeat, the fallback when a leader goes silent without its node being seen to die.
    When a peer node is seen to die (its stream breaks, a connect to it is refused, or its node-level pings
    stop for ``peer_dead_after_s``), the groups it led are woken, one live voter (the longest-running, see
    ``successor_settled_s``) campaigns at once (transfer-style) and the others' election clocks move close
    to their timeouts as a fallback: failover is typically one election round trip after detection, well
    inside the 0.5 s p50 / 1.5 s max targets, without tightening timeouts (and risking spurious elections)
    for everyone."""

    node_id: int
    data_dir: Path | None = None
    """Where per-group SegmentLog directories are created when create_group is not given a storage."""
    tick_interval_s: float = 0.05
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    quiesce: bool = True
    quiesce_after_ticks: int = 30
    """A leader quiesces its group once it has been idle (can_quiesce) for this many ticks. Must exceed two
    election timeouts: a woken leader's first check_quorum round still sees activity from before it went
    quiet, only the second tells whether it has a quorum now."""
    send_appends_before_sync: bool = True
    """A leader sends its appends before its own fsync of them, so the two disk writes of a commit (its
    own, a follower's) overlap. Off: appends go out after the sync, one fsync later (for comparison)."""
    peer_dead_after_s: float = 1.0
    successor_settled_s: float = 15.0
    """When a leader's node dies, the survivor that campaigns at once is the longest-running one, counting
    every node up this long as equal (lowest id first among them). Above librdkafka's 10 s maximum
    reconnect backoff: a client that saw a node fail may wait that long before connecting to it again."""
    successor_tie_s: float = 0.25
    """Uptimes closer than this count as equal when choosing that successor. Each node reports its own, so
    the survivors' views of them differ only by message delays (ms); restarts are seconds apart."""
    storage_retry_s: float = 1.0
    """After a group's storage fails, how soon the first attempt to re-open it from disk comes; later
    attempts back off (doubling) up to ``storage_retry_max_s``."""
    storage_retry_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.node_id < 1:
            raise ValueError(f"node_id must be >= 1, got {self.node_id}")
        if not 0.001 <= self.tick_interval_s <= 10:
            raise ValueError(f"tick_interval_s={self.tick_interval_s} is outside [0.001, 10]")
        if not 0 < self.storage_retry_s <= self.storage_retry_max_s:
            raise ValueError(
                f"storage_retry_s={self.storage_retry_s} must be > 0 and <= storage_retry_max_s="
                f"{self.storage_retry_max_s}"
            )
        if self.quiesce_after_ticks <= 2 * self.election_tick:
            # A leader woken by a peer's death must run a check_quorum round before going quiet again.
            raise ValueError(
                f"quiesce_after_ticks ({self.quiesce_after_ticks}) must exceed "
                f"2 * election_tick ({2 * self.election_tick})"
            )
