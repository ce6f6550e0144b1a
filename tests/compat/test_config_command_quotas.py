"""kafka-configs (ConfigCommand) on client quotas: add, describe and delete a client-id's quota configs
through the Java Admin client's AlterClientQuotas and DescribeClientQuotas."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.compat.target import Target
from tests.javakafka.tools import CONFIG_COMMAND, run_tool

pytestmark = [pytest.mark.java]


def _configs(target: Target, *args: str) -> str:
    return run_tool(CONFIG_COMMAND, ["--bootstrap-server", target.bootstrap, *args]).stdout


def _wait_described(target: Target, entity: list[str], expected: str) -> None:
    """A cluster's brokers apply the change from the controller log a moment after it is committed."""
    deadline = time.monotonic() + 60
    while expected not in (out := _configs(target, "--describe", *entity)):
        assert time.monotonic() < deadline, f"expected {expected!r} in:\n{out}"
        time.sleep(0.5)  # pacing between tool runs


def test_client_quotas_add_describe_delete(target: Target) -> None:
    client = f"c-{uuid.uuid4().hex[:8]}"
    clients = ["--entity-type", "clients", "--entity-name", client]
    out = _configs(
        target, "--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048", *clients
    )
    assert f"Completed updating config for client {client}." in out, out
    _wait_described(
        target,
        clients,
        f"Quota configs for client-id '{client}' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
    )

    _configs(target, "--alter", "--delete-config", "consumer_byte_rate", *clients)
    _wait_described(target, clients, f"Quota configs for client-id '{client}' are producer_byte_rate=1024.0")
