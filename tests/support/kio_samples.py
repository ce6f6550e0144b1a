"""Build a sample instance of any kio entity by introspection (for version-coverage tests)."""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

_PRIMITIVE: dict[str, Any] = {
    "bool": False,
    "int8": 0,
    "int16": 0,
    "int32": 0,
    "int64": 0,
    "uint16": 0,
    "float64": 0.0,
    "string": "x",
    "bytes": b"",
    "uuid": uuid.UUID(int=1),  # kio reads the all-zero UUID back as None
    "error_code": ErrorCode.none,
    "timedelta_i32": datetime.timedelta(0),
    "timedelta_i64": datetime.timedelta(0),
    "datetime_i64": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    "records": None,
}


def _entity_of(hint: Any) -> type[Any] | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            found = _entity_of(arg)
            if found is not None:
                return found
    return None


def sample(cls: type[Any], overrides: dict[str, Any] | None = None) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if overrides and f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        kind = f.metadata.get("kafka_type")
        hint = hints[f.name]
        if kind is None:
            # A nested entity (or tuple of them).
            if typing.get_origin(hint) is tuple:
                inner = typing.get_args(hint)[0]
                values[f.name] = (sample(inner),)
            else:
                entity = _entity_of(hint)
                values[f.name] = sample(entity) if entity is not None else None
        elif typing.get_origin(hint) is tuple or "tuple" in str(hint):
            values[f.name] = ()
        else:
            values[f.name] = _PRIMITIVE[str(kind)]
    return cls(**values)
