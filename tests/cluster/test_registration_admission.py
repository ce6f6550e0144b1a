"""Which BrokerRegistrations the controller records (``Membership.admit``), on the real controller state:
a restart keeps its incarnation (maybe at other ports) or its addresses (an empty disk); a new incarnation
at other addresses, an unknown id (unless joining is allowed) or another cluster's id is refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from streamraft_broker.controller.commands import encode
from streamraft_broker.controller.state import BrokerReg, ControllerState
from streamraft_broker.replication.members import parse_members
from streamraft_broker.replication.membership import (
    DUPLICATE_BROKER_REGISTRATION,
    INCONSISTENT_CLUSTER_ID,
    INVALID_REQUEST,
    Membership,
    RegistrationRefused,
)

MEMBERS = parse_members("1=h1:9092/h1:9093,2=h2:9092/h2:9093,3=h3:9092/h3:9093")
CLUSTER = "c1"


def _membership(tmp_path: Path, *, allow_join: bool = False) -> Membership:
    state = ControllerState()
    state.apply(encode(BrokerReg(2, "h2", 9092, "h2:9093", None, "inc-a").command()))
    service = SimpleNamespace(
        raft_dir=tmp_path, state=state, members=MEMBERS, cluster_id=CLUSTER, allow_broker_join=allow_join
    )
    return Membership(service, None)  # admit reads only these fields; the real path: test_forged_requests


def _refusal(membership: Membership, reg: BrokerReg, cluster: str = CLUSTER) -> int | None:
    try:
        membership.admit(reg, cluster)
    except RegistrationRefused as exc:
        return exc.code
    return None


def test_restarts_are_admitted(tmp_path: Path) -> None:
    m = _membership(tmp_path)
    assert _refusal(m, BrokerReg(2, "h2", 9092, "h2:9093", None, "inc-a")) is None  # unchanged
    assert _refusal(m, BrokerReg(2, "h2", 9192, "h2:9193", "r1", "inc-a")) is None  # other ports
    assert _refusal(m, BrokerReg(2, "h2", 9092, "h2:9093", None, "inc-b")) is None  # empty disk
    assert _refusal(m, BrokerReg(3, "h3", 9092, "h3:9093", None, "inc-c")) is None  # first time
    assert m.as_configured(BrokerReg(3, "h3", 9092, "h3:9093", None, "x"))
    assert not m.as_configured(BrokerReg(3, "evil", 9092, "h3:9093", None, "x"))


@pytest.mark.parametrize(
    ("reg", "cluster", "code"),
    [
        (BrokerReg(2, "evil", 1, "evil:2", None, "inc-z"), CLUSTER, DUPLICATE_BROKER_REGISTRATION),
        (BrokerReg(9, "evil", 1, "evil:2", None, "inc-z"), CLUSTER, INVALID_REQUEST),
        (BrokerReg(3, "h3", 9092, "h3:9093", None, "inc-c"), "", INCONSISTENT_CLUSTER_ID),
    ],
)
def test_forgeries_are_refused(tmp_path: Path, reg: BrokerReg, cluster: str, code: int) -> None:
    assert _refusal(_membership(tmp_path), reg, cluster) == code


def test_joining_needs_allow_broker_join(tmp_path: Path) -> None:
    newcomer = BrokerReg(4, "h4", 9092, "h4:9093", None, "inc-d")
    assert _refusal(_membership(tmp_path), newcomer) == INVALID_REQUEST
    assert _refusal(_membership(tmp_path / "joinable", allow_join=True), newcomer) is None
