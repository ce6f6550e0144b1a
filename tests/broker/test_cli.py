"""The `streamraft` command line: help everywhere, layered config with clear errors, topics commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka.admin import AdminClient
from streamraft_broker.cli import build_parser, main
from streamraft_broker.config import ConfigError, load_config

from tests.support.broker_process import BrokerProcess
from tests.support.poll import poll
from tests.support.ports import free_port
from tests.support.wire import api_versions_ok


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["broker"],
        ["local"],
        ["local", "up"],
        ["local", "kill"],
        ["local", "status"],
        ["topics"],
        ["topics", "create"],
        ["produce"],
        ["consume"],
        ["cluster", "status"],
        ["groups", "describe"],
        ["groups", "reset-offsets"],
    ],
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: streamraft" in capsys.readouterr().out


def test_layering_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broker.yaml"
    cfg.write_text("node_id: 3\nlisten: 127.0.0.1:1000\nauto.create.topics.enable: false\n")
    config = load_config({"node_id": None, "listen": "127.0.0.1:2000"}, {"STREAMRAFT_NODE_ID": "4"}, cfg)
    assert (config.node_id, config.listen_port, config.auto_create_topics_enable) == (4, 2000, False)
    toml = tmp_path / "broker.toml"
    toml.write_text('metrics_listen = "off"\nsocket_request_max_bytes = 4096\n')
    config = load_config({}, {}, toml)
    assert (config.metrics_port, config.socket_request_max_bytes) == (None, 4096)
    assert config.controller_snapshot_entries == 1_000
    assert config.queued_max_request_bytes == 512 * 1024 * 1024  # ours; Kafka's default -1 is unbounded
    (tmp_path / "limits.yaml").write_text("queued.max.request.bytes: -1\nconnections.max.idle.ms: 300\n")
    config = load_config({}, {}, tmp_path / "limits.yaml")
    assert (config.queued_max_request_bytes, config.connections_max_idle_ms) == (-1, 300)
    assert load_config({}, {"STREAMRAFT_CLUSTER_ID": "prod-eu1"}, None).cluster_id == "prod-eu1"
    config = load_config({}, {"STREAMRAFT_CONTROLLER_SNAPSHOT_ENTRIES": "20"}, None)
    assert config.controller_snapshot_entries == 20
    assert (config.quota_window_num, config.quota_window_size_seconds) == (11, 1)  # Kafka's defaults
    dotted = tmp_path / "kafka-names.yaml"
    dotted.write_text("quota.window.num: 5\nquota.window.size.seconds: 2\n")
    config = load_config({}, {}, dotted)
    assert (config.quota_window_num, config.quota_window_size_seconds) == (5, 2)


def test_topic_creation_settings_have_kafkas_names_defaults_and_old_aliases(tmp_path: Path) -> None:
    default = load_config({}, {}, None)
    # Kafka's auto.create.topics.enable=true and num.partitions=1; three replicas where there are brokers.
    assert (default.auto_create_topics_enable, default.num_partitions) == (True, 1)
    assert default.default_replication_factor == 3
    cfg = tmp_path / "broker.yaml"
    cfg.write_text("num.partitions: 4\ndefault.replication.factor: 5\n")
    config = load_config({}, {}, cfg)
    assert (config.num_partitions, config.default_replication_factor) == (4, 5)
    # The earlier names still work as config keys, environment variables and flags.
    cfg.write_text("auto_create_topics: false\ndefault_partitions: 2\n")
    config = load_config({}, {}, cfg)
    assert (config.auto_create_topics_enable, config.num_partitions) == (False, 2)
    config = load_config({}, {"STREAMRAFT_DEFAULT_PARTITIONS": "6"}, None)
    assert config.num_partitions == 6
    parsed = build_parser().parse_args(
        ["broker", "--auto-create-topics", "false", "--default-partitions", "7"]
    )
    assert (parsed.auto_create_topics_enable, parsed.num_partitions) == ("false", "7")


def test_log_cleaner_settings_have_kafkas_names_and_defaults(tmp_path: Path) -> None:
    default = load_config({}, {}, None)
    # Kafka's log.cleaner.enable=true and log.cleaner.backoff.ms=15000.
    assert (default.log_cleaner_enable, default.log_cleaner_backoff_ms) == (True, 15_000)
    assert default.log_cleaner_dedupe_buffer_size == 134_217_728
    cfg = tmp_path / "broker.yaml"
    cfg.write_text("log.cleaner.enable: false\nlog.cleaner.backoff.ms: 500\n")
    config = load_config({}, {}, cfg)
    assert (config.log_cleaner_enable, config.log_cleaner_backoff_ms) == (False, 500)
    config = load_config(
        {"log_cleaner_backoff_ms": "250"}, {"STREAMRAFT_LOG_CLEANER_BACKOFF_MS": "900"}, None
    )
    assert config.log_cleaner_backoff_ms == 250
    parsed = build_parser().parse_args(
        ["broker", "--log-cleaner-enable", "false", "--log-cleaner-backoff-ms", "7"]
    )
    assert (parsed.log_cleaner_enable, parsed.log_cleaner_backoff_ms) == ("false", "7")


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
        ({}, {}, "auto_create_topics: maybe\n", "auto_create_topics in"),
        ({"default_replication_factor": "0"}, {}, None, "--default-replication-factor: 0 is outside"),
        ({"controller_snapshot_entries": "0"}, {}, None, "--controller-snapshot-entries: 0 is outside 1.."),
        ({"quota_window_num": "0"}, {}, None, "--quota-window-num: 0 is outside 1.."),
        (
            {},
            {"STREAMRAFT_QUOTA_WINDOW_SIZE_SECONDS": "x"},
            None,
            "QUOTA_WINDOW_SIZE_SECONDS: 'x' is not an integer",
        ),
        (
            {"raft_tls_cert": "/nonexistent/b.crt"},
            {},
            None,
            "--raft-tls-cert: cannot read '/nonexistent/b.crt'",
        ),
        ({"raft_tls_cert": __file__, "raft_tls_key": __file__}, {}, None, "raft_tls_ca not set"),
        ({"socket_request_max_bytes": "5"}, {}, None, "--socket-request-max-bytes: 5 is outside 10.."),
        (
            {"queued_max_request_bytes": "1000000"},
            {},
            None,
            "--queued-max-request-bytes: 1000000 is below socket_request_max_bytes 104857600",
        ),
        ({}, {}, "queued.max.request.bytes: -2\n", "-2 is outside"),
        ({"connections_max_idle_ms": "0"}, {}, None, "--connections-max-idle-ms: 0 is outside 1.."),
        ({}, {"STREAMRAFT_REQUEST_READ_TIMEOUT_MS": "soon"}, None, "'soon' is not an integer"),
        ({"max_connections": "-1"}, {}, None, "--max-connections: -1 is outside 0.."),
        ({"max_connections_per_ip": "x"}, {}, None, "--max-connections-per-ip: 'x' is not an integer"),
        (
            {"message_max_bytes": "2147483648"},
            {},
            None,
            "--message-max-bytes: 2147483648 is outside 0..2147483647",
        ),
        ({"log_cleaner_backoff_ms": "0"}, {}, None, "--log-cleaner-backoff-ms: 0 is outside 10.."),
        ({}, {}, "log.cleaner.dedupe.buffer.size: 10\n", "10 is outside 1024.."),
        ({}, {"STREAMRAFT_LOG_CLEANER_ENABLE": "maybe"}, None, "STREAMRAFT_LOG_CLEANER_ENABLE"),
        ({"cluster_id": "a b"}, {}, None, "--cluster-id: 'a b' must be 1 to 64 letters, digits"),
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


def test_raft_tls_files_come_from_flags_env_or_file(tmp_path: Path) -> None:
    for name in ("b.crt", "b.key", "ca.crt"):
        (tmp_path / name).write_text("pem")
    env = {"STREAMRAFT_RAFT_TLS_KEY": str(tmp_path / "b.key")}
    conf = tmp_path / "c.yaml"
    conf.write_text(f"raft.tls.ca: {tmp_path / 'ca.crt'}\n")
    config = load_config({"raft_tls_cert": str(tmp_path / "b.crt")}, env, conf)
    assert (config.raft_tls_cert, config.raft_tls_key, config.raft_tls_ca) == (
        tmp_path / "b.crt",
        tmp_path / "b.key",
        tmp_path / "ca.crt",
    )
    assert load_config({}, {}).raft_tls_cert is None


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
        assert bad.returncode == 2  # a usage error, refused before any request is sent
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


def _free_port_run(count: int) -> int:
    """A base port such that base .. base+count-1 were all free a moment ago (local up derives its ports)."""
    import socket  # noqa: PLC0415

    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError(f"no run of {count} free ports found")


def _scrape(url: str) -> str:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _local_up(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamraft_broker.cli", "local", "up", "--data-dir", str(tmp_path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], last: str, limit: int = 20) -> list[str]:
    """The supervisor's lines up to and including ``last`` (bounded by ``limit`` lines)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < limit:
        line = proc.stdout.readline()
        assert line, f"supervisor ended before printing {last!r}: {lines}"
        lines.append(line.strip())
        if lines[-1].startswith(last):
            return lines
    raise AssertionError(f"no {last!r} in {lines}")


