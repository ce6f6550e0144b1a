"""DescribeLogDirs (API 35) and AlterReplicaLogDirs (API 34): a broker's log directories.

Streamraft keeps every partition of a broker in one data directory (``--data-dir``), so DescribeLogDirs
answers that one directory: each partition hosted here with its size in bytes and offset lag (Kafka's: the
high watermark minus the log end offset, never below 0), and (v4+) the volume's total and usable bytes. As
Kafka: Describe on the Cluster, else CLUSTER_AUTHORIZATION_FAILED (v3+; earlier versions have no error field
and get no directories); partitions asked for but not hosted here are left out.

AlterReplicaLogDirs moves replicas between a broker's directories: with one directory, asking for it is
already done (no error); any other path answers LOG_DIR_NOT_FOUND, as Kafka answers a directory it does not
have, and a replica not hosted here REPLICA_NOT_AVAILABLE. Alter on the Cluster, else
CLUSTER_AUTHORIZATION_FAILED for every partition."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from streamraft_broker.handlers.authz import cluster_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation
from streamraft_broker.topics.registry import Topic

REPLICA_NOT_AVAILABLE = 9
KAFKA_STORAGE_ERROR = 56
LOG_DIR_NOT_FOUND = 57
UNKNOWN = -1


def log_dir(ctx: BrokerContext) -> str:
    """This broker's one log directory, as an absolute path (what Kafka's tools print and send back)."""
    return os.path.abspath(ctx.registry.data_dir)


def _hosted(ctx: BrokerContext, topic: Topic) -> list[int]:
    """The partitions of ``topic`` with a replica on this broker (every one on a single node)."""
    rep = ctx.extra.get("replication")
    if rep is None:
        return [p.index for p in topic.partitions]
    meta = rep.state.topics.get(topic.name)
    if meta is None:
        return []
    mine = []
    for index in range(min(len(meta.replicas), len(topic.partitions))):
        if ctx.node_id in meta.replicas[index] or ctx.node_id in meta.targets.get(index, ()):
            mine.append(index)
    return mine


def _names_dir(path: str, ours: str) -> bool:
    """Kafka accepts only the absolute path of one of its log directories. Compared as text (pure string
    functions): a path a client sends is never looked up on disk."""
    return os.path.isabs(path) and os.path.normpath(path) == os.path.normpath(ours)


def _volume(path: str) -> tuple[int, int]:
    """(total, usable) bytes of the volume holding ``path``; usable is what this process may still write."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


async def handle_describe_log_dirs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.DESCRIBE_LOG_DIRS, version)
    if denied := cluster_denied(ctx, Operation.DESCRIBE):
        ctx.metrics.record_error(denied)
        return build(cls, throttle_time=0, error_code=err(denied), results=())
    result_cls = nested(ApiKey.DESCRIBE_LOG_DIRS, version, "DescribeLogDirsResult")
    topic_cls = nested(ApiKey.DESCRIBE_LOG_DIRS, version, "DescribeLogDirsTopic")
    part_cls = nested(ApiKey.DESCRIBE_LOG_DIRS, version, "DescribeLogDirsPartition")
    if request.topics is None:
        wanted: dict[str, set[int] | None] = dict.fromkeys(ctx.registry.topics)
    else:
        wanted = {}
        for t in request.topics:
            wanted.setdefault(str(t.topic), set()).update(int(p) for p in t.partitions)  # type: ignore[union-attr]
    topics = []
    for name, indexes in wanted.items():
        topic = ctx.registry.get(name)
        if topic is None:
            continue
        parts = []
        for index in _hosted(ctx, topic):
            if indexes is not None and index not in indexes:
                continue
            p = topic.partitions[index]
            parts.append(
                build(
                    part_cls,
                    partition_index=index,
                    partition_size=p.size_bytes,
                    offset_lag=max(0, p.high_watermark - p.log_end_offset),
                    is_future_key=False,
                )
            )
        if parts:
            topics.append(build(topic_cls, name=name, partitions=tuple(parts)))
    path = log_dir(ctx)
    code = 0
    try:
        total, usable = await asyncio.to_thread(_volume, path)
    except OSError:
        code, total, usable = KAFKA_STORAGE_ERROR, UNKNOWN, UNKNOWN
        ctx.metrics.record_error(code)
    result = build(
        result_cls,
        error_code=err(code),
        log_dir=path,
        topics=tuple(topics) if not code else (),
        total_bytes=total,
        usable_bytes=usable,
        is_cordoned=False,
    )
    return build(cls, throttle_time=0, error_code=err(0), results=(result,))


async def handle_alter_replica_log_dirs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.ALTER_REPLICA_LOG_DIRS, version)
    topic_cls = nested(ApiKey.ALTER_REPLICA_LOG_DIRS, version, "AlterReplicaLogDirTopicResult")
    part_cls = nested(ApiKey.ALTER_REPLICA_LOG_DIRS, version, "AlterReplicaLogDirPartitionResult")
    denied = cluster_denied(ctx, Operation.ALTER)
    ours = log_dir(ctx)
    codes: dict[str, dict[int, int]] = {}
    for d in request.dirs:
        here = _names_dir(str(d.path), ours)
        for t in d.topics:
            topic = ctx.registry.get(str(t.name))
            for index in (int(i) for i in t.partitions):
                if denied:
                    code = denied
                elif not here:
                    code = LOG_DIR_NOT_FOUND
                elif topic is None or index not in _hosted(ctx, topic):
                    # Kafka answers a replica it does not host this way.
                    code = REPLICA_NOT_AVAILABLE
                else:
                    code = 0
                if code:
                    ctx.metrics.record_error(code)
                codes.setdefault(str(t.name), {})[index] = code
    results = tuple(
        build(
            topic_cls,
            topic_name=name,
            partitions=tuple(build(part_cls, partition_index=i, error_code=err(c)) for i, c in parts.items()),
        )
        for name, parts in codes.items()
    )
    return build(cls, throttle_time=0, results=results)
