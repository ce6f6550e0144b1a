"""Kafka's quota sensor arithmetic, sans I/O: a rate over a sliding window of samples and the throttle time.

Kafka's ``SampledStat``/``Rate`` with ``quota.window.num`` samples of ``quota.window.size.seconds`` each:
a value is added to the current sample (a new one starts when the current is a window old, reusing the
oldest slot); samples older than ``num * size`` count as empty; the rate is their sum divided by the time
since the oldest sample started, but never by less than ``num - 1`` whole windows, so a fresh client may
send up to ``(num - 1) * size`` seconds of quota at once. When a rate exceeds its bound ``B``, the throttle
time is Kafka's ``(rate - B) / B * window``: how long the client must stay silent for the rate over the
window to come back to ``B``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowConfig:
    samples: int = 11
    """``quota.window.num``"""
    window_ms: int = 1000
    """``quota.window.size.seconds`` in milliseconds"""


class RateSensor:
    """One (quota type, user, client-id) sensor; times are milliseconds on any monotonic clock."""

    __slots__ = ("_config", "_current", "_starts", "_values", "last_record_ms")

    def __init__(self, config: WindowConfig, now_ms: float) -> None:
        self._config = config
        self._starts = [now_ms]
        self._values = [0.0]
        self._current = 0
        self.last_record_ms = now_ms

    def record(self, value: float, now_ms: float) -> None:
        cfg = self._config
        if now_ms - self._starts[self._current] >= cfg.window_ms:
            self._current = (self._current + 1) % cfg.samples
            if self._current >= len(self._starts):
                self._starts.append(now_ms)
                self._values.append(0.0)
            else:
                self._starts[self._current] = now_ms
                self._values[self._current] = 0.0
        self._values[self._current] += value
        self.last_record_ms = now_ms

    def _purge(self, now_ms: float) -> None:
        expire = self._config.samples * self._config.window_ms
        for i, start in enumerate(self._starts):
            if now_ms - start >= expire:
                self._starts[i] = now_ms
                self._values[i] = 0.0

    def window_ms(self, now_ms: float) -> float:
        """Kafka's ``Rate.windowSize``: elapsed since the oldest sample, at least ``samples - 1`` windows."""
        self._purge(now_ms)
        cfg = self._config
        elapsed = now_ms - min(self._starts)
        full = int(elapsed // cfg.window_ms)
        if full < cfg.samples - 1:
            elapsed += (cfg.samples - 1 - full) * cfg.window_ms
        return max(elapsed, 1.0)

    def rate(self, now_ms: float) -> float:
        """Per second."""
        window = self.window_ms(now_ms)
        return sum(self._values) / (window / 1000.0)

    def throttle_ms(self, bound: float, now_ms: float) -> int:
        """0 within the bound; otherwise Kafka's ``QuotaUtils.throttleTime``."""
        window = self.window_ms(now_ms)
        rate = sum(self._values) / (window / 1000.0)
        if rate <= bound:
            return 0
        return round((rate - bound) / bound * window)
