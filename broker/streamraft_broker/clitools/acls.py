"""``streamraft acls list|create|delete``: Kafka ACLs through the Admin API (any Kafka cluster, like
kafka-acls), with confluent-kafka's AdminClient."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from streamraft_broker.clitools.kafka import client_config

OPERATIONS = (
    "All",
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
)
CLUSTER_NAME = "kafka-cluster"


def add_parsers(sub: Any, client: Callable[[argparse.ArgumentParser], None]) -> None:
    acls = sub.add_parser("acls", help="manage ACLs (needs a broker with authorizer.class.name set)")
    asub = acls.add_subparsers(dest="acls_cmd", required=True)
    create = asub.add_parser("create", help="add an ALLOW (or --deny) binding")
    create.add_argument("--principal", required=True, help="e.g. User:alice, or User:* for everyone")
    create.add_argument("--host", default="*", help="client host the binding applies to (default *)")
    create.add_argument("--operation", action="append", required=True, choices=OPERATIONS, help="repeatable")
    create.add_argument("--deny", action="store_true", help="a DENY binding (DENY wins over ALLOW)")
    lst = asub.add_parser("list", help="list bindings (all, or those on one resource)")
    lst.add_argument("--principal", default=None)
    delete = asub.add_parser("delete", help="delete every binding on a resource (optionally one principal's)")
    delete.add_argument("--principal", default=None)
    for p in (create, lst, delete):
        resource = p.add_mutually_exclusive_group(required=p is not lst)
        resource.add_argument("--topic", help="a topic name (or * for every topic)")
        resource.add_argument("--group", help="a consumer group id (or *)")
        resource.add_argument("--transactional-id", help="a transactional id (or *)")
        resource.add_argument("--cluster", action="store_true", help="the cluster itself")
        p.add_argument("--prefixed", action="store_true", help="the name is a prefix (PREFIXED pattern)")
        client(p)
        p.set_defaults(func=cmd_acls)


def _resource(args: argparse.Namespace) -> tuple[Any, str | None]:
    from confluent_kafka.admin import ResourceType  # noqa: PLC0415

    if args.topic is not None:
        return ResourceType.TOPIC, args.topic
    if args.group is not None:
        return ResourceType.GROUP, args.group
    if args.transactional_id is not None:
        return ResourceType.TRANSACTIONAL_ID, args.transactional_id
    if args.cluster:
        return ResourceType.BROKER, CLUSTER_NAME
    return ResourceType.ANY, None


def _operation(name: str) -> Any:
    from confluent_kafka.admin import AclOperation  # noqa: PLC0415

    # "DescribeConfigs" -> DESCRIBE_CONFIGS
    return AclOperation["".join(f"_{c}" if c.isupper() else c for c in name).lstrip("_").upper()]


def _describe(binding: Any) -> str:
    return (
        f"{binding.permission_type.name} {binding.principal} from {binding.host} {binding.operation.name} on "
        f"{binding.restype.name}:{binding.resource_pattern_type.name}:{binding.name}"
    )


def cmd_acls(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import (  # noqa: PLC0415
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
    )

    admin = AdminClient(client_config(args))
    restype, name = _resource(args)
    exact = ResourcePatternType.PREFIXED if args.prefixed else ResourcePatternType.LITERAL
    try:
        if args.acls_cmd == "create":
            assert name is not None  # argparse requires a resource for create
            permission = AclPermissionType.DENY if args.deny else AclPermissionType.ALLOW
            bindings = [
                AclBinding(restype, name, exact, args.principal, args.host, _operation(op), permission)
                for op in args.operation
            ]
            for binding, future in admin.create_acls(bindings, request_timeout=args.timeout).items():
                future.result(args.timeout)
                print(f"created: {_describe(binding)}")
            return 0
        pattern = exact if name is not None else ResourcePatternType.ANY
        # None matches any name/principal/host (Kafka's filter); confluent's stubs only declare str.
        wanted = AclBindingFilter(
            restype,
            name,  # type: ignore[arg-type]
            pattern,
            args.principal,
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        if args.acls_cmd == "list":
            for binding in admin.describe_acls(wanted, request_timeout=args.timeout).result(args.timeout):
                print(_describe(binding))
            return 0
        for future in admin.delete_acls([wanted], request_timeout=args.timeout).values():
            for binding in future.result(args.timeout):
                print(f"deleted: {_describe(binding)}")
        return 0
    except Exception as exc:  # confluent-kafka raises KafkaException with the broker's error
        print(f"acls {args.acls_cmd}: {exc}", file=sys.stderr)
        return 1
