"""OAUTHBEARER (RFC 7628) tokens: unsigned-JWS-free JWT validation against a JWKS (PyJWT).

Kafka's ``sasl.oauthbearer.jwks.endpoint.url`` names the key set: ``file://`` paths are read (and re-read
when the file changes, so keys rotate without a restart), ``http(s)://`` URLs are fetched and refreshed at
most once a minute. A token must carry a valid signature by one of those keys (matched by ``kid``), an
``exp`` in the future and an ``nbf``/``iat`` not in the future (within the allowed clock skew), and the
configured audience and issuer when those are set. The principal is the ``sub`` claim (Kafka's
``sasl.oauthbearer.sub.claim.name``).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
HTTP_REFRESH_S = 60.0
MAX_JWKS_BYTES = 1 << 20


class TokenError(Exception):
    """The token is refused; the message says why (never the token)."""


@dataclass(frozen=True)
class ValidToken:
    subject: str
    expires_at_ms: int


class JwksValidator:
    def __init__(
        self,
        jwks_url: str,
        *,
        audience: str = "",
        issuer: str = "",
        sub_claim: str = "sub",
        clock_skew_s: int = 30,
    ) -> None:
        self.url = jwks_url
        self.audience = audience or None
        self.issuer = issuer or None
        self.sub_claim = sub_claim
        self.clock_skew_s = clock_skew_s
        self._keys: jwt.PyJWKSet | None = None
        self._stamp: object = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        # Logins of several connections validate in worker threads at once: one refresh at a time.
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
            try:
                stat = path.stat()
            except OSError as exc:
                raise TokenError(f"JWKS file {path}: {exc.strerror}") from None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp and self._keys is not None:
                return
            text = path.read_text()
            self._stamp = stamp
        elif parsed.scheme in ("http", "https"):
            now = time.monotonic()
            if self._keys is not None and now - self._fetched_at < HTTP_REFRESH_S:
                return
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    text = resp.read(MAX_JWKS_BYTES).decode()
            except OSError as exc:
                if self._keys is not None:
                    return  # keep the keys we have until the endpoint answers again
                raise TokenError(f"JWKS endpoint {self.url}: {exc}") from None
            self._fetched_at = now
        else:
            raise TokenError(f"JWKS URL {self.url!r} must be file://, http:// or https://")
        try:
            self._keys = jwt.PyJWKSet.from_dict(json.loads(text))
        except (ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
            raise TokenError(f"JWKS at {self.url} is not a usable key set: {exc}") from None

    def validate(self, token: str) -> ValidToken:
        self._load()
        assert self._keys is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        kid = header.get("kid")
        candidates = [k for k in self._keys.keys if kid is None or k.key_id == kid]
        if not candidates:
            raise TokenError(f"no key with kid {kid!r} in the JWKS")
        last: Exception | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=ALGORITHMS,
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.clock_skew_s,
                    options={"require": ["exp"], "verify_aud": self.audience is not None},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise TokenError(f"token refused: {exc}") from None
            subject = claims.get(self.sub_claim)
            if not isinstance(subject, str) or not subject:
                raise TokenError(f"token has no {self.sub_claim!r} claim")
            return ValidToken(subject, int(float(claims["exp"]) * 1000))
        raise TokenError(f"token refused: {last}")


def parse_client_response(message: bytes) -> tuple[str, dict[str, str]]:
    """RFC 7628 client initial response ``n,[a=...],\\x01auth=Bearer TOKEN\\x01[k=v\\x01]\\x01`` -> token,
    extensions."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise TokenError("OAUTHBEARER message is not UTF-8") from None
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith(("n,", "y,")):
        raise TokenError("malformed OAUTHBEARER client response")
    token = ""
    extensions: dict[str, str] = {}
    for item in rest.split("\x01"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise TokenError("malformed OAUTHBEARER key/value")
        if key == "auth":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise TokenError("OAUTHBEARER auth must be 'Bearer <token>'")
        else:
            extensions[key] = value
    if not token:
        raise TokenError("OAUTHBEARER client response has no token")
    return token.strip(), extensions
