"""Broker configuration: defaults < config file (YAML or TOML) < STREAMRAFT_* env < command-line flags.

Every value is validated and a bad one raises ConfigError naming the setting and where it came from.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streamraft_broker.protocol.framing import DEFAULT_MAX_REQUEST_SIZE, MIN_FRAME_SIZE
from streamraft_broker.topics.configs import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_PORT = 9092
DEFAULT_METRICS_PORT = 9644
DEFAULT_ADMIN_PORT = 9645
DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES = 1_000
"""Controller log entries applied between two snapshots of the metadata state (each broker takes its own)."""
DEFAULT_QUEUED_MAX_REQUEST_BYTES = 512 * 1024 * 1024
_INT32_MAX = 2**31 - 1


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class BrokerConfig:
    node_id: int = 0
    data_dir: Path = Path("./streamraft-data")
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    advertise_host: str | None = None
    advertise_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = DEFAULT_METRICS_PORT
    socket_request_max_bytes: int = DEFAULT_MAX_REQUEST_SIZE
    """Kafka's socket.request.max.bytes: the largest request frame a client may send."""
    queued_max_request_bytes: int = DEFAULT_QUEUED_MAX_REQUEST_BYTES
    """Kafka's queued.max.request.bytes: bytes of requests the broker holds for all connections together
    (each frame reserved whole once its size prefix arrives); at the cap it stops reading sockets. Kafka's
    default is -1 (unbounded); ours is 512 MiB, and -1 still means unbounded."""
    connections_max_idle_ms: int = 600_000
    """Kafka's connections.max.idle.ms: a connection with no request for this long is closed."""
    request_read_timeout_ms: int = 60_000
    """Not a Kafka setting: a request frame, once started, must arrive whole within this (slowloris)."""
    max_connections: int = 2**31 - 1
    """Kafka's max.connections (default unbounded): connections over it are refused with a log line."""
    max_connections_per_ip: int = 2**31 - 1
    """Kafka's max.connections.per.ip (default unbounded)."""
    message_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Kafka's message.max.bytes: the max.message.bytes of topics that do not set their own."""
    auto_create_topics_enable: bool = True
    """Kafka's auto.create.topics.enable: a Metadata request naming an unknown topic (with
    allow_auto_topic_creation) creates it, through the controller when replicated."""
    num_partitions: int = 1
    """Kafka's num.partitions: partitions of auto-created topics and of CreateTopics asking for -1."""
    default_replication_factor: int = 3
    """Kafka's default.replication.factor (replicas of auto-created topics and of CreateTopics asking for
    -1), capped at the brokers available and made odd (a Raft group of an even size tolerates no more
    failures than one replica fewer); a single-node broker always uses 1."""
    admin_host: str = "127.0.0.1"
    """The admin API (leadership hand-off, decommission) binds to loopback unless configured."""
    admin_port: int | None = DEFAULT_ADMIN_PORT
    admin_token_file: Path | None = None
    """Once set, admin requests need ``Authorization: Bearer <the file's content>``."""
    admin_tls_cert: Path | None = None
    """With admin_tls_key and admin_tls_ca: the admin API speaks TLS and requires a client certificate
    signed by admin_tls_ca (mTLS)."""
    admin_tls_key: Path | None = None
    admin_tls_ca: Path | None = None
    admin_max_connections: int = 16
    """Admin (and metrics) HTTP connections served at once, one thread each; more are closed at once."""
    admin_request_timeout_ms: int = 10_000
    """An admin/metrics HTTP request must arrive whole within this; idle connections are closed after it."""
    log_format: str = "text"
    log_level: str = "INFO"
    in_memory: bool = False
    zero_copy: bool = True
    ready_file: Path | None = None
    retention_check_ms: int = 300_000  # Kafka's log.retention.check.interval.ms
    log_cleaner_enable: bool = True
    """Kafka's log.cleaner.enable: compact topics whose cleanup.policy includes compact."""
    log_cleaner_backoff_ms: int = 15_000
    """Kafka's log.cleaner.backoff.ms: pause between two log cleaner passes."""
    log_cleaner_dedupe_buffer_size: int = 128 * 1024 * 1024
    """Kafka's log.cleaner.dedupe.buffer.size: memory for one pass's key -> offset map (estimated per entry
    as the key plus 120 bytes); a partition with more distinct dirty keys is cleaned over several passes."""
    transaction_max_timeout_ms: int = 900_000
    """Kafka's transaction.max.timeout.ms: the longest transaction.timeout.ms a producer may ask for."""
    transactional_id_expiration_ms: int = 604_800_000
    """Kafka's transactional.id.expiration.ms: a transactional id with no transaction open for this long is
    forgotten (its next InitProducerId gets a new producer id)."""
    replication: str = "none"
    """"raft": partitions are Raft groups and metadata lives in a controller group (see replication/)."""
    cluster_members: str = ""
    """ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,... for every broker (replication=raft only)."""
    cluster_id: str = ""
    """Kafka's cluster.id (what ``kafka-storage format --cluster-id`` records): the id every broker reports
    and a registration must carry. Empty derives it from the first three members' Raft addresses, which
    every broker lists alike unless some reach their peers through other addresses (proxies, NAT)."""
    raft_listen: str = ""
    """HOST:PORT the Raft transport binds (default: this node's raft address in cluster_members)."""
    rack: str | None = None
    """Rack (or zone) of this broker: placement puts a partition's replicas in different racks."""
    raft_log: str = "partition"
    """"partition": a partition's Raft log is its own segments (each produced byte written once per
    replica); "separate": a consensus log beside it, copied into the partition log as entries apply."""
    controller_snapshot_entries: int = DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES
    """Snapshot the controller group's state (and compact its Raft log) after this many applied entries."""
    authorizer_class_name: str = ""
    """Kafka's authorizer.class.name: any non-empty value (``streamraft.acl``, or Kafka's
    ``org.apache.kafka.metadata.authorizer.StandardAuthorizer``) turns on ACL authorization."""
    super_users: frozenset[str] = frozenset()
    """Kafka's super.users: principals (``User:admin;User:broker``) allowed everything."""
    allow_everyone_if_no_acl_found: bool = False
    """Kafka's allow.everyone.if.no.acl.found: a resource without any ACL is open to everyone."""
    allow_broker_join: bool = False
    """Accept BrokerRegistration from broker ids missing from this broker's cluster_members (a broker
    added without restarting the others). Off: only configured members and already-registered ids."""
    auto_leader_rebalance_enable: bool = True
    """Kafka's auto.leader.rebalance.enable: leaders hand each partition back to its preferred (first)
    replica on their own every few seconds. Off: only ElectLeaders (kafka-leader-election) moves them."""
    quota_window_num: int = 11
    """Kafka's ``quota.window.num``: samples in a client quota's sliding window."""
    quota_window_size_seconds: int = 1
    """Kafka's ``quota.window.size.seconds``: length of one sample."""
    raft_tls_cert: Path | None = None
    """PEM certificate (chain) of this broker for the Raft transport's mutual TLS; it must carry the URI
    SAN spiffe://streamraft/node/<node id> (see security.pki). Kafka has no such setting (KRaft uses the
    controller listener's ssl.* settings). Set with raft_tls_key and raft_tls_ca, or none of them."""
    raft_tls_key: Path | None = None
    raft_tls_ca: Path | None = None
    """PEM CA certificate(s) a Raft peer's certificate must chain to."""
    # Listeners and client authentication (security/): Kafka's names and meanings.
    listeners: str = ""
    """NAME://HOST:PORT,... (empty: one PLAINTEXT listener on ``listen``)."""
    advertised_listeners: str = ""
    """NAME://HOST:PORT,... told to clients of each listener (default: the listener's own address)."""
    listener_security_protocol_map: str = ""
    """NAME:PROTOCOL,... (default: each of Kafka's protocol names maps to itself)."""
    inter_broker_listener_name: str = ""
    """The listener brokers call each other on (default: the first listener)."""
    ssl_keystore_type: str = "PEM"
    ssl_keystore_location: Path | None = None
    """PEM file holding the broker's private key and certificate chain."""
    ssl_keystore_certificate_chain: str = ""
    """The certificate chain as PEM text (Kafka) or a PEM file path, with ``ssl_keystore_key``."""
    ssl_keystore_key: str = ""
    ssl_key_password: str = ""
    """Password of an encrypted private key (never logged)."""
    ssl_truststore_type: str = "PEM"
    ssl_truststore_location: Path | None = None
    """PEM file of the CA certificates client (and peer broker) certificates must chain to."""
    ssl_client_auth: str = "none"
    ssl_principal_mapping_rules: str = "DEFAULT"
    sasl_enabled_mechanisms: str = "SCRAM-SHA-256,SCRAM-SHA-512"
    sasl_plain_users_file: Path | None = None
    """``USER:PASSWORD`` lines for SASL/PLAIN (not a Kafka setting: Kafka reads JAAS)."""
    sasl_oauthbearer_jwks_endpoint_url: str = ""
    sasl_oauthbearer_expected_audience: str = ""
    sasl_oauthbearer_expected_issuer: str = ""
    sasl_oauthbearer_sub_claim_name: str = "sub"
    sasl_oauthbearer_clock_skew_seconds: int = 30
    connection_failed_authentication_delay_ms: int = 100
    connections_max_reauth_ms: int = 0
    """0: sessions never expire; otherwise clients must re-authenticate within this (KIP-368)."""
    sasl_server_max_receive_size: int = 524_288
    """Largest request a SASL connection may send before it authenticated (Kafka's default)."""
    sasl_mechanism_inter_broker_protocol: str = "PLAIN"
    sasl_inter_broker_username: str = ""
    """This broker's own SASL user when it calls another broker (not a Kafka setting: Kafka reads JAAS)."""
    sasl_inter_broker_password: str = ""


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not port_s.isdigit():
        raise ConfigError(f"{what}: {value!r} must look like HOST:PORT (e.g. 127.0.0.1:9092)")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what}: port {port} is outside 0..65535")
    return host.strip("[]") or "0.0.0.0", port


