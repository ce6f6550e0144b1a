"""The SASL state machine of one SASL_PLAINTEXT / SASL_SSL connection (Kafka's SaslServerAuthenticator).

States: ``handshake`` (only ApiVersions and SaslHandshake are accepted) -> ``authenticate`` (SaslAuthenticate
steps of the chosen mechanism; after a v0 handshake the steps are bare size-prefixed tokens instead) ->
``done``. Any other request before ``done`` closes the connection, as Kafka does.

Re-authentication (KIP-368): with ``connections.max.reauth.ms`` > 0, a successful SaslAuthenticate v1+
answers ``session_lifetime_ms`` (shortened to an OAUTHBEARER token's expiry). The client re-runs
SaslHandshake + SaslAuthenticate on the same connection before then, with the same mechanism and ending in
the same principal; a request other than those two arriving after the session expired closes the
connection.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

from streamraft_broker.handlers.context import err
from streamraft_broker.protocol.codec import build, encode_response, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.authenticators import Security
from streamraft_broker.security.principal import Session
from streamraft_broker.security.sasl import AuthenticationFailed, Mechanism

UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58
_I32 = struct.Struct(">i")

Answer = tuple[bytes, tuple[str, str] | None, bool]
"""(bytes to write, (reason, message) if the connection must close, whether to delay that close)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class SaslExchange:
    def __init__(
        self, session: Session, security: Security, on_event: Callable[[str, str], None] | None = None
    ) -> None:
        self.session = session
        self.security = security
        self.on_event = on_event
        """Called with (mechanism, "success" | "failure" | "reauthentication") as logins end."""
        self.state = "handshake"
        self.raw_token_expected = False
        self._mechanism: Mechanism | None = None
        self.mechanism_name = ""
        self.expires_at: float | None = None
        """Monotonic deadline of the session (None: never)."""
        self.reauthentications = 0

    # ------------------------------------------------------------------ requests other than SASL's

    def refuse(self, api_key: int) -> tuple[str, str] | None:
        """Why a request of ``api_key`` closes the connection now, or None to serve it."""
        name = ApiKey(api_key).name
        if self.state != "done" and not self.session.authenticated:
            if api_key == ApiKey.API_VERSIONS and self.state == "handshake":
                return None
            return (
                "authentication_required",
                f"Unexpected Kafka request of type {name} during SASL handshake "
                f"(client {self.session.client_host}, listener {self.session.listener})",
            )
        if self.expires_at is not None and time.monotonic() > self.expires_at:
            return (
                "session_expired",
                f"{name} from {self.session.principal} after its session expired without re-authentication "
                f"(connections.max.reauth.ms {self.security.max_reauth_ms})",
            )
        return None

    # ------------------------------------------------------------------ SaslHandshake / SaslAuthenticate

    def handle(self, header: RequestHeader, request: Any) -> Answer:
        if header.api_key == ApiKey.SASL_HANDSHAKE:
            return self._handshake(header, request)
        return self._authenticate(header, request)

    def _handshake(self, header: RequestHeader, request: Any) -> Answer:
        version = header.api_version
        cls = response_type(ApiKey.SASL_HANDSHAKE, version)
        enabled = tuple(self.security.enabled_mechanisms)
        wanted = str(request.mechanism)

        def reply(code: int) -> bytes:
            body = build(cls, error_code=err(code), mechanisms=enabled)
            return encode_response(ApiKey.SASL_HANDSHAKE, version, header.correlation_id, body)

        reauth = self.session.authenticated
        if self.state == "authenticate" or (reauth and version == 0):
            return reply(ILLEGAL_SASL_STATE), ("authentication_failed", "unexpected SaslHandshake"), False
        mechanism = self.security.mechanism(wanted)
        if mechanism is None or (reauth and wanted != self.mechanism_name):
            why = (
                f"re-authentication must use {self.mechanism_name}, not {wanted!r}"
                if mechanism is not None
                else f"unsupported SASL mechanism {wanted!r} (enabled: {', '.join(enabled)})"
            )
            return reply(UNSUPPORTED_SASL_MECHANISM), ("authentication_failed", why), False
        self._mechanism = mechanism
        self.mechanism_name = wanted
        self.state = "authenticate"
        self.raw_token_expected = version == 0
        return reply(0), None, False

    def _authenticate(self, header: RequestHeader, request: Any) -> Answer:
        version = header.api_version
        cls = response_type(ApiKey.SASL_AUTHENTICATE, version)

        def reply(code: int, message: str | None, data: bytes = b"", lifetime_ms: int = 0) -> bytes:
            body = build(
                cls,
                error_code=err(code),
                error_message=message,
                auth_bytes=data,
                session_lifetime=lifetime_ms,
            )
            return encode_response(ApiKey.SASL_AUTHENTICATE, version, header.correlation_id, body)

        if self.state != "authenticate" or self._mechanism is None:
            message = "SaslAuthenticate before SaslHandshake"
            return reply(ILLEGAL_SASL_STATE, message), ("authentication_failed", message), False
        try:
            data, lifetime_ms = self._step(bytes(request.auth_bytes), lifetime=version >= 1)
        except AuthenticationFailed as exc:
            message = str(exc)
            return (
                reply(SASL_AUTHENTICATION_FAILED, message),
                ("authentication_failed", f"{message} (client {self.session.client_host})"),
                True,
            )
        return reply(0, None, data, lifetime_ms), None, False

    def raw_token(self, frame: bytes) -> Answer:
        """A bare token after a v0 handshake: the answer is a bare size-prefixed token; a failure just
        closes (v0 has no error response)."""
        try:
            data, _ = self._step(frame, lifetime=False)
        except AuthenticationFailed as exc:
            return b"", ("authentication_failed", f"{exc} (client {self.session.client_host})"), True
        return _I32.pack(len(data)) + data, None, False

    def _event(self, mechanism: str, result: str) -> None:
        if self.on_event is not None:
            self.on_event(mechanism, result)

    def _step(self, token: bytes, *, lifetime: bool) -> tuple[bytes, int]:
        mechanism = self._mechanism
        assert mechanism is not None
        try:
            data = mechanism.step(token)
        except AuthenticationFailed:
            self._event(mechanism.name, "failure")
            raise
        if mechanism.principal is None:
            return data, 0
        # The exchange ended well.
        if self.session.authenticated and mechanism.principal != self.session.principal:
            self._event(mechanism.name, "failure")
            raise AuthenticationFailed(
                f"re-authentication as {mechanism.principal} on a connection of {self.session.principal}"
            )
        if self.session.authenticated:
            self.reauthentications += 1
        self._event(mechanism.name, "reauthentication" if self.session.authenticated else "success")
        self.session.principal = mechanism.principal
        self.session.authenticated = True
        self.session.attributes["sasl_mechanism"] = mechanism.name
        self.state = "done"
        self.raw_token_expected = False
        self._mechanism = None
        lifetime_ms = 0
        max_reauth = self.security.max_reauth_ms
        if max_reauth > 0:
            lifetime_ms = max_reauth
            if mechanism.expires_at_ms is not None:
                lifetime_ms = max(min(lifetime_ms, mechanism.expires_at_ms - _now_ms()), 0)
            self.expires_at = time.monotonic() + lifetime_ms / 1000
        return data, lifetime_ms if lifetime else 0
