"""Binary encodings: log records, hard state + conf state, snapshot metadata.

Log record framing (big-endian):  u32 length | u32 crc32c | u64 term | u64 index | u8 type | data
``length`` counts the bytes after the crc (term..data); the CRC covers the same bytes, so a torn write of
any part of a record fails the check.
"""

from __future__ import annotations

import struct

import crc32c

from streamraft_consensus.core.types import ConfState, Entry, EntryType, HardState, SnapshotMeta

RECORD_PREFIX = struct.Struct(">II")
RECORD_BODY_HEADER = struct.Struct(">QQB")
RECORD_OVERHEAD = RECORD_PREFIX.size + RECORD_BODY_HEADER.size
MAX_RECORD_BYTES = 256 << 20
"""Refuse a length field above this: it can only be corruption and would make us allocate gigabytes."""

_VALID_TYPES = frozenset(int(t) for t in EntryType)


def encode_entry(entry: Entry) -> bytes:
    body = RECORD_BODY_HEADER.pack(entry.term, entry.index, int(entry.type)) + entry.data
    return RECORD_PREFIX.pack(len(body), crc32c.crc32c(body)) + body


def decode_record(buf: bytes | memoryview, offset: int) -> tuple[Entry, int] | str:
    """The entry at ``offset`` and the offset after it, or a reason string if it does not verify."""
    if len(buf) - offset < RECORD_PREFIX.size:
        return "truncated record prefix"
    length, crc = RECORD_PREFIX.unpack_from(buf, offset)
    if length < RECORD_BODY_HEADER.size or length > MAX_RECORD_BYTES:
        return f"implausible record length {length}"
    start = offset + RECORD_PREFIX.size
    end = start + length
    if end > len(buf):
        return f"record of {length} bytes runs past end of file"
    body = bytes(buf[start:end])
    if crc32c.crc32c(body) != crc:
        return "CRC-32C mismatch"
    term, index, etype = RECORD_BODY_HEADER.unpack_from(body)
    if etype not in _VALID_TYPES:
        return f"unknown entry type {etype}"
    return Entry(term, index, EntryType(etype), body[RECORD_BODY_HEADER.size :]), end


def _encode_ids(ids: tuple[int, ...]) -> bytes:
    return struct.pack(f">I{len(ids)}Q", len(ids), *ids)


def _decode_ids(buf: bytes, offset: int) -> tuple[tuple[int, ...], int]:
    (n,) = struct.unpack_from(">I", buf, offset)
    offset += 4
    ids = struct.unpack_from(f">{n}Q", buf, offset)
    return tuple(ids), offset + 8 * n


def encode_conf_state(cs: ConfState) -> bytes:
    return (
        _encode_ids(cs.voters)
        + _encode_ids(cs.learners)
        + _encode_ids(cs.voters_outgoing)
        + _encode_ids(cs.learners_next)
        + bytes([1 if cs.auto_leave else 0])
    )


def decode_conf_state(buf: bytes, offset: int) -> tuple[ConfState, int]:
    voters, offset = _decode_ids(buf, offset)
    learners, offset = _decode_ids(buf, offset)
    outgoing, offset = _decode_ids(buf, offset)
    learners_next, offset = _decode_ids(buf, offset)
    auto_leave = buf[offset] == 1
    return ConfState(voters, learners, outgoing, learners_next, auto_leave), offset + 1


_HARD = struct.Struct(">QQQ")


def encode_state(hs: HardState, cs: ConfState) -> bytes:
    return _HARD.pack(hs.term, hs.vote, hs.commit) + encode_conf_state(cs)


def decode_state(buf: bytes) -> tuple[HardState, ConfState]:
    term, vote, commit = _HARD.unpack_from(buf, 0)
    cs, end = decode_conf_state(buf, _HARD.size)
    if end != len(buf):
        raise ValueError(f"{len(buf) - end} trailing bytes after hard state")
    return HardState(term, vote, commit), cs


_SNAP = struct.Struct(">QQ")


def encode_snapshot(meta: SnapshotMeta, data: bytes) -> bytes:
    cs = encode_conf_state(meta.conf_state)
    return _SNAP.pack(meta.index, meta.term) + struct.pack(">I", len(cs)) + cs + data


def decode_snapshot(buf: bytes) -> tuple[SnapshotMeta, bytes]:
    index, term = _SNAP.unpack_from(buf, 0)
    (cs_len,) = struct.unpack_from(">I", buf, _SNAP.size)
    start = _SNAP.size + 4
    cs, end = decode_conf_state(buf, start)
    if end != start + cs_len:
        raise ValueError("conf state length mismatch in snapshot")
    return SnapshotMeta(index, term, cs), buf[end:]
