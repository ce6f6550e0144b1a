"""SCRAM credentials: the commands that change them, the state they build, and where that state lives.

A replicated cluster keeps them in the controller state (``controller/state.py`` applies these commands
and snapshots ``ScramCredentials``), so every broker authenticates every user. A single node applies the
very same commands to a small JSON file under its data directory. Only what the server side of SCRAM
needs is stored (salt, StoredKey, ServerKey, iterations), never a password.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamraft_broker.controller.commands import ScramCommand, UpsertScramCredential
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.security.scram import MECHANISMS, ScramCredential

MAX_USER_CHARS = 1024


def _credential_json(c: ScramCredential) -> dict[str, Any]:
    return {
        "salt": base64.b64encode(c.salt).decode(),
        "stored_key": base64.b64encode(c.stored_key).decode(),
        "server_key": base64.b64encode(c.server_key).decode(),
        "iterations": c.iterations,
    }


def _credential_from(doc: Any) -> ScramCredential:
    return ScramCredential(
        base64.b64decode(doc["salt"]),
        base64.b64decode(doc["stored_key"]),
        base64.b64decode(doc["server_key"]),
        int(doc["iterations"]),
    )


@dataclass
class ScramCredentials:
    """user -> mechanism -> credential, built only by ``apply``."""

    users: dict[str, dict[str, ScramCredential]] = field(default_factory=dict)

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.users.get(user, {}).get(mechanism)

    def apply(self, command: ScramCommand) -> bool:
        """Applies one command; True if it changed anything. A mechanism this broker does not know
        changes nothing."""
        if command.mechanism not in MECHANISMS:
            return False
        if isinstance(command, UpsertScramCredential):
            self.users.setdefault(command.user, {})[command.mechanism] = command.credential
            return True
        mechs = self.users.get(command.user)
        if mechs is None or mechs.pop(command.mechanism, None) is None:
            return False
        if not mechs:
            del self.users[command.user]
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            user: {m: _credential_json(c) for m, c in sorted(mechs.items())}
            for user, mechs in sorted(self.users.items())
        }

    @classmethod
    def from_json(cls, doc: Any) -> ScramCredentials:
        out = cls()
        for user, mechs in doc.items():
            out.users[str(user)] = {str(m): _credential_from(c) for m, c in mechs.items()}
        return out


class CredentialStore:
    """What the SASL server and the credential APIs use: read the current state, submit commands.

    ``submit`` makes the commands durable where the state lives (the controller log, or the local file)
    and returns once they are applied here."""

    def __init__(
        self, state: Callable[[], ScramCredentials], submit: Callable[[list[ScramCommand]], Awaitable[None]]
    ) -> None:
        self._state = state
        self.submit = submit

    @property
    def state(self) -> ScramCredentials:
        return self._state()

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._state().lookup(user, mechanism)


class LocalCredentialFile:
    """A single node's credentials: the commands applied to ``ScramCredentials`` and the whole state
    rewritten atomically (write, fsync, rename) after each batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.credentials = ScramCredentials()
        if path.exists():
            try:
                self.credentials = ScramCredentials.from_json(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"SCRAM credential file {path} is malformed: {exc!r}") from None

    def store(self) -> CredentialStore:
        return CredentialStore(lambda: self.credentials, self._submit)

    async def _submit(self, commands: list[ScramCommand]) -> None:
        for command in commands:
            self.credentials.apply(command)
        # Salted keys only, but still not world-readable.
        atomic_write(self.path, json.dumps(self.credentials.to_json(), sort_keys=True).encode(), mode=0o600)
