"""Parsing of what brokers expose, API paths, the preStop hook and CLI validation — without a cluster."""

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from streamraft_operator import prestop
from streamraft_operator.brokers import BrokersUnreachable, parse_raft_lag, partition_states
from streamraft_operator.kube import path_for
from streamraft_operator.main import parse_args
from streamraft_operator.rollout import PartitionState, next_restart

METRICS = """\
# HELP streamraft_raft_follower_lag_entries lag
# TYPE streamraft_raft_follower_lag_entries gauge
streamraft_raft_follower_lag_entries{topic="t",partition="0"} 3.0
streamraft_raft_follower_lag_entries{topic="t",partition="1"} 17.0
# HELP streamraft_partitions_led led
# TYPE streamraft_partitions_led gauge
streamraft_partitions_led{topic="t"} 2.0
streamraft_partitions_led{topic="u"} 1.0
"""


def test_raft_lag_is_the_maximum_and_absent_metric_is_none() -> None:
    assert parse_raft_lag(METRICS) == 17
    assert parse_raft_lag("# nothing\n") is None
    assert prestop.partitions_led(METRICS) == 3


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
    led = 2

    def do_POST(self) -> None:
        ok = self.path == prestop.HANDOFF_PATH
        type(self).led = 0 if ok else type(self).led
        self.send_response(204 if ok else 404)
        self.end_headers()

    def do_GET(self) -> None:
        body = f"streamraft_partitions_led {type(self).led}\n".encode()
        self.send_response(200)
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


def test_prestop_hands_off_and_waits(fake_metrics_port: int) -> None:
    _Broker.led = 2
    assert prestop.request_handoff(fake_metrics_port)
    assert prestop.wait_until_leads_nothing(fake_metrics_port, deadline=float("inf")) == 0
    assert prestop.main(["--metrics-port", str(fake_metrics_port), "--timeout", "5"]) == 0


def test_prestop_without_a_broker_exits_zero_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not prestop.request_handoff(port)
    assert prestop.main(["--metrics-port", str(port), "--timeout", "1"]) == 0
