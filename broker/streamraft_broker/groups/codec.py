"""Record keys and values of `__consumer_offsets`, in Kafka's own (non-flexible) encodings, so the topic's
contents read the same as a Kafka broker's:

- OffsetCommitKey v1: int16 version, string group, string topic, int32 partition
- OffsetCommitValue v3: int16 version, int64 offset, int32 leader_epoch, string metadata, int64 commit_ts
  (v0-v2 are decoded too)
- GroupMetadataKey v2: int16 version, string group
- GroupMetadataValue v3: int16 version, string protocol_type, int32 generation, nullable string protocol,
  nullable string leader, int64 current_state_timestamp, int32 count of members, each: string member_id,
  nullable string group_instance_id, string client_id, string client_host, int32 rebalance_timeout,
  int32 session_timeout, bytes subscription, bytes assignment

A null value is a tombstone: the offset (or the whole group) was deleted."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamraft_broker.groups.model import CommittedOffset

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3


class CodecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class StoredGroup:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp: int
    members: tuple[StoredMember, ...]


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def i16(self, v: int) -> None:
        self.buf += _I16.pack(v)

    def i32(self, v: int) -> None:
        self.buf += _I32.pack(v)

    def i64(self, v: int) -> None:
        self.buf += _I64.pack(v)

    def string(self, v: str | None) -> None:
        if v is None:
            self.i16(-1)
            return
        data = v.encode()
        if len(data) > 32767:
            raise CodecError(f"string of {len(data)} bytes does not fit an int16 length")
        self.i16(len(data))
        self.buf += data

    def bytes_(self, v: bytes) -> None:
        self.i32(len(v))
        self.buf += v


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CodecError(f"truncated: need {n} bytes at position {self.pos} of {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def nullable_string(self) -> str | None:
        n = self.i16()
        if n == -1:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise CodecError(f"string at position {self.pos - n} is not UTF-8") from exc

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise CodecError(f"null where a string is required, at position {self.pos - 2}")
        return s

    def bytes_(self) -> bytes:
        n = self.i32()
        return b"" if n == -1 else self._take(n)


def encode_offset_key(key: OffsetKey) -> bytes:
    w = _Writer()
    w.i16(OFFSET_KEY_VERSION)
    w.string(key.group_id)
    w.string(key.topic)
    w.i32(key.partition)
    return bytes(w.buf)


def encode_group_key(key: GroupKey) -> bytes:
    w = _Writer()
    w.i16(GROUP_KEY_VERSION)
    w.string(key.group_id)
    return bytes(w.buf)


def decode_key(data: bytes) -> OffsetKey | GroupKey:
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.i32())
    if version == 2:
        return GroupKey(r.string())
    raise CodecError(f"unknown __consumer_offsets key version {version}")


def encode_offset_value(value: CommittedOffset) -> bytes:
    w = _Writer()
    w.i16(OFFSET_VALUE_VERSION)
    w.i64(value.offset)
    w.i32(value.leader_epoch)
    w.string(value.metadata)
    w.i64(value.commit_timestamp)
    return bytes(w.buf)


def decode_offset_value(data: bytes) -> CommittedOffset:
    r = _Reader(data)
    version = r.i16()
    if version == 0:
        return CommittedOffset(r.i64(), -1, r.string(), r.i64())
    if version in (1, 2):
        offset, metadata, ts = r.i64(), r.string(), r.i64()
        return CommittedOffset(offset, -1, metadata, ts)
    if version == 3:
        return CommittedOffset(r.i64(), r.i32(), r.string(), r.i64())
    raise CodecError(f"unsupported offset commit value version {version}")


def encode_group_value(value: StoredGroup) -> bytes:
    w = _Writer()
    w.i16(GROUP_VALUE_VERSION)
    w.string(value.protocol_type)
    w.i32(value.generation_id)
    w.string(value.protocol_name)
    w.string(value.leader_id)
    w.i64(value.state_timestamp)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout_ms)
        w.i32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return bytes(w.buf)


def decode_group_value(data: bytes) -> StoredGroup:
    r = _Reader(data)
    version = r.i16()
    if version != GROUP_VALUE_VERSION:
        raise CodecError(f"unsupported group metadata value version {version}")
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    ts = r.i64()
    count = r.i32()
    if not 0 <= count <= 1_000_000:
        raise CodecError(f"implausible member count {count}")
    members = tuple(
        StoredMember(
            member_id=r.string(),
            group_instance_id=r.nullable_string(),
            client_id=r.string(),
            client_host=r.string(),
            rebalance_timeout_ms=r.i32(),
            session_timeout_ms=r.i32(),
            subscription=r.bytes_(),
            assignment=r.bytes_(),
        )
        for _ in range(count)
    )
    return StoredGroup(protocol_type, generation, protocol, leader, ts, members)
