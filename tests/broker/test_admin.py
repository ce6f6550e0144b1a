"""Admin HTTP routes on the admin listener: routing, errors, JSON; /metrics on its own, read-only server."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from streamraft_broker.admin import AdminError, AdminRequest, AdminResponse, AdminRouter
from streamraft_broker.admin_http import start_admin_server
from streamraft_broker.metrics import BrokerMetrics, start_metrics_server


def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), dict(err.headers), err.read()


async def call(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    """The HTTP server hands admin handlers to this loop, so the client must not block it."""
    status, headers, raw = await asyncio.to_thread(_call, port, method, path, body)
    if headers.get("Content-Type") == "application/json":
        return status, headers, json.loads(raw)
    return status, headers, raw.decode()


@pytest.fixture
async def served() -> AsyncIterator[tuple[BrokerMetrics, int]]:
    metrics = BrokerMetrics()
    server, port = start_admin_server(metrics, "127.0.0.1", 0)
    yield metrics, port
    server.shutdown()


async def test_metrics_are_served_apart_and_read_only() -> None:
    metrics = BrokerMetrics()
    server, port = start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        metrics.requests.labels("Produce").inc()
        status, _, text = await call(port, "GET", "/metrics")
        assert status == 200 and 'streamraft_requests_total{api="Produce"} 1.0' in text
        status, _, body = await call(port, "GET", "/admin/health")
        assert status == 404 and "admin_listen" in body["error"]
        status, headers, body = await call(port, "POST", "/admin/leadership/handoff", b"")
        assert status == 405 and headers["Allow"] == "GET"
    finally:
        server.shutdown()


async def test_health_and_default_handoff(served: tuple[BrokerMetrics, int]) -> None:
    _, port = served
    status, _, body = await call(port, "GET", "/admin/health")
    assert (status, body) == (200, {"status": "ok"})
    # A single-node broker leads no Raft group: nothing to hand over, answered at once.
    status, _, body = await call(port, "POST", "/admin/leadership/handoff", b"")
    assert (status, body) == (200, {"moved": 0, "of": 0})
    status, _, body = await call(port, "GET", "/admin/routes")
    assert ["POST", "/admin/leadership/handoff"] in body["routes"]


async def test_registered_route_gets_params_query_and_json(served: tuple[BrokerMetrics, int]) -> None:
    metrics, port = served
    seen: list[AdminRequest] = []

    async def decommission(request: AdminRequest) -> AdminResponse:
        seen.append(request)
        node = request.int_param("id")
        payload = request.json()
        return AdminResponse({"node": node, "payload": payload, "dry": request.query.get("dry")}, 202)

    metrics.admin.route("POST", "/admin/brokers/{id}/decommission", decommission)
    status, _, body = await call(port, "POST", "/admin/brokers/7/decommission?dry=1", b'{"why": "shrink"}')
    assert (status, body) == (202, {"node": 7, "payload": {"why": "shrink"}, "dry": "1"})
    assert seen[0].params == {"id": "7"} and seen[0].method == "POST"

    status, _, body = await call(port, "POST", "/admin/brokers/x/decommission", b"")
    assert status == 400 and "'id' must be an integer" in body["error"]
    status, _, body = await call(port, "POST", "/admin/brokers/3/decommission", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]


async def test_bad_routes_and_methods_are_clear_4xx(served: tuple[BrokerMetrics, int]) -> None:
    _, port = served
    status, _, body = await call(port, "GET", "/admin/nope")
    assert status == 404 and "no admin route '/admin/nope'" in body["error"]
    assert "/admin/leadership/handoff" in body["error"]  # lists what exists
    status, headers, body = await call(port, "GET", "/admin/leadership/handoff")
    assert status == 405 and headers["Allow"] == "POST" and "use POST" in body["error"]
    status, _, body = await call(port, "DELETE", "/admin/health")
    assert status == 405
    # Refused from the header alone, before any of the body is read.
    reply = await asyncio.to_thread(
        _raw, port, b"POST /admin/health HTTP/1.1\r\nContent-Length: 70000\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 413") and b"exceeds" in reply


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_handler_errors_and_timeouts(served: tuple[BrokerMetrics, int]) -> None:
    metrics, port = served

    async def refuses(_request: AdminRequest) -> AdminResponse:
        raise AdminError(409, "broker 3 is already draining")

    async def breaks(_request: AdminRequest) -> AdminResponse:
        raise RuntimeError("bug")

    never = asyncio.Event()

    async def hangs(_request: AdminRequest) -> AdminResponse:
        await never.wait()
        return AdminResponse({})

    metrics.admin.route("POST", "/admin/refuses", refuses)
    metrics.admin.route("POST", "/admin/breaks", breaks)
    metrics.admin.route("POST", "/admin/hangs", hangs, timeout_s=0.3)
    assert (await call(port, "POST", "/admin/refuses", b""))[::2] == (
        409,
        {"error": "broker 3 is already draining"},
    )
    status, _, body = await call(port, "POST", "/admin/breaks", b"")
    assert status == 500 and "bug" in body["error"]
    status, _, body = await call(port, "POST", "/admin/hangs", b"")
    assert status == 504 and "within 0.3 s" in body["error"]
    # The server survives all of that.
    assert (await call(port, "GET", "/admin/health"))[0] == 200


def test_router_rejects_bad_registrations() -> None:
    router = AdminRouter()

    async def handler(_request: AdminRequest) -> AdminResponse:
        return AdminResponse({})

    with pytest.raises(ValueError, match="must start with /admin/"):
        router.route("GET", "/metrics", handler)
    with pytest.raises(ValueError, match="unsupported HTTP method"):
        router.route("BREW", "/admin/x", handler)
    router.route("GET", "/admin/x", handler)
    with pytest.raises(ValueError, match="already registered"):
        router.route("GET", "/admin/x", handler)
    router.route("GET", "/admin/x", handler, replace=True)
    assert router.routes() == [("GET", "/admin/x")]
    route, params = router.resolve("GET", "/admin/x/")
    assert route.pattern == "/admin/x" and params == {}
    with pytest.raises(AdminError) as err:
        router.resolve("GET", "/admin/x/y")
    assert err.value.status == 404
