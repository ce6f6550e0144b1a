"""Controller-state building blocks for unit tests: broker registrations."""

from __future__ import annotations

from streamraft_broker.controller.state import (
    BrokerReg,
)


def broker_reg(node: int, rack: str | None = None, incarnation: str = "inc-1", port: int = 9000) -> BrokerReg:
    return BrokerReg(node, "127.0.0.1", port + node, f"127.0.0.1:{port + 100 + node}", rack, incarnation)
