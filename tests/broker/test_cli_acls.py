"""``streamraft acls create|list|delete`` against a broker with an authorizer (ANONYMOUS as super user, so
the PLAINTEXT client may administer ACLs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamraft_broker.cli import main

from tests.support.broker_process import BrokerProcess


def test_acls_create_list_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--authorizer-class-name", "streamraft.acl", "--super-users", "User:ANONYMOUS"]
    with BrokerProcess(tmp_path / "data", extra_args=args) as broker:
        server = ["--bootstrap-server", broker.bootstrap, "--timeout", "20"]
        grant = ["--principal", "User:alice", "--operation", "Read", "--operation", "DescribeConfigs"]
        assert main(["acls", "create", *grant, "--topic", "orders.", "--prefixed", *server]) == 0
        assert (
            main(
                [
                    "acls",
                    "create",
                    "--principal",
                    "User:bob",
                    "--operation",
                    "Alter",
                    "--cluster",
                    "--deny",
                    *server,
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["acls", "list", *server]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert sorted(listed) == [
            "ALLOW User:alice from * DESCRIBE_CONFIGS on TOPIC:PREFIXED:orders.",
            "ALLOW User:alice from * READ on TOPIC:PREFIXED:orders.",
            "DENY User:bob from * ALTER on BROKER:LITERAL:kafka-cluster",
        ], listed
        assert main(["acls", "delete", "--topic", "orders.", "--prefixed", *server]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 2
        assert main(["acls", "list", "--topic", "orders.", "--prefixed", *server]) == 0
        assert capsys.readouterr().out == ""
        # A binding the broker refuses (ClusterAction does not apply to topics) fails with its reason.
        assert (
            main(
                [
                    "acls",
                    "create",
                    "--principal",
                    "User:a",
                    "--operation",
                    "ClusterAction",
                    "--topic",
                    "t",
                    *server,
                ]
            )
            == 1
        )
        assert "does not apply to TOPIC" in capsys.readouterr().err
