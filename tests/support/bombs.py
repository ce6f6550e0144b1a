"""Decompression bombs for every Kafka codec, built by streaming compressors (never holding the inflated
bytes), and a v2 batch wrapped around an already-compressed payload."""

from __future__ import annotations

import struct
import zlib

import cramjam
import lz4.frame
import zstandard
from streamraft_broker.records import SimpleRecord, build_batch
from streamraft_broker.records.batch import (
    ATTRIBUTES_OFFSET,
    BATCH_HEADER_SIZE,
    COMPRESSION_MASK,
    CRC_OFFSET,
    LENGTH_OFFSET,
    Compression,
    compute_crc,
)

MIB = 1 << 20
_ZEROS = bytes(MIB)


def lz4_bomb(inflated: int) -> bytes:
    """One LZ4 frame of ``inflated`` zero bytes (about 1/255 of that on the wire)."""
    c = lz4.frame.LZ4FrameCompressor()
    out = bytearray(c.begin())
    for _ in range(inflated // MIB):
        out += c.compress(_ZEROS)
    out += c.flush()
    return bytes(out)


def gzip_bomb(inflated: int) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container; level 1 is fastest
    out = bytearray()
    for _ in range(inflated // MIB):
        out += c.compress(_ZEROS)
    out += c.flush()
    return bytes(out)


def zstd_bomb(inflated: int) -> bytes:
    c = zstandard.ZstdCompressor().compressobj()
    out = bytearray()
    for _ in range(inflated // MIB):
        out += c.compress(_ZEROS)
    out += c.flush()
    return bytes(out)


def xerial_snappy_bomb(inflated: int) -> bytes:
    """The Java client's framing: the magic, two version words, then (length, raw block) pairs."""
    block = bytes(cramjam.snappy.compress_raw(bytes(32 * 1024)))
    out = bytearray(struct.pack(">8sii", b"\x82SNAPPY\x00", 1, 1))
    for _ in range(inflated // (32 * 1024)):
        out += struct.pack(">i", len(block)) + block
    return bytes(out)


def raw_snappy_bomb(inflated: int) -> bytes:
    """Raw snappy needs the whole input to compress: fine for the sizes tests use (tens of MiB)."""
    return bytes(cramjam.snappy.compress_raw(bytes(inflated)))


def batch_around(codec: Compression, payload: bytes, *, timestamp_ms: int) -> bytes:
    """A valid v2 batch (one record, CRC right) whose records section is ``payload`` compressed with
    ``codec``: what a hostile producer sends, since the broker stores batches without inflating them."""
    shell = bytearray(build_batch([SimpleRecord(key=None, value=b"x")], timestamp_ms=timestamp_ms))
    out = shell[:BATCH_HEADER_SIZE] + payload
    struct.pack_into(">i", out, LENGTH_OFFSET, len(out) - 12)  # everything after base offset and itself
    (attributes,) = struct.unpack_from(">h", out, ATTRIBUTES_OFFSET)
    struct.pack_into(">h", out, ATTRIBUTES_OFFSET, (attributes & ~COMPRESSION_MASK) | int(codec))
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)
