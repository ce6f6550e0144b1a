"""DescribeConfigs and IncrementalAlterConfigs for topics (and a read-only view of the broker)."""

from __future__ import annotations

from typing import Any

from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.topics.configs import effective_configs
from streamraft_broker.topics.registry import INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION, TopicError

TOPIC = 2
BROKER = 4
INVALID_REQUEST = 42
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
TOPIC_CONFIG_SOURCE = 1
STATIC_BROKER_CONFIG_SOURCE = 4
DEFAULT_CONFIG_SOURCE = 5


def _broker_configs(ctx: BrokerContext) -> dict[str, str]:
    return {
        "broker.id": str(ctx.node_id),
        "auto.create.topics.enable": str(ctx.auto_create_topics).lower(),
        "num.partitions": str(ctx.default_partitions),
        "advertised.listeners": f"PLAINTEXT://{ctx.host}:{ctx.port}",
        "message.max.bytes": ctx.registry.broker_defaults.get("max.message.bytes", "1048588"),
    }


async def handle_describe_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.DESCRIBE_CONFIGS, version, "DescribeConfigsResult")
    entry_cls = nested(ApiKey.DESCRIBE_CONFIGS, version, "DescribeConfigsResourceResult")
    results = []
    for res in request.resources:
        rtype, name = int(res.resource_type), res.resource_name
        # Null means every config; an empty list means none (as Kafka answers).
        wanted = set(res.configuration_keys) if res.configuration_keys is not None else None
        code, message = 0, None
        values: dict[str, tuple[str, int]] = {}
        if rtype == TOPIC:
            topic = ctx.registry.get(name)
            if topic is None:
                code, message = UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist"
            else:
                values = {
                    k: (v, DEFAULT_CONFIG_SOURCE if d else TOPIC_CONFIG_SOURCE)
                    for k, (v, d) in effective_configs(topic.configs, ctx.registry.broker_defaults).items()
                }
        elif rtype == BROKER:
            values = {k: (v, STATIC_BROKER_CONFIG_SOURCE) for k, v in _broker_configs(ctx).items()}
        else:
            code, message = INVALID_REQUEST, f"resource type {rtype} is not supported"
        entries = tuple(
            build(
                entry_cls,
                name=k,
                value=v,
                read_only=rtype == BROKER,
                config_source=src,
                is_default=src == DEFAULT_CONFIG_SOURCE,
                is_sensitive=False,
                synonyms=(),
                config_type=0,
                documentation=None,
            )
            for k, (v, src) in sorted(values.items())
            if wanted is None or k in wanted
        )
        results.append(
            build(
                result_cls,
                error_code=err(code),
                error_message=message,
                resource_type=rtype,
                resource_name=name,
                configs=entries,
            )
        )
    return build(response_type(ApiKey.DESCRIBE_CONFIGS, version), throttle_time=0, results=tuple(results))


async def handle_incremental_alter_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.INCREMENTAL_ALTER_CONFIGS, version, "AlterConfigsResourceResponse")
    results = []
    for res in request.resources:
        rtype, name = int(res.resource_type), res.resource_name
        code, message = 0, None
        try:
            if rtype != TOPIC:
                raise TopicError(INVALID_REQUEST, f"only topic configs can be altered, not type {rtype}")
            topic = ctx.registry.get(name)
            if topic is None:
                raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
            updated = dict(topic.configs)
            for c in res.configs:
                op = int(c.config_operation)
                if op == SET:
                    if c.value is None:
                        raise TopicError(INVALID_CONFIG, f"config {c.name!r}: SET needs a value")
                    updated[c.name] = c.value
                elif op == DELETE:
                    updated.pop(c.name, None)
                else:
                    raise TopicError(INVALID_CONFIG, f"config {c.name!r}: operation {op} is not supported")
            if request.validate_only:
                ctx.registry.check_configs(updated)
            else:
                ctx.registry.set_configs(name, updated)
        except TopicError as exc:
            code, message = exc.error_code, str(exc)
            ctx.metrics.record_error(code)
        results.append(
            build(
                result_cls,
                error_code=err(code),
                error_message=message,
                resource_type=rtype,
                resource_name=name,
            )
        )
    return build(
        response_type(ApiKey.INCREMENTAL_ALTER_CONFIGS, version), throttle_time=0, responses=tuple(results)
    )
