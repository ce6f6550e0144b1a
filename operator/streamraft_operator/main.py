"""`streamraft-operator`: run the kopf operator with metrics and a liveness endpoint."""

import argparse
import http.server
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from types import FrameType

import kopf

from streamraft_operator import handlers, metrics
from streamraft_operator.clusterreconcile import ALLOW_SECURITY_CONTEXT_OVERRIDE_ENV
from streamraft_operator.kube import Kube, load_api_client
from streamraft_operator.leaderelection import Timing
from streamraft_operator.leaderlease import LeaseElector

log = logging.getLogger("streamraft_operator.main")
DEFAULT_LEASE_NAME = "streamraft-operator"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="streamraft-operator", description="Reconciles StreamCluster and StreamTopic resources."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch only this namespace")
    parser.add_argument("--metrics-port", type=int, default=8080, help="port of /metrics (0 disables)")
    parser.add_argument("--health-port", type=int, default=8081, help="port of /healthz (0 disables)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument(
        "--allow-security-context-override",
        action="store_true",
        help="let StreamClusters run brokers as root or unconfined (refused by default)",
    )
    election = parser.add_argument_group(
        "leader election", "run several replicas; only the holder of a coordination.k8s.io Lease acts"
    )
    election.add_argument("--leader-elect", action="store_true", help="wait for the Lease before acting")
    election.add_argument(
        "--leader-elect-resource-name", default=DEFAULT_LEASE_NAME, help="name of the Lease"
    )
    election.add_argument(
        "--leader-elect-resource-namespace",
        default=os.environ.get("POD_NAMESPACE", ""),
        help="namespace of the Lease (default: $POD_NAMESPACE, the operator's own)",
    )
    election.add_argument(
        "--leader-elect-identity",
        default="",
        help="holder identity (default: $POD_NAME or the host name, plus a per-process suffix)",
    )
    defaults = Timing()
    for flag, default, what in (
        ("lease-duration", defaults.lease_duration_s, "a standby takes over after no renew for this long"),
        ("renew-deadline", defaults.renew_deadline_s, "the leader stops acting after no renew for this long"),
        ("renew-period", defaults.renew_period_s, "the leader renews this often"),
        ("retry-period", defaults.retry_period_s, "standbys look, and failed renews retry, this often"),
    ):
        election.add_argument(
            f"--leader-elect-{flag}", type=float, default=default, metavar="SECONDS", help=what
        )
    args = parser.parse_args(argv)
    for flag in ("metrics_port", "health_port"):
        port = getattr(args, flag)
        if not 0 <= port <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be between 0 and 65535, got {port}")
    if args.leader_elect:
        try:
            args.timing = timing_from(args)
        except ValueError as exc:
            parser.error(str(exc))
        if not args.leader_elect_resource_namespace:
            parser.error("--leader-elect needs --leader-elect-resource-namespace (or $POD_NAMESPACE)")
    return args


def timing_from(args: argparse.Namespace) -> Timing:
    return Timing(
        lease_duration_s=args.leader_elect_lease_duration,
        renew_deadline_s=args.leader_elect_renew_deadline,
        renew_period_s=args.leader_elect_renew_period,
        retry_period_s=args.leader_elect_retry_period,
    )


def identity(explicit: str) -> str:
    """The pod's name plus a per-process suffix (as controller-runtime does): a container restarted in the
    same pod is a new candidate, never mistaken for the holder that died."""
    if explicit:
        return explicit
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class _StandbyHealth(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.split("?")[0] == "/healthz"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"standby\n" if ok else b"not found\n")

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the log


def _wait_for_lease(args: argparse.Namespace) -> LeaseElector | None:
    """Blocks as a standby until this process holds the Lease; None if SIGTERM/SIGINT came first. The
    standby answers /healthz itself (kopf's endpoint only exists once kopf runs), so probes pass."""
    elector = LeaseElector(
        Kube(load_api_client()),
        namespace=args.leader_elect_resource_namespace,
        name=args.leader_elect_resource_name,
        identity=identity(args.leader_elect_identity),
        timing=args.timing,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "leader election: %s stopping on %s while standby", elector.identity, signal.Signals(signum).name
        )
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = None
    if args.health_port:
        server = http.server.ThreadingHTTPServer(("0.0.0.0", args.health_port), _StandbyHealth)
        threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    log.info(
        "leader election: %s is a candidate for lease %s/%s",
        elector.identity,
        elector.namespace,
        elector.name,
    )
    try:
        acquired = elector.acquire(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()  # kopf's liveness endpoint takes the port over
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return elector if acquired else None


def _lost(elector: LeaseElector, reason: str) -> None:
    # Exit at once, without kopf's graceful stop: a graceful stop lets running handlers finish (delete a
    # broker pod, patch a StatefulSet) while a standby may already have taken the Lease, i.e. two
    # operators acting. A non-zero exit makes the kubelet restart the container, which comes back as a
    # new candidate (standby) and kopf, being level-triggered, loses nothing the new leader won't redo.
    log.critical("leader election: %s lost leadership (%s); exiting", elector.identity, reason)
    logging.shutdown()
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.allow_security_context_override:
        os.environ[ALLOW_SECURITY_CONTEXT_OVERRIDE_ENV] = "true"
    assert handlers.cluster_changed is not None  # importing `handlers` registers them with kopf
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    elector = None
    if args.leader_elect:
        metrics.LEADER.set(0)
        elector = _wait_for_lease(args)
        if elector is None:
            return 0
        metrics.LEADER.set(1)
        log.info(
            "leader election: %s is the leader (lease %s/%s); running the handlers",
            elector.identity,
            elector.namespace,
            elector.name,
        )
        elector.start_renewing(lambda reason: _lost(elector, reason))
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    try:
        # kopf stays standalone (no peering): the Lease, not kopf, ensures one operator acts at a time.
        kopf.run(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=liveness,
        )
    finally:
        if elector is not None:
            # After kopf has stopped (SIGTERM): handing the Lease over now is safe and spares the
            # standby a full lease duration.
            elector.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
