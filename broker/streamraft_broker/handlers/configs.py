"""DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics and brokers (dynamic broker
configs: ``topics.broker_configs``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.authz import config_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, nested_or_none, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation
from streamraft_broker.topics.broker_configs import (
    DEFAULT_ENTITY,
    DYNAMIC_BROKER_CONFIGS,
    LocalBrokerConfigs,
    NotDynamicError,
    check_entity,
    layers,
    validate_broker_configs,
)
from streamraft_broker.topics.configs import (
    TOPIC_CONFIGS,
    ConfigSource,
    ConfigType,
    EffectiveConfig,
    TopicConfigDef,
    effective_configs,
)
from streamraft_broker.topics.registry import INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION, TopicError

TOPIC = 2
BROKER = 4
INVALID_REQUEST = 42
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _static_broker_configs(ctx: BrokerContext) -> dict[str, tuple[str, ConfigType]]:
    """The broker settings read once at start (read-only in DescribeConfigs)."""
    return {
        "broker.id": (str(ctx.node_id), ConfigType.INT),
        "auto.create.topics.enable": (str(ctx.auto_create_topics).lower(), ConfigType.BOOLEAN),
        "num.partitions": (str(ctx.default_partitions), ConfigType.INT),
        "default.replication.factor": (str(ctx.default_replication_factor), ConfigType.SHORT),
        "advertised.listeners": (f"PLAINTEXT://{ctx.host}:{ctx.port}", ConfigType.LIST),
    }


def _broker_entities(ctx: BrokerContext) -> dict[str, dict[str, str]]:
    """Every entity's dynamic broker configs (in the controller log, or in this broker's own file)."""
    rep = ctx.extra.get("replication")
    if rep is not None:
        entities: dict[str, dict[str, str]] = rep.state.broker_configs
        return entities
    local = _local_store(ctx)
    return {} if local is None else local.entities


def _local_store(ctx: BrokerContext) -> LocalBrokerConfigs | None:
    """Where a broker without replication keeps them (None in memory, or with replication)."""
    store = ctx.extra.get("broker_configs")
    return store if isinstance(store, LocalBrokerConfigs) else None


def _dynamic_broker_config(ctx: BrokerContext, key: str) -> EffectiveConfig:
    """A dynamic setting's value in force on this broker, with every layer that sets it as a synonym."""
    d = DYNAMIC_BROKER_CONFIGS[key]
    set_by = [(src, values[d.name]) for src, values in ctx.registry.broker_layers if d.name in values]
    synonyms = (*((key, v, src) for src, v in set_by), (key, d.default, ConfigSource.DEFAULT_CONFIG))
    value, source = (set_by[0][1], set_by[0][0]) if set_by else (d.default, ConfigSource.DEFAULT_CONFIG)
    return EffectiveConfig(key, value, source, d.type, synonyms, f"Dynamic: sets the default of {d.name}.")


def _described(ctx: BrokerContext, rtype: int, name: str) -> list[EffectiveConfig]:
    if rtype == TOPIC:
        topic = ctx.registry.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        return list(effective_configs(topic.configs, ctx.registry.broker_layers).values())
    if rtype == BROKER:
        if name == DEFAULT_ENTITY:
            # As Kafka: the default entity describes only the cluster-wide dynamic values.
            default = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
            return [
                EffectiveConfig(k, v, default, DYNAMIC_BROKER_CONFIGS[k].type, ((k, v, default),))
                for k, v in _broker_entities(ctx).get(DEFAULT_ENTITY, {}).items()
                if k in DYNAMIC_BROKER_CONFIGS
            ]
        if name != str(ctx.node_id):
            raise TopicError(
                INVALID_REQUEST,
                f"Unexpected broker id, expected {ctx.node_id} or empty string, but received {name[:100]}",
            )
        static = ConfigSource.STATIC_BROKER_CONFIG
        return [
            EffectiveConfig(k, v, static, t, ((k, v, static),))
            for k, (v, t) in _static_broker_configs(ctx).items()
        ] + [_dynamic_broker_config(ctx, k) for k in DYNAMIC_BROKER_CONFIGS]
    raise TopicError(INVALID_REQUEST, f"resource type {rtype} is not supported")


def _resource_result(
    cls: type[Any], rtype: int, name: str, code: int, message: str | None, **fields: object
) -> Any:
    """One resource's answer in DescribeConfigs and both AlterConfigs APIs: its error, plus ``fields``."""
    return build(
        cls, error_code=err(code), error_message=message, resource_type=rtype, resource_name=name, **fields
    )


