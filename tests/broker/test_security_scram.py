"""SCRAM without I/O, byte by byte: RFC 7677's SCRAM-SHA-256 example exchange, the refusals, the client
side, and the credential commands as the controller state applies and snapshots them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from streamraft_broker.controller.commands import DeleteScramCredential, UpsertScramCredential, encode
from streamraft_broker.controller.state import ControllerState
from streamraft_broker.security.credentials import (
    LocalCredentialFile,
)
from streamraft_broker.security.scram import (
    ScramClient,
    ScramCredential,
    ScramError,
    ScramServer,
    credential_from_salted,
    make_credential,
    salted_password,
)

# RFC 7677 section 3: user "user", password "pencil".
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _rfc_credential() -> ScramCredential:
    return credential_from_salted(
        "SCRAM-SHA-256", salted_password("SCRAM-SHA-256", "pencil", SALT, 4096), SALT, 4096
    )


def _rfc_server() -> ScramServer:
    credential = _rfc_credential()
    return ScramServer(
        "SCRAM-SHA-256", lambda user: credential if user == "user" else None, nonce=SERVER_NONCE
    )


def test_server_follows_rfc7677_exchange_byte_by_byte() -> None:
    server = _rfc_server()
    assert server.first(CLIENT_FIRST) == SERVER_FIRST
    assert not server.complete
    assert server.final(CLIENT_FINAL) == SERVER_FINAL
    assert server.complete and server.username == "user"


def test_client_follows_rfc7677_exchange_byte_by_byte() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == CLIENT_FIRST
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.verify(SERVER_FINAL)
    with pytest.raises(ScramError, match="server signature"):
        client.verify(b"v=" + base64.b64encode(b"\0" * 32))


def test_wrong_password_is_refused_without_a_server_signature() -> None:
    server = _rfc_server()
    client = ScramClient("SCRAM-SHA-256", "user", "pencil!", nonce="rOprNGfwEbeRWgbNEkqO")
    first = server.first(client.first())
    with pytest.raises(ScramError, match="invalid credentials"):
        server.final(client.final(first))
    assert not server.complete and server.username is None


@pytest.mark.parametrize(
    ("client_first", "why"),
    [
        (b"n,,n=nobody,r=abc", "invalid credentials"),
        (b"p=tls-unique,,n=user,r=abc", "channel binding"),
        (b"n,,r=abc,n=user", "must start with"),
        (b"n,a=other,n=user,r=abc", "authorization id"),
        (b"n,,n=user,r=abc,tokenauth=true", "delegation tokens"),
        (b"n,,n=us=er,r=abc", "username encoding"),
        (b"\xff\xfe", "UTF-8"),
        (b"n,,n=user,r=" + b"a" * 5000, "too long"),
    ],
)
def test_bad_client_first_messages_are_refused(client_first: bytes, why: str) -> None:
    with pytest.raises(ScramError, match=why):
        _rfc_server().first(client_first)


def test_final_message_must_carry_the_exchange_nonce_and_binding() -> None:
    server = _rfc_server()
    server.first(CLIENT_FIRST)
    with pytest.raises(ScramError, match="nonce"):
        server.final(CLIENT_FINAL.replace(b"$k0,p", b"$k1,p"))
    server = _rfc_server()
    server.first(CLIENT_FIRST)
    with pytest.raises(ScramError, match="channel binding"):
        server.final(CLIENT_FINAL.replace(b"c=biws", b"c=eSws"))
    with pytest.raises(ScramError, match="before client-first"):
        _rfc_server().final(CLIENT_FINAL)


def test_nonce_repeating_the_client_part_is_accepted_as_kafka_does() -> None:
    """librdkafka 2.0 sends its own nonce again in front of the server's; Kafka accepts a nonce that ends
    with the server's, and so do we (the proof covers the message as sent)."""
    server = _rfc_server()
    server.first(CLIENT_FIRST)
    salted = salted_password("SCRAM-SHA-256", "pencil", SALT, 4096)
    without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"{CLIENT_FIRST[3:].decode()},{SERVER_FIRST.decode()},{without_proof}".encode()
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    server.final(f"{without_proof},p={proof.decode()}".encode())
    assert server.username == "user"


def test_sha512_round_trip_and_usernames_with_commas() -> None:
    credential = make_credential("SCRAM-SHA-512", "s3cret", iterations=4096)
    server = ScramServer("SCRAM-SHA-512", lambda user: credential if user == "a,b=c" else None)
    client = ScramClient("SCRAM-SHA-512", "a,b=c", "s3cret")
    assert b"n=a=2Cb=3Dc," in client.first()
    client.verify(server.final(client.final(server.first(client.first()))))
    assert server.username == "a,b=c"


def test_credential_commands_apply_and_survive_a_controller_snapshot() -> None:
    state = ControllerState()
    alice = make_credential("SCRAM-SHA-512", "pw")
    state.apply(encode(UpsertScramCredential("alice", "SCRAM-SHA-512", alice)))
    state.apply(encode(UpsertScramCredential("bob", "SCRAM-SHA-256", make_credential("SCRAM-SHA-256", "x"))))
    state.apply(encode(DeleteScramCredential("bob", "SCRAM-SHA-256")))
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert restored.scram.lookup("alice", "SCRAM-SHA-512") == alice
    assert restored.scram.users.keys() == {"alice"}
    # Snapshots written before credentials existed have no such field.
    old = json.loads(state.to_snapshot())
    del old["scram_credentials"]
    assert ControllerState.from_snapshot(json.dumps(old).encode()).scram.users == {}


async def test_single_node_credentials_file_applies_the_same_commands(
    tmp_path: pytest.TempPathFactory,
) -> None:
    path = tmp_path / "scram.json"  # type: ignore[operator]
    store = LocalCredentialFile(path).store()
    alice = make_credential("SCRAM-SHA-256", "pw")
    await store.submit([UpsertScramCredential("alice", "SCRAM-SHA-256", alice)])
    assert LocalCredentialFile(path).credentials.lookup("alice", "SCRAM-SHA-256") == alice
    await store.submit([DeleteScramCredential("alice", "SCRAM-SHA-256")])
    assert LocalCredentialFile(path).credentials.users == {}
    assert b"pw" not in path.read_bytes()
