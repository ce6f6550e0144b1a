"""kafka-acls (AclCommand, Kafka 4.x): add, list and remove ACLs on a broker with an authorizer.

The compat targets run without an authorizer, so this starts its own broker: PLAINTEXT clients are
User:ANONYMOUS, made a super user so the tool may administer ACLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.javakafka.fetch import FetchError, is_fetched, kafka_home
from tests.javakafka.tools import run_tool
from tests.support.broker_process import BrokerProcess

pytestmark = [pytest.mark.java]

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"


def test_kafka_acls_add_list_remove(tmp_path: Path) -> None:
    if not is_fetched():
        raise FetchError(f"Apache Kafka jars missing from {kafka_home()}; run `bash .ci/prepare-kafka`")
    args = ["--authorizer-class-name", "streamraft.acl", "--super-users", "User:ANONYMOUS"]
    with BrokerProcess(tmp_path / "data", extra_args=args) as broker:
        base = ["--bootstrap-server", broker.bootstrap]
        alice = ["--allow-principal", "User:alice"]
        prefixed_orders = ["--topic", "orders", "--resource-pattern-type", "prefixed"]
        run_tool(
            ACL_COMMAND,
            [*base, "--add", *alice, "--operation", "Read", "--operation", "Write", *prefixed_orders],
        )
        run_tool(ACL_COMMAND, [*base, "--add", *alice, "--operation", "Read", "--group", "billing"])
        listed = run_tool(ACL_COMMAND, [*base, "--list"]).stdout
        assert "name=orders, patternType=PREFIXED" in listed, listed
        assert "name=billing, patternType=LITERAL" in listed, listed
        assert "principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW" in listed, listed
        only_topic = run_tool(
            ACL_COMMAND, [*base, "--list", "--topic", "orders", "--resource-pattern-type", "prefixed"]
        ).stdout
        assert "billing" not in only_topic and "operation=READ" in only_topic, only_topic

        run_tool(
            ACL_COMMAND,
            [*base, "--remove", "--force", "--topic", "orders", "--resource-pattern-type", "prefixed"],
        )
        left = run_tool(ACL_COMMAND, [*base, "--list"]).stdout
        assert "orders" not in left and "billing" in left, left
