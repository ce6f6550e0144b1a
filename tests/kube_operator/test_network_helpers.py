"""Parsing of what brokers expose, API paths, the preStop hook and CLI validation — without a cluster."""

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamraft_operator import prestop
from streamraft_operator.brokers import (
    BrokersUnreachable,
    decommission,
    parse_health,
    parse_raft_lag,
    partition_states,
)
from streamraft_operator.kube import path_for
from streamraft_operator.main import parse_args
from streamraft_operator.rollout import PartitionState, next_restart

METRICS = """\
# HELP streamraft_raft_follower_lag_entries lag
# TYPE streamraft_raft_follower_lag_entries gauge
streamraft_raft_follower_lag_entries{topic="t",partition="0",follower="2"} 3.0
streamraft_raft_follower_lag_entries{topic="t",partition="0",follower="3"} 0.0
streamraft_raft_follower_lag_entries{topic="t",partition="1",follower="3"} 17.0
# HELP streamraft_partitions_led led
# TYPE streamraft_partitions_led gauge
streamraft_partitions_led 2.0
# HELP streamraft_under_replicated_partitions under
# TYPE streamraft_under_replicated_partitions gauge
streamraft_under_replicated_partitions 1.0
# HELP streamraft_leaderless_partitions none
# TYPE streamraft_leaderless_partitions gauge
streamraft_leaderless_partitions 0.0
# HELP streamraft_controller_leader_id controller
# TYPE streamraft_controller_leader_id gauge
streamraft_controller_leader_id 2.0
"""


def test_raft_lag_is_the_maximum_and_absent_metric_is_none() -> None:
    assert parse_raft_lag(METRICS) == 17
    assert parse_raft_lag("# nothing\n") is None


def test_broker_health_from_its_replication_gauges() -> None:
    h = parse_health(METRICS)
    assert (h.under_replicated, h.leaderless, h.controller, h.max_lag) == (1, 0, 2, 17)
    assert h.follower_lag == {("t", 0): {2: 3, 3: 0}, ("t", 1): {3: 17}}
    none = parse_health("streamraft_controller_leader_id -1\n")
    assert (none.under_replicated, none.controller, none.max_lag) == (None, None, None)


def test_api_paths() -> None:
    assert path_for("v1", "Pod", "ns", "p-0") == "/api/v1/namespaces/ns/pods/p-0"
    assert path_for("apps/v1", "StatefulSet", "ns") == "/apis/apps/v1/namespaces/ns/statefulsets"
    assert (
        path_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "x.y")
        == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.y"
    )


def test_broken_outdated_pod_is_restarted_first() -> None:
    healthy = [PartitionState("t", 0, 0, (0, 1, 2), (0, 1, 2))]
    d = next_restart(["demo-0", "demo-1"], {"demo-0": True, "demo-1": False, "demo-2": True}, healthy)
    assert d.pod == "demo-1"


def test_metadata_from_nowhere_is_a_clear_error() -> None:
    with pytest.raises(BrokersUnreachable, match="no broker addresses"):
        partition_states([])


