"""The I/O shell of leader election: reads and conditionally writes the Lease, on threads of its own.

The decisions are `leaderelection.py`'s; this module only supplies the clocks, the API calls and the loops:
`acquire` blocks a standby until it holds the Lease, `start_renewing` keeps it and calls `on_lost` the
moment it can no longer be sure it does, `release` gives it up on a clean stop.
"""

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from streamraft_operator import metrics
from streamraft_operator.kube import Kube, KubeError, path_for
from streamraft_operator.leaderelection import (
    LEASE_API_VERSION,
    Action,
    LeaseRecord,
    Observed,
    Timing,
    decide,
    lease_spec,
    must_step_down,
    observe,
    parse_record,
    released_spec,
)

log = logging.getLogger(__name__)

# How often the watchdog compares the time since the last renew with the deadline; a hung API request
# must not delay the step-down, so this does not wait on the renewing thread.
_WATCHDOG_S = 0.2


def _wall_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaseElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self._observed: Observed | None = None
        self._last_renewed = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- one round
    def _path(self) -> str:
        return path_for(LEASE_API_VERSION, "Lease", self.namespace, self.name)

    def _read(self) -> LeaseRecord | None:
        lease = self._kube.request("GET", self._path(), timeout=self.timing.retry_period_s)
        return None if lease is None else parse_record(lease)

    def _write(self, spec: dict[str, Any], resource_version: str | None) -> LeaseRecord | None:
        """The written record, or None when another writer got there first (409 Conflict)."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        body = {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": meta, "spec": spec}
        try:
            if resource_version is None:
                path = path_for(LEASE_API_VERSION, "Lease", self.namespace)
                out = self._kube.request("POST", path, body=body, timeout=self.timing.retry_period_s)
            else:
                meta["resourceVersion"] = resource_version  # optimistic concurrency: 409 if it changed
                out = self._kube.request("PUT", self._path(), body=body, timeout=self.timing.retry_period_s)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise
        return None if out is None else parse_record(out)

    def try_acquire_or_renew(self) -> bool:
        """One look at the Lease and, if `decide` says so, one conditional write. True while we hold it.
        API failures raise KubeError (the callers retry)."""
        record = self._read()
        now = self._clock()
        self._observed = None if record is None else observe(self._observed, record, now)
        action = decide(now, self._observed, self.identity)
        if action is Action.WAIT:
            return False
        spec = lease_spec(action, record, self.identity, _wall_now(), self.timing)
        written = self._write(spec, None if record is None else record.resource_version)
        if written is None:
            return False
        self._observed = Observed(written, self._clock())
        self._last_renewed = now  # timed before the write: the deadline errs on the early side
        if action is not Action.RENEW:
            log.info("leader election: %s acquired lease %s/%s", self.identity, self.namespace, self.name)
        return True

    def holder(self) -> str:
        return self._observed.record.holder if self._observed is not None else ""

    # --- loops
    def acquire(self, stop: threading.Event) -> bool:
        """Blocks until this process holds the Lease (True) or `stop` is set (False)."""
        announced = ""
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    return True
            except KubeError as exc:
                log.warning("leader election: cannot read or write lease %s: %s", self.name, exc)
            if self.holder() and self.holder() != announced:
                announced = self.holder()
                log.info("leader election: standby %s; %s leads", self.identity, announced)
            stop.wait(self.timing.retry_period_s)
        return False

    def start_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renews every renew period (retrying failures every retry period) on one thread; a watchdog
        thread calls `on_lost` once the renew deadline passes or another holder shows up."""
        renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        watchdog = threading.Thread(target=self._watch, args=(on_lost,), name="lease-watchdog", daemon=True)
        self._threads = [renewer, watchdog]
        for t in self._threads:
            t.start()

    def _renew_loop(self) -> None:
        wait = self.timing.renew_period_s
        while not self._stop.wait(wait):
            try:
                held = self.try_acquire_or_renew()
            except KubeError as exc:
                log.warning("leader election: renew of lease %s failed: %s", self.name, exc)
                wait = self.timing.retry_period_s
                continue
            if not held:
                self._lost = f"lease {self.name} is now held by {self.holder() or 'nobody'}"
                return
            wait = self.timing.renew_period_s

    def _watch(self, on_lost: Callable[[str], None]) -> None:
        while not self._stop.wait(_WATCHDOG_S):
            reason = self._lost
            if reason is None and must_step_down(self._clock(), self._last_renewed, self.timing):
                reason = f"lease {self.name} not renewed for {self.timing.renew_deadline_s:.0f}s"
            if reason is not None:
                metrics.LEADER.set(0)
                on_lost(reason)
                return

    def release(self) -> None:
        """Stops renewing and, if the Lease is still ours, empties its holder so a standby takes over on
        its next look. Best effort: if this fails the Lease simply expires."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timing.retry_period_s * 2)
        metrics.LEADER.set(0)
        try:
            record = self._read()
            if record is None:
                return
            spec = released_spec(record, self.identity, _wall_now())
            if spec is not None and self._write(spec, record.resource_version) is not None:
                log.info("leader election: %s released lease %s/%s", self.identity, self.namespace, self.name)
        except KubeError as exc:
            log.warning("leader election: could not release lease %s (it will expire): %s", self.name, exc)
