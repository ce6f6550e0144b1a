"""The `streamraft` command line: help everywhere, layered config with clear errors, topics commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from streamraft_broker.cli import main
from streamraft_broker.config import ConfigError, load_config

from tests.support.broker_process import BrokerProcess
from tests.support.ports import free_port
from tests.support.wire import api_versions_ok


@pytest.mark.parametrize(
    "argv",
    [[], ["broker"], ["local"], ["local", "up"], ["topics"], ["topics", "create"], ["produce"], ["consume"]],
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: streamraft" in capsys.readouterr().out


def test_layering_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broker.yaml"
    cfg.write_text("node_id: 3\nlisten: 127.0.0.1:1000\nauto_create_topics: true\n")
    config = load_config({"node_id": None, "listen": "127.0.0.1:2000"}, {"STREAMRAFT_NODE_ID": "4"}, cfg)
    assert (config.node_id, config.listen_port, config.auto_create_topics) == (4, 2000, True)
    toml = tmp_path / "broker.toml"
    toml.write_text('metrics_listen = "off"\nmax_request_size = 4096\n')
    config = load_config({}, {}, toml)
    assert (config.metrics_port, config.max_request_size) == (None, 4096)


@pytest.mark.parametrize(
    ("flags", "env", "file_text", "message"),
    [
        ({"node_id": "x"}, {}, None, "--node-id: 'x' is not an integer"),
        (
            {},
            {"STREAMRAFT_LISTEN": "nohost"},
            None,
            "environment variable STREAMRAFT_LISTEN: 'nohost' must look like",
        ),
        ({"listen": "h:70000"}, {}, None, "port 70000 is outside"),
        ({"log_format": "xml"}, {}, None, "--log-format: 'xml' is not one of text, json"),
        ({}, {}, "bogus: 1\n", "unknown setting 'bogus'"),
        ({}, {}, "- a list\n", "must hold a mapping"),
        ({}, {}, "auto_create_topics: maybe\n", "is not a boolean"),
    ],
)
def test_bad_config_names_the_setting(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str], file_text: str | None, message: str
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "c.yaml"
        path.write_text(file_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(flags, env, path)


def test_broker_command_rejects_bad_flag_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamraft_broker.cli",
            "broker",
            "--data-dir",
            str(tmp_path),
            "--listen",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--listen: 'nope' must look like HOST:PORT" in proc.stderr


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamraft_broker.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_topics_produce_consume_round_trip(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "b", metrics=False) as broker:
        bs = ["--bootstrap-server", broker.bootstrap]
        made = _cli("topics", "create", "cli-t", "--partitions", "2", "--config", "retention.ms=1000", *bs)
        assert made.returncode == 0, made.stderr
        bad = _cli("topics", "create", "cli-bad", "--config", "retention.ms=soon", *bs)
        assert bad.returncode == 1
        assert "retention.ms" in bad.stderr
        assert "cli-t" in _cli("topics", "list", *bs).stdout.split()
        described = _cli("topics", "describe", "cli-t", *bs)
        assert "partitions: 2" in described.stdout
        assert "config retention.ms=1000 (set)" in described.stdout
        produced = _cli("produce", "cli-t", "--key-separator", ":", *bs, stdin="k1:a\nk2:b\nk1:c\n")
        assert produced.returncode == 0, produced.stderr
        consumed = _cli("consume", "cli-t", "--from-beginning", "--max-messages", "3", "--timeout", "30", *bs)
        assert sorted(consumed.stdout.split()) == ["a", "b", "c"]
        assert _cli("topics", "delete", "cli-t", *bs).returncode == 0
        assert "cli-t" not in _cli("topics", "list", *bs).stdout.split()


def test_local_up_prints_addresses_and_stops_on_sigterm(tmp_path: Path) -> None:
    base = free_port()
    cli = [sys.executable, "-m", "streamraft_broker.cli"]
    proc = subprocess.Popen(
        [*cli, "local", "up", "--base-port", str(base), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"bootstrap servers: 127.0.0.1:{base}"
        assert lines[1].strip() == f"metrics: http://127.0.0.1:{base + 1}/metrics"
        assert api_versions_ok("127.0.0.1", base)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_json_logs_one_event_per_line(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b", metrics=False, extra_args=["--log-format", "json"])
    with broker:
        assert api_versions_ok(broker.host, broker.port)
    events = [json.loads(line) for line in broker.log_path.read_text().splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert "broker ready" in names
    assert "broker stopped" in names
    ready = events[names.index("broker ready")]
    assert ready["port"] == broker.port
    assert {"ts", "level", "logger"} <= ready.keys()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _cli(
            "broker", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}", "--metrics-listen", "off"
        )
    assert proc.returncode == 1
    assert "streamraft: error:" in proc.stderr
    assert "address already in use" in proc.stderr.lower()
