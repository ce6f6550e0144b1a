"""How the broker plugs in the consumer-group coordinator and idempotent-producer state: `install(ctx,
data_dir)` (called from server.broker.wire_optional_subsystems), `GROUP_HANDLERS` (merged into the dispatch
table) and `lag_source(ctx)` (for BrokerMetrics.watch_group_lag). Shutdown must call `ctx.producers.close()`
(writes producer-state snapshots) and `ctx.groups.close()` before the topic registry closes.

DeleteGroups (api key 42) has a handler, `handlers.groups.handle_delete_groups`, not listed here because the
protocol layer's ApiKey/SUPPORTED tables do not carry that API yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamraft_broker.groups.service import GroupService
from streamraft_broker.handlers.context import BrokerContext, Handler
from streamraft_broker.handlers.groups import (
    handle_describe_groups,
    handle_heartbeat,
    handle_join_group,
    handle_leave_group,
    handle_list_groups,
    handle_offset_commit,
    handle_offset_fetch,
    handle_sync_group,
    replicated_groups,
)
from streamraft_broker.handlers.groups_find import handle_find_coordinator
from streamraft_broker.producer.service import ProducerService
from streamraft_broker.protocol.versions import ApiKey

GROUP_HANDLERS: dict[ApiKey, Handler] = {
    # Overrides handlers.cluster's entry: in replicated mode a group's coordinator is found by its partition.
    ApiKey.FIND_COORDINATOR: handle_find_coordinator,
    ApiKey.JOIN_GROUP: handle_join_group,
    ApiKey.SYNC_GROUP: handle_sync_group,
    ApiKey.HEARTBEAT: handle_heartbeat,
    ApiKey.LEAVE_GROUP: handle_leave_group,
    ApiKey.OFFSET_COMMIT: handle_offset_commit,
    ApiKey.OFFSET_FETCH: handle_offset_fetch,
    ApiKey.LIST_GROUPS: handle_list_groups,
    ApiKey.DESCRIBE_GROUPS: handle_describe_groups,
}


def install(ctx: BrokerContext, data_dir: Path) -> None:
    registry = ctx.registry

    def partition_exists(topic: str, index: int) -> bool:
        return registry.partition(topic, index) is not None

    def persistent_log(topic: str, index: int) -> Any | None:
        # In-memory partitions ignore before_write hooks, so they get no producer state.
        partition = registry.partition(topic, index)
        if partition is None or partition.is_memory:
            return None
        return partition.log

    service = GroupService.open(data_dir, partition_exists=partition_exists)
    ctx.groups = service
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop yet: the first group request starts the deadline task
    else:
        # Groups restored from __consumer_offsets must expire silent members even if no client returns.
        service.ensure_started()
    producers = ProducerService(data_dir, persistent_log)
    ctx.producers = producers

    def on_topic_change(name: str, topic: object | None) -> None:
        if topic is None:
            producers.forget(name)
            service.coordinator.delete_topic_offsets(name)

    registry.on_change(on_topic_change)


def lag_source(ctx: BrokerContext) -> Callable[[], Iterator[tuple[str, str, int, int]]]:
    """(group, topic, partition, lag) for every committed offset of an existing partition, where lag is
    the high watermark minus the committed offset (never below 0: a client may commit past the end). In
    replicated mode: the groups this broker coordinates (the leader of each group's offsets partition)."""

    def committed() -> Iterator[tuple[str, str, int, int]]:
        replicated = replicated_groups(ctx)
        if replicated is not None:
            for coordinator in replicated.coordinators():
                yield from coordinator.committed_offsets()
            return
        service: GroupService | None = ctx.groups
        if service is not None:
            yield from service.coordinator.committed_offsets()

    def lag() -> Iterator[tuple[str, str, int, int]]:
        for group, topic, index, offset in committed():
            partition = ctx.registry.partition(topic, index)
            if partition is not None:
                yield group, topic, index, max(0, partition.high_watermark - offset)

    return lag
