"""The broker's authentication settings made into objects once at start: enabled SASL mechanisms, PLAIN
users, SCRAM credential store, OAUTHBEARER validator, certificate principal mapping, delays."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamraft_broker.config import BrokerConfig, ConfigError
from streamraft_broker.controller.commands import ScramCommand, encode
from streamraft_broker.security.credentials import CredentialStore, LocalCredentialFile
from streamraft_broker.security.listeners import Listener
from streamraft_broker.security.oauth import JwksValidator, TokenError
from streamraft_broker.security.sasl import Mechanism, OAuthBearer, Plain, PlainUsers, Scram
from streamraft_broker.security.scram import MECHANISMS
from streamraft_broker.security.tls import PrincipalMapper

LOCAL_CREDENTIALS_FILE = "scram-credentials.json"
CONTROLLER_GROUP = 1
PROPOSE_TIMEOUT_S = 5.0


class NotController(Exception):
    """This broker cannot commit controller commands (the caller forwards to the controller)."""


@dataclass
class Security:
    enabled_mechanisms: list[str]
    mapper: PrincipalMapper
    plain_users: PlainUsers | None = None
    oauth: JwksValidator | None = None
    credentials: CredentialStore | None = None
    failed_delay_s: float = 0.1
    max_reauth_ms: int = 0
    max_receive_size: int = 524_288
    """Largest frame before authentication (Kafka's sasl.server.max.receive.size)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def mechanism(self, name: str) -> Mechanism | None:
        """A fresh server exchange for ``name``, or None if it is not enabled here."""
        if name not in self.enabled_mechanisms:
            return None
        if name == "PLAIN":
            return Plain(self.plain_users)
        if name in MECHANISMS:
            creds = self.credentials
            return Scram(name, lambda user, mech: creds.lookup(user, mech) if creds is not None else None)
        if name == "OAUTHBEARER":
            return OAuthBearer(self.oauth)
        return None


def check_sasl_settings(cfg: BrokerConfig, listeners: list[Listener]) -> None:
    """A SASL listener whose enabled mechanisms cannot log anyone in is a configuration error, named at
    start rather than found at each refused login."""
    sasl = [x.name for x in listeners if x.uses_sasl]
    if not sasl:
        return
    enabled = [m for m in cfg.sasl_enabled_mechanisms.split(",") if m]
    if not enabled:
        raise ConfigError(f"listeners {sasl} use SASL but sasl_enabled_mechanisms is empty")
    if "PLAIN" in enabled and cfg.sasl_plain_users_file is None:
        raise ConfigError("sasl_enabled_mechanisms includes PLAIN: set sasl_plain_users_file")
    if "OAUTHBEARER" in enabled and not cfg.sasl_oauthbearer_jwks_endpoint_url:
        raise ConfigError(
            "sasl_enabled_mechanisms includes OAUTHBEARER: set sasl_oauthbearer_jwks_endpoint_url"
        )


def build_authenticators(cfg: BrokerConfig, ctx: Any, data_dir: Path) -> Security:
    """``data_dir`` is the broker's data directory (a single node's SCRAM credentials live there)."""
    del ctx
    security = Security(
        enabled_mechanisms=[m for m in cfg.sasl_enabled_mechanisms.split(",") if m],
        mapper=PrincipalMapper(cfg.ssl_principal_mapping_rules),
        failed_delay_s=cfg.connection_failed_authentication_delay_ms / 1000,
        max_reauth_ms=cfg.connections_max_reauth_ms,
        max_receive_size=cfg.sasl_server_max_receive_size,
    )
    if cfg.sasl_plain_users_file is not None:
        try:
            security.plain_users = PlainUsers(cfg.sasl_plain_users_file)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if cfg.sasl_oauthbearer_jwks_endpoint_url:
        try:
            security.oauth = JwksValidator(
                cfg.sasl_oauthbearer_jwks_endpoint_url,
                audience=cfg.sasl_oauthbearer_expected_audience,
                issuer=cfg.sasl_oauthbearer_expected_issuer,
                sub_claim=cfg.sasl_oauthbearer_sub_claim_name,
                clock_skew_s=cfg.sasl_oauthbearer_clock_skew_seconds,
            )
        except TokenError as exc:
            raise ConfigError(f"sasl_oauthbearer_jwks_endpoint_url: {exc}") from None
    if cfg.replication != "raft":
        try:
            local = LocalCredentialFile(data_dir / LOCAL_CREDENTIALS_FILE)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        security.credentials = local.store()
    return security


def replicated_credentials(service: Any) -> CredentialStore:
    """Credentials in the controller state: read from this broker's copy, changed through the controller
    log (only its leader proposes; others get NotController and forward the request)."""

    async def submit(commands: list[ScramCommand]) -> None:
        if not service.runtime.is_leader(CONTROLLER_GROUP):
            raise NotController(f"node {service.node_id} is not the controller")
        for command in commands:
            entry = encode(command)
            try:
                await asyncio.wait_for(service.runtime.propose(CONTROLLER_GROUP, entry), PROPOSE_TIMEOUT_S)
            except Exception as exc:  # ConsensusError, TimeoutError: leadership lost mid-way
                raise NotController(f"controller proposal failed: {exc!r}") from None

    return CredentialStore(lambda: service.state.scram, submit)
