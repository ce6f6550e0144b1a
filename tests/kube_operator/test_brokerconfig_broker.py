"""The operator's dynamic broker configs (`clusterreconcile.apply_dynamic_configs`) against three real
replicated brokers: spec.config's dynamic keys become the cluster-wide dynamic configs every broker reports,
a second reconcile changes nothing, a value changed behind the operator's back with Kafka's kafka-configs is
set back while a key the operator does not manage stays, and keys dropped from the spec are deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
from streamraft_operator.brokerconfigadmin import describe_default_broker_configs
from streamraft_operator.clusterreconcile import apply_dynamic_configs
from streamraft_operator.spec import ClusterSpec, parse_cluster

from tests.javakafka.fetch import is_fetched
from tests.javakafka.tools import CONFIG_COMMAND, run_tool
from tests.support.broker import running_broker
from tests.support.launcher import Cluster, wait_controller

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("dynconf")), 3) as running:
        wait_controller(running)
        yield running


def _spec(config: dict[str, object]) -> ClusterSpec:
    return parse_cluster("demo", "ns", {"replicas": 3, "config": config})


def _addresses(cluster: Cluster) -> list[str]:
    return cluster.bootstrap.split(",")


def _on_every_broker(cluster: Cluster, name: str, value: str, source: ConfigSource) -> None:
    """Each broker, asked itself, reports ``name`` with this value and source (applied from the controller
    log a moment after the change is committed)."""
    deadline = time.monotonic() + DEADLINE_S
    for node, broker in cluster.brokers.items():
        res = ConfigResource(ResourceType.BROKER, str(node))
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept: its futures need the handle
        while True:
            entry = admin.describe_configs([res])[res].result(10)[name]
            if (entry.value, ConfigSource(entry.source)) == (value, source):
                break
            assert time.monotonic() < deadline, f"broker {node}: {name}={entry.value} ({entry.source})"
            time.sleep(0.1)  # pacing between DescribeConfigs polls


def test_spec_config_dynamic_keys_are_applied_kept_and_removed(cluster: Cluster) -> None:
    events: list[tuple[str, str]] = []
    emit = lambda reason, message: events.append((reason, message))  # noqa: E731
    spec = _spec({"num.partitions": 3, "message.max.bytes": 3_000_000, "log.retention.ms": 60_000})
    assert apply_dynamic_configs(spec, _addresses(cluster), emit) is None
    assert describe_default_broker_configs(_addresses(cluster)) == {
        "log.retention.ms": "60000",
        "message.max.bytes": "3000000",
    }
    assert events == [
        (
            "BrokerConfigUpdated",
            "log.retention.ms=60000, message.max.bytes=3000000 "
            "(cluster-wide dynamic broker configs, applied without a restart)",
        )
    ]
    _on_every_broker(cluster, "message.max.bytes", "3000000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
    _on_every_broker(cluster, "log.retention.ms", "60000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)

    events.clear()
    assert apply_dynamic_configs(spec, _addresses(cluster), emit) is None
    assert events == []  # nothing to do: nothing written

    if not is_fetched():
        pytest.fail("Apache Kafka jars missing; run `bash .ci/prepare-kafka`")
    run_tool(CONFIG_COMMAND, ["--bootstrap-server", cluster.bootstrap, "--entity-type", "brokers",
                              "--entity-default", "--alter", "--add-config",
                              "message.max.bytes=5000,log.cleaner.min.cleanable.ratio=0.3"])  # fmt: skip
    assert apply_dynamic_configs(spec, _addresses(cluster), emit) is None
    assert describe_default_broker_configs(_addresses(cluster)) == {
        "log.cleaner.min.cleanable.ratio": "0.3",  # not a key the operator manages
        "log.retention.ms": "60000",
        "message.max.bytes": "3000000",
    }

    assert apply_dynamic_configs(_spec({"num.partitions": 3}), _addresses(cluster), emit) is None
    assert describe_default_broker_configs(_addresses(cluster)) == {"log.cleaner.min.cleanable.ratio": "0.3"}
    _on_every_broker(cluster, "message.max.bytes", "1048588", ConfigSource.STATIC_BROKER_CONFIG)
    assert events[-1] == (
        "BrokerConfigUpdated",
        "log.retention.ms removed, message.max.bytes removed "
        "(cluster-wide dynamic broker configs, applied without a restart)",
    )


def test_a_broker_that_refuses_them_is_named() -> None:
    authorizer = ["--authorizer-class-name", "streamraft.acl"]  # and the operator is no super user
    with running_broker(extra_args=authorizer) as single:
        why = apply_dynamic_configs(
            _spec({"message.max.bytes": 3_000_000}), [single.bootstrap], lambda *_: None
        )
        # A spec asking for no dynamic config is not failed for it.
        assert (
            apply_dynamic_configs(_spec({"num.partitions": 3}), [single.bootstrap], lambda *_: None) is None
        )
    assert why is not None and why.startswith(
        "describe cluster-wide broker configs: cluster_authorization_failed"
    )
