"""The admin API's authentication (bearer token from a file, mTLS) and bounds (connection cap, request
deadline), in process; and on a real broker process: refused without the token, served with it, its
threads bounded under many connections, /metrics still open."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamraft_broker.admin_http import AdminAuth, HttpLimits, start_admin_server
from streamraft_broker.config import ConfigError, load_config
from streamraft_broker.metrics import BrokerMetrics
from streamraft_broker.security.pki import create_ca, issue

from tests.support.broker_process import BrokerProcess
from tests.support.poll import poll

TOKEN = "s3cret-admin-token"


def _request(
    url: str, method: str = "GET", token: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return int(resp.status), dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), dict(err.headers), err.read()


async def call(url: str, method: str = "GET", token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    # The admin server hands requests to this loop: the client must not block it.
    return await asyncio.to_thread(_request, url, method, token)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reads until EOF or reset)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def test_a_configured_token_is_required_and_compared(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    server, port = start_admin_server(BrokerMetrics(), "127.0.0.1", 0, AdminAuth(token_file=token_file))
    url = f"http://127.0.0.1:{port}/admin/health"
    try:
        status, headers, body = await call(url)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert "bearer token" in json.loads(body)["error"]
        assert (await call(url, token="wrong"))[0] == 401
        assert (await call(url, token=TOKEN[:-1]))[0] == 401
        status, _, body = await call(url, token=TOKEN)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        # A rotated file takes effect at once.
        token_file.write_text("rotated")
        assert (await call(url, token=TOKEN))[0] == 401
        assert (await call(url, token="rotated"))[0] == 200
        # An unreadable token file fails closed.
        token_file.unlink()
        assert (await call(url, token="rotated"))[0] == 401
    finally:
        server.shutdown()


async def test_mtls_requires_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    ca = create_ca(tmp_path / "ca")
    served = issue(ca, tmp_path / "server", "server", common_name="admin", ips=["127.0.0.1"])
    client = issue(ca, tmp_path / "client", "client", common_name="operator")
    stranger_ca = create_ca(tmp_path / "other-ca")
    stranger = issue(stranger_ca, tmp_path / "stranger", "stranger", common_name="stranger")
    auth = AdminAuth(tls_cert=served.cert, tls_key=served.key, tls_ca=ca.cert)
    server, port = start_admin_server(BrokerMetrics(), "127.0.0.1", 0, auth)
    url = f"https://127.0.0.1:{port}/admin/health"

    def context(cert: Any) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        if cert is not None:
            ctx.load_cert_chain(cert.cert, cert.key)
        return ctx

    try:
        status, _, body = await asyncio.to_thread(_request, url, "GET", None, context(client))
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        for who in (None, stranger):
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                await asyncio.to_thread(_request, url, "GET", None, context(who))
    finally:
        server.shutdown()


async def test_slow_and_idle_connections_are_cut(tmp_path: Path) -> None:
    server, port = start_admin_server(
        BrokerMetrics(), "127.0.0.1", 0, limits=HttpLimits(max_connections=8, request_timeout_s=0.5)
    )
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        assert await asyncio.to_thread(_closed_within, idle, 5)
        assert time.monotonic() - started < 3
        idle.close()

        # Each byte arrives well inside any per-read timeout, but the request never completes in time.
        slow = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        request = b"GET /admin/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
        cut = False
        for byte in request:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            await asyncio.sleep(0.05)  # the trickle itself (a client that is slow on purpose)
            if time.monotonic() - started > 4:
                break
        cut = cut or await asyncio.to_thread(_closed_within, slow, 2)
        assert cut and time.monotonic() - started < 4
        slow.close()
        # The server still answers.
        assert (await call(f"http://127.0.0.1:{port}/admin/health"))[0] == 200
    finally:
        server.shutdown()


async def test_connections_beyond_the_cap_get_no_thread(tmp_path: Path) -> None:
    cap = 4
    server, port = start_admin_server(
        BrokerMetrics(), "127.0.0.1", 0, limits=HttpLimits(max_connections=cap, request_timeout_s=5)
    )
    before = threading.active_count()
    socks = []
    try:
        for _ in range(40):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        await wait_for(lambda: server.rejected >= 40 - cap)
        assert threading.active_count() - before <= cap
        # The ones past the cap were closed at once.
        closed = [s for s in socks if await asyncio.to_thread(_closed_within, s, 0.5)]
        assert len(closed) >= 40 - cap
    finally:
        for s in socks:
            s.close()
        server.shutdown()


async def wait_for(cond: Callable[[], bool], limit_s: float = 10) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_a_broker_with_a_token_refuses_anonymous_admin_calls(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN)
    with BrokerProcess(
        tmp_path / "data",
        extra_args=["--admin-token-file", str(token_file), "--admin-max-connections", "4"],
    ) as broker:
        handoff = f"{broker.admin_url}/admin/leadership/handoff"
        status, headers, _ = _request(handoff, "POST")
        assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
        assert _request(handoff, "POST", token="guess")[0] == 401
        status, _, body = _request(handoff, "POST", token=TOKEN)
        assert (status, json.loads(body)) == (200, {"moved": 0, "of": 0})
        # /metrics stays open (and apart from the admin API).
        assert _request(broker.metrics_url)[0] == 200

        pid = broker.pid
        assert pid is not None
        before = _threads(pid)
        socks = [socket.create_connection(("127.0.0.1", broker.admin_port)) for _ in range(100)]
        try:
            # Once the server closed every connection past the cap, it has accepted them all.
            closed: set[int] = set()
            deadline = time.monotonic() + 10
            while len(closed) < len(socks) - 4:
                assert time.monotonic() < deadline, f"only {len(closed)} connections refused"
                closed |= {i for i, s in enumerate(socks) if i not in closed and _closed_within(s, 0.01)}
            assert _threads(pid) - before <= 4 + 1
        finally:
            for s in socks:
                s.close()

        def served() -> bool:
            # The cap's slots are freed as the server sees each close: until then a new connection is
            # one past the cap and is closed unanswered.
            try:
                return _request(handoff, "POST", token=TOKEN)[0] == 200
            except (http.client.RemoteDisconnected, ConnectionResetError):
                return False

        poll("the admin API serving again once the held connections closed", served, 10)


def test_admin_settings_are_validated(tmp_path: Path) -> None:
    config = load_config({}, {}, None)
    assert (config.admin_host, config.admin_port) == ("127.0.0.1", 9645)  # loopback unless configured
    assert config.admin_token_file is None
    cfg = tmp_path / "broker.yaml"
    cfg.write_text("admin.listen: 0.0.0.0:9700\nadmin.token.file: /run/token\nadmin.max.connections: 3\n")
    config = load_config({}, {"STREAMRAFT_ADMIN_REQUEST_TIMEOUT_MS": "2500"}, cfg)
    assert (config.admin_host, config.admin_port, config.admin_max_connections) == ("0.0.0.0", 9700, 3)
    assert (config.admin_token_file, config.admin_request_timeout_ms) == (Path("/run/token"), 2500)
    assert load_config({"admin_listen": "off"}, {}, None).admin_port is None
    with pytest.raises(ConfigError, match="admin mTLS also needs admin_tls_ca, admin_tls_key"):
        load_config({"admin_tls_cert": "/c.pem"}, {}, None)
    with pytest.raises(ConfigError, match=r"--admin-max-connections: 0 is outside 1\.\.1024"):
        load_config({"admin_max_connections": "0"}, {}, None)


def test_a_broker_with_an_unreadable_token_file_does_not_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    with pytest.raises(RuntimeError, match=r"admin_token_file .*no-such-token"):
        BrokerProcess(tmp_path / "data", extra_args=["--admin-token-file", str(missing)]).start()
