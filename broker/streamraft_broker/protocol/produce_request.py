"""Hand-parsed Produce request (v3 to v9) that hands each partition's records out as a memoryview.

kio would copy every record set into a new bytes object; on the produce hot path the frame is already in
memory, so the log appends straight from a view of it. Attribute names match kio's ProduceRequest, so the
handler works with either.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.header import read_uvarint
from streamraft_broker.protocol.skim import MAX_ARRAY_ELEMENTS, MAX_REQUEST_ELEMENTS

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class PartitionProduceView:
    index: int
    records: memoryview | None


@dataclass(frozen=True, slots=True)
class TopicProduceView:
    name: str
    partition_data: tuple[PartitionProduceView, ...]


@dataclass(frozen=True, slots=True)
class ProduceRequestView:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: tuple[TopicProduceView, ...]


class _Reader:
    def __init__(self, frame: bytes, pos: int, flexible: bool) -> None:
        self.buf = frame
        self.view = memoryview(frame)
        self.pos = pos
        self.flexible = flexible
        self.elements = 0

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError(f"produce request truncated in {what} (needs {n} bytes at {self.pos})")

    def i16(self, what: str) -> int:
        self._need(2, what)
        (v,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def i32(self, what: str) -> int:
        self._need(4, what)
        (v,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def uvarint(self) -> int:
        try:
            value, self.pos = read_uvarint(self.buf, self.pos)
        except ValueError as exc:
            raise ProtocolError(f"produce request: {exc}") from None
        return value

    def length(self, what: str, *, wide: bool) -> int:
        """Length of a string/bytes/array; -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.i32(what) if wide else self.i16(what)

    def string(self, what: str) -> str | None:
        n = self.length(what, wide=False)
        if n < 0:
            return None
        self._need(n, what)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"produce request: {what} is not valid UTF-8") from None

    def array_len(self, what: str) -> int:
        n = self.length(what, wide=True)
        if n < 0:
            raise ProtocolError(f"produce request: {what} array is null")
        # Every element takes at least one byte, so a count beyond the remaining bytes is a lie.
        if n > len(self.buf) - self.pos:
            raise ProtocolError(f"produce request: {what} count {n} exceeds the remaining bytes")
        # The same element caps as every other request (protocol/skim.py says why).
        if n > MAX_ARRAY_ELEMENTS:
            raise ProtocolError(
                f"produce request: {what} count {n} exceeds the cap of {MAX_ARRAY_ELEMENTS} per array"
            )
        self.elements += n
        if self.elements > MAX_REQUEST_ELEMENTS:
            raise ProtocolError(
                f"produce request holds more than {MAX_REQUEST_ELEMENTS} array elements in all"
            )
        return n

    def records(self) -> memoryview | None:
        n = self.length("records", wide=True)
        if n < 0:
            return None
        self._need(n, "records")
        view = self.view[self.pos : self.pos + n]
        self.pos += n
        return view

    def skip_tags(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            size = self.uvarint()
            self._need(size, "tagged field")
            self.pos += size


def parse_produce_request(frame: bytes, offset: int, version: int) -> ProduceRequestView:
    # v10 and v11 only widen the response (KIP-951 hints, TRANSACTION_ABORTABLE): the body is v9's.
    assert 3 <= version <= 11, f"produce v{version} has no hand parser"
    r = _Reader(frame, offset, flexible=version >= 9)
    transactional_id = r.string("transactional_id")
    acks = r.i16("acks")
    timeout_ms = r.i32("timeout_ms")
    topics = []
    for _ in range(r.array_len("topic_data")):
        name = r.string("topic name")
        if name is None:
            raise ProtocolError("produce request: topic name is null")
        partitions = []
        for _ in range(r.array_len("partition_data")):
            index = r.i32("partition index")
            partitions.append(PartitionProduceView(index, r.records()))
            r.skip_tags()
        topics.append(TopicProduceView(name, tuple(partitions)))
        r.skip_tags()
    r.skip_tags()
    return ProduceRequestView(transactional_id, acks, timeout_ms, tuple(topics))