def _status(data_dir: Path) -> dict[str, Any]:
    out = _cli("local", "status", "--format", "json", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_local_up_runs_one_process_per_broker_and_survives_killing_one(tmp_path: Path) -> None:
    base = _free_port_run(9)
    proc = _local_up(tmp_path, "--base-port", str(base))
    try:
        lines = _read_until(proc, "press Ctrl-C to stop")
        kafka = [base, base + 3, base + 6]
        assert lines[0] == "bootstrap servers: " + ",".join(f"127.0.0.1:{p}" for p in kafka)
        urls = [f"http://127.0.0.1:{p + 1}/metrics" for p in kafka]
        assert lines[1:4] == [f"metrics: {u}" for u in urls]
        pids = {int(ln.split("pid ")[1].split(",")[0]) for ln in lines if ln.startswith("broker ")}
        assert len(pids) == 3 and proc.pid not in pids, lines  # three processes, none the supervisor
        assert all(api_versions_ok("127.0.0.1", p) for p in kafka)
        # The three form one Raft cluster: every broker names the same elected controller.
        poll("an agreed controller", lambda: _status(tmp_path)["controller"] in (1, 2, 3))
        # The README's quick check: `topics create` without a factor gets the cluster's default, RF 3.
        bootstrap = f"127.0.0.1:{base}"
        assert main(["topics", "create", "demo", "--partitions", "3", "--bootstrap-server", bootstrap]) == 0
        topic = AdminClient({"bootstrap.servers": bootstrap}).list_topics("demo", timeout=10).topics["demo"]
        assert sorted(len(p.replicas) for p in topic.partitions.values()) == [3, 3, 3], topic.partitions

        # Killing broker 2 kills that process only: the others elect leaders and keep taking writes.
        killed = _cli("local", "kill", "2", "--data-dir", str(tmp_path))
        assert killed.returncode == 0, killed.stderr
        assert _read_until(proc, "broker 2 killed by SIGKILL")

        def failed_over() -> bool:
            st = _status(tmp_path)
            up = {b["node_id"]: b["up"] for b in st["brokers"]}
            demo = [p for p in st["partitions"] if p["topic"] == "demo"]
            return (
                up == {1: True, 2: False, 3: True}
                and len(demo) == 3
                and all(p["leader"] in (1, 3) for p in demo)
            )

        poll("every demo partition led by broker 1 or 3", failed_over)
        # `cluster status` from a survivor: every partition has a leader, the controller is a live broker.
        survivor = f"127.0.0.1:{kafka[0]}"
        status = _cli("cluster", "status", "--format", "json", "--bootstrap-server", survivor)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["leaderless_partitions"] == [] and doc["controller_quorum"]["leader"] in (1, 3), doc
        survivors = f"127.0.0.1:{kafka[0]},127.0.0.1:{kafka[2]}"
        produced = _cli("produce", "demo", "--bootstrap-server", survivors, stdin="a\nb\nc\n")
        assert produced.returncode == 0, produced.stderr

        # `local start 2` brings it back under the same supervisor.
        started = _cli("local", "start", "2", "--data-dir", str(tmp_path))
        assert started.returncode == 0, started.stderr
        poll("broker 2 up again", lambda: all(b["up"] for b in _status(tmp_path)["brokers"]))
        again = _cli("local", "start", "2", "--data-dir", str(tmp_path))
        assert again.returncode != 0 and "already running" in again.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Each broker's log is a file under its data dir; nothing is left claiming the cluster runs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker-1", "broker-2", "broker-3"]
    assert all((tmp_path / f"broker-{n}" / "broker.log").stat().st_size > 0 for n in (1, 2, 3))
    gone = _cli("local", "status", "--data-dir", str(tmp_path))
    assert gone.returncode == 2 and "no local cluster runs" in gone.stderr


def _wait_agreed_controller(urls: list[str], timeout: float = 30.0) -> None:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while True:
        seen = set()
        for url in urls:
            text = _scrape(url)
            seen |= {
                ln.split()[-1] for ln in text.splitlines() if ln.startswith("streamraft_controller_leader_id")
            }
        if len(seen) == 1 and seen != {"-1.0"}:
            return
        assert time.monotonic() < deadline, f"no agreed controller: {seen}"
        time.sleep(0.2)  # pacing between scrapes


def test_local_up_raft_tls_makes_certificates_and_forms_a_cluster_over_mutual_tls(tmp_path: Path) -> None:
    base = _free_port_run(9)
    proc = _local_up(tmp_path, "--base-port", str(base), "--raft-tls")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("bootstrap servers: ")
        kafka = [base, base + 3, base + 6]
        _wait_agreed_controller([f"http://127.0.0.1:{p + 1}/metrics" for p in kafka])
        bootstrap = f"127.0.0.1:{base}"
        assert (
            main(["topics", "create", "tls-demo", "--partitions", "1", "--bootstrap-server", bootstrap]) == 0
        )
        # The Raft port now refuses a plaintext peer outright (the TLS handshake fails).
        raft = base + 2
        channel = grpc.insecure_channel(f"127.0.0.1:{raft}")
        with channel, pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pki_files = sorted(str(p.relative_to(tmp_path / "pki")) for p in (tmp_path / "pki").rglob("*.*"))
    assert pki_files == [
        "brokers/broker-1.crt",
        "brokers/broker-1.key",
        "brokers/broker-2.crt",
        "brokers/broker-2.key",
        "brokers/broker-3.crt",
        "brokers/broker-3.key",
        "ca/ca.crt",
        "ca/ca.key",
    ]


def test_a_killed_supervisor_leaves_no_broker_behind(tmp_path: Path) -> None:
    base = _free_port_run(9)
    proc = _local_up(tmp_path, "--base-port", str(base))
    try:
        lines = _read_until(proc, "press Ctrl-C to stop")
        pids = [int(ln.split("pid ")[1].split(",")[0]) for ln in lines if ln.startswith("broker ")]
        assert len(pids) == 3
        proc.kill()  # SIGKILL: the supervisor gets no chance to stop its brokers itself
        proc.wait(timeout=10)

        def gone() -> bool:
            return not any(Path(f"/proc/{pid}").exists() and _is_running(pid) for pid in pids)

        poll("every broker of the killed supervisor to exit", gone, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _is_running(pid: int) -> bool:
    """Not a zombie waiting for its reaper (a dead process keeps its /proc entry until then)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_local_up_single_broker(tmp_path: Path) -> None:
    base = _free_port_run(2)
    proc = _local_up(tmp_path, "--brokers", "1", "--base-port", str(base))
    try:
        lines = _read_until(proc, "press Ctrl-C to stop")
        assert lines[0].strip() == f"bootstrap servers: 127.0.0.1:{base}"
        assert lines[1].strip() == f"metrics: http://127.0.0.1:{base + 1}/metrics"
        assert api_versions_ok("127.0.0.1", base)
        # Not replicated: no Raft metrics at all.
        assert "streamraft_partitions_led" not in _scrape(f"http://127.0.0.1:{base + 1}/metrics")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("brokers", ["0", "10"])
def test_local_up_rejects_bad_broker_counts(
    brokers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["local", "up", "--brokers", brokers, "--data-dir", str(tmp_path)]) == 2
    assert f"--brokers {brokers} is outside 1..9" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["topics", "create", "x", "--partitions", "-3"], "argument --partitions: -3 is outside 1..10000"),
        (
            ["topics", "create", "x", "--partitions", "many"],
            "argument --partitions: 'many' is not an integer",
        ),
        (["topics", "create", "x", "--replication-factor", "0"], "0 is outside 1..32767 (or -1)"),
        (["topics", "create", "abc\n"], "argument name: topic name 'abc\\n' may only hold"),
        (["topics", "create", ".."], "topic name '..' is not allowed"),
        (["topics", "create", "x", "--config", "nokey"], "'nokey' must be KEY=VALUE"),
        (
            ["topics", "create", "x", "--config", "retention.ms=soon"],
            "'retention.ms': Invalid value 'soon': Not a number of type LONG",
        ),
        (["topics", "create", "x", "--config", "bogus=1"], "'bogus': Unknown topic config name"),
        (["topics", "list", "--timeout", "nan"], "argument --timeout: nan must be more than 0"),
        (["topics", "list", "--timeout", "-1"], "argument --timeout: -1 must be more than 0"),
        (["topics", "describe", "a b"], "topic name 'a b' may only hold"),
        (["topics", "delete", ""], "topic name must not be empty"),
        (["topics", "list", "--bootstrap-server", "nohost"], "'nohost' must look like HOST:PORT"),
        (["produce", "t", "--key-separator", ""], "argument --key-separator: must not be empty"),
        (["consume", "t", "--max-messages", "0"], "argument --max-messages: 0 is outside"),
        (["consume", "t\t"], "may only hold ASCII letters"),
    ],
)
def test_bad_client_arguments_are_one_clear_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_negative_partitions_exits_2_without_a_traceback() -> None:
    """`streamraft topics create x --partitions -3` used to end in a Python traceback from the client."""
    proc = _cli("topics", "create", "x", "--partitions", "-3", "--bootstrap-server", "127.0.0.1:1")
    assert proc.returncode == 2
    assert "argument --partitions: -3 is outside 1..10000" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_broker_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["topics", "describe", "x", "--timeout", "1", "--bootstrap-server", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert "streamraft: error:" in err and "Traceback" not in err


def test_transaction_settings_by_flag_env_and_dotted_config_name(tmp_path: Path) -> None:
    conf = tmp_path / "broker.yaml"
    conf.write_text("transaction.max.timeout.ms: 60000\ntransactional.id.expiration.ms: 3600000\n")
    cfg = load_config({}, {}, conf)
    assert (cfg.transaction_max_timeout_ms, cfg.transactional_id_expiration_ms) == (60_000, 3_600_000)
    flags = vars(build_parser().parse_args(["broker", "--transaction-max-timeout-ms", "5000"]))
    assert (
        load_config(
            {"transaction_max_timeout_ms": flags["transaction_max_timeout_ms"]}, {}
        ).transaction_max_timeout_ms
        == 5000
    )
    with pytest.raises(ConfigError, match="STREAMRAFT_TRANSACTION_MAX_TIMEOUT_MS"):
        load_config({}, {"STREAMRAFT_TRANSACTION_MAX_TIMEOUT_MS": "0"})
