"""Reading a broker's Prometheus /metrics page in tests."""

from __future__ import annotations

import urllib.request


def scrape(url: str) -> dict[str, float]:
    """Every sample on the page: 'name{labels}' -> value."""
    values: dict[str, float] = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