def _int(low: int, high: int) -> Callable[[str, str], int]:
    def conv(value: str, what: str) -> int:
        try:
            n = int(str(value))
        except ValueError:
            raise ConfigError(f"{what}: {value!r} is not an integer") from None
        if not low <= n <= high:
            raise ConfigError(f"{what}: {n} is outside {low}..{high}")
        return n

    return conv


def _bool(value: str, what: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what}: {value!r} is not a boolean (true/false)")


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def conv(value: str, what: str) -> str:
        if str(value) not in allowed:
            raise ConfigError(f"{what}: {value!r} is not one of {', '.join(allowed)}")
        return str(value)

    return conv


_OFF = ("off", "none", "")

# setting name (flag/env/file key) -> converter
SETTINGS: dict[str, Callable[[str, str], Any]] = {
    "node_id": _int(0, 2**31 - 1),
    "data_dir": lambda v, _w: Path(str(v)),
    "listen": lambda v, w: parse_host_port(str(v), w),
    "advertise": lambda v, w: parse_host_port(str(v), w),
    "metrics_listen": lambda v, w: (
        None if str(v).lower() in ("off", "none", "") else parse_host_port(str(v), w)
    ),
    "socket_request_max_bytes": _int(MIN_FRAME_SIZE, _INT32_MAX),
    "queued_max_request_bytes": lambda v, w: _unbounded_or(_int(MIN_FRAME_SIZE, 2**63 - 1), v, w),
    "connections_max_idle_ms": _int(1, 2**63 - 1),
    "request_read_timeout_ms": _int(1, 2**63 - 1),
    "max_connections": _int(0, _INT32_MAX),
    "max_connections_per_ip": _int(0, _INT32_MAX),
    "message_max_bytes": _int(0, _INT32_MAX),
    "auto_create_topics_enable": _bool,
    "num_partitions": _int(1, 10_000),
    "default_replication_factor": _int(1, 32_767),
    "admin_listen": lambda v, w: None if str(v).lower() in _OFF else parse_host_port(str(v), w),
    "admin_token_file": lambda v, _w: Path(str(v)),
    "admin_tls_cert": lambda v, _w: Path(str(v)),
    "admin_tls_key": lambda v, _w: Path(str(v)),
    "admin_tls_ca": lambda v, _w: Path(str(v)),
    "admin_max_connections": _int(1, 1024),
    "admin_request_timeout_ms": _int(100, 600_000),
    "log_format": _choice("text", "json"),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    "in_memory": _bool,
    "zero_copy": _bool,
    "ready_file": lambda v, _w: Path(str(v)),
    "retention_check_ms": _int(100, 2**31 - 1),
    "log_cleaner_enable": _bool,
    "log_cleaner_backoff_ms": _int(10, 2**31 - 1),
    "log_cleaner_dedupe_buffer_size": _int(1024, 2**62),
    "transaction_max_timeout_ms": _int(1, 2**31 - 1),
    "transactional_id_expiration_ms": _int(1, 2**31 - 1),
    "replication": _choice("none", "raft"),
    "cluster_members": lambda v, _w: str(v),
    "cluster_id": lambda v, w: _cluster_id(str(v), w),
    "raft_listen": lambda v, w: (parse_host_port(str(v), w), str(v))[1],
    "rack": lambda v, w: _rack(str(v), w),
    "raft_log": _choice("partition", "separate"),
    "controller_snapshot_entries": _int(1, 2**31 - 1),
    "authorizer_class_name": lambda v, _w: str(v).strip(),
    "super_users": lambda v, w: _principals(str(v), w),
    "allow_everyone_if_no_acl_found": _bool,
    "allow_broker_join": _bool,
    "auto_leader_rebalance_enable": _bool,
    "quota_window_num": _int(1, 1000),
    "quota_window_size_seconds": _int(1, 3600),
    "raft_tls_cert": lambda v, w: _readable_file(str(v), w),
    "raft_tls_key": lambda v, w: _readable_file(str(v), w),
    "raft_tls_ca": lambda v, w: _readable_file(str(v), w),
    "listeners": lambda v, _w: str(v),
    "advertised_listeners": lambda v, _w: str(v),
    "listener_security_protocol_map": lambda v, _w: str(v),
    "inter_broker_listener_name": lambda v, _w: str(v).strip().upper(),
    "ssl_keystore_type": _choice("PEM"),
    "ssl_keystore_location": lambda v, _w: _path_or_none(v),
    "ssl_keystore_certificate_chain": lambda v, _w: str(v),
    "ssl_keystore_key": lambda v, _w: str(v),
    "ssl_key_password": lambda v, _w: str(v),
    "ssl_truststore_type": _choice("PEM"),
    "ssl_truststore_location": lambda v, _w: _path_or_none(v),
    "ssl_client_auth": _choice("none", "requested", "required"),
    "ssl_principal_mapping_rules": lambda v, _w: str(v),
    "sasl_enabled_mechanisms": lambda v, w: _mechanisms(str(v), w),
    "sasl_plain_users_file": lambda v, _w: _path_or_none(v),
    "sasl_oauthbearer_jwks_endpoint_url": lambda v, _w: str(v),
    "sasl_oauthbearer_expected_audience": lambda v, _w: str(v),
    "sasl_oauthbearer_expected_issuer": lambda v, _w: str(v),
    "sasl_oauthbearer_sub_claim_name": lambda v, _w: str(v),
    "sasl_oauthbearer_clock_skew_seconds": _int(0, 3600),
    "connection_failed_authentication_delay_ms": _int(0, 60_000),
    "connections_max_reauth_ms": _int(0, 2**63 - 1),
    "sasl_server_max_receive_size": _int(MIN_FRAME_SIZE, 2**31 - 1),
    "sasl_mechanism_inter_broker_protocol": _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    "sasl_inter_broker_username": lambda v, _w: str(v),
    "sasl_inter_broker_password": lambda v, _w: str(v),
}

