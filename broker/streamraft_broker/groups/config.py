"""Coordinator limits, named after the Kafka broker settings they mirror."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GroupConfig:
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    # Kafka's broker default is 3000 ms; 0 answers the first join as soon as every member is in, which is
    # what single-node development clusters and tests want. Set it to batch joins of a starting group.
    group_initial_rebalance_delay_ms: int = 0
    group_max_size: int = 2**31 - 1
    offset_metadata_max_bytes: int = 4096

    def __post_init__(self) -> None:
        if not 0 < self.group_min_session_timeout_ms <= self.group_max_session_timeout_ms:
            raise ValueError(
                "group.min.session.timeout.ms must be positive and <= group.max.session.timeout.ms, got "
                f"{self.group_min_session_timeout_ms} and {self.group_max_session_timeout_ms}"
            )
        if self.group_initial_rebalance_delay_ms < 0:
            raise ValueError(
                f"group.initial.rebalance.delay.ms must be >= 0, got {self.group_initial_rebalance_delay_ms}"
            )
        if self.group_max_size < 1:
            raise ValueError(f"group.max.size must be >= 1, got {self.group_max_size}")
        if self.offset_metadata_max_bytes < 0:
            raise ValueError(f"offset.metadata.max.bytes must be >= 0, got {self.offset_metadata_max_bytes}")
