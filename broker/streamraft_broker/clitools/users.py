"""`streamraft users create|delete|list`: SCRAM users through AlterUserScramCredentials and
DescribeUserScramCredentials, as ``kafka-configs --entity-type users`` does.

The password is read from stdin (``--password-stdin``), the STREAMRAFT_USER_PASSWORD environment
variable or a prompt, never from the command line (it would show in the process list). A secured cluster is
reached with ``--command-config FILE`` of librdkafka ``key=value`` client settings (security.protocol,
sasl.*, ssl.*), like the Kafka tools' option of that name.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from streamraft_broker.clitools.kafka import client_config
from streamraft_broker.config import ConfigError

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
PASSWORD_ENV = "STREAMRAFT_USER_PASSWORD"


def read_client_properties(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--command-config {path}: {exc.strerror}") from None
    props: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"--command-config {path} line {number} is not KEY=VALUE")
        props[key.strip()] = value.strip()
    return props


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif PASSWORD_ENV in os.environ:
        password = os.environ[PASSWORD_ENV]
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    if not password:
        raise ConfigError("the password is empty")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import (  # noqa: PLC0415
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({**client_config(args), **read_client_properties(args.command_config)})
    if args.users_cmd == "list":
        future: Any = admin.describe_user_scram_credentials()
        for user, description in sorted(future.result(timeout=args.timeout).items()):
            infos = ", ".join(
                f"{i.mechanism.name.replace('_', '-')} (iterations {i.iterations})"
                for i in description.scram_credential_infos
            )
            print(f"{user}: {infos}")
        return 0
    mechanism = ScramMechanism[args.mechanism.replace("-", "_")]
    if args.users_cmd == "create":
        change: Any = UserScramCredentialUpsertion(
            args.name, ScramCredentialInfo(mechanism, args.iterations), _password(args).encode()
        )
    else:
        change = UserScramCredentialDeletion(args.name, mechanism)
    try:
        admin.alter_user_scram_credentials([change])[args.name].result(timeout=args.timeout)
    except Exception as exc:
        print(f"{args.name}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {'created' if args.users_cmd == 'create' else 'deleted'} ({args.mechanism})")
    return 0


def add_users_parser(sub: Any, client: Any) -> None:
    users = sub.add_parser("users", help="manage SCRAM users")
    usub = users.add_subparsers(dest="users_cmd", required=True)
    create = usub.add_parser("create", help="create a SCRAM user or change its password")
    create.add_argument("name")
    create.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512")
    create.add_argument("--iterations", type=int, default=8192, help="4096..16384 (default 8192)")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    delete = usub.add_parser("delete", help="delete a user's SCRAM credential")
    delete.add_argument("name")
    delete.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512")
    lst = usub.add_parser("list", help="users and their SCRAM mechanisms")
    for p in (create, delete, lst):
        client(p)
        p.add_argument("--command-config", type=Path, help="librdkafka KEY=VALUE client settings file")
        p.set_defaults(func=cmd_users)
