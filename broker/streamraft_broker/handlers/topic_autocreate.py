"""Topic auto-creation (Kafka's auto.create.topics.enable): a Metadata request naming an unknown topic, with
allow_auto_topic_creation set, creates it with num.partitions partitions and default.replication.factor
replicas. On one node through the registry; in a replicated cluster through the controller, exactly as
CreateTopics: this broker proposes it when it leads the controller group, and otherwise forwards a
CreateTopics request to the broker that does (as a Kafka broker forwards to its controller)."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from kio.schema.create_topics.v7 import request as ct_req
from kio.schema.create_topics.v7 import response as ct_resp
from kio.schema.types import TopicName
from kio.static.primitive import i16, i32, i32Timedelta

from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.replication import membership_rpc
from streamraft_broker.topics.internal import is_internal
from streamraft_broker.topics.registry import TOPIC_ALREADY_EXISTS, TopicError, validate_topic_name

log = logging.getLogger(__name__)

LEADER_NOT_AVAILABLE = 5
"""What Kafka answers for a topic it has just started creating: retriable, clients ask again."""
NOT_CONTROLLER = 41
AUTO_CREATE_WAIT_S = 5.0
"""How long one Metadata request waits for an auto-created topic's partitions to have leaders (and, on a
broker that is not the controller, for the topic to reach it); past it the client is told to retry."""
_APPLIED_POLL_S = 0.01
_INFLIGHT_KEY = "auto_create_inflight"


def default_replication_factor(ctx: BrokerContext) -> int:
    """default.replication.factor as this cluster can hold it: capped at the placeable brokers and odd
    (a Raft group of an even size tolerates no more failures than one replica fewer); 1 on a single node."""
    rep = ctx.extra.get("replication")
    if rep is None:
        return 1
    factor = min(ctx.default_replication_factor, max(1, len(rep.placement_brokers())))
    return factor if factor % 2 == 1 else factor - 1


async def auto_create(ctx: BrokerContext, name: str) -> int:
    """Create ``name`` if it does not exist; returns the error code for its Metadata entry when the topic is
    still not visible here afterwards (0 when it is). Concurrent requests for one name share one attempt."""
    if is_internal(name):
        # Internal topics are created by their own subsystems, with their own settings.
        return LEADER_NOT_AVAILABLE
    try:
        validate_topic_name(name)
    except TopicError as exc:
        return exc.error_code
    if "replication" not in ctx.extra:
        try:
            ctx.registry.create(name, ctx.default_partitions, 1, {})
        except TopicError as exc:
            return exc.error_code
        return 0
    inflight: dict[str, asyncio.Task[int]] = ctx.extra.setdefault(_INFLIGHT_KEY, {})
    task = inflight.get(name)
    if task is None:
        task = asyncio.get_running_loop().create_task(_create_replicated(ctx, name))
        inflight[name] = task
        task.add_done_callback(lambda _t: inflight.pop(name, None))
    return await asyncio.shield(task)


async def _create_replicated(ctx: BrokerContext, name: str) -> int:
    rep = ctx.extra["replication"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AUTO_CREATE_WAIT_S
    partitions, factor = ctx.default_partitions, default_replication_factor(ctx)
    try:
        if rep.runtime.is_leader(CONTROLLER_GROUP):
            await rep.create_topic(name, partitions, factor, {})
        else:
            await _forward(rep, name, partitions, factor)
    except TopicError as exc:
        if exc.error_code != TOPIC_ALREADY_EXISTS:
            log.info("event=auto_create_failed topic=%s code=%d reason=%s", name, exc.error_code, exc)
            return LEADER_NOT_AVAILABLE if exc.error_code == NOT_CONTROLLER else exc.error_code
    except membership_rpc.ControllerUnreachable as exc:
        log.info("event=auto_create_failed topic=%s reason=%s", name, exc)
        return LEADER_NOT_AVAILABLE
    # Polls against a deadline: the controller log applies here a moment after the controller commits.
    while ctx.registry.get(name) is None and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_APPLIED_POLL_S)
    if ctx.registry.get(name) is None:
        return LEADER_NOT_AVAILABLE
    await rep.await_partition_leaders(name, 0, max(0.0, deadline - loop.time()))
    log.info("event=topic_auto_created topic=%s partitions=%d replicas=%d", name, partitions, factor)
    return 0


async def _forward(rep: Any, name: str, partitions: int, factor: int) -> None:
    """CreateTopics to the controller's leader; raises TopicError with its answer's error code."""
    host, port = rep.controller_address()
    body = ct_req.CreateTopicsRequest(
        topics=(
            ct_req.CreatableTopic(
                name=TopicName(name),
                num_partitions=i32(partitions),
                replication_factor=i16(factor),
                assignments=(),
                configs=(),
            ),
        ),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=AUTO_CREATE_WAIT_S)),
        validate_only=False,
    )
    answer: ct_resp.CreateTopicsResponse = await membership_rpc.call(
        host, port, 19, 7, body, limit_s=AUTO_CREATE_WAIT_S + 1.0
    )
    for result in answer.topics:
        code = int(result.error_code)
        if code != 0:
            raise TopicError(code, result.error_message or f"controller answered error {code}")
