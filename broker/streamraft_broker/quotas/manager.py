"""Quota enforcement: the sensors of active clients and the throttle time each request earns.

As Kafka's ClientQuotaManager: produce requests are measured in request bytes, fetch responses in response
bytes and every request in handler time (``request_percentage``: percent of one thread); each quota key
resolves per (user, client-id) through the eight-level precedence of ``entities``; the throttle time goes
back in the response's ``throttle_time_ms`` and the connection stops reading for that long (Kafka 2.0+).
With no user or client-id quota configured nothing is recorded at all.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from streamraft_broker.quotas.accounting import RequestAccount, current_account
from streamraft_broker.quotas.entities import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    ClientQuotas,
)
from streamraft_broker.quotas.sensor import RateSensor, WindowConfig
from streamraft_broker.quotas.store import QuotaFile
from streamraft_broker.security.principal import current_session

PRODUCE, FETCH, REQUEST = "produce", "fetch", "request"
_KEY_OF = {PRODUCE: PRODUCER_BYTE_RATE, FETCH: CONSUMER_BYTE_RATE, REQUEST: REQUEST_PERCENTAGE}
MAX_SENSORS = 50_000
"""Sensors kept at most (least recently used go first): client-ids are chosen by clients, so unbounded
sensors would let one client grow the broker's memory without limit."""
MAX_TAG_CHARS = 128
INACTIVE_SENSOR_S = 3600.0
"""Kafka drops a sensor after an hour without records."""
MAX_THROTTLE_MS = 2**31 - 1
EXEMPT_APIS = frozenset({56, 62, 64})
"""AlterPartition, BrokerRegistration, UnregisterBroker: brokers' calls to the controller (Kafka exempts
cluster actions from the request quota)."""
_THROTTLE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _bounded(tag: str) -> str:
    """A sensor key part of bounded size: a client-id may be 32 KiB, and 50,000 of those would be 1.6 GB."""
    if len(tag) <= MAX_TAG_CHARS:
        return tag
    return "sha256:" + hashlib.sha256(tag.encode("utf-8", "surrogatepass")).hexdigest()


