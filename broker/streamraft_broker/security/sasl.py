"""Server-side SASL mechanisms, one exchange each, without I/O: ``step(client bytes) -> server bytes``
until ``principal`` is set; any failure raises ``AuthenticationFailed`` with a message for the client.

PLAIN checks ``USER:PASSWORD`` lines of ``sasl_plain_users_file`` (re-read when the file changes; passwords
are compared in constant time and never logged). SCRAM-SHA-256/512 checks the stored credentials
(``security.credentials``). OAUTHBEARER validates a JWT against the configured JWKS (``security.oauth``).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from pathlib import Path

from streamraft_broker.security.oauth import JwksValidator, TokenError, parse_client_response
from streamraft_broker.security.principal import USER_TYPE, KafkaPrincipal
from streamraft_broker.security.scram import ScramCredential, ScramError, ScramServer

MAX_PLAIN_USERS_BYTES = 1 << 20


class AuthenticationFailed(Exception):
    """Answered with SASL_AUTHENTICATION_FAILED (58) and this message, then the connection closes."""


class Mechanism:
    name = ""

    def __init__(self) -> None:
        self.principal: KafkaPrincipal | None = None
        self.expires_at_ms: int | None = None
        """When the credential itself expires (OAUTHBEARER tokens), as epoch milliseconds."""

    def step(self, token: bytes) -> bytes:
        raise NotImplementedError


class PlainUsers:
    """``USER:PASSWORD`` per line (``#`` comments); re-read when the file's mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ValueError(f"sasl_plain_users_file {self.path}: {exc.strerror}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        if stat.st_size > MAX_PLAIN_USERS_BYTES:
            raise ValueError(
                f"sasl_plain_users_file {self.path} is larger than {MAX_PLAIN_USERS_BYTES} bytes"
            )
        users: dict[str, str] = {}
        for number, raw in enumerate(self.path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user:
                # The line number only: the line may hold a password.
                raise ValueError(f"sasl_plain_users_file {self.path} line {number} is not USER:PASSWORD")
            users[user] = password
        self._users, self._stamp = users, stamp

    def check(self, user: str, password: str) -> bool:
        with contextlib.suppress(ValueError):  # a broken edit keeps the last good list
            self._load()
        expected = self._users.get(user)
        # Compare against something even for unknown users, so timing does not tell which users exist.
        ok = hmac.compare_digest((expected or "\0").encode(), password.encode())
        return expected is not None and ok


class Plain(Mechanism):
    name = "PLAIN"

    def __init__(self, users: PlainUsers | None) -> None:
        super().__init__()
        self.users = users

    def step(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if authzid and authzid != user:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is different from username"
            )
        if self.users is None or not self.users.check(user, password):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        self.principal = KafkaPrincipal(USER_TYPE, user)
        return b""


class Scram(Mechanism):
    def __init__(self, name: str, lookup: Callable[[str, str], ScramCredential | None]) -> None:
        super().__init__()
        self.name = name
        self._server = ScramServer(name, lambda user: lookup(user, name))
        self._first_done = False

    def step(self, token: bytes) -> bytes:
        try:
            if not self._first_done:
                self._first_done = True
                return self._server.first(token)
            answer = self._server.final(token)
        except ScramError as exc:
            raise AuthenticationFailed(str(exc)) from None
        assert self._server.username is not None
        self.principal = KafkaPrincipal(USER_TYPE, self._server.username)
        return answer


class OAuthBearer(Mechanism):
    name = "OAUTHBEARER"

    def __init__(self, validator: JwksValidator | None) -> None:
        super().__init__()
        self.validator = validator

    def step(self, token: bytes) -> bytes:
        if self.validator is None:
            raise AuthenticationFailed("OAUTHBEARER has no sasl_oauthbearer_jwks_endpoint_url configured")
        try:
            jwt_text, _extensions = parse_client_response(token)
            valid = self.validator.validate(jwt_text)
        except TokenError as exc:
            raise AuthenticationFailed(f"Authentication failed: {exc}") from None
        self.principal = KafkaPrincipal(USER_TYPE, valid.subject)
        self.expires_at_ms = valid.expires_at_ms
        return b""
