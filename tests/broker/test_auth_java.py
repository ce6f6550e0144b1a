"""Kafka's own CLI tools against a secured broker: ``kafka-configs --alter --add-config
'SCRAM-SHA-512=[password=...]' --entity-type users`` as the PLAIN admin over SASL_SSL, then the console
producer and consumer as that new SCRAM user (the Java client re-authenticates: connections.max.reauth.ms
is short)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.javakafka.fetch import FetchError, is_fetched, kafka_home
from tests.javakafka.tools import CONSOLE_CONSUMER, CONSOLE_PRODUCER, run_tool
from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.security import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Material,
    broker_args,
    login_count,
    make_material,
)

pytestmark = [pytest.mark.java]

CONFIG_COMMAND = "kafka.admin.ConfigCommand"
COUNT = 50


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    if not is_fetched():
        raise FetchError(f"Apache Kafka jars missing from {kafka_home()}; run `bash .ci/prepare-kafka`")
    return make_material(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, material: Material) -> Iterator[BrokerProcess]:
    extra = {"connections-max-reauth-ms": "4000"}
    yield from module_broker(tmp_path_factory, extra_args=broker_args(material, extra=extra))


def _client_properties(path: Path, material: Material, mechanism: str, user: str, password: str) -> Path:
    module = (
        "org.apache.kafka.common.security.plain.PlainLoginModule"
        if mechanism == "PLAIN"
        else "org.apache.kafka.common.security.scram.ScramLoginModule"
    )
    path.write_text(
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={mechanism}\n"
        f'sasl.jaas.config={module} required username="{user}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={material.ca.cert}\n"
    )
    return path


def test_kafka_configs_adds_a_scram_user_who_then_produces_and_consumes(
    broker: BrokerProcess, material: Material, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{broker.listener_ports['SASL_SSL']}"
    admin = _client_properties(tmp_path / "admin.properties", material, "PLAIN", ADMIN_USER, ADMIN_PASSWORD)
    run_tool(
        CONFIG_COMMAND,
        [
            "--bootstrap-server", bootstrap, "--command-config", str(admin),
            "--alter", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=dave-secret]",
            "--entity-type", "users", "--entity-name", "dave",
        ],
    )  # fmt: skip
    # (kafka-configs --describe of users also asks DescribeClientQuotas, which the quotas work adds.)
    dave = _client_properties(tmp_path / "dave.properties", material, "SCRAM-SHA-512", "dave", "dave-secret")
    lines = [f"line-{i}" for i in range(COUNT)]
    run_tool(
        CONSOLE_PRODUCER,
        [
            "--bootstrap-server", bootstrap, "--topic", "java-scram",
            "--command-config", str(dave), "--command-property", "acks=all",
        ],
        stdin="\n".join(lines) + "\n",
    )  # fmt: skip
    out = run_tool(
        CONSOLE_CONSUMER,
        [
            "--bootstrap-server", bootstrap, "--topic", "java-scram", "--from-beginning",
            # No --max-messages: it keeps fetching until 6 s pass without records, past its 4 s session.
            "--command-config", str(dave), "--timeout-ms", "6000",
        ],
    ).stdout  # fmt: skip
    assert [ln for ln in out.splitlines() if ln.startswith("line-")] == lines
    # The Java clients re-authenticated within connections.max.reauth.ms: none of their connections was cut.
    assert "session expired" not in broker.log_tail(100_000)
    assert login_count(broker.metrics_url, "reauthentication") >= 1

    wrong = _client_properties(tmp_path / "wrong.properties", material, "SCRAM-SHA-512", "dave", "nope")
    refused = run_tool(
        CONFIG_COMMAND,
        [
            "--bootstrap-server", bootstrap, "--command-config", str(wrong),
            "--alter", "--add-config", "SCRAM-SHA-512=[password=x]",
            "--entity-type", "users", "--entity-name", "eve",
        ],
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "SaslAuthenticationException" in refused.stderr
