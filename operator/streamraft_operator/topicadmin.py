"""Kafka Admin API calls for StreamTopics (confluent-kafka AdminClient). Blocking, with timeouts."""

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from streamraft_operator.brokers import admin_client
from streamraft_operator.topicplan import ObservedTopic

TIMEOUT_S = 15.0


class AdminFailed(RuntimeError):
    pass


def _wait(futures: Mapping[Any, Future[Any]], what: str, *, ok_codes: Sequence[int] = ()) -> None:
    for key, fut in futures.items():
        try:
            fut.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in ok_codes:
                continue
            raise AdminFailed(f"{what} {key}: {err.str() if isinstance(err, KafkaError) else exc}") from exc
        except Exception as exc:  # timeouts and transport failures from the future
            raise AdminFailed(f"{what} {key}: {exc}") from exc


wait_all = _wait  # shared with useradmin


def describe(bootstrap: Sequence[str], topic: str, keys: Sequence[str]) -> ObservedTopic | None:
    admin = admin_client(bootstrap)
    try:
        meta = admin.list_topics(topic=topic, timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise AdminFailed(f"metadata for topic {topic}: {exc}") from exc
    tm = meta.topics.get(topic)
    if tm is None or (tm.error is not None and tm.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        return None
    if tm.error is not None:
        raise AdminFailed(f"metadata for topic {topic}: {tm.error.str()}")
    replicas = max((len(p.replicas) for p in tm.partitions.values()), default=0)
    config: dict[str, str] = {}
    if keys:
        res = ConfigResource(ResourceType.TOPIC, topic)
        futures = admin.describe_configs([res], request_timeout=TIMEOUT_S)
        try:
            entries = futures[res].result(timeout=TIMEOUT_S)
        except Exception as exc:
            raise AdminFailed(f"describe configs of topic {topic}: {exc}") from exc
        config = {k: str(v.value) for k, v in entries.items() if k in keys and v.value is not None}
    return ObservedTopic(len(tm.partitions), replicas, config)


def create(
    bootstrap: Sequence[str], topic: str, partitions: int, replicas: int, config: Mapping[str, str]
) -> None:
    new = NewTopic(topic, num_partitions=partitions, replication_factor=replicas, config=dict(config))
    admin = admin_client(bootstrap)  # must outlive the futures: its handle resolves them
    futures = admin.create_topics([new], request_timeout=TIMEOUT_S)
    # Created by an earlier, interrupted reconcile: not an error.
    _wait(futures, "create topic", ok_codes=[KafkaError.TOPIC_ALREADY_EXISTS])


def grow(bootstrap: Sequence[str], topic: str, total: int) -> None:
    admin = admin_client(bootstrap)
    futures = admin.create_partitions([NewPartitions(topic, total)], request_timeout=TIMEOUT_S)
    _wait(futures, "add partitions to")


def set_config(bootstrap: Sequence[str], topic: str, values: Mapping[str, str]) -> None:
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    admin = admin_client(bootstrap)
    futures = admin.incremental_alter_configs([res], request_timeout=TIMEOUT_S)
    _wait(futures, "alter configs of")


def delete(bootstrap: Sequence[str], topic: str) -> None:
    admin = admin_client(bootstrap)
    futures = admin.delete_topics([topic], request_timeout=TIMEOUT_S)
    _wait(futures, "delete topic", ok_codes=[KafkaError.UNKNOWN_TOPIC_OR_PART])
