"""Kafka's listener settings: ``listeners``, ``advertised.listeners``, ``listener.security.protocol.map``
and ``inter.broker.listener.name``, parsed into one ``Listener`` per server socket.

Without ``listeners`` the broker has one PLAINTEXT listener on ``listen`` (advertised as ``advertise``), as
before. Each listener's name picks its security protocol through the map (Kafka's default map sends each
protocol name to itself, so ``SASL_SSL://:9093`` needs no map entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamraft_broker.config import BrokerConfig, ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_LISTENER = "PLAINTEXT"
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ENDPOINT = re.compile(r"^(?P<name>[^:/]+)://(?P<host>\[[^\]]*\]|[^:]*):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Listener:
    name: str
    security_protocol: str
    host: str
    port: int
    """The configured port (0: any free port; the bound one is known once the socket is open)."""
    advertised_host: str | None = None
    advertised_port: int | None = None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _endpoints(text: str, what: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        m = _ENDPOINT.match(item)
        if m is None:
            raise ConfigError(
                f"{what}: {item!r} must look like NAME://HOST:PORT (e.g. SASL_SSL://0.0.0.0:9093)"
            )
        name = m["name"].upper()
        if not _NAME.match(name):
            raise ConfigError(f"{what}: listener name {m['name']!r} must be letters, digits or _")
        port = int(m["port"])
        if port > 65535:
            raise ConfigError(f"{what}: port {port} is outside 0..65535")
        if any(n == name for n, _, _ in out):
            raise ConfigError(f"{what}: listener {name} appears twice")
        out.append((name, m["host"].strip("[]"), port))
    return out


def _protocol_map(text: str) -> dict[str, str]:
    mapping = {p: p for p in PROTOCOLS}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, proto = item.partition(":")
        proto = proto.strip().upper()
        if not sep or proto not in PROTOCOLS:
            raise ConfigError(
                f"listener_security_protocol_map: {item!r} must look like NAME:PROTOCOL with PROTOCOL one "
                f"of {', '.join(PROTOCOLS)}"
            )
        mapping[name.strip().upper()] = proto
    return mapping


def parse_listeners(cfg: BrokerConfig) -> list[Listener]:
    """The broker's listeners in configured order; raises ConfigError naming the bad setting."""
    if not cfg.listeners.strip():
        if cfg.advertised_listeners.strip():
            raise ConfigError("advertised_listeners needs listeners")
        return [
            Listener(
                DEFAULT_LISTENER,
                "PLAINTEXT",
                cfg.listen_host,
                cfg.listen_port,
                cfg.advertise_host,
                cfg.advertise_port,
            )
        ]
    protocols = _protocol_map(cfg.listener_security_protocol_map)
    advertised = {n: (h, p) for n, h, p in _endpoints(cfg.advertised_listeners, "advertised_listeners")}
    out: list[Listener] = []
    for name, host, port in _endpoints(cfg.listeners, "listeners"):
        proto = protocols.get(name)
        if proto is None:
            raise ConfigError(
                f"listeners: listener {name} has no security protocol; add {name}:PROTOCOL to "
                "listener_security_protocol_map"
            )
        adv = advertised.pop(name, None)
        out.append(
            Listener(
                name,
                proto,
                host or "0.0.0.0",
                port,
                (adv[0] or None) if adv else None,
                adv[1] if adv else None,
            )
        )
    if not out:
        raise ConfigError("listeners: no listener given")
    if advertised:
        raise ConfigError(f"advertised_listeners: {sorted(advertised)} are not in listeners")
    inter = cfg.inter_broker_listener_name
    if inter and inter not in {x.name for x in out}:
        raise ConfigError(f"inter_broker_listener_name: {inter} is not one of the listeners")
    return out


def inter_broker_listener(cfg: BrokerConfig, listeners: list[Listener]) -> Listener:
    name = cfg.inter_broker_listener_name
    for x in listeners:
        if x.name == name:
            return x
    return listeners[0]