async def handle_describe_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.DESCRIBE_CONFIGS, version, "DescribeConfigsResult")
    entry_cls = nested(ApiKey.DESCRIBE_CONFIGS, version, "DescribeConfigsResourceResult")
    synonym_cls = nested_or_none(ApiKey.DESCRIBE_CONFIGS, version, "DescribeConfigsSynonym")
    with_synonyms = bool(getattr(request, "include_synonyms", False))
    with_docs = bool(getattr(request, "include_documentation", False))
    results = []
    for res in request.resources:
        rtype, name = int(res.resource_type), res.resource_name
        # Null means every config; an empty list means none (as Kafka answers).
        wanted = set(res.configuration_keys) if res.configuration_keys is not None else None
        code, message = 0, None
        described: list[EffectiveConfig] = []
        if denied := config_denied(ctx, Operation.DESCRIBE_CONFIGS, rtype, name):
            code, message = denied, f"DescribeConfigs on {name!r} is not allowed"
        else:
            try:
                described = _described(ctx, rtype, name)
            except TopicError as exc:
                code, message = exc.error_code, str(exc)
        entries = tuple(
            build(
                entry_cls,
                name=c.name,
                value=c.value,
                read_only=rtype == BROKER and c.name not in DYNAMIC_BROKER_CONFIGS,
                config_source=int(c.source),
                is_default=c.is_default,
                is_sensitive=False,
                synonyms=tuple(
                    build(synonym_cls, name=n, value=v, source=int(src)) for n, v, src in c.synonyms
                )
                if with_synonyms and synonym_cls is not None
                else (),
                config_type=int(c.type),
                documentation=c.documentation if with_docs else None,
            )
            for c in sorted(described, key=lambda c: c.name)
            if wanted is None or c.name in wanted
        )
        results.append(_resource_result(result_cls, rtype, name, code, message, configs=entries))
    return build(response_type(ApiKey.DESCRIBE_CONFIGS, version), throttle_time=0, results=tuple(results))