_RAFT_TLS = ("raft_tls_cert", "raft_tls_key", "raft_tls_ca")


def _readable_file(value: str, what: str) -> Path | None:
    if value.strip().lower() in _OFF:
        return None
    path = Path(value)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {value!r}: {exc.strerror}") from None
    return path


def _unbounded_or(conv: Callable[[str, str], int], value: str, what: str) -> int:
    """-1 (Kafka's "no limit") or a value ``conv`` accepts."""
    if str(value).strip() == "-1":
        return -1
    return conv(value, what)


def _check_together(values: dict[str, Any], where: dict[str, str]) -> None:
    """Settings that bound each other (as Kafka checks them)."""
    config = BrokerConfig(**values)
    queued = config.queued_max_request_bytes
    if queued != -1 and queued < config.socket_request_max_bytes:
        raise ConfigError(
            f"{where.get('queued_max_request_bytes', 'queued_max_request_bytes')}: {queued} is below "
            f"socket_request_max_bytes {config.socket_request_max_bytes} (one largest request must fit)"
        )


# Earlier names of settings, still accepted (flag, STREAMRAFT_ env variable, config file key): the operator
# and existing config files write them.
ALIASES: dict[str, str] = {
    "auto_create_topics": "auto_create_topics_enable",
    "default_partitions": "num_partitions",
}


