"""ACL bindings in the controller log: proposed as ``create_acls``/``delete_acls`` commands by the
controller's Raft leader, applied (and validated) by every broker into ``ControllerState.acls``, and kept
in controller snapshots. Only the leader accepts changes (others answer NOT_CONTROLLER)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamraft_broker.security.acl import CREATE_ACLS, DELETE_ACLS, AclBinding, AclSet, acl_command

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService


class ControllerAcls:
    def __init__(self, service: ReplicationService) -> None:
        self.service = service

    def current(self) -> AclSet:
        # Read through the service: a restored snapshot replaces the whole state object.
        return self.service.state.acls

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        # Checked before proposing, so the limit answers the client instead of failing at apply.
        AclSet(self.current()).add(bindings)
        await self.service.propose_metadata(acl_command(CREATE_ACLS, bindings))

    async def delete(self, bindings: Sequence[AclBinding]) -> None:
        await self.service.propose_metadata(acl_command(DELETE_ACLS, bindings))
