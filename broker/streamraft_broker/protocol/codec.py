"""Request body decode and response encode through kio's generated schema types.

Handlers build responses with `build(...)`, which drops fields a given version does not have and converts
plain ints into kio's time types, so one handler serves every version of its API.
"""

from __future__ import annotations

import datetime
import io
import sys
from dataclasses import fields
from functools import cache
from types import ModuleType
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.header import response_header
from streamraft_broker.protocol.skim import check_bounds
from streamraft_broker.protocol.versions import ApiKey

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@cache
def request_type(api_key: int, version: int) -> type[Any]:
    return load_request_schema(api_key, version)


@cache
def response_type(api_key: int, version: int) -> type[Any]:
    return load_response_schema(api_key, version)


@cache
def response_module(api_key: int, version: int) -> ModuleType:
    return sys.modules[response_type(api_key, version).__module__]


def is_flexible_request(api_key: int, version: int) -> bool:
    return bool(request_type(api_key, version).__flexible__)


def response_header_flexible(api_key: int, version: int) -> bool:
    # ApiVersions always answers with header v0 so a client can read it whatever version it asked for.
    if api_key == ApiKey.API_VERSIONS:
        return False
    return bool(response_type(api_key, version).__flexible__)


def decode_request(api_key: int, version: int, frame: bytes, offset: int) -> Any:
    cls = request_type(api_key, version)
    check_bounds(cls, frame, offset)
    try:
        entity, _size = entity_reader(cls)(frame, offset)
    except Exception as exc:  # kio raises assorted errors on malformed bodies
        raise ProtocolError(f"malformed {cls.__name__} v{version} body: {exc}") from exc
    # Trailing bytes are tolerated as the Java broker does: librdkafka pads some flexible requests.
    return entity


_KINDS: dict[type[Any], dict[str, str]] = {}


def _field_kinds(cls: type[Any]) -> dict[str, str]:
    kinds = _KINDS.get(cls)
    if kinds is None:
        kinds = _KINDS[cls] = {f.name: str(f.metadata.get("kafka_type", "")) for f in fields(cls)}
    return kinds


def _convert(kind: str, value: object) -> object:
    if kind in {"timedelta_i32", "timedelta_i64"}:
        if isinstance(value, int):
            return datetime.timedelta(milliseconds=value)
    elif kind == "datetime_i64" and isinstance(value, int):
        return None if value < 0 else _EPOCH + datetime.timedelta(milliseconds=value)
    return value


def build(cls: type[Any], **values: object) -> Any:
    """Instantiate a kio entity from the fields this version has; extra fields are dropped on purpose."""
    kinds = _field_kinds(cls)
    return cls(**{k: _convert(kinds[k], v) for k, v in values.items() if k in kinds})


def nested(api_key: int, version: int, name: str) -> type[Any]:
    cls = getattr(response_module(api_key, version), name, None)
    assert cls is not None, f"kio has no {name} in response schema of api {api_key} v{version}"
    return cls  # type: ignore[no-any-return]


def nested_or_none(api_key: int, version: int, name: str) -> type[Any] | None:
    """For nested types that only some versions have."""
    cls: type[Any] | None = getattr(response_module(api_key, version), name, None)
    return cls


def has_field(cls: type[Any], name: str) -> bool:
    return name in _field_kinds(cls)


def encode_response(api_key: int, version: int, correlation_id: int, response: Any) -> bytes:
    """Whole frame: size prefix, response header, body."""
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00")
    buf.write(response_header(correlation_id, flexible=response_header_flexible(api_key, version)))
    entity_writer(type(response))(buf, response)
    data = buf.getbuffer()
    data[0:4] = (len(data) - 4).to_bytes(4, "big")
    return bytes(data)