def _principals(value: str, what: str) -> frozenset[str]:
    from streamraft_broker.security.acl import parse_super_users  # noqa: PLC0415

    try:
        return parse_super_users(value)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


_SECURITY_PREFIXES = (
    "listener",
    "advertised_",
    "inter_broker",
    "ssl_",
    "sasl_",
    "connection_failed",
    "connections_max_reauth",
)
SECURITY_KEYS = tuple(
    k
    for k in SETTINGS
    if k.startswith(
        (
            "listener",
            "advertised_",
            "inter_broker",
            "ssl_",
            "sasl_",
            "connection_failed",
            "connections_max_reauth",
        )
    )
)
"""Listener and authentication settings (flags generated from these names)."""

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def _path_or_none(value: object) -> Path | None:
    text = str(value).strip()
    return Path(text) if text else None


def _mechanisms(value: str, what: str) -> str:
    names = [n.strip().upper() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SASL_MECHANISMS]
    if unknown:
        raise ConfigError(
            f"{what}: unsupported SASL mechanism(s) {unknown}; supported: {list(SASL_MECHANISMS)}"
        )
    return ",".join(names)


def _cluster_id(value: str, what: str) -> str:
    text = value.strip()
    if text and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ConfigError(f"{what}: {value!r} must be 1 to 64 letters, digits, '_' or '-'")
    return text


