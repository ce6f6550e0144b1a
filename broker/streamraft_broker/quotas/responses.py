"""Puts a request's throttle time into its response's ``throttle_time_ms``, whatever the API."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from streamraft_broker.handlers.context import RawResponse
from streamraft_broker.protocol.codec import has_field
from streamraft_broker.protocol.fetch_response import set_throttle
from streamraft_broker.protocol.versions import ApiKey


def with_throttle(api_key: int, version: int, result: Any, throttle_ms: int) -> Any:
    """``result`` (a kio response, a pre-framed Fetch response or None) carrying ``throttle_ms``."""
    if throttle_ms <= 0 or result is None:
        return result
    if isinstance(result, RawResponse):
        if api_key == ApiKey.FETCH:
            set_throttle(result.parts, version, throttle_ms)
        return result
    if not has_field(type(result), "throttle_time"):
        return result  # versions before the field existed: the client learns it from the mute alone
    return dataclasses.replace(result, throttle_time=datetime.timedelta(milliseconds=throttle_ms))
