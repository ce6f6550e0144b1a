"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), with Kafka's validation and error
codes, plus SaslHandshake / SaslAuthenticate on listeners without SASL (ILLEGAL_SASL_STATE, as Kafka).

The client sends an upsertion's salted password (``kafka-configs`` salts the password itself); the
broker keeps only StoredKey and ServerKey derived from it. In a replicated cluster a broker that is not
the controller forwards the request to the controller, whose log holds the credentials.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.controller.commands import DeleteScramCredential, ScramCommand, UpsertScramCredential
from streamraft_broker.handlers.authz import cluster_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation
from streamraft_broker.security.authenticators import NotController
from streamraft_broker.security.credentials import (
    MAX_USER_CHARS,
    CredentialStore,
)
from streamraft_broker.security.scram import (
    MAX_ITERATIONS,
    MECHANISM_IDS,
    MECHANISMS,
    MIN_ITERATIONS,
    credential_from_salted,
)

_BY_ID = {v: k for k, v in MECHANISM_IDS.items()}
_HASH_BYTES = {"SCRAM-SHA-256": 32, "SCRAM-SHA-512": 64}


def _store(ctx: BrokerContext) -> CredentialStore | None:
    security = ctx.extra.get("authenticators")
    return None if security is None else security.credentials


async def handle_sasl_without_sasl(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """SaslHandshake / SaslAuthenticate on a listener that does not use SASL."""
    cls = response_type(header.api_key, header.api_version)
    return build(
        cls,
        error_code=err(ErrorCode.illegal_sasl_state),
        error_message="this listener does not use SASL",
        mechanisms=(),
        auth_bytes=b"",
        session_lifetime=0,
    )


async def handle_describe_user_scram_credentials(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, version)
    result_cls = nested(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, version, "DescribeUserScramCredentialsResult")
    info_cls = nested(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, version, "CredentialInfo")
    if denied := cluster_denied(ctx, Operation.DESCRIBE):
        # Kafka: Describe on the cluster.
        return build(cls, throttle_time=0, error_code=err(denied), error_message="not authorized", results=())
    store = _store(ctx)
    users = store.state.users if store is not None else {}

    def result(user: str, code: ErrorCode = ErrorCode.none, message: str | None = None) -> Any:
        infos = tuple(
            build(info_cls, mechanism=MECHANISM_IDS[m], iterations=c.iterations)
            for m, c in sorted(users.get(user, {}).items())
        )
        return build(
            result_cls,
            user=user,
            error_code=code,
            error_message=message,
            credential_infos=infos if code == ErrorCode.none else (),
        )

    if not request.users:
        results = tuple(result(u) for u in sorted(users))
    else:
        names = [str(u.name) for u in request.users]
        out = []
        for name in dict.fromkeys(names):
            if names.count(name) > 1:
                out.append(
                    result(
                        name,
                        ErrorCode.duplicate_resource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    )
                )
            elif name not in users:
                out.append(
                    result(
                        name,
                        ErrorCode.resource_not_found,
                        "Attempt to describe a user credential that does not exist",
                    )
                )
            else:
                out.append(result(name))
        results = tuple(out)
    return build(cls, throttle_time=0, error_code=err(0), error_message=None, results=results)


def _check_upsertion(u: Any) -> tuple[ErrorCode, str] | None:
    mechanism = _BY_ID.get(int(u.mechanism))
    if mechanism is None:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    if not str(u.name):
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if len(str(u.name)) > MAX_USER_CHARS:
        return ErrorCode.unacceptable_credential, f"Username is longer than {MAX_USER_CHARS} characters"
    if int(u.iterations) < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, f"Too few iterations (minimum {MIN_ITERATIONS})"
    if int(u.iterations) > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, f"Too many iterations (maximum {MAX_ITERATIONS})"
    if not bytes(u.salt):
        return ErrorCode.unacceptable_credential, "Salt must not be empty"
    if len(bytes(u.salted_password)) != _HASH_BYTES[mechanism]:
        return ErrorCode.unacceptable_credential, f"Salted password must be {_HASH_BYTES[mechanism]} bytes"
    return None


async def handle_alter_user_scram_credentials(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, version)
    result_cls = nested(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, version, "AlterUserScramCredentialsResult")
    if denied := cluster_denied(ctx, Operation.ALTER):
        # Kafka: Alter on the cluster, answered per user.
        names = dict.fromkeys(str(x.name) for x in (*request.deletions, *request.upsertions))
        return build(
            cls,
            throttle_time=0,
            results=tuple(
                build(result_cls, user=n, error_code=err(denied), error_message="not authorized")
                for n in names
            ),
        )
    store = _store(ctx)
    errors: dict[str, tuple[ErrorCode, str]] = {}
    order: list[str] = []
    seen: dict[str, int] = {}
    for item in (*request.deletions, *request.upsertions):
        name = str(item.name)
        order.append(name)
        seen[name] = seen.get(name, 0) + 1
    for name, count in seen.items():
        if count > 1:
            errors[name] = (
                ErrorCode.duplicate_resource,
                "A user credential cannot be altered twice in the same request",
            )
    commands: dict[str, ScramCommand] = {}
    for d in request.deletions:
        name = str(d.name)
        mechanism = _BY_ID.get(int(d.mechanism))
        if name in errors:
            continue
        if mechanism is None:
            errors[name] = (ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
        elif not name:
            errors[name] = (ErrorCode.unacceptable_credential, "Username must not be empty")
        elif store is None or store.lookup(name, mechanism) is None:
            errors[name] = (
                ErrorCode.resource_not_found,
                "Attempt to delete a user credential that does not exist",
            )
        else:
            commands[name] = DeleteScramCredential(name, mechanism)
    for u in request.upsertions:
        name = str(u.name)
        if name in errors:
            continue
        problem = _check_upsertion(u)
        if problem is not None:
            errors[name] = problem
            continue
        mechanism = _BY_ID[int(u.mechanism)]
        assert mechanism in MECHANISMS
        credential = credential_from_salted(
            mechanism, bytes(u.salted_password), bytes(u.salt), int(u.iterations)
        )
        commands[name] = UpsertScramCredential(name, mechanism, credential)
    if commands:
        if store is None:
            for name in commands:
                errors[name] = (ErrorCode.unknown_server_error, "this broker keeps no SCRAM credentials")
        else:
            try:
                await store.submit(list(commands.values()))
            except NotController as exc:
                forwarded = await _forward(ctx, request)
                if forwarded is not None:
                    return forwarded
                for name in commands:
                    errors[name] = (ErrorCode.not_controller, str(exc))
    results = tuple(
        build(
            result_cls,
            user=name,
            error_code=errors[name][0] if name in errors else ErrorCode.none,
            error_message=errors[name][1] if name in errors else None,
        )
        for name in dict.fromkeys(order)
    )
    return build(cls, throttle_time=0, results=results)


async def _forward(ctx: BrokerContext, request: Any) -> Any:
    """Sends the request on to the controller (None if it cannot be reached)."""
    from streamraft_broker.replication import membership_rpc  # noqa: PLC0415 - replicated only

    rep = ctx.extra.get("replication")
    if rep is None:
        return None
    host, port = rep.controller_address()
    try:
        return await membership_rpc.call(host, port, ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, request)
    except membership_rpc.ControllerUnreachable:
        return None
