"""The librdkafka configuration every client command builds from its flags and environment."""

from __future__ import annotations

import argparse
import os

from streamraft_broker.config import DEFAULT_PORT, ConfigError

BOOTSTRAP_ENV = "STREAMRAFT_BOOTSTRAP_SERVERS"


def add_client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap-server",
        default=os.environ.get(BOOTSTRAP_ENV, f"127.0.0.1:{DEFAULT_PORT}"),
        help=f"HOST:PORT[,HOST:PORT...] of any brokers (env {BOOTSTRAP_ENV})",
    )
    p.add_argument(
        "-X",
        dest="client_config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka client property, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the cluster")


ClientConfig = dict[str, str | int | float | bool]
"""librdkafka properties, typed as confluent-kafka takes them."""


def client_config(args: argparse.Namespace) -> ClientConfig:
    # log_level 0: a broker that is down is reported once as the command's error, not as librdkafka's
    # reconnect log (-X log_level=6 brings it back).
    conf: ClientConfig = {"bootstrap.servers": str(args.bootstrap_server), "log_level": "0"}
    for item in args.client_config:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"-X {item!r} must be KEY=VALUE (a librdkafka property)")
        conf[key] = value
    return conf
