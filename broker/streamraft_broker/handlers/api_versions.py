"""ApiVersions: advertise every supported API key and version range."""

from __future__ import annotations

from typing import Any

from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import SUPPORTED, ApiKey

UNSUPPORTED_VERSION = 35


def api_versions_response(version: int, *, error_code: int = 0) -> Any:
    cls = response_type(ApiKey.API_VERSIONS, version)
    item = nested(ApiKey.API_VERSIONS, version, "ApiVersion")
    keys = tuple(
        build(item, api_key=int(k), min_version=lo, max_version=hi) for k, (lo, hi) in SUPPORTED.items()
    )
    return build(cls, error_code=err(error_code), api_keys=keys, throttle_time=0)


async def handle_api_versions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    return api_versions_response(header.api_version)
