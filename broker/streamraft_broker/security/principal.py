"""Kafka principals and the per-connection session that carries one to every handler.

A connection starts anonymous (``User:ANONYMOUS``, as in Kafka) and becomes a user once its listener's
authentication (a TLS client certificate, a SASL exchange) succeeds. Handlers read the session of the
request they serve through :func:`current_session`; the connection sets it once for its own task, so
every request it dispatches (pipelined ones included, whose tasks copy the context) sees the same object.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

USER_TYPE = "User"


@dataclass(frozen=True)
class KafkaPrincipal:
    """``type:name`` as Kafka writes it (``User:alice``); the type is ``User`` for every built-in
    authenticator."""

    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """``User:alice`` -> KafkaPrincipal("User", "alice"); raises ValueError without a type."""
        kind, sep, name = text.partition(":")
        if not sep or not kind or not name:
            raise ValueError(f"principal {text!r} must look like TYPE:NAME (e.g. User:alice)")
        return cls(kind, name)


ANONYMOUS = KafkaPrincipal(USER_TYPE, "ANONYMOUS")


@dataclass
class Session:
    """One client connection's identity: mutable only by its own authentication steps."""

    client_host: str
    listener: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    principal: KafkaPrincipal = ANONYMOUS
    authenticated: bool = False
    """True once the listener's authentication finished (always False on a PLAINTEXT listener)."""
    attributes: dict[str, str] = field(default_factory=dict)
    """Mechanism details worth logging (SASL mechanism, certificate subject); never used for decisions."""


_CURRENT: contextvars.ContextVar[Session] = contextvars.ContextVar("streamraft_session")

LOCAL_SESSION = Session(client_host="127.0.0.1", listener="INTERNAL", security_protocol="PLAINTEXT")
"""The session of work the broker does for itself (no connection): tests and internal calls."""


def current_session() -> Session:
    """The session of the request being handled (the broker's own when no connection set one)."""
    return _CURRENT.get(LOCAL_SESSION)


def bind_session(session: Session) -> contextvars.Token[Session]:
    """Makes ``session`` the current one for this task and the tasks it creates from now on."""
    return _CURRENT.set(session)
