"""The librdkafka configuration every client command builds from its flags and environment."""

from __future__ import annotations

import argparse
import os

from streamraft_broker.config import DEFAULT_PORT, ConfigError, parse_host_port

BOOTSTRAP_ENV = "STREAMRAFT_BOOTSTRAP_SERVERS"
MAX_TIMEOUT_S = 24 * 3600.0


def seconds(text: str) -> float:
    """A --timeout: more than 0, at most MAX_TIMEOUT_S."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    return value


def bootstrap_servers(text: str) -> str:
    """HOST:PORT[,HOST:PORT...], each checked."""
    servers = [part.strip() for part in text.split(",")]
    try:
        for server in servers:
            parse_host_port(server, "--bootstrap-server")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--bootstrap-server: ")) from None
    return ",".join(servers)


def add_client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap-server",
        type=bootstrap_servers,
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
    p.add_argument("--timeout", type=seconds, default=30.0, help="seconds to wait for the cluster")


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
