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
# Bounded decompression: a batch inflating beyond this is treated as corrupt rather than eating memory.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


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


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    pos = _XERIAL_HEADER.size
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("xerial snappy block length truncated")
        (length,) = _INT32.unpack_from(data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise ValueError(f"xerial snappy block of {length} bytes overruns the batch")
        out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + length]))
        pos += length
        if len(out) > MAX_DECOMPRESSED_BYTES:
            raise ValueError("decompressed size limit exceeded")
    return bytes(out)


def decompress(codec: Compression, data: bytes) -> bytes:
    """Inflate a batch's records section; corrupt input raises InvalidRecordError(CORRUPT_MESSAGE)."""
    try:
        if codec is Compression.NONE:
            return data
        if codec is Compression.GZIP:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                out = f.read(MAX_DECOMPRESSED_BYTES + 1)
        elif codec is Compression.SNAPPY:
            out = _snappy_decompress(data)
        elif codec is Compression.LZ4:
            out = bytes(lz4.frame.decompress(data))
        elif codec is Compression.ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
            out = reader.read(MAX_DECOMPRESSED_BYTES + 1)
        else:
            raise ValueError(f"unknown compression codec {codec!r}")
    except InvalidRecordError:
        raise
    except Exception as exc:  # each codec library raises its own exception types for corrupt input
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE, f"cannot decompress {codec.name} records: {exc}"
        ) from exc
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"{codec.name} records inflate beyond {MAX_DECOMPRESSED_BYTES} bytes",
        )
    return out
