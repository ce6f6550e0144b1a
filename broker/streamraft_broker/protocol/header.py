"""Request header v1/v2 parse and response header v0/v1 encode, done by hand.

The first fields are identical in every header version, so a header can be read even for an API key or
version the broker does not know; that is what lets it answer UNSUPPORTED_VERSION instead of hanging up.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamraft_broker.protocol.errors import HeaderDecodeError

_FIXED = struct.Struct(">hhi")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint at pos; returns (value, new position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise HeaderDecodeError("truncated varint in request header")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise HeaderDecodeError("varint longer than 5 bytes in request header")


def write_uvarint(value: int) -> bytes:
    assert value >= 0, "uvarint must be non-negative"
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def peek_fixed(frame: bytes) -> tuple[int, int, int]:
    """api_key, api_version, correlation_id — present at the same place in every header version."""
    if len(frame) < _FIXED.size:
        raise HeaderDecodeError(f"frame of {len(frame)} bytes is too short for a request header")
    key, version, corr = _FIXED.unpack_from(frame, 0)
    return int(key), int(version), int(corr)


def parse_request_header(frame: bytes, *, flexible: bool) -> tuple[RequestHeader, int]:
    """Parse header v1 (flexible=False) or v2 (flexible=True); returns (header, body offset)."""
    key, version, corr = peek_fixed(frame)
    pos = _FIXED.size
    if pos + 2 > len(frame):
        raise HeaderDecodeError("request header is truncated before client_id")
    (client_len,) = _I16.unpack_from(frame, pos)
    pos += 2
    client_id: str | None = None
    if client_len >= 0:
        if pos + client_len > len(frame):
            raise HeaderDecodeError(f"client_id length {client_len} runs past the end of the frame")
        try:
            client_id = frame[pos : pos + client_len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HeaderDecodeError("client_id is not valid UTF-8") from exc
        pos += client_len
    elif client_len != -1:
        raise HeaderDecodeError(f"client_id length {client_len} is negative")
    if flexible:
        count, pos = read_uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = read_uvarint(frame, pos)
            size, pos = read_uvarint(frame, pos)
            pos += size
            if pos > len(frame):
                raise HeaderDecodeError("tagged field in request header runs past the end of the frame")
    return RequestHeader(key, version, corr, client_id), pos


def response_header(correlation_id: int, *, flexible: bool) -> bytes:
    """Response header v0 (correlation id) or v1 (plus an empty tagged-field section)."""
    return _I32.pack(correlation_id) + (b"\x00" if flexible else b"")
