"""Connections a broker opens to another broker's Kafka port (controller calls: BrokerRegistration,
AlterPartition, UnregisterBroker, forwarded InitProducerId and AlterUserScramCredentials).

They use the inter-broker listener's security protocol, as Kafka does: TLS with the broker's own
certificate (``ssl.keystore.*``) and truststore, and on SASL listeners a SASL login with
``sasl.mechanism.inter.broker.protocol`` as ``sasl_inter_broker_username``. PLAIN or mutual TLS suit a
cluster's own brokers best: SCRAM credentials live in the controller state, which a broker can only reach
after it logged in.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import ssl
import struct
from dataclasses import dataclass
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.serial import entity_reader, entity_writer

from streamraft_broker.config import BrokerConfig, ConfigError
from streamraft_broker.security.listeners import Listener
from streamraft_broker.security.scram import MECHANISMS, ScramClient, ScramError

CLIENT_ID = b"streamraft-broker"
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
MAX_FRAME = 1 << 20
_I32 = struct.Struct(">i")
_correlation = itertools.count(1)


class OutboundAuthFailed(OSError):
    """The peer refused this broker's credentials (an OSError: callers treat it as unreachable)."""


@dataclass(frozen=True)
class OutboundSecurity:
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str = ""
    username: str = ""
    password: str = ""


_current = OutboundSecurity()


def configure(cfg: BrokerConfig, inter_broker: Listener) -> None:
    """Called once at broker start: how this process connects to other brokers."""
    global _current  # one broker configuration per process (a local cluster's brokers share it)
    context = None
    if inter_broker.uses_tls:
        from streamraft_broker.security.tls import client_context  # noqa: PLC0415

        context = client_context(cfg)
    if inter_broker.uses_sasl and not cfg.sasl_inter_broker_username:
        raise ConfigError(
            f"inter-broker listener {inter_broker.name} uses SASL: set sasl_inter_broker_username and "
            "sasl_inter_broker_password"
        )
    _current = OutboundSecurity(
        inter_broker.security_protocol,
        context,
        cfg.sasl_mechanism_inter_broker_protocol,
        cfg.sasl_inter_broker_username,
        cfg.sasl_inter_broker_password,
    )


def encode(api_key: int, version: int, body: Any, correlation_id: int) -> bytes:
    cls = load_request_schema(api_key, version)
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    if cls.__flexible__:
        header += b"\x00"
    buf = io.BytesIO()
    entity_writer(cls)(buf, body)
    payload = header + buf.getvalue()
    return _I32.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME) -> bytes:
    size = _I32.unpack(await reader.readexactly(4))[0]
    if not 4 <= size <= max_bytes:
        raise OutboundAuthFailed(f"response frame of {size} bytes")
    return await reader.readexactly(size)


async def _round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, api_key: int, version: int, body: Any
) -> Any:
    corr = next(_correlation) & 0x7FFFFFFF
    writer.write(encode(api_key, version, body, corr))
    await writer.drain()
    frame = await read_frame(reader)
    if _I32.unpack_from(frame, 0)[0] != corr:
        raise OutboundAuthFailed("correlation id mismatch during SASL login")
    cls = load_response_schema(api_key, version)
    entity, _ = entity_reader(cls)(frame, 5 if cls.__flexible__ else 4)
    return entity


async def _sasl_login(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sec: OutboundSecurity
) -> None:
    shake = await _round_trip(
        reader, writer, SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism=sec.mechanism)
    )
    if int(shake.error_code) != 0:
        raise OutboundAuthFailed(f"peer does not offer {sec.mechanism} (it offers {list(shake.mechanisms)})")

    async def step(token: bytes) -> bytes:
        answer = await _round_trip(
            reader, writer, SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token)
        )
        if int(answer.error_code) != 0:
            raise OutboundAuthFailed(f"peer refused {sec.username}: {answer.error_message}")
        return bytes(answer.auth_bytes)

    if sec.mechanism == "PLAIN":
        await step(b"\0" + sec.username.encode() + b"\0" + sec.password.encode())
        return
    assert sec.mechanism in MECHANISMS, sec.mechanism
    client = ScramClient(sec.mechanism, sec.username, sec.password)
    try:
        client.verify(await step(client.final(await step(client.first()))))
    except ScramError as exc:
        raise OutboundAuthFailed(str(exc)) from None


async def open_connection(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to another broker, TLS-wrapped and logged in as the inter-broker listener needs."""
    sec = _current
    reader, writer = await asyncio.open_connection(
        host, port, ssl=sec.ssl_context, server_hostname=host if sec.ssl_context is not None else None
    )
    if sec.protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        try:
            await _sasl_login(reader, writer, sec)
        except BaseException:
            writer.close()
            raise
    return reader, writer
