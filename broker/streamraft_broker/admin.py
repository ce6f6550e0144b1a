"""Admin HTTP routes, served by the admin listener (``admin_listen``, default 127.0.0.1:9645; see
``admin_http`` for its authentication and bounds).

Any module registers a route with one line, given the broker's metrics object (``ctx.metrics``)::

    metrics.admin.route("POST", "/admin/brokers/{id}/decommission", handler)

``handler`` is ``async def handler(request: AdminRequest) -> AdminResponse``; it runs on the broker's
event loop (the HTTP server's thread hands it over), so it may touch broker state like any request
handler. ``{name}`` in a pattern matches one non-empty path segment, given in ``request.params``.
Raise ``AdminError(status, message)`` for a clear 4xx/5xx; the body is always JSON, errors are
``{"error": "..."}``. Unknown paths answer 404, a known path with another method 405 (with ``Allow``).

Routes registered by the broker itself:

- ``GET /admin/health`` -> ``{"status": "ok"}``; a replicated broker adds ``node_id``, ``controller``,
  ``partitions_led``, ``under_replicated``, ``leaderless`` (from the last metrics sample, ``sampled_at``).
- ``GET /admin/routes`` -> ``{"routes": [["GET", "/admin/health"], ...]}``
- ``POST /admin/leadership/handoff`` -> ``{"moved": n, "of": m}`` once every Raft leadership this broker
  held has been handed to another voter (or the bounded wait ran out: then ``moved < of``). Used by the
  Kubernetes preStop hook. A single-node broker answers ``{"moved": 0, "of": 0}``.
- ``GET /admin/rejoin`` (replicated) -> where this broker stands in a rejoin after an empty disk, and the
  voters/learners of every Raft group it hosts (see ``replication.rejoin``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 64 * 1024
DEFAULT_TIMEOUT_S = 30.0
_SEGMENT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        assert 400 <= status <= 599, status
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AdminRequest:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def int_param(self, name: str) -> int:
        raw = self.params.get(name)
        if raw is None or not raw.lstrip("-").isdigit():
            raise AdminError(400, f"path parameter {name!r} must be an integer, got {raw!r}")
        return int(raw)

    def json(self) -> Any:
        """The body as JSON (empty body -> None)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdminError(400, f"request body is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class AdminResponse:
    body: Any
    status: int = 200

    def encode(self) -> bytes:
        return json.dumps(self.body, sort_keys=True).encode()


Handler = Callable[[AdminRequest], Awaitable[AdminResponse]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    timeout_s: float


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/admin/"):
        raise ValueError(f"admin route {pattern!r} must start with /admin/")
    parts = []
    last = 0
    for m in _SEGMENT.finditer(pattern):
        parts.append(re.escape(pattern[last : m.start()]))
        parts.append(f"(?P<{m.group(1)}>[^/]+)")
        last = m.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts) + "/?")


class AdminRouter:
    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        replace: bool = False,
    ) -> None:
        """Register ``handler``; ``timeout_s`` bounds how long the HTTP side waits for it (then 504)."""
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"unsupported HTTP method {method!r}")
        if not 0 < timeout_s <= 600:
            raise ValueError(f"route timeout {timeout_s} s is outside (0, 600]")
        existing = [r for r in self._routes if r.method == method and r.pattern == pattern]
        if existing and not replace:
            raise ValueError(f"route {method} {pattern} is already registered")
        self._routes = [r for r in self._routes if r not in existing]
        self._routes.append(_Route(method, pattern, _compile(pattern), handler, timeout_s))

    def routes(self) -> list[tuple[str, str]]:
        return sorted((r.method, r.pattern) for r in self._routes)

    def resolve(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        """The route for ``method path`` and its path parameters; AdminError 404/405 otherwise."""
        allowed: list[str] = []
        for r in self._routes:
            m = r.regex.fullmatch(path)
            if m is None:
                continue
            if r.method == method.upper():
                return r, m.groupdict()
            allowed.append(r.method)
        if allowed:
            raise MethodNotAllowedError(method, path, sorted(set(allowed)))
        raise AdminError(404, f"no admin route {path!r}; known: {[p for _m, p in self.routes()]}")


class MethodNotAllowedError(AdminError):
    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(405, f"{method} is not allowed on {path!r}; use {', '.join(allowed)}")
        self.allowed = allowed
