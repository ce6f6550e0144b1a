"""`streamraft` command line: broker, local up, topics, produce, consume."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamraft_broker.cli_users import add_users_parser
from streamraft_broker.config import (
    DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES,
    DEFAULT_METRICS_PORT,
    DEFAULT_PORT,
    SECURITY_KEYS,
    ConfigError,
    load_config,
)
from streamraft_broker.logging_setup import setup_logging

log = logging.getLogger("streamraft")


def _add_broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML (.yaml/.yml) or TOML (.toml) file of settings")
    p.add_argument("--node-id", help="this broker's node id (STREAMRAFT_NODE_ID)")
    p.add_argument("--data-dir", help="directory for logs and metadata (STREAMRAFT_DATA_DIR)")
    p.add_argument("--listen", help=f"HOST:PORT for Kafka clients, default 127.0.0.1:{DEFAULT_PORT}")
    p.add_argument("--advertise", help="HOST:PORT told to clients (default: listen address)")
    p.add_argument(
        "--metrics-listen", help=f"HOST:PORT for /metrics (default port {DEFAULT_METRICS_PORT}) or off"
    )
    p.add_argument("--max-request-size", help="largest accepted request in bytes (socket.request.max.bytes)")
    p.add_argument("--auto-create-topics", help="true/false: create unknown topics on metadata requests")
    p.add_argument("--default-partitions", help="partitions for auto-created topics")
    p.add_argument("--log-format", help="text or json")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--in-memory", help="true/false: keep partition logs in memory (tests only)")
    p.add_argument("--zero-copy", help="true/false: serve fetches with sendfile")
    p.add_argument("--retention-check-ms", help="how often segments past retention are deleted")
    p.add_argument("--ready-file", help="write {port, metrics_port, pid} as JSON here once listening")
    p.add_argument("--replication", help="none (default, single node) or raft (partitions as Raft groups)")
    p.add_argument(
        "--cluster-members", help="ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,... of every broker (replication=raft)"
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
    for key in SECURITY_KEYS:
        p.add_argument("--" + key.replace("_", "-"), help=f"Kafka's {key.replace('_', '.')} (security)")


_BROKER_KEYS = [
    "node_id",
    "data_dir",
    "listen",
    "advertise",
    "metrics_listen",
    "max_request_size",
    "auto_create_topics",
    "default_partitions",
    "log_format",
    "log_level",
    "in_memory",
    "zero_copy",
    "ready_file",
    "retention_check_ms",
    "replication",
    "cluster_members",
    "raft_listen",
    "rack",
    "raft_log",
    "controller_snapshot_entries",
    *SECURITY_KEYS,
]


async def _serve(configs: list[Any], announce: bool) -> int:
    from streamraft_broker.server.broker import Broker  # noqa: PLC0415

    brokers = [Broker(c) for c in configs]
    for b in brokers:
        await b.start()
    if announce:
        boot = ",".join(f"{b.ctx.host}:{b.ctx.port}" for b in brokers if b.ctx is not None)
        print(f"bootstrap servers: {boot}", flush=True)
        for b in brokers:
            if b.metrics_port:
                print(f"metrics: http://{b.config.metrics_host}:{b.metrics_port}/metrics", flush=True)
        print("press Ctrl-C to stop", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down on signal")
    for b in brokers:
        await b.stop()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k) for k in _BROKER_KEYS}
    config = load_config(flags, os.environ, args.config)
    setup_logging(config.log_format, config.log_level)
    return asyncio.run(_serve([config], announce=False))


def cmd_local_up(args: argparse.Namespace) -> int:
    brokers = args.brokers
    if not 1 <= brokers <= 9:
        raise ConfigError(f"--brokers {brokers} is outside 1..9")
    # Several brokers only make sense replicated; one broker is the plain single node unless asked.
    replicated = brokers > 1 or args.replicated
    if not 1 <= args.base_port <= 65535 - 3 * brokers:
        raise ConfigError(f"--base-port {args.base_port} leaves no room for {brokers} brokers' ports")
    if not replicated:
        flags = {
            "node_id": "0",
            "data_dir": str(Path(args.data_dir) / "broker-0"),
            "listen": f"127.0.0.1:{args.base_port}",
            "metrics_listen": f"127.0.0.1:{args.base_port + 1}",
        }
        configs = [load_config(flags, {})]
    else:
        # Broker n (from 1) uses base+3(n-1) for Kafka, the next port for metrics, the one after for Raft.
        ports = {n: args.base_port + 3 * (n - 1) for n in range(1, brokers + 1)}
        members = ",".join(f"{n}=127.0.0.1:{p}/127.0.0.1:{p + 2}" for n, p in ports.items())
        configs = [
            load_config(
                {
                    "node_id": str(n),
                    "data_dir": str(Path(args.data_dir) / f"broker-{n}"),
                    "listen": f"127.0.0.1:{p}",
                    "metrics_listen": f"127.0.0.1:{p + 1}",
                    "replication": "raft",
                    "cluster_members": members,
                },
                {},
            )
            for n, p in ports.items()
        ]
    setup_logging("text", "INFO")
    return asyncio.run(_serve(configs, announce=True))


def _kafka() -> Any:
    try:
        import confluent_kafka  # noqa: PLC0415
    except ImportError:
        raise ConfigError("this command needs confluent-kafka: pip install confluent-kafka") from None
    return confluent_kafka


def _admin(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    _kafka()
    return AdminClient({"bootstrap.servers": args.bootstrap_server})


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
        configs = {}
        for item in args.config or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--config {item!r} must be KEY=VALUE")
            configs[key] = value
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
            "bootstrap.servers": args.bootstrap_server,
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
            "bootstrap.servers": args.bootstrap_server,
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
    up = local_sub.add_parser("up", help="start a local cluster in the foreground; Ctrl-C stops it")
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
    up.add_argument("--data-dir", default="./streamraft-local", help="parent data directory")
    up.set_defaults(func=cmd_local_up)

    def client(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-server", default=f"127.0.0.1:{DEFAULT_PORT}", help="HOST:PORT")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")

    topics = sub.add_parser("topics", help="manage topics")
    tsub = topics.add_subparsers(dest="topics_cmd", required=True)
    create = tsub.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument("--partitions", type=int, default=1)
    create.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="replicas per partition (default: the cluster's, min(3, brokers) when replicated, else 1)",
    )
    create.add_argument("--config", action="append", help="KEY=VALUE topic config (repeatable)")
    lst = tsub.add_parser("list", help="list topics")
    describe = tsub.add_parser("describe", help="partitions and configs of a topic")
    describe.add_argument("name")
    delete = tsub.add_parser("delete", help="delete a topic")
    delete.add_argument("name")
    for p in (create, lst, describe, delete):
        client(p)
        p.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", help="produce stdin lines as records")
    produce.add_argument("topic")
    produce.add_argument("--acks", choices=["0", "1", "all"], default="all")
    produce.add_argument("--key-separator", default=None, help="split each line into KEY<sep>VALUE")
    client(produce)
    produce.set_defaults(func=cmd_produce)

    consume = sub.add_parser("consume", help="print records of a topic")
    consume.add_argument("topic")
    consume.add_argument("--from-beginning", action="store_true")
    consume.add_argument("--group", default=None, help="consumer group (commits offsets)")
    consume.add_argument("--max-messages", type=int, default=None)
    consume.add_argument("--print-key", action="store_true")
    consume.add_argument("--key-separator", default="\t")
    client(consume)
    consume.set_defaults(func=cmd_consume)
    add_users_parser(sub, client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Start-up failures such as a port in use or an unwritable data directory: one clear line.
        print(f"streamraft: error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
