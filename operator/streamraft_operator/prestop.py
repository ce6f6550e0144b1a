"""preStop hook of broker pods: ask the local broker to hand off its leaderships, then wait (bounded) until
it leads nothing, so clients see a leader change instead of a timeout when the pod stops.

    python -m streamraft_operator.prestop [--metrics-port 9644] [--timeout 60]

Talks to the broker only over HTTP on localhost. A broker without the hand-off endpoint (404/refused) is
left alone: the SIGTERM that follows still stops it gracefully. Always exits 0 so a failed hand-off never
blocks pod termination beyond the timeout.
"""

import argparse
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

HANDOFF_PATH = "/admin/leadership/handoff"
LED_METRIC = "streamraft_partitions_led"
POLL_S = 0.5


def partitions_led(metrics_text: str) -> int | None:
    total: float | None = None
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == LED_METRIC:
                total = (total or 0.0) + sample.value
    return None if total is None else int(total)


def request_handoff(port: int) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{HANDOFF_PATH}", data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_until_leads_nothing(port: int, deadline: float) -> int | None:
    led: int | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
                led = partitions_led(resp.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError, ValueError):
            return led
        if not led:
            return led
        time.sleep(POLL_S)  # polling the broker's own gauge: there is nothing to block on
    return led


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamraft_operator.prestop", description=__doc__)
    parser.add_argument("--metrics-port", type=int, default=9644)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + max(0.0, args.timeout)
    if not request_handoff(args.metrics_port):
        print("prestop: broker has no leadership hand-off endpoint; stopping without it", file=sys.stderr)
        return 0
    left = wait_until_leads_nothing(args.metrics_port, deadline)
    print(f"prestop: hand-off done, partitions still led: {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