class QuotaManager:
    def __init__(
        self,
        source: Callable[[], ClientQuotas],
        config: WindowConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_sensors: int = MAX_SENSORS,
        store: QuotaFile | None = None,
    ) -> None:
        self.store = store
        """Single node: where AlterClientQuotas writes (replicated, the controller log is)."""
        self._source = source
        """The current quota configuration (the controller state's, which a snapshot may replace)."""
        self.config = config or WindowConfig()
        self._clock = clock
        self._max_sensors = max_sensors
        self._sensors: OrderedDict[tuple[str, str, str], RateSensor] = OrderedDict()
        self.throttle_time = Histogram(
            "streamraft_quota_throttle_time_seconds",
            "Throttle time given to clients over a quota, by quota type (produce, fetch, request)",
            ["quota_type"],
            buckets=_THROTTLE_BUCKETS,
            registry=registry,
        )
        self.sensor_count = Gauge(
            "streamraft_quota_sensors", "Quota sensors of active (user, client-id) pairs", registry=registry
        )

    @property
    def quotas(self) -> ClientQuotas:
        return self._source()

    def begin(self, client_id: str | None, size: int) -> RequestAccount | None:
        """The request's account, or None when no user or client-id quota exists (nothing to measure)."""
        if not self._source().has_user_client_quotas:
            return None
        return RequestAccount(current_session().principal.name, client_id or "", size)

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    def _sensor(self, kind: str, account: RequestAccount, now_ms: float) -> tuple[RateSensor, float] | None:
        resolved = self._source().resolve(_KEY_OF[kind], account.user, account.client_id)
        if resolved is None:
            return None
        key = (kind, _bounded(resolved.user_tag), _bounded(resolved.client_tag))
        sensor = self._sensors.get(key)
        if sensor is None:
            while self._sensors:
                oldest_key, oldest = next(iter(self._sensors.items()))
                idle = (now_ms - oldest.last_record_ms) / 1000.0
                if len(self._sensors) < self._max_sensors and idle < INACTIVE_SENSOR_S:
                    break
                del self._sensors[oldest_key]
            sensor = self._sensors[key] = RateSensor(self.config, now_ms)
            self.sensor_count.set(len(self._sensors))
        else:
            self._sensors.move_to_end(key)
        return sensor, resolved.bound

    def _record(self, kind: str, account: RequestAccount, value: float) -> int:
        now = self._now_ms()
        found = self._sensor(kind, account, now)
        if found is None:
            return 0
        sensor, bound = found
        sensor.record(value, now)
        return min(sensor.throttle_ms(bound, now), MAX_THROTTLE_MS)

    def _set_bandwidth(self, account: RequestAccount, kind: str, throttle: int) -> None:
        if throttle > account.bandwidth_throttle_ms:
            account.bandwidth_throttle_ms, account.bandwidth_type = throttle, kind

    # -- the calls of the produce and fetch handlers ----------------------------------------------------

    def record_produce(self, acks: int) -> int:
        """Counts the request's bytes against ``producer_byte_rate``; returns the throttle time (ms).
        The data is appended either way, as in Kafka."""
        account = current_account()
        if account is None:
            return 0
        account.request_quota_exempt = acks == 0
        throttle = self._record(PRODUCE, account, float(account.size))
        self._set_bandwidth(account, PRODUCE, throttle)
        return throttle

    def fetch_byte_limit(self) -> int | None:
        """Kafka caps a consumer's fetch at what its quota lets through in ``num - 1`` windows, so a fetch
        never earns a throttle by its size alone; None without a consumer quota."""
        account = current_account()
        if account is None:
            return None
        resolved = self._source().resolve(CONSUMER_BYTE_RATE, account.user, account.client_id)
        if resolved is None:
            return None
        window_s = (self.config.samples - 1) * self.config.window_ms / 1000.0
        return max(1, min(int(resolved.bound * window_s), 2**31 - 1))

    def record_fetch(self, response_bytes: int) -> int:
        """Counts the response's bytes against ``consumer_byte_rate``; returns the throttle time (ms). A
        throttled fetch is answered empty (Kafka's throttled response), so its bytes are taken back out."""
        account = current_account()
        if account is None:
            return 0
        now = self._now_ms()
        found = self._sensor(FETCH, account, now)
        if found is None:
            return 0
        sensor, bound = found
        sensor.record(float(response_bytes), now)
        throttle = min(sensor.throttle_ms(bound, now), MAX_THROTTLE_MS)
        if throttle > 0:
            sensor.record(-float(response_bytes), now)
        self._set_bandwidth(account, FETCH, throttle)
        return throttle

    # -- the connection's call once the handler is done ---------------------------------------------------

    def finish(self, account: RequestAccount, api_key: int) -> int:
        """Records the handler time against ``request_percentage`` and returns the throttle time of the
        request: the larger of its bandwidth and request-time throttles."""
        request_throttle = 0
        if api_key not in EXEMPT_APIS and not account.request_quota_exempt:
            # Kafka records nanoseconds * 100 / 1e9: per second of window, a percentage of one thread.
            request_throttle = self._record(REQUEST, account, account.busy_s * 100.0)
            # Kafka bounds the request-time throttle by one window (ClientRequestQuotaManager).
            request_throttle = min(request_throttle, self.config.window_ms)
        if account.bandwidth_throttle_ms > 0:
            self.throttle_time.labels(account.bandwidth_type).observe(account.bandwidth_throttle_ms / 1000.0)
        if request_throttle > 0:
            self.throttle_time.labels(REQUEST).observe(request_throttle / 1000.0)
        return max(account.bandwidth_throttle_ms, request_throttle)
