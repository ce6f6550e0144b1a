"""The Kafka-facing group handlers called directly: DeleteGroups (not yet in the dispatch table), and the
COORDINATOR_NOT_AVAILABLE answers of a broker without a coordinator. Responses must encode."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.join_group.v7.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.types import GroupId
from kio.static.primitive import i32, i32Timedelta
from streamraft_broker.groups import OffsetCommitEntry
from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.handlers.groups import (
    DELETE_GROUPS,
    handle_delete_groups,
    handle_heartbeat,
    handle_join_group,
)
from streamraft_broker.handlers.groups_wiring import install
from streamraft_broker.metrics import BrokerMetrics
from streamraft_broker.protocol.codec import encode_response
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.topics.registry import TopicRegistry


def context(tmp_path: Path, *, with_groups: bool) -> BrokerContext:
    registry = TopicRegistry(tmp_path, in_memory=True)
    registry.load()
    ctx = BrokerContext(
        node_id=1, host="127.0.0.1", port=9092, cluster_id="c", registry=registry, metrics=BrokerMetrics()
    )
    if with_groups:
        install(ctx, tmp_path)
    return ctx


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_delete_groups(tmp_path: Path, version: int) -> None:
    ctx = context(tmp_path, with_groups=True)
    coord = ctx.groups.coordinator
    await coord.commit_offsets("idle", -1, "", [OffsetCommitEntry("t", 0, 1)])
    request = DeleteGroupsRequest(groups_names=(GroupId("idle"), GroupId("nope")))
    header = RequestHeader(DELETE_GROUPS, version, 7, "test")
    response = await handle_delete_groups(ctx, header, request)
    assert [(r.group_id, r.error_code) for r in response.results] == [
        ("idle", ErrorCode.none),
        ("nope", ErrorCode.group_id_not_found),
    ]
    assert encode_response(DELETE_GROUPS, version, 7, response)
    assert coord.group("idle") is None
    ctx.groups.close()


async def test_without_a_coordinator_group_apis_answer_coordinator_not_available(tmp_path: Path) -> None:
    ctx = context(tmp_path, with_groups=False)
    join = JoinGroupRequest(
        group_id=GroupId("g"),
        session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=(JoinGroupRequestProtocol(name="range", metadata=b""),),
    )
    response = await handle_join_group(ctx, RequestHeader(ApiKey.JOIN_GROUP, 7, 1, "c"), join)
    assert response.error_code == ErrorCode.coordinator_not_available
    assert encode_response(ApiKey.JOIN_GROUP, 7, 1, response)
    beat = HeartbeatRequest(
        group_id=GroupId("g"), generation_id=i32(1), member_id="m", group_instance_id=None
    )
    response = await handle_heartbeat(ctx, RequestHeader(ApiKey.HEARTBEAT, 4, 2, "c"), beat)
    assert response.error_code == ErrorCode.coordinator_not_available
