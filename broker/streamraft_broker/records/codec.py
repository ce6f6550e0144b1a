"""Compression codecs for the records section of a batch. Never used on produce/fetch (batches are stored
as sent); only build_batch/decode_records use them, for tests, internal topics and tools."""

from __future__ import annotations

import gzip
import io
import struct

import cramjam
import lz4.frame
import zstandard

from .batch import Compression
from .errors import InvalidRecordError, KafkaErrorCode

# The Java client writes snappy in xerial's block framing: this magic, two int32 version words, then
# (int32 length, raw snappy block) pairs. Other clients send plain raw snappy; both are accepted.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_BLOCK = 32 * 1024
_INT32 = struct.Struct(">i")
_CHUNK = 1 << 20
"""Output is produced this much at a time: a bomb is refused at most one chunk past the cap."""
MAX_DECOMPRESSED_BYTES = 100 * 1024 * 1024
"""Default cap on what one batch's records may inflate to: Kafka's socket.request.max.bytes default, i.e. no
more than the broker would accept uncompressed in one request. A batch inflating beyond it is refused as
corrupt (CORRUPT_MESSAGE) rather than eating memory; callers with a tighter bound pass ``max_bytes``."""


class _TooLarge(Exception):
    """Raised inside a codec loop once the output passes the cap (turned into InvalidRecordError)."""


def compress(codec: Compression, data: bytes) -> bytes:
    if codec is Compression.NONE:
        return data
    if codec is Compression.GZIP:
        return gzip.compress(data)
    if codec is Compression.SNAPPY:
        out = bytearray(_XERIAL_HEADER.pack(_XERIAL_MAGIC, 1, 1))
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
            out += _INT32.pack(len(block))
            out += block
        return bytes(out)
    if codec is Compression.LZ4:
        return bytes(lz4.frame.compress(data))
    if codec is Compression.ZSTD:
        return bytes(zstandard.ZstdCompressor().compress(data))
    raise ValueError(f"unknown compression codec {codec!r}")


def _raw_snappy_length(block: bytes) -> int:
    """The uncompressed length a raw snappy block declares (its varint preamble), read before inflating."""
    length = shift = 0
    for i in range(min(len(block), 5)):
        byte = block[i]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length
        shift += 7
    raise ValueError("raw snappy block has no valid length preamble")


def _raw_snappy(block: bytes, room: int) -> bytes:
    # Raw snappy states its output size up front: refuse before the library allocates for it.
    if _raw_snappy_length(block) > room:
        raise _TooLarge
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy_decompress(data: bytes, cap: int) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return _raw_snappy(data, cap)
    out = bytearray()
    pos = _XERIAL_HEADER.size
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("xerial snappy block length truncated")
        (length,) = _INT32.unpack_from(data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise ValueError(f"xerial snappy block of {length} bytes overruns the batch")
        out += _raw_snappy(data[pos : pos + length], cap - len(out))
        pos += length
    return bytes(out)


def _lz4_decompress(data: bytes, cap: int) -> bytes:
    out = bytearray()
    pending = data
    while True:
        # A fresh decompressor per frame: Kafka clients may concatenate frames.
        decompressor = lz4.frame.LZ4FrameDecompressor()
        while not decompressor.eof:
            chunk = decompressor.decompress(pending, max_length=_CHUNK)
            pending = b""
            out += chunk
            if len(out) > cap:
                raise _TooLarge
            if not chunk and decompressor.needs_input:
                raise ValueError("LZ4 frame is truncated")
        pending = decompressor.unused_data
        if not pending:
            return bytes(out)


def _read_capped(
    reader: io.BufferedIOBase | io.RawIOBase | zstandard.ZstdDecompressionReader, cap: int
) -> bytes:
    out = bytearray()
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > cap:
            raise _TooLarge


def decompress(codec: Compression, data: bytes, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Inflate a batch's records section, streaming in chunks and stopping once the output passes
    ``max_bytes``; corrupt or oversized input raises InvalidRecordError(CORRUPT_MESSAGE)."""
    try:
        if codec is Compression.NONE:
            return data
        if codec is Compression.GZIP:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                return _read_capped(f, max_bytes)
        if codec is Compression.SNAPPY:
            return _snappy_decompress(data, max_bytes)
        if codec is Compression.LZ4:
            return _lz4_decompress(data, max_bytes)
        if codec is Compression.ZSTD:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
                return _read_capped(r, max_bytes)
        raise ValueError(f"unknown compression codec {codec!r}")
    except _TooLarge:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"{codec.name} records inflate beyond the cap of {max_bytes} bytes (a decompression bomb?)",
        ) from None
    except Exception as exc:  # each codec library raises its own exception types for corrupt input
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE, f"cannot decompress {codec.name} records: {exc}"
        ) from exc
