"""A minimal blocking Kafka wire client built on kio, for tests that speak the protocol directly."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

_I32 = struct.Struct(">i")
API_VERSIONS = 18
METADATA = 3


class WireClient:
    def __init__(
        self, host: str, port: int, *, timeout: float = 10.0, client_id: str = "streamraft-tests"
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.client_id = client_id
        self._corr = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode_request(self, api_key: int, version: int, body: Any, correlation_id: int) -> bytes:
        cls = load_request_schema(api_key, version)
        flexible = bool(cls.__flexible__)
        cid = self.client_id.encode()
        header = (
            struct.pack(">hhih", api_key, version, correlation_id, len(cid))
            + cid
            + (b"\x00" if flexible else b"")
        )
        buf = io.BytesIO()
        entity_writer(cls)(buf, body)
        payload = header + buf.getvalue()
        return _I32.pack(len(payload)) + payload

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes:
        size = _I32.unpack(self._recv_exact(4))[0]
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            got = self.sock.recv(n - len(chunks))
            if not got:
                raise ConnectionError(f"connection closed after {len(chunks)} of {n} bytes")
            chunks += got
        return bytes(chunks)

    def request(self, api_key: int, version: int, body: Any) -> Any:
        self._corr += 1
        corr = self._corr
        self.send_raw(self.encode_request(api_key, version, body, corr))
        frame = self.recv_frame()
        got_corr = _I32.unpack_from(frame, 0)[0]
        assert got_corr == corr, f"correlation id {got_corr} != {corr}"
        cls = load_response_schema(api_key, version)
        # ApiVersions answers with response header v0 whatever the version; other flexible APIs with v1.
        offset = 4 + (1 if cls.__flexible__ and api_key != API_VERSIONS else 0)
        entity, _ = entity_reader(cls)(frame, offset)
        return entity


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the broker completes an ApiVersions round trip."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest  # noqa: PLC0415

    try:
        with WireClient(host, port, timeout=timeout) as c:
            resp = c.request(
                API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1")
            )
            return int(resp.error_code) == 0
    except (OSError, ConnectionError, AssertionError):
        return False


def metadata_topics(host: str, port: int, timeout: float) -> list[Any]:
    """The topics of this broker's own Metadata answer (v12, all topics) that carry no error; [] when it
    cannot be reached."""
    from kio.schema.metadata.v12.request import MetadataRequest  # noqa: PLC0415

    request = MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )
    try:
        with WireClient(host, port, timeout=timeout) as client:
            resp = client.request(METADATA, 12, request)
    except (OSError, ConnectionError):
        return []
    return [t for t in resp.topics if int(t.error_code) == 0 and t.name is not None]
