"""`streamraft` command line: broker, local up, topics, produce, consume."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from streamraft_broker.clitools.errors import CommandError
from streamraft_broker.clitools.kafka import add_client_flags, client_config
from streamraft_broker.config import (
    DEFAULT_ADMIN_PORT,
    DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES,
    DEFAULT_METRICS_PORT,
    DEFAULT_PORT,
    SECURITY_KEYS,
    BrokerConfig,
    ConfigError,
    load_config,
)
from streamraft_broker.logging_setup import setup_logging
from streamraft_broker.topics.configs import InvalidTopicConfigError, validate_topic_configs
from streamraft_broker.topics.names import topic_name_problem

log = logging.getLogger("streamraft")

MAX_PARTITIONS = 10_000  # the registry's bound


# Argument types: argparse turns ArgumentTypeError into "argument --x: <message>" and exit code 2, so every
# bad value is one clear line instead of a traceback from the client library.
def _int_in(low: int, high: int, *, also: tuple[int, ...] = ()) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value not in also and not low <= value <= high:
            extra = f" (or {', '.join(map(str, also))})" if also else ""
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}{extra}")
        return value

    return parse


def _topic(text: str) -> str:
    problem = topic_name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _topic_config(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE")
    try:
        validate_topic_configs({key: value})
    except InvalidTopicConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return key, value


def _separator(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _add_broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML (.yaml/.yml) or TOML (.toml) file of settings")
    p.add_argument("--node-id", help="this broker's node id (STREAMRAFT_NODE_ID)")
    p.add_argument("--data-dir", help="directory for logs and metadata (STREAMRAFT_DATA_DIR)")
    p.add_argument("--listen", help=f"HOST:PORT for Kafka clients, default 127.0.0.1:{DEFAULT_PORT}")
    p.add_argument("--advertise", help="HOST:PORT told to clients (default: listen address)")
    p.add_argument(
        "--metrics-listen", help=f"HOST:PORT for /metrics (default port {DEFAULT_METRICS_PORT}) or off"
    )
    p.add_argument(
        "--socket-request-max-bytes",
        help="largest accepted request frame in bytes (Kafka's socket.request.max.bytes, default 104857600)",
    )
    p.add_argument(
        "--queued-max-request-bytes",
        help="bytes of requests held for all connections together before the broker stops reading sockets "
        "(Kafka's queued.max.request.bytes; default 536870912, -1 = unbounded as Kafka's default)",
    )
    p.add_argument(
        "--connections-max-idle-ms",
        help="close connections with no request for this long (connections.max.idle.ms, default 600000)",
    )
    p.add_argument(
        "--request-read-timeout-ms",
        help="a started request frame must arrive whole within this (not a Kafka setting; default 60000)",
    )
    p.add_argument("--max-connections", help="refuse connections beyond this many (max.connections)")
    p.add_argument("--max-connections-per-ip", help="refuse connections beyond this many per client address")
    p.add_argument(
        "--message-max-bytes",
        help="max.message.bytes of topics that set none (Kafka's message.max.bytes, default 1048588)",
    )
    p.add_argument(
        "--auto-create-topics-enable",
        "--auto-create-topics",
        dest="auto_create_topics_enable",
        help="true (default)/false: create unknown topics a Metadata request names "
        "(auto.create.topics.enable)",
    )
    p.add_argument(
        "--num-partitions",
        "--default-partitions",
        dest="num_partitions",
        help="partitions of auto-created topics, default 1 (num.partitions)",
    )
    p.add_argument(
        "--default-replication-factor",
        help="replicas of auto-created topics, default 3, capped at the brokers there are "
        "(default.replication.factor)",
    )
    p.add_argument(
        "--admin-listen",
        help=f"HOST:PORT for the admin API (default 127.0.0.1:{DEFAULT_ADMIN_PORT}: loopback only) or off",
    )
    p.add_argument("--admin-token-file", help="file holding the bearer token admin requests must send")
    p.add_argument("--admin-tls-cert", help="admin API over TLS: server certificate (PEM)")
    p.add_argument("--admin-tls-key", help="admin API over TLS: private key of --admin-tls-cert (PEM)")
    p.add_argument("--admin-tls-ca", help="admin API over TLS: CA that must sign client certificates (mTLS)")
    p.add_argument("--admin-max-connections", help="admin/metrics HTTP connections served at once (16)")
    p.add_argument(
        "--admin-request-timeout-ms", help="an admin/metrics HTTP request must arrive within this (10000)"
    )
    p.add_argument("--log-format", help="text or json")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--in-memory", help="true/false: keep partition logs in memory (tests only)")
    p.add_argument("--zero-copy", help="true/false: serve fetches with sendfile")
    p.add_argument("--retention-check-ms", help="how often segments past retention are deleted")
    p.add_argument("--log-cleaner-enable", help="true/false: compact cleanup.policy=compact topics (true)")
    p.add_argument("--log-cleaner-backoff-ms", help="pause between two log cleaner passes (15000)")
    p.add_argument(
        "--log-cleaner-dedupe-buffer-size", help="bytes for one cleaner pass's key map (134217728)"
    )
    p.add_argument(
        "--transaction-max-timeout-ms", help="longest transaction.timeout.ms a producer may ask for"
    )
    p.add_argument(
        "--transactional-id-expiration-ms", help="forget transactional ids with no transaction for this long"
    )
    p.add_argument(
        "--ready-file", help="write {port, metrics_port, admin_port, pid} as JSON here once listening"
    )
    p.add_argument("--replication", help="none (default, single node) or raft (partitions as Raft groups)")
    p.add_argument(
        "--cluster-members", help="ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,... of every broker (replication=raft)"
    )
    p.add_argument(
        "--cluster-id",
        help="cluster.id all brokers report (default: derived from the first three members' Raft addresses)",
    )
    p.add_argument("--raft-listen", help="HOST:PORT for the Raft transport (default: from cluster members)")
    p.add_argument("--rack", help="rack or zone of this broker, for rack-aware placement (STREAMRAFT_RACK)")
    p.add_argument(
        "--raft-log",
        help="partition (default: a partition's segments are its Raft log, one write per replica) or "
        "separate (a consensus log beside them, copied as entries apply)",
    )
    p.add_argument(
        "--controller-snapshot-entries",
        help="snapshot the cluster metadata and compact the controller's Raft log every this many applied "
        f"entries, default {DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES} (replication=raft)",
    )
    p.add_argument(
        "--authorizer-class-name",
        help="authorizer.class.name: any non-empty value (e.g. streamraft.acl) enables Kafka ACLs",
    )
    p.add_argument(
        "--super-users", help="super.users: principals allowed everything, e.g. User:admin;User:ops"
    )
    p.add_argument(
        "--allow-everyone-if-no-acl-found",
        help="allow.everyone.if.no.acl.found: true/false (default false): resources without ACLs are open",
    )
    p.add_argument(
        "--allow-broker-join",
        help="true/false (default false): accept registrations of broker ids not in --cluster-members",
    )
    p.add_argument(
        "--auto-leader-rebalance-enable",
        help="auto.leader.rebalance.enable: true/false (default true): leaders return to preferred replicas",
    )
    p.add_argument(
        "--quota-window-num", help="samples in a client quota's sliding window (quota.window.num), default 11"
    )
    p.add_argument(
        "--quota-window-size-seconds",
        help="length of one client quota sample (quota.window.size.seconds), default 1",
    )
    p.add_argument(
        "--raft-tls-cert",
        help="PEM certificate of this broker for mutual TLS between brokers' Raft transports; it must name "
        "spiffe://streamraft/node/<node id> (with --raft-tls-key and --raft-tls-ca)",
    )
    p.add_argument("--raft-tls-key", help="PEM private key of --raft-tls-cert")
    p.add_argument("--raft-tls-ca", help="PEM CA certificate(s) Raft peers' certificates must chain to")
    for key in SECURITY_KEYS:
        p.add_argument("--" + key.replace("_", "-"), help=f"Kafka's {key.replace('_', '.')} (security)")


_BROKER_KEYS = [
    "node_id",
    "data_dir",
    "listen",
    "advertise",
    "metrics_listen",
    "socket_request_max_bytes",
    "queued_max_request_bytes",
    "connections_max_idle_ms",
    "request_read_timeout_ms",
    "max_connections",
    "max_connections_per_ip",
    "message_max_bytes",
    "auto_create_topics_enable",
    "num_partitions",
    "default_replication_factor",
    "admin_listen",
    "admin_token_file",
    "admin_tls_cert",
    "admin_tls_key",
    "admin_tls_ca",
    "admin_max_connections",
    "admin_request_timeout_ms",
    "log_format",
    "log_level",
    "in_memory",
    "zero_copy",
    "ready_file",
    "retention_check_ms",
    "log_cleaner_enable",
    "log_cleaner_backoff_ms",
    "log_cleaner_dedupe_buffer_size",
    "transaction_max_timeout_ms",
    "transactional_id_expiration_ms",
    "replication",
    "cluster_members",
    "cluster_id",
    "raft_listen",
    "rack",
    "raft_log",
    "controller_snapshot_entries",
    "authorizer_class_name",
    "super_users",
    "allow_everyone_if_no_acl_found",
    "allow_broker_join",
    "auto_leader_rebalance_enable",
    "quota_window_num",
    "quota_window_size_seconds",
    "raft_tls_cert",
    "raft_tls_key",
    "raft_tls_ca",
    *SECURITY_KEYS,
]


async def _serve(config: BrokerConfig) -> int:
    from streamraft_broker.server.broker import Broker  # noqa: PLC0415

    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down on signal")
    await broker.stop()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k) for k in _BROKER_KEYS}
    config = load_config(flags, os.environ, args.config)
    setup_logging(config.log_format, config.log_level)
    return asyncio.run(_serve(config))


def cmd_local_up(args: argparse.Namespace) -> int:
    from streamraft_broker.local.plan import plan_cluster  # noqa: PLC0415
    from streamraft_broker.local.supervisor import Supervisor  # noqa: PLC0415

    data_dir = Path(args.data_dir)
    brokers = plan_cluster(args.brokers, args.base_port, data_dir, args.replicated, args.raft_tls)
    return asyncio.run(Supervisor(data_dir, brokers).run())


def cmd_local_kill(args: argparse.Namespace) -> int:
    from streamraft_broker.local.commands import kill  # noqa: PLC0415

    print(kill(Path(args.data_dir), args.node, args.signal))
    return 0


def cmd_local_start(args: argparse.Namespace) -> int:
    from streamraft_broker.local.commands import start  # noqa: PLC0415

    print(start(Path(args.data_dir), args.node))
    return 0


def cmd_local_status(args: argparse.Namespace) -> int:
    from streamraft_broker.local.commands import render, status  # noqa: PLC0415

    print(render(status(Path(args.data_dir)), args.format))
    return 0


def _kafka() -> Any:
    try:
        import confluent_kafka  # noqa: PLC0415
    except ImportError:
        raise ConfigError("this command needs confluent-kafka: pip install confluent-kafka") from None
    return confluent_kafka


def _admin(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    _kafka()
    return AdminClient(client_config(args))


def _wait(futures: dict[Any, Any], timeout: float) -> int:
    failed = 0
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            print(f"{name}: ok")
        except Exception as exc:
            failed += 1
            print(f"{name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_topics(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewTopic  # noqa: PLC0415

    admin = _admin(args)
    if args.topics_cmd == "create":
        configs = dict(args.config or [])
        topic = NewTopic(
            args.name,
            num_partitions=args.partitions,
            replication_factor=args.replication_factor,
            config=configs,
        )
        return _wait(admin.create_topics([topic]), args.timeout)
    if args.topics_cmd == "delete":
        return _wait(admin.delete_topics([args.name]), args.timeout)
    md = admin.list_topics(timeout=args.timeout)
    if args.topics_cmd == "list":
        for name in sorted(md.topics):
            print(name)
        return 0
    topic_md = md.topics.get(args.name)
    if topic_md is None or topic_md.error is not None:
        print(f"topic {args.name!r} does not exist", file=sys.stderr)
        return 1
    print(f"topic: {args.name} partitions: {len(topic_md.partitions)}")
    for pid, p in sorted(topic_md.partitions.items()):
        print(f"  partition {pid} leader {p.leader} replicas {list(p.replicas)} isr {list(p.isrs)}")
    from confluent_kafka.admin import ConfigResource  # noqa: PLC0415

    res = ConfigResource("topic", args.name)
    for _, fut in admin.describe_configs([res]).items():
        for key, entry in sorted(fut.result(timeout=args.timeout).items()):
            print(f"  config {key}={entry.value}{'' if entry.is_default else ' (set)'}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    ck = _kafka()
    producer = ck.Producer(
        {
            **client_config(args),
            "acks": args.acks,
            "enable.idempotence": args.acks == "all",
        }
    )
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    count = 0
    for line in sys.stdin:
        text = line.rstrip("\n")
        key: str | None = None
        if args.key_separator and args.key_separator in text:
            key, text = text.split(args.key_separator, 1)
        producer.produce(
            args.topic,
            value=text.encode(),
            key=key.encode() if key is not None else None,
            on_delivery=on_delivery,
        )
        producer.poll(0)
        count += 1
    remaining = producer.flush(args.timeout)
    if remaining or errors:
        print(f"failed: {len(errors)} errors, {remaining} undelivered; first: {errors[:1]}", file=sys.stderr)
        return 1
    print(f"produced {count} records", file=sys.stderr)
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    ck = _kafka()
    consumer = ck.Consumer(
        {
            **client_config(args),
            "group.id": args.group or f"streamraft-cli-{os.getpid()}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": args.group is not None,
        }
    )
    if args.group is not None:
        consumer.subscribe([args.topic])
    else:
        # Without a group, read every partition directly: no coordinator round trips needed.
        md = consumer.list_topics(args.topic, timeout=args.timeout)
        topic_md = md.topics.get(args.topic)
        if topic_md is None or topic_md.error is not None:
            consumer.close()
            raise ConfigError(f"topic {args.topic!r} does not exist")
        start = ck.OFFSET_BEGINNING if args.from_beginning else ck.OFFSET_END
        consumer.assign([ck.TopicPartition(args.topic, p, start) for p in topic_md.partitions])
    seen = 0
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline and (args.max_messages is None or seen < args.max_messages):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                print(f"error: {msg.error()}", file=sys.stderr)
                continue
            key = msg.key().decode(errors="replace") if msg.key() is not None else ""
            value = msg.value().decode(errors="replace") if msg.value() is not None else ""
            print(f"{key}{args.key_separator}{value}" if args.print_key else value, flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamraft", description="Kafka-compatible streaming log")
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="run one broker in the foreground")
    _add_broker_flags(broker)
    broker.set_defaults(func=cmd_broker)

    local = sub.add_parser("local", help="local development cluster")
    local_sub = local.add_subparsers(dest="local_cmd", required=True)
    up = local_sub.add_parser(
        "up",
        help="start a local cluster in the foreground, one process per broker; Ctrl-C stops it",
        description="Runs each broker as its own process (logs in DATA_DIR/broker-N/broker.log) and restarts "
        "none by itself: kill one to watch failover, bring it back with `local start N`.",
    )
    up.add_argument(
        "--brokers",
        type=int,
        default=3,
        help="broker count, replicated over Raft when more than one (default 3; 1 = a single plain node)",
    )
    up.add_argument(
        "--replicated", action="store_true", help="with --brokers 1: run the one broker in Raft mode too"
    )
    up.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_PORT,
        help="broker n listens on BASE+3(n-1) for Kafka, the next port for metrics/admin, then Raft",
    )
    up.add_argument(
        "--raft-tls",
        action="store_true",
        help="run the brokers' Raft transport over mutual TLS, with a CA and broker certificates made (once) "
        "under DATA_DIR/pki",
    )

    def local_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default="./streamraft-local", help="the local cluster's data directory")

    local_dir(up)
    up.set_defaults(func=cmd_local_up)
    kill = local_sub.add_parser(
        "kill", help="send a signal (default SIGKILL) to one broker of a local cluster"
    )
    kill.add_argument("node", type=int, help="broker node id")
    kill.add_argument(
        "--signal", choices=["KILL", "TERM", "STOP", "CONT"], default="KILL", help="default KILL"
    )
    local_dir(kill)
    kill.set_defaults(func=cmd_local_kill)
    start = local_sub.add_parser("start", help="start a broker of a running local cluster again")
    start.add_argument("node", type=int, help="broker node id")
    local_dir(start)
    start.set_defaults(func=cmd_local_start)
    st = local_sub.add_parser("status", help="brokers, controller, and per partition: leader, Raft term, lag")
    st.add_argument("--format", choices=["table", "json"], default="table")
    local_dir(st)
    st.set_defaults(func=cmd_local_status)

    client = add_client_flags

    topics = sub.add_parser("topics", help="manage topics")
    tsub = topics.add_subparsers(dest="topics_cmd", required=True)
    create = tsub.add_parser("create", help="create a topic")
    create.add_argument("name", type=_topic)
    create.add_argument("--partitions", type=_int_in(1, MAX_PARTITIONS), default=1)
    create.add_argument(
        "--replication-factor",
        type=_int_in(1, 2**15 - 1, also=(-1,)),
        default=-1,
        help="replicas per partition (default: the cluster's, min(3, brokers) when replicated, else 1)",
    )
    create.add_argument(
        "--config", type=_topic_config, action="append", help="KEY=VALUE topic config (repeatable)"
    )
    lst = tsub.add_parser("list", help="list topics")
    describe = tsub.add_parser("describe", help="partitions and configs of a topic")
    describe.add_argument("name", type=_topic)
    delete = tsub.add_parser("delete", help="delete a topic")
    delete.add_argument("name", type=_topic)
    for p in (create, lst, describe, delete):
        client(p)
        p.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", help="produce stdin lines as records")
    produce.add_argument("topic", type=_topic)
    produce.add_argument("--acks", choices=["0", "1", "all"], default="all")
    produce.add_argument(
        "--key-separator", type=_separator, default=None, help="split each line into KEY<sep>VALUE"
    )
    client(produce)
    produce.set_defaults(func=cmd_produce)

    consume = sub.add_parser("consume", help="print records of a topic")
    consume.add_argument("topic", type=_topic)
    consume.add_argument("--from-beginning", action="store_true")
    consume.add_argument("--group", default=None, help="consumer group (commits offsets)")
    consume.add_argument("--max-messages", type=_int_in(1, 2**63 - 1), default=None)
    consume.add_argument("--print-key", action="store_true")
    consume.add_argument("--key-separator", type=_separator, default="\t")
    client(consume)
    consume.set_defaults(func=cmd_consume)

    from streamraft_broker.clitools import acls as acl_cmds  # noqa: PLC0415
    from streamraft_broker.clitools import cluster as cluster_cmds  # noqa: PLC0415
    from streamraft_broker.clitools import groups as group_cmds  # noqa: PLC0415
    from streamraft_broker.clitools import users as user_cmds  # noqa: PLC0415

    acl_cmds.add_parsers(sub, client)
    cluster_cmds.add_parsers(sub)
    group_cmds.add_parsers(sub)
    user_cmds.add_users_parser(sub, client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        describe = getattr(exc.args[0], "str", None) if exc.args else None
        text = describe() if callable(describe) else str(exc)
        where = getattr(args, "bootstrap_server", "the cluster")
        print(f"streamraft: error: {text or 'no answer'} (from {where})", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        where = getattr(args, "bootstrap_server", "the cluster")
        print(f"streamraft: error: no answer from {where} within --timeout", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader has all it wanted.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # Start-up failures such as a port in use or an unwritable data directory: one clear line.
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_client_error(exc):
            raise
        # The Kafka client's own failures (broker unreachable, request refused): its message, no traceback.
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 1
    return code


def _is_client_error(exc: Exception) -> bool:
    try:
        from confluent_kafka import KafkaException  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(exc, KafkaException)


if __name__ == "__main__":
    sys.exit(main())
