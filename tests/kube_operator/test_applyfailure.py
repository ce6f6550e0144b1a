"""A refused apply is reported (condition with the API server's message) and retried with backoff."""

import pytest
from streamraft_operator.applyfailure import describe, refused, retry_delay
from streamraft_operator.kube import KubeError
from streamraft_operator.status import BrokerObservation, ClusterObservation, cluster_conditions


@pytest.mark.parametrize(
    ("status", "is_refused"),
    [
        (422, True),
        (400, True),
        (403, True),
        (409, True),
        (0, False),
        (500, False),
        (503, False),
        (429, False),
    ],
)
def test_which_failures_retrying_cannot_fix(status: int, is_refused: bool) -> None:
    assert refused(KubeError(status, "x")) is is_refused


@pytest.mark.parametrize(
    ("attempts", "delay"), [(0, 0.0), (1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0), (6, 300.0), (1000, 300.0)]
)
def test_backoff_doubles_up_to_five_minutes(attempts: int, delay: float) -> None:
    assert retry_delay(attempts) == delay


def test_conditions_carry_the_api_servers_message() -> None:
    msg = describe(
        "StatefulSet",
        "demo",
        KubeError(422, 'StatefulSet.apps "demo" is invalid: spec: Forbidden: updates...'),
    )
    assert (
        msg == 'StatefulSet demo: StatefulSet.apps "demo" is invalid: spec: Forbidden: updates... (HTTP 422)'
    )
    obs = ClusterObservation(1, (BrokerObservation(1, "demo-0", True),), apply_failed=msg)
    got = {c.type: (c.status, c.reason, c.message) for c in cluster_conditions(obs)}
    assert got["Ready"] == (False, "ApplyFailed", msg)
    assert got["Degraded"] == (True, "ApplyFailed", msg)
    assert got["Progressing"] == (False, "ApplyFailed", f"retrying with backoff; {msg}")


@pytest.mark.parametrize(
    ("obs", "progressing", "degraded"),
    [
        pytest.param(
            ClusterObservation(1, (BrokerObservation(1, "demo-0", True),), storage_refused="shrink"),
            (False, "StorageResizeRefused", "shrink"), (True, "StorageResizeRefused", "shrink"),
            id="refused storage: brokers stay Ready, Degraded says why",
        ),
        pytest.param(
            ClusterObservation(1, (BrokerObservation(1, "demo-0", True),), storage_resizing="waiting"),
            (True, "StorageResizing", "waiting"), (False, "AsExpected", "no problems seen"),
            id="resize in flight",
        ),
        pytest.param(
            ClusterObservation(2, (BrokerObservation(1, "demo-0", True), BrokerObservation(2, "demo-1", True),
                                   BrokerObservation(3, "demo-2", True)),
                               blocked="drain", blocked_reason="ScaleDownBlocked", storage_refused="shrink"),
            (False, "ScaleDownBlocked", "drain"), (True, "ScaleDownBlocked", "drain"),
            id="a blocked scale-down is reported first",
        ),
    ],
)  # fmt: skip
def test_storage_conditions(
    obs: ClusterObservation, progressing: tuple[bool, str, str], degraded: tuple[bool, str, str]
) -> None:
    got = {c.type: (c.status, c.reason, c.message) for c in cluster_conditions(obs)}
    assert got["Progressing"] == progressing
    assert got["Degraded"] == degraded
    if obs.blocked is None:
        assert got["Ready"][:2] == (True, "AllBrokersReady")


def test_broker_status_shows_its_volume_size() -> None:
    assert BrokerObservation(1, "demo-0", True, storage="2Gi").as_status() == {
        "id": 1, "pod": "demo-0", "ready": True, "storage": "2Gi"
    }  # fmt: skip
