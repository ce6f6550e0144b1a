"""Calls from a broker to the controller's Raft leader over the Kafka protocol.

Why Kafka APIs and not a new RPC: the controller leader already serves Kafka on a known address, and
Kafka defines the messages a broker sends its controller: BrokerRegistration (62) to register,
AlterPartition (56) for a partition leader to report its new replica set, UnregisterBroker (64) to
decommission. Each call opens one connection (secured as the inter-broker listener requires, see
``security.outbound``), sends one flexible request (header v2) and reads one
response; these are rare control-plane calls, so no pooling.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from streamraft_broker.security import outbound

CLIENT_ID = b"streamraft-broker"
MAX_RESPONSE_BYTES = 1 << 20
_I32 = struct.Struct(">i")
_correlation = itertools.count(1)


class ControllerUnreachable(Exception):
    """No response from the controller (unknown leader, connection refused, timeout, bad frame)."""


def encode_request(
    api_key: int, version: int, body: Any, correlation_id: int, client_id: bytes = CLIENT_ID
) -> bytes:
    cls = load_request_schema(api_key, version)
    assert cls.__flexible__, f"api {api_key} v{version}: only flexible requests are sent here"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id + b"\x00"
    buf = io.BytesIO()
    entity_writer(cls)(buf, body)
    payload = header + buf.getvalue()
    return _I32.pack(len(payload)) + payload


async def call(
    host: str, port: int, api_key: int, version: int, body: Any, *, limit_s: float = 5.0, client_id: str = ""
) -> Any:
    """Send ``body`` to host:port and return the decoded response entity; ``client_id`` (default
    ``streamraft-broker``) may carry a ``broker_proof``."""
    corr = next(_correlation) & 0x7FFFFFFF
    try:
        async with asyncio.timeout(limit_s):
            reader, writer = await outbound.open_connection(host, port)
            try:
                writer.write(encode_request(api_key, version, body, corr, client_id.encode() or CLIENT_ID))
                await writer.drain()
                size = _I32.unpack(await reader.readexactly(4))[0]
                if not 5 <= size <= MAX_RESPONSE_BYTES:
                    raise ControllerUnreachable(f"response frame of {size} bytes from {host}:{port}")
                frame = await reader.readexactly(size)
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise ControllerUnreachable(f"{host}:{port}: {exc!r}") from None
    got = _I32.unpack_from(frame, 0)[0]
    if got != corr:
        raise ControllerUnreachable(f"correlation id {got} != {corr} from {host}:{port}")
    cls = load_response_schema(api_key, version)
    try:
        entity, _ = entity_reader(cls)(frame, 5)  # response header v1: correlation id + empty tags
    except Exception as exc:  # kio raises assorted errors on malformed bodies
        raise ControllerUnreachable(f"bad {cls.__name__} from {host}:{port}: {exc}") from None
    return entity