def test_cli_rejects_bad_ports(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--metrics-port", "70000"])
    assert "--metrics-port must be between 0 and 65535, got 70000" in capsys.readouterr().err
    assert parse_args(["-n", "a", "-n", "b"]).namespace == ["a", "b"]


class _Broker(http.server.BaseHTTPRequestHandler):
    """A broker's admin routes as the broker answers them (status, JSON body); posts are recorded."""

    answers: dict[str, tuple[int, object]] = {}
    posted: list[str] = []
    authorizations: list[str | None] = []

    def do_POST(self) -> None:
        type(self).posted.append(self.path)
        type(self).authorizations.append(self.headers.get("Authorization"))
        missing = (404, {"error": f"no admin route {self.path!r}; known: []"})
        status, answer = type(self).answers.get(self.path, missing)
        body = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_metrics_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_prestop_posts_the_handoff_and_reports_the_answer(
    fake_metrics_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _Broker.posted = []
    _Broker.answers = {prestop.HANDOFF_PATH: (200, {"moved": 2, "of": 3})}
    got = prestop.request_handoff(fake_metrics_port, 5)
    assert got == prestop.Handoff(2, 3) and not got.complete
    assert prestop.main(["--metrics-port", str(fake_metrics_port), "--timeout", "5"]) == 0
    assert _Broker.posted == [prestop.HANDOFF_PATH] * 2
    assert "handed off only 2 of 3 leaderships" in capsys.readouterr().err
    _Broker.answers = {prestop.HANDOFF_PATH: (200, b"not json")}
    assert "not JSON" in str(prestop.request_handoff(fake_metrics_port, 5))
    _Broker.answers = {}
    missing = prestop.request_handoff(fake_metrics_port, 5)
    assert missing == f"broker answered HTTP 404 to POST {prestop.HANDOFF_PATH}"


def test_handoff_answer_validation_names_the_problem() -> None:
    assert prestop.parse_answer(b'{"moved": 0, "of": 0}').complete
    for bad in (b"[1]", b'{"moved": -1, "of": 2}', b'{"moved": true, "of": 1}', b'{"of": 1}'):
        with pytest.raises(ValueError, match="hand-off answer"):
            prestop.parse_answer(bad)


def test_prestop_without_a_broker_exits_zero_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "failed" in str(prestop.request_handoff(port, 1))
    assert prestop.main(["--metrics-port", str(port), "--timeout", "1"]) == 0


def test_decommission_accepted_refused_or_missing(fake_metrics_port: int) -> None:
    path = "/admin/brokers/4/decommission"
    _Broker.answers = {path: (202, {"id": 4, "state": "decommissioning", "replicas_left": 7})}
    assert decommission("127.0.0.1", fake_metrics_port, 4) == (
        True,
        "draining broker 4: decommissioning, 7 replica(s) left to move",
    )
    _Broker.answers = {path: (409, {"error": "broker 4 is a controller voter"})}
    assert decommission("127.0.0.1", fake_metrics_port, 4) == (
        False,
        "the controller refused to drain broker 4: HTTP 409 broker 4 is a controller voter",
    )
    _Broker.answers = {path: (404, {"error": "unknown broker 4"})}
    assert decommission("127.0.0.1", fake_metrics_port, 4)[1].endswith("HTTP 404 unknown broker 4")
    _Broker.answers = {}  # a broker without the route
    accepted, why = decommission("127.0.0.1", fake_metrics_port, 4)
    assert not accepted and why.startswith("the brokers have no decommission endpoint"), why


def test_prestop_and_decommission_send_the_configured_token(
    fake_metrics_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("op-token\n")
    _Broker.authorizations = []
    _Broker.answers = {prestop.HANDOFF_PATH: (200, {"moved": 1, "of": 1})}
    assert prestop.main(["--admin-port", str(fake_metrics_port), "--token-file", str(token_file)]) == 0
    monkeypatch.setenv("STREAMRAFT_ADMIN_TOKEN_FILE", str(token_file))
    assert prestop.request_handoff(fake_metrics_port, 5) == prestop.Handoff(1, 1)
    path = "/admin/brokers/4/decommission"
    _Broker.answers = {path: (202, {"id": 4, "state": "decommissioning"})}
    assert decommission("127.0.0.1", fake_metrics_port, 4)[0]
    assert _Broker.authorizations == ["Bearer op-token"] * 3
    # No token configured: no header (a broker that requires one answers 401, reported as such).
    monkeypatch.delenv("STREAMRAFT_ADMIN_TOKEN_FILE")
    _Broker.authorizations = []
    _Broker.answers = {prestop.HANDOFF_PATH: (401, {"error": "admin API: missing or wrong bearer token"})}
    assert (
        prestop.request_handoff(fake_metrics_port, 5)
        == f"broker answered HTTP 401 to POST {prestop.HANDOFF_PATH}"
    )
    assert _Broker.authorizations == [None]
    # A token file that cannot be read is named.
    assert "nope" in str(prestop.request_handoff(fake_metrics_port, 5, str(tmp_path / "nope")))
