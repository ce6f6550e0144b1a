"""kopf handlers: short, idempotent, each delegating to one reconcile function.

Change handlers and periodic timers call the same reconcile, serialised per object by a lock, so a timer
firing during an update handler never interleaves with it. Failures become conditions (spec problems) or
kopf retries with a delay (API/broker unreachable); nothing crash-loops the operator.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from streamraft_operator import metrics
from streamraft_operator.applyfailure import ApplyRefused, retry_delay
from streamraft_operator.brokers import BrokersUnreachable
from streamraft_operator.clusterreconcile import reconcile_cluster
from streamraft_operator.constants import (
    CLUSTER_PLURAL,
    GROUP,
    TOPIC_PLURAL,
    USER_PLURAL,
    VERSION,
    WARNING_EVENTS,
)
from streamraft_operator.kube import Kube, KubeError, load_api_client
from streamraft_operator.topicreconcile import delete_topic, reconcile_topic
from streamraft_operator.userreconcile import delete_user, reconcile_user

CLUSTER_RESYNC_S = 10.0
TOPIC_RESYNC_S = 30.0
USER_RESYNC_S = 30.0
RETRY_DELAY_S = 10.0

Log = logging.Logger | logging.LoggerAdapter[Any]

_locks: dict[str, asyncio.Lock] = {}
_refusals: dict[str, tuple[int, float]] = {}
"""uid -> (consecutive refused applies, monotonic time before which timers do not try again)."""
_kube: Kube | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube(load_api_client())
    return _kube


def _lock(uid: str) -> asyncio.Lock:
    return _locks.setdefault(uid, asyncio.Lock())


Reconcile = Callable[[Kube, dict[str, Any], Callable[[str, str], None]], Awaitable[dict[str, Any]]]


async def _run(
    kind: str, reconcile: Reconcile, body: kopf.Body, logger: Log, *, periodic: bool = False
) -> None:
    uid = body.metadata.uid or ""
    if periodic and time.monotonic() < _refusals.get(uid, (0, 0.0))[1]:
        return  # backing off after a refused apply (status says why); a spec change still runs at once
    events: list[tuple[str, str]] = []
    async with _lock(uid):
        try:
            with metrics.timed(kind):
                written = await reconcile(kube(), dict(body), lambda r, m: events.append((r, m)))
        except ApplyRefused as exc:
            metrics.ERRORS.labels(kind, "ApplyRefused").inc()
            attempts = _refusals.get(uid, (0, 0.0))[0] + 1
            delay = retry_delay(attempts)
            _refusals[uid] = (attempts, time.monotonic() + delay)
            raise kopf.TemporaryError(f"{exc.what}; retrying in {delay:.0f}s", delay=delay) from exc
        except KubeError as exc:
            metrics.ERRORS.labels(kind, "KubeError").inc()
            raise kopf.TemporaryError(str(exc), delay=RETRY_DELAY_S) from exc
        finally:
            for reason, message in events:
                kind_of = "Warning" if reason in WARNING_EVENTS else "Normal"
                kopf.event(body, type=kind_of, reason=reason, message=message)
    _refusals.pop(uid, None)
    if written:
        logger.info(f"status updated: {', '.join(sorted(written))}")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and diff-base live in annotations: our status schema is closed (no status.kopf field).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300


@kopf.on.create(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.update(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.resume(GROUP, VERSION, CLUSTER_PLURAL)
async def cluster_changed(body: kopf.Body, logger: Log, **_: Any) -> None:
    await _run("StreamCluster", reconcile_cluster, body, logger)


@kopf.timer(GROUP, VERSION, CLUSTER_PLURAL, interval=CLUSTER_RESYNC_S, initial_delay=CLUSTER_RESYNC_S)
async def cluster_resync(body: kopf.Body, logger: Log, **_: Any) -> None:
    await _run("StreamCluster", reconcile_cluster, body, logger, periodic=True)


@kopf.on.create(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.update(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.resume(GROUP, VERSION, TOPIC_PLURAL)
async def topic_changed(body: kopf.Body, logger: Log, **_: Any) -> None:
    await _run("StreamTopic", reconcile_topic, body, logger)


@kopf.timer(GROUP, VERSION, TOPIC_PLURAL, interval=TOPIC_RESYNC_S, initial_delay=TOPIC_RESYNC_S)
async def topic_resync(body: kopf.Body, logger: Log, **_: Any) -> None:
    """Periodic resync: reverts drift made behind the operator's back (e.g. kafka-configs)."""
    await _run("StreamTopic", reconcile_topic, body, logger)


@kopf.on.delete(GROUP, VERSION, TOPIC_PLURAL, retries=30, backoff=RETRY_DELAY_S)
async def topic_deleted(body: kopf.Body, logger: Log, retry: int, **_: Any) -> None:
    await _delete("StreamTopic", delete_topic, "delete the Kafka topic", body, logger)


@kopf.on.create(GROUP, VERSION, USER_PLURAL)
@kopf.on.update(GROUP, VERSION, USER_PLURAL)
@kopf.on.resume(GROUP, VERSION, USER_PLURAL)
async def user_changed(body: kopf.Body, logger: Log, **_: Any) -> None:
    await _run("StreamUser", reconcile_user, body, logger)


@kopf.timer(GROUP, VERSION, USER_PLURAL, interval=USER_RESYNC_S, initial_delay=USER_RESYNC_S)
async def user_resync(body: kopf.Body, logger: Log, **_: Any) -> None:
    """Periodic resync: reverts ACLs changed behind the operator's back, renews client certificates."""
    await _run("StreamUser", reconcile_user, body, logger)


@kopf.on.delete(GROUP, VERSION, USER_PLURAL, retries=30, backoff=RETRY_DELAY_S)
async def user_deleted(body: kopf.Body, logger: Log, retry: int, **_: Any) -> None:
    await _delete("StreamUser", delete_user, "remove the Kafka user", body, logger)


async def _delete(
    kind: str,
    deleter: Callable[[Kube, Mapping[str, Any]], Awaitable[str]],
    what: str,
    body: kopf.Body,
    logger: Log,
) -> None:
    """A finalizer's work: undo the resource in the brokers, retried while they cannot be reached."""
    async with _lock(body.metadata.uid or ""):
        try:
            with metrics.timed(kind):
                done = await deleter(kube(), dict(body))
        except (BrokersUnreachable, KubeError) as exc:
            metrics.ERRORS.labels(kind, type(exc).__name__).inc()
            raise kopf.TemporaryError(f"cannot {what} yet: {exc}", delay=RETRY_DELAY_S) from exc
    _locks.pop(body.metadata.uid or "", None)
    logger.info(done)
