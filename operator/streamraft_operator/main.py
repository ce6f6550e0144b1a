"""`streamraft-operator`: run the kopf operator with metrics and a liveness endpoint."""

import argparse
import logging
import os
import sys

import kopf

from streamraft_operator import handlers, metrics
from streamraft_operator.clusterreconcile import ALLOW_SECURITY_CONTEXT_OVERRIDE_ENV


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
    args = parser.parse_args(argv)
    for flag in ("metrics_port", "health_port"):
        port = getattr(args, flag)
        if not 0 <= port <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be between 0 and 65535, got {port}")
    return args


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
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
