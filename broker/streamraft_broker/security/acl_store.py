"""Where a broker's ACL bindings live: the controller log in a replicated cluster
(``replication.acls.ControllerAcls``), a durable JSON file under the data directory on a single node
(``FileAclStore``). Both apply the same commands (``controller.commands.CreateAcls`` / ``DeleteAcls``) to
an ``AclSet``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from streamraft_broker.controller.commands import AclCommand, CreateAcls, DeleteAcls
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.security.acl import AclBinding, AclError, AclSet

FILE_NAME = "acls.json"


class AclStore(Protocol):
    def current(self) -> AclSet:
        """The bindings in force now (read by every authorization decision)."""
        ...

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        """Stores the bindings durably (AclError or a TopicError-like exception when it cannot)."""
        ...

    async def delete(self, bindings: Sequence[AclBinding]) -> None: ...


class FileAclStore:
    """Single node: the bindings in ``DATA/acls.json``, rewritten atomically (temp file, fsync, rename)
    on every change, so a crash leaves the old or the new set, never a torn one."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._acls = AclSet()
        if self.path.exists():
            try:
                self._acls = AclSet.from_json(json.loads(self.path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError, AclError) as exc:
                raise AclError(f"{self.path} is not a valid ACL file: {exc}") from None

    def current(self) -> AclSet:
        return self._acls

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        self._apply(CreateAcls(tuple(bindings)))

    async def delete(self, bindings: Sequence[AclBinding]) -> None:
        self._apply(DeleteAcls(tuple(bindings)))

    def _apply(self, command: AclCommand) -> None:
        # Applied to a copy first: a failed write leaves memory and disk agreeing on the old set.
        updated = AclSet(self._acls)
        if isinstance(command, CreateAcls):
            updated.add(command.bindings)
        else:
            updated.remove(command.bindings)
        atomic_write(self.path, json.dumps(updated.to_json(), sort_keys=True).encode())
        self._acls = updated