def _rack(value: str, what: str) -> str | None:
    text = value.strip()
    if len(text) > 255 or any(not c.isprintable() for c in text):
        raise ConfigError(f"{what}: {value!r} must be at most 255 printable characters")
    return text or None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return {str(k).replace("-", "_").replace(".", "_"): v for k, v in data.items()}


def load_config(
    flags: Mapping[str, Any], env: Mapping[str, str], config_file: Path | None = None
) -> BrokerConfig:
    layered: dict[str, tuple[Any, str]] = {}
    if config_file is not None:
        for read_key, value in read_config_file(config_file).items():
            key = ALIASES.get(read_key, read_key)
            if key not in SETTINGS:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            layered[key] = (value, f"{read_key} in {config_file}")
    for alias, key in ALIASES.items():
        env_name = "STREAMRAFT_" + alias.upper()
        if env_name in env:
            layered[key] = (env[env_name], f"environment variable {env_name}")
    for key in SETTINGS:
        env_name = "STREAMRAFT_" + key.upper()
        if env_name in env:
            layered[key] = (env[env_name], f"environment variable {env_name}")
    for key, value in flags.items():
        if value is not None:
            assert key in SETTINGS, f"flag {key} has no setting"
            layered[key] = (value, f"--{key.replace('_', '-')}")
    values: dict[str, Any] = {}
    wheres: dict[str, str] = {}
    for key, (raw, where) in layered.items():
        wheres[key] = where
        converted = SETTINGS[key](raw, where)
        if key == "listen":
            values["listen_host"], values["listen_port"] = converted
        elif key == "advertise":
            values["advertise_host"], values["advertise_port"] = converted
        elif key == "metrics_listen":
            if converted is None:
                values["metrics_port"] = None
            else:
                values["metrics_host"], values["metrics_port"] = converted
        elif key == "admin_listen":
            if converted is None:
                values["admin_port"] = None
            else:
                values["admin_host"], values["admin_port"] = converted
        else:
            values[key] = converted
    tls = {k: layered[k][1] for k in ("admin_tls_cert", "admin_tls_key", "admin_tls_ca") if k in layered}
    if tls and len(tls) != 3:
        lacking = sorted({"admin_tls_cert", "admin_tls_key", "admin_tls_ca"} - set(tls))
        raise ConfigError(f"{', '.join(tls.values())}: admin mTLS also needs {', '.join(lacking)}")
    _check_together(values, wheres)
    given = [k for k in _RAFT_TLS if values.get(k) is not None]
    if given and len(given) != len(_RAFT_TLS):
        missing = ", ".join(k for k in _RAFT_TLS if k not in given)
        raise ConfigError(
            f"Raft mutual TLS needs raft_tls_cert, raft_tls_key and raft_tls_ca: {missing} not set"
        )
    return BrokerConfig(**values)
