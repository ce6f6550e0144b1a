"""Bounds pre-check of a request body against its kio schema, run before kio decodes it.

kio's native reader sizes allocations from the declared array and string lengths, and aborts the whole
process when an allocation fails; one request with a count of 2**31 would kill the broker. This walk
checks every declared length against the bytes that are actually left, without building anything.

It also caps how many elements one request may hold (topics, partitions, ids, ...): every element costs the
broker microseconds of Python work to decode, handle and answer, and a 4 MiB Metadata request naming two
million empty topics used to hold the event loop for 12 s. Kafka has no such caps; these are far above what
clients send (topic and partition counts of whole large clusters) and refuse the request before any of that
work starts.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from typing import Any

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)

from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.header import read_uvarint

_FIXED = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "float64": 8,
    "uuid": 16,
}
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I8 = struct.Struct(">b")
_PLAN: dict[type[Any], list[tuple[str, str, Any, bool, str]]] = {}
MAX_ARRAY_ELEMENTS = 50_000
"""Elements one array of a request may hold (a registry holds at most 10,000 partitions per topic)."""
MAX_REQUEST_ELEMENTS = 200_000
"""Elements of all arrays of one request together."""


def _plan(cls: type[Any]) -> list[tuple[str, str, Any, bool, str]]:
    """(kind, kafka_type, inner entity type, optional, field name) per inline field, computed once."""
    plan = _PLAN.get(cls)
    if plan is None:
        plan = []
        for f in fields(cls):
            if get_field_tag(f) is not None:
                continue  # lives in the tagged-field section
            fc = classify_field(f)
            kafka_type = str(f.metadata.get("kafka_type", ""))
            if isinstance(fc, EntityTupleField):
                plan.append(("entity_array", kafka_type, fc.type_, False, f.name))
            elif isinstance(fc, EntityField):
                plan.append(("entity", kafka_type, fc.type_, is_optional(f), f.name))
            elif isinstance(fc, PrimitiveTupleField):
                plan.append(("array", kafka_type, None, False, f.name))
            else:
                plan.append(("primitive", kafka_type, None, False, f.name))
        _PLAN[cls] = plan
    return plan


class _Skimmer:
    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.elements = 0

    def _advance(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError(f"{what} needs {n} bytes but {len(self.buf) - self.pos} remain")
        self.pos += n

    def _uvarint(self) -> int:
        value, self.pos = read_uvarint(self.buf, self.pos)
        return value

    def _unpack(self, st: struct.Struct, what: str) -> int:
        if self.pos + st.size > len(self.buf):
            raise ProtocolError(f"{what} is truncated")
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return int(value)

    def _length(self, flexible: bool, wide: bool, what: str) -> int:
        if flexible:
            return self._uvarint() - 1
        return self._unpack(_I32 if wide else _I16, what)

    def primitive(self, kafka_type: str, flexible: bool, what: str) -> None:
        size = _FIXED.get(kafka_type)
        if size is not None:
            self._advance(size, what)
            return
        if kafka_type not in ("string", "bytes", "records"):
            raise ProtocolError(f"{what}: no bounds rule for kafka type {kafka_type!r}")
        n = self._length(flexible, kafka_type != "string", what)
        if n >= 0:
            self._advance(n, what)
        elif n != -1:
            raise ProtocolError(f"{what}: negative length {n}")

    def count(self, flexible: bool, what: str) -> int:
        n = self._length(flexible, True, what)
        if n < -1:
            raise ProtocolError(f"{what}: negative array length {n}")
        # Every element takes at least one byte: a larger count is a lie, refused before any allocation.
        if n > len(self.buf) - self.pos:
            raise ProtocolError(f"{what}: array count {n} exceeds the {len(self.buf) - self.pos} bytes left")
        if n > MAX_ARRAY_ELEMENTS:
            raise ProtocolError(
                f"{what}: array count {n} exceeds the cap of {MAX_ARRAY_ELEMENTS} elements per array"
            )
        self.elements += max(n, 0)
        if self.elements > MAX_REQUEST_ELEMENTS:
            raise ProtocolError(
                f"{what}: the request holds more than {MAX_REQUEST_ELEMENTS} array elements in all"
            )
        return max(n, 0)

    def entity(self, cls: type[Any]) -> None:
        flexible = bool(cls.__flexible__)
        for kind, kafka_type, inner, optional, name in _plan(cls):
            what = f"{cls.__name__}.{name}"
            if kind == "primitive":
                self.primitive(kafka_type, flexible, what)
            elif kind == "array":
                for _ in range(self.count(flexible, what)):
                    self.primitive(kafka_type, flexible, what)
            elif kind == "entity_array":
                for _ in range(self.count(flexible, what)):
                    self.entity(inner)
            else:
                if optional and self._unpack(_I8, what) < 0:
                    continue
                self.entity(inner)
        if flexible:
            for _ in range(self._uvarint()):
                self._uvarint()
                self._advance(self._uvarint(), f"{cls.__name__} tagged field")


def check_bounds(cls: type[Any], frame: bytes, offset: int) -> None:
    """Raise ProtocolError unless every length in the body fits inside the frame."""
    _Skimmer(frame, offset).entity(cls)