def _list_items(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _altered(
    current: dict[str, str], res: Any, definitions: Mapping[str, TopicConfigDef] = TOPIC_CONFIGS
) -> dict[str, str]:
    """The topic's (or broker entity's) configs after the resource's SET/DELETE/APPEND/SUBTRACT
    operations; ``definitions`` names the list configs."""
    updated = dict(current)
    for c in res.configs:
        op = int(c.config_operation)
        if op == SET:
            if c.value is None:
                raise TopicError(INVALID_CONFIG, f"config {c.name!r}: SET needs a value")
            updated[c.name] = c.value
        elif op == DELETE:
            updated.pop(c.name, None)
        elif op in (APPEND, SUBTRACT):
            # Only list configs take APPEND/SUBTRACT (as in Kafka), item by item.
            definition = definitions.get(c.name)
            if definition is None or definition.type is not ConfigType.LIST:
                raise TopicError(INVALID_CONFIG, f"config {c.name!r}: APPEND/SUBTRACT need a list config")
            items = _list_items(updated.get(c.name, definition.default))
            given = _list_items(c.value)
            if op == APPEND:
                items += [v for v in given if v not in items]
            else:
                items = [v for v in items if v not in given]
            updated[c.name] = ",".join(items)
        else:
            raise TopicError(INVALID_CONFIG, f"config {c.name!r}: operation {op} is not supported")
    return updated


async def _alter_topic(ctx: BrokerContext, res: Any, validate_only: bool) -> None:
    name = res.resource_name
    rep = ctx.extra.get("replication")
    if rep is None:
        topic = ctx.registry.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        updated = _altered(topic.configs, res)
        if validate_only:
            ctx.registry.check_configs(updated)
        else:
            ctx.registry.set_configs(name, updated)
        return
    # Replicated: topic configs live in the controller log, so every broker applies a change (and keeps it
    # across restarts). The controller's leader decides; another broker forwards the resource to it.
    if not rep.runtime.is_leader(CONTROLLER_GROUP):
        await rep.forward_alter_configs(res, validate_only)
        return
    meta = rep.state.topics.get(name)
    if meta is None:
        raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
    updated = _altered(meta.configs, res)
    ctx.registry.check_configs(updated)
    if not validate_only:
        await rep.alter_topic_configs(name, updated)


async def _alter_broker(ctx: BrokerContext, res: Any, validate_only: bool) -> None:
    """Dynamic broker configs of one entity ("" cluster-wide, else a broker id), committed through the
    controller log by its leader (another broker forwards the resource to it) and applied by every broker;
    without replication, kept in this broker's own file and applied here."""
    name = str(res.resource_name)
    try:
        check_entity(name)
    except ValueError as exc:
        raise TopicError(INVALID_REQUEST, str(exc)) from None
    rep = ctx.extra.get("replication")
    local = _local_store(ctx)
    if rep is None and local is None:  # an in-memory broker: nothing to keep them in
        raise TopicError(INVALID_REQUEST, "this broker's configs cannot be updated dynamically")
    updated = _altered(dict(_broker_entities(ctx).get(name, {})), res, DYNAMIC_BROKER_CONFIGS)
    try:
        # Checked here too (a refusal needs no controller); the leader's check is the one that counts.
        validate_broker_configs(updated)
    except NotDynamicError as exc:
        raise TopicError(INVALID_REQUEST, str(exc)) from None
    except ValueError as exc:
        raise TopicError(INVALID_CONFIG, str(exc)) from None
    if validate_only:
        return
    if rep is None:
        assert local is not None
        local.set(name, updated)
        ctx.registry.set_broker_layers(layers(local.entities, ctx.node_id, ctx.registry.static_defaults))
    elif not rep.runtime.is_leader(CONTROLLER_GROUP):
        await rep.forward_alter_configs(res, validate_only)
    else:
        await rep.alter_broker_configs(name, updated)


@dataclass(frozen=True)
class _Op:
    """One IncrementalAlterConfigs operation (the fields _altered and the forwarding read)."""

    name: str
    config_operation: int
    value: str | None


@dataclass(frozen=True)
class _Resource:
    resource_type: int
    resource_name: str
    configs: tuple[_Op, ...]


def _as_incremental(ctx: BrokerContext, res: Any) -> _Resource:
    """Legacy AlterConfigs replaces a topic's whole set of overrides (as Kafka's controller applies it):
    SET each given config and DELETE every other one (any topic config name, so the result is exact even
    where the controller's leader applies it and this broker's view of the current overrides lags)."""
    name = str(res.resource_name)
    rtype = int(res.resource_type)
    given: dict[str, str] = {}
    for c in res.configs:
        if c.value is None:
            raise TopicError(INVALID_REQUEST, f"config {c.name!r}: a null value is not supported")
        if c.name in given:
            raise TopicError(INVALID_REQUEST, f"config {c.name!r} is given more than once")
        given[str(c.name)] = str(c.value)
    if rtype == BROKER:
        current = set(_broker_entities(ctx).get(name, {}))
        every: set[str] = set(DYNAMIC_BROKER_CONFIGS)
    else:
        topic = ctx.registry.get(name)
        current = set(topic.configs) if topic is not None else set()
        every = set(TOPIC_CONFIGS)
    doomed = sorted((current | every) - set(given))
    ops = [_Op(k, DELETE, None) for k in doomed] + [_Op(k, SET, v) for k, v in given.items()]
    return _Resource(rtype, name, tuple(ops))


async def _alter_each(
    ctx: BrokerContext, api: ApiKey, version: int, request: Any, as_ops: Callable[[BrokerContext, Any], Any]
) -> Any:
    """Both AlterConfigs APIs: each resource authorized, checked to be a topic, turned into incremental
    operations by ``as_ops`` and applied (or only validated); every resource answers on its own."""
    result_cls = nested(api, version, "AlterConfigsResourceResponse")
    results = []
    for res in request.resources:
        rtype, name = int(res.resource_type), res.resource_name
        code, message = 0, None
        try:
            if denied := config_denied(ctx, Operation.ALTER_CONFIGS, rtype, name):
                raise TopicError(denied, f"AlterConfigs on {name!r} is not allowed")
            if rtype == TOPIC:
                await _alter_topic(ctx, as_ops(ctx, res), bool(request.validate_only))
            elif rtype == BROKER:
                await _alter_broker(ctx, as_ops(ctx, res), bool(request.validate_only))
            else:
                raise TopicError(
                    INVALID_REQUEST, f"only topic and broker configs can be altered, not type {rtype}"
                )
        except TopicError as exc:
            code, message = exc.error_code, str(exc)
            ctx.metrics.record_error(code)
        results.append(_resource_result(result_cls, rtype, name, code, message))
    return build(response_type(api, version), throttle_time=0, responses=tuple(results))


def _as_given(_ctx: BrokerContext, res: Any) -> Any:
    """IncrementalAlterConfigs' resources are operations already."""
    return res


async def handle_incremental_alter_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    return await _alter_each(ctx, ApiKey.INCREMENTAL_ALTER_CONFIGS, header.api_version, request, _as_given)


async def handle_alter_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """AlterConfigs (API 33, the legacy non-incremental form): as IncrementalAlterConfigs, with the given
    configs replacing every dynamic config of the topic (kafka-configs' older path, librdkafka's
    alter_configs)."""
    return await _alter_each(ctx, ApiKey.ALTER_CONFIGS, header.api_version, request, _as_incremental)
