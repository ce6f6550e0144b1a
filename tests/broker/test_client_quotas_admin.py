"""AlterClientQuotas and DescribeClientQuotas on a single broker, through kafka-python's encoding of both
APIs: entities of every shape, per-entry errors, validate_only, filters, and durability across SIGKILL."""

from __future__ import annotations

from pathlib import Path

from tests.support.broker_process import BrokerProcess
from tests.support.client_quotas import ANY, DEFAULT, EXACT, admin_client, alter, describe

INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35

ALICE_APP = (("client-id", "app"), ("user", "alice"))


def test_alter_then_describe_round_trip(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data") as broker, admin_client(broker.bootstrap) as admin:
        results = alter(
            admin,
            [
                ({"client-id": "app"}, {"producer_byte_rate": 1024, "consumer_byte_rate": 2048}),
                ({"user": "alice", "client-id": "app"}, {"request_percentage": 12.5}),
                ({"user": None}, {"controller_mutation_rate": 5}),
                ({"ip": "10.0.0.9"}, {"connection_creation_rate": 3}),
                ({"client-id": "bad"}, {"producer_byte_rate": 1.5}),
                ({"user": "u", "ip": "10.0.0.1"}, {"request_percentage": 1}),
            ],
        )
        assert results[:4] == [(0, None)] * 4
        assert results[4][0] == INVALID_REQUEST and "whole number" in (results[4][1] or "")
        assert results[5][0] == INVALID_REQUEST and "cannot be combined" in (results[5][1] or "")

        code, everything = describe(admin, [])
        assert code == 0
        assert everything == {
            (("client-id", "app"),): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            ALICE_APP: {"request_percentage": 12.5},
            (("user", None),): {"controller_mutation_rate": 5.0},
            (("ip", "10.0.0.9"),): {"connection_creation_rate": 3.0},
        }
        assert describe(admin, [("client-id", EXACT, "app")], strict=True) == (
            0,
            {(("client-id", "app"),): everything[(("client-id", "app"),)]},
        )
        assert set(describe(admin, [("client-id", EXACT, "app")])[1]) == {(("client-id", "app"),), ALICE_APP}
        assert set(describe(admin, [("user", DEFAULT, None)])[1]) == {(("user", None),)}
        assert set(describe(admin, [("user", ANY, None)], strict=True)[1]) == {(("user", None),)}
        refused, nothing = describe(admin, [("user", EXACT, None)])
        assert (refused, nothing) == (INVALID_REQUEST, {})
        assert describe(admin, [("topic", ANY, None)])[0] == UNSUPPORTED_VERSION

        # validate_only checks and answers but stores nothing; removing the last key drops the entity.
        assert alter(admin, [({"client-id": "new"}, {"producer_byte_rate": 9})], validate_only=True) == [
            (0, None)
        ]
        assert alter(admin, [({"user": "alice", "client-id": "app"}, {"request_percentage": None})]) == [
            (0, None)
        ]
        assert alter(admin, [({"client-id": "app"}, {"consumer_byte_rate": None})]) == [(0, None)]
        _, after = describe(admin, [])
        assert (("client-id", "new"),) not in after and ALICE_APP not in after
        assert after[(("client-id", "app"),)] == {"producer_byte_rate": 1024.0}

        # One request may carry at most 10,000 alterations (one controller command).
        flood = alter(admin, [({"client-id": f"n{i}"}, {"producer_byte_rate": 1}) for i in range(10_001)])
        assert {code for code, _ in flood} == {INVALID_REQUEST} and "at most 10000" in (flood[0][1] or "")
        assert describe(admin, [])[1] == after


def test_quotas_survive_sigkill(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data").start()
    with admin_client(broker.bootstrap) as admin:
        assert alter(
            admin,
            [
                ({"user": "alice", "client-id": None}, {"producer_byte_rate": 4096}),
                ({"client-id": None}, {"consumer_byte_rate": 8192}),
            ],
        ) == [(0, None), (0, None)]
    broker.kill()  # no graceful stop: the answer above promised the change was on disk
    broker.start()
    with broker, admin_client(broker.bootstrap) as admin:
        assert describe(admin, [])[1] == {
            (("client-id", None), ("user", "alice")): {"producer_byte_rate": 4096.0},
            (("client-id", None),): {"consumer_byte_rate": 8192.0},
        }
