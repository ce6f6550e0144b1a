"""OAUTHBEARER token validation against a JWKS (PyJWT), from a file:// and an http:// key set: signature by
a listed key, exp / nbf with the allowed clock skew, expected audience and issuer, the subject claim."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from streamraft_broker.security.oauth import JwksValidator, TokenError

from tests.support.security import AUDIENCE, ISSUER, KID, Material, make_material


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return make_material(tmp_path_factory.mktemp("pki"))


def _validator(material: Material, url: str | None = None, **options: object) -> JwksValidator:
    return JwksValidator(url or material.jwks.as_uri(), audience=AUDIENCE, issuer=ISSUER, **options)


def _token(material: Material, **claims: object) -> str:
    now = time.time()
    body = {"sub": "svc", "aud": AUDIENCE, "iss": ISSUER, "iat": int(now), "exp": int(now + 300), **claims}
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, material.signing_key, "RS256", {"kid": KID}
    )


def test_a_token_signed_by_a_listed_key_names_its_subject(material: Material) -> None:
    valid = _validator(material).validate(_token(material, sub="service-a"))
    assert valid.subject == "service-a"
    assert valid.expires_at_ms > time.time() * 1000


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"aud": "someone-else"}, "(?i)audience"),
        ({"iss": "https://evil.test"}, "(?i)issuer"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "'sub'"),
    ],
)
def test_claims_are_checked(material: Material, claims: dict[str, object], why: str) -> None:
    with pytest.raises(TokenError, match=why):
        _validator(material).validate(_token(material, **claims))


def test_clock_skew_is_allowed(material: Material) -> None:
    slightly_expired = _token(material, exp=int(time.time()) - 5)
    assert _validator(material, clock_skew_s=30).validate(slightly_expired).subject == "svc"
    with pytest.raises(TokenError, match="expired"):
        _validator(material, clock_skew_s=0).validate(slightly_expired)


def test_forged_unsigned_and_unknown_key_tokens_are_refused(material: Material) -> None:
    validator = _validator(material)
    with pytest.raises(TokenError, match="Signature"):
        validator.validate(material.token("svc", forged=True))
    unsigned = jwt.encode(
        {"sub": "svc", "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 60}, None, "none"
    )
    with pytest.raises(TokenError):
        validator.validate(unsigned)
    other_kid = jwt.encode({"sub": "svc"}, material.signing_key, "RS256", {"kid": "rotated-away"})
    with pytest.raises(TokenError, match="no key with kid"):
        validator.validate(other_kid)
    with pytest.raises(TokenError, match="malformed"):
        validator.validate("not-a-jwt")


def test_key_file_changes_are_picked_up(material: Material, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    old_key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(material.forging_key.public_key()))
    jwks.write_text(json.dumps({"keys": [{**old_key, "kid": KID}]}))
    validator = _validator(material, jwks.as_uri())
    with pytest.raises(TokenError, match="Signature"):
        validator.validate(_token(material))
    jwks.write_text(material.jwks.read_text() + "\n")  # a different size: a rotation the mtime may hide
    assert validator.validate(_token(material)).subject == "svc"


@pytest.fixture
def jwks_server(material: Material) -> Iterator[str]:
    body = material.jwks.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_http_jwks_endpoint(material: Material, jwks_server: str) -> None:
    assert _validator(material, jwks_server).validate(_token(material)).subject == "svc"
