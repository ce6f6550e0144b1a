"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) without I/O: the server side a broker runs for a
client, the client side a broker runs toward another broker, and the credential a salted password makes.

Messages are bytes in, bytes out; every failure raises ``ScramError`` with a message fit for the client
(never the password nor anything derived from it). Channel binding is not supported (Kafka's neither):
a client asking for it (``p=``) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISM_IDS = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
"""Kafka's ScramMechanism type codes (DescribeUserScramCredentials / AlterUserScramCredentials)."""
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
"""Kafka's bounds for a stored credential's iteration count."""
NONCE_BYTES = 24
MAX_MESSAGE_BYTES = 4096


class ScramError(Exception):
    """Authentication failed; the message may be shown to the client."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def _hmac(algo: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, algo).digest()


def _h(algo: str, data: bytes) -> bytes:
    return hashlib.new(algo, data).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802. Kafka does not SASLprep; neither do we."""
    algo = MECHANISMS[mechanism]
    return hashlib.pbkdf2_hmac(algo, password.encode(), salt, iterations)


def credential_from_salted(mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    algo = MECHANISMS[mechanism]
    client_key = _hmac(algo, salted, b"Client Key")
    return ScramCredential(salt, _h(algo, client_key), _hmac(algo, salted, b"Server Key"), iterations)


def make_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS) -> ScramCredential:
    salt = secrets.token_bytes(32)
    return credential_from_salted(
        mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations
    )


def encode_name(name: str) -> str:
    """saslname of RFC 5802: ``,`` and ``=`` escaped."""
    return name.replace("=", "=3D").replace(",", "=2C")


def decode_name(text: str) -> str:
    if "=" in text.replace("=3D", "").replace("=2C", ""):
        raise ScramError("invalid username encoding")
    return text.replace("=2C", ",").replace("=3D", "=")


def _attributes(message: str) -> list[tuple[str, str]]:
    out = []
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ScramError(f"malformed SCRAM attribute {part[:40]!r}")
        out.append((key, value))
    return out


def _text(message: bytes) -> str:
    if len(message) > MAX_MESSAGE_BYTES:
        raise ScramError("SCRAM message too long")
    try:
        return message.decode()
    except UnicodeDecodeError:
        raise ScramError("SCRAM message is not UTF-8") from None


class ScramServer:
    """One server-side exchange: ``first(client_first) -> server_first``, then
    ``final(client_final) -> server_final``; ``username`` is set once ``final`` succeeded."""

    def __init__(
        self,
        mechanism: str,
        lookup: Callable[[str], ScramCredential | None],
        nonce: str | None = None,
    ) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(mechanism)
        self.mechanism = mechanism
        self.algo = MECHANISMS[mechanism]
        self._lookup = lookup
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
        self.username: str | None = None
        self._claimed: str | None = None
        self._credential: ScramCredential | None = None
        self._gs2 = ""
        self._client_first_bare = ""
        self._server_first = ""
        self.complete = False

    def first(self, client_first: bytes) -> bytes:
        text = _text(client_first)
        cbind, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if cbind not in ("n", "y"):
            raise ScramError("channel binding is not supported")
        if authzid and not authzid.startswith("a="):
            raise ScramError("malformed SCRAM gs2 header")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise ScramError("SCRAM client-first-message must start with n=USER,r=NONCE")
        if attrs[0][1] == "" or any(k == "m" for k, _ in attrs):
            raise ScramError("SCRAM username is empty or a mandatory extension was sent")
        for key, _value in attrs[2:]:
            # Kafka's extensions ride after the nonce; "tokenauth" asks for a delegation token.
            if key == "tokenauth":
                raise ScramError("delegation tokens are not supported")
        name = decode_name(attrs[0][1])
        if authzid and decode_name(authzid[2:]) != name:
            raise ScramError("authorization id must be the user name")
        credential = self._lookup(name)
        if credential is None:
            raise ScramError(
                f"Authentication failed: invalid credentials with SASL mechanism {self.mechanism}"
            )
        self._claimed, self._credential = name, credential
        self._gs2 = f"{cbind},{authzid},"
        self._client_first_bare = bare
        nonce = attrs[1][1] + self._nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        credential = self._credential
        if credential is None:
            raise ScramError("SCRAM client-final-message before client-first-message")
        text = _text(client_final)
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ScramError("SCRAM client-final-message has no proof")
        attrs = dict(_attributes(without_proof))
        if attrs.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise ScramError("SCRAM channel binding does not match the gs2 header")
        expected_nonce = self._server_first.split(",", 1)[0][2:]
        # Kafka accepts a nonce that ends with the server's (librdkafka before 2.x sent its own nonce
        # again in front): the proof covers the message as sent, so this costs nothing.
        if not attrs.get("r", "").endswith(expected_nonce):
            raise ScramError("SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise ScramError("SCRAM proof is not base64") from None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = _hmac(self.algo, credential.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise ScramError(
                f"Authentication failed: invalid credentials with SASL mechanism {self.mechanism}"
            )
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(_h(self.algo, client_key), credential.stored_key):
            raise ScramError(
                f"Authentication failed: invalid credentials with SASL mechanism {self.mechanism}"
            )
        server_signature = _hmac(self.algo, credential.server_key, auth_message)
        self.username = self._claimed
        self.complete = True
        return ("v=" + base64.b64encode(server_signature).decode()).encode()


class ScramClient:
    """The client side (a broker calling another broker; tests)."""

    def __init__(self, mechanism: str, username: str, password: str, nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.algo = MECHANISMS[mechanism]
        self.username = username
        self.password = password
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
        self._bare = f"n={encode_name(username)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self._bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = _text(server_first)
        attrs = dict(_attributes(text))
        nonce, salt_b64, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or not iterations.isdigit():
            raise ScramError("bad SCRAM server-first-message")
        if int(iterations) < MIN_ITERATIONS:
            raise ScramError(f"server asks for {iterations} iterations, fewer than {MIN_ITERATIONS}")
        salted = salted_password(self.mechanism, self.password, base64.b64decode(salt_b64), int(iterations))
        client_key = _hmac(self.algo, salted, b"Client Key")
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        signature = _hmac(self.algo, _h(self.algo, client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(self.algo, _hmac(self.algo, salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        text = _text(server_final)
        if text.startswith("e="):
            raise ScramError(f"server refused: {text[2:]}")
        if not hmac.compare_digest(text.encode(), b"v=" + base64.b64encode(self._server_signature)):
            raise ScramError("server signature does not match (not the server holding our credential)")
