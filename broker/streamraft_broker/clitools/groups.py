"""`streamraft groups list|describe|reset-offsets`: consumer groups, their lag, and moving their offsets."""

from __future__ import annotations

import argparse
from typing import Any

from streamraft_broker.clitools.errors import CommandError
from streamraft_broker.clitools.kafka import add_client_flags, client_config
from streamraft_broker.clitools.output import as_json, table
from streamraft_broker.config import ConfigError


def _admin(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    return AdminClient(client_config(args))


def _spec(which: str) -> Any:
    from confluent_kafka.admin import OffsetSpec  # noqa: PLC0415

    return OffsetSpec.earliest() if which == "earliest" else OffsetSpec.latest()  # type: ignore[no-untyped-call]


def _offsets(admin: Any, partitions: list[Any], spec: Any, timeout: float) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset ``spec`` names (earliest or latest)."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    if not partitions:
        return {}
    futures = admin.list_offsets({TopicPartition(tp.topic, tp.partition): spec for tp in partitions})
    return {(tp.topic, tp.partition): int(f.result(timeout=timeout).offset) for tp, f in futures.items()}


def _committed(args: argparse.Namespace, admin: Any, group: str, timeout: float) -> list[Any]:
    """The group's committed offsets, asked through a consumer of the group that joins nothing: librdkafka
    2.16's admin ``list_consumer_group_offsets`` crashes the process (its OffsetFetch error path queries
    the coordinator through the consumer-group handle an admin client does not have) whenever a
    coordinator answers NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, as one does while it moves."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    topics = admin.list_topics(timeout=timeout).topics
    partitions = [
        TopicPartition(name, p)
        for name, md in sorted(topics.items())
        if not name.startswith("__") and md.error is None
        for p in sorted(md.partitions)
    ]
    if not partitions:
        return []
    consumer = Consumer({**client_config(args), "group.id": group, "enable.auto.commit": False})
    try:
        answered = consumer.committed(partitions, timeout=timeout)
    finally:
        consumer.close()
    return [tp for tp in answered if tp.offset >= 0]


def cmd_list(args: argparse.Namespace) -> int:
    admin = _admin(args)
    result = admin.list_consumer_groups(request_timeout=args.timeout).result(timeout=args.timeout)
    if result.errors:
        # Some brokers did not answer: a partial list would look like groups had vanished.
        raise CommandError("; ".join(str(e) for e in result.errors))
    rows = [
        {
            "group": g.group_id,
            "state": getattr(g.state, "name", str(g.state)),
            "simple": g.is_simple_consumer_group,
        }
        for g in sorted(result.valid, key=lambda g: g.group_id)
    ]
    print(as_json(rows) if args.format == "json" else table(rows, ["group", "state", "simple"]))
    return 0


def describe(args: argparse.Namespace) -> dict[str, Any]:
    admin = _admin(args)
    desc = admin.describe_consumer_groups([args.group])[args.group].result(timeout=args.timeout)
    owner: dict[tuple[str, int], str] = {}
    members = []
    for m in desc.members:
        assigned = list(m.assignment.topic_partitions) if m.assignment else []
        for tp in assigned:
            owner[(tp.topic, tp.partition)] = m.client_id
        members.append(
            {"member": m.member_id, "client_id": m.client_id, "host": m.host, "partitions": len(assigned)}
        )
    committed = _committed(args, admin, args.group, args.timeout)
    ends = _offsets(admin, committed, _spec("latest"), args.timeout)
    partitions = []
    for tp in sorted(committed, key=lambda tp: (tp.topic, tp.partition)):
        end = ends.get((tp.topic, tp.partition))
        offset = int(tp.offset) if tp.offset >= 0 else None
        partitions.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "committed": offset,
                "log_end": end,
                "lag": end - offset if end is not None and offset is not None else None,
                "owner": owner.get((tp.topic, tp.partition)),
            }
        )
    return {
        "group": args.group,
        "state": getattr(desc.state, "name", str(desc.state)),
        "coordinator": desc.coordinator.id if desc.coordinator is not None else None,
        "members": members,
        "partitions": partitions,
        "total_lag": sum(p["lag"] or 0 for p in partitions),
    }


def cmd_describe(args: argparse.Namespace) -> int:
    doc = describe(args)
    if args.format == "json":
        print(as_json(doc))
        return 0
    print(f"group: {doc['group']}  state: {doc['state']}  coordinator: {doc['coordinator']}")
    print(f"total lag: {doc['total_lag']}")
    print()
    print(table(doc["partitions"], ["topic", "partition", "committed", "log_end", "lag", "owner"]))
    if doc["members"]:
        print()
        print(table(doc["members"], ["member", "client_id", "host", "partitions"]))
    return 0


def cmd_reset_offsets(args: argparse.Namespace) -> int:
    """Kafka's rule: a plan is printed unless --execute; the group must have no active members."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition  # noqa: PLC0415

    chosen = [args.to_earliest, args.to_latest, args.to_offset is not None]
    if sum(chosen) != 1:
        raise ConfigError("give exactly one of --to-earliest, --to-latest, --to-offset N")
    if args.to_offset is not None and args.to_offset < 0:
        raise ConfigError(f"--to-offset {args.to_offset} must be >= 0")
    admin = _admin(args)
    md = admin.list_topics(args.topic, timeout=args.timeout).topics.get(args.topic)
    if md is None or md.error is not None:
        raise CommandError(f"topic {args.topic!r} does not exist")
    parts = [TopicPartition(args.topic, p) for p in sorted(md.partitions)]
    earliest = _offsets(admin, parts, _spec("earliest"), args.timeout)
    latest = _offsets(admin, parts, _spec("latest"), args.timeout)
    plan: list[tuple[str, int, int]] = []
    for tp in parts:
        key = (tp.topic, tp.partition)
        if args.to_earliest:
            target = earliest[key]
        elif args.to_latest:
            target = latest[key]
        else:
            target = min(max(int(args.to_offset), earliest[key]), latest[key])  # Kafka clamps to the log
        plan.append((tp.topic, tp.partition, target))
    if args.execute:
        desc = admin.describe_consumer_groups([args.group])[args.group].result(timeout=args.timeout)
        if desc.members:
            raise CommandError(
                f"group {args.group!r} has {len(desc.members)} active member(s): stop its consumers first"
            )
        request = ConsumerGroupTopicPartitions(
            args.group, [TopicPartition(topic, partition, offset) for topic, partition, offset in plan]
        )
        admin.alter_consumer_group_offsets([request])[args.group].result(timeout=args.timeout)
    rows = [{"topic": t, "partition": p, "new_offset": o} for t, p, o in plan]
    if args.format == "json":
        print(as_json({"group": args.group, "executed": bool(args.execute), "offsets": rows}))
    else:
        print(table(rows, ["topic", "partition", "new_offset"]))
        print("offsets reset" if args.execute else "dry run: nothing changed (add --execute to apply)")
    return 0


def add_parsers(sub: Any) -> None:
    groups = sub.add_parser("groups", help="consumer groups: list, describe with lag, reset offsets")
    gsub = groups.add_subparsers(dest="groups_cmd", required=True)
    lst = gsub.add_parser("list", help="every consumer group and its state")
    lst.set_defaults(func=cmd_list)
    desc = gsub.add_parser("describe", help="a group's members, committed offsets and lag per partition")
    desc.add_argument("group")
    desc.set_defaults(func=cmd_describe)
    reset = gsub.add_parser("reset-offsets", help="move a group's committed offsets on one topic")
    reset.add_argument("group")
    reset.add_argument("--topic", required=True)
    reset.add_argument("--to-earliest", action="store_true")
    reset.add_argument("--to-latest", action="store_true")
    reset.add_argument("--to-offset", type=int, default=None, metavar="N")
    reset.add_argument("--execute", action="store_true", help="apply the plan (default: print it only)")
    reset.set_defaults(func=cmd_reset_offsets)
    for p in (lst, desc, reset):
        p.add_argument("--format", choices=["table", "json"], default="table")
        add_client_flags(p)
