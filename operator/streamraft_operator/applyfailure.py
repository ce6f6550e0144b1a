"""Applies the API server refuses: which failures retrying cannot fix, how they read in status, and the
backoff between attempts. Pure; clusterreconcile and handlers act on it."""

from streamraft_operator.kube import KubeError

# Invalid (422), bad request (400), forbidden (403, RBAC or an admission webhook), conflict (409): the same
# request gets the same answer until someone changes the spec or the cluster, so it is reported, not looped.
REFUSED_STATUSES = frozenset({400, 403, 409, 422})
RETRY_BASE_S = 10.0
RETRY_MAX_S = 300.0


def refused(exc: KubeError) -> bool:
    return exc.status in REFUSED_STATUSES


def describe(kind: str, name: str, exc: KubeError) -> str:
    """What status and the Event say: the object and the API server's own message."""
    return f"{kind} {name}: {exc.message} (HTTP {exc.status})"


def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1` after `attempts` consecutive refusals: doubling, capped."""
    if attempts <= 0:
        return 0.0
    return min(RETRY_BASE_S * float(2 ** min(attempts - 1, 16)), RETRY_MAX_S)


class ApplyRefused(KubeError):
    """Raised after status and an Event recorded the refusal, so the handler retries with backoff."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(status, what)
        self.what = what
