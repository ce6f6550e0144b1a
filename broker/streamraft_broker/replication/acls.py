"""ACL bindings in the controller log: proposed as ``create_acls``/``delete_acls`` commands by the
controller's Raft leader, applied (and validated) by every broker into ``ControllerState.acls``, and kept
in controller snapshots.

A broker that does not lead the controller group forwards the change (admin clients send ACL requests to
any broker): a CreateAcls/DeleteAcls v3 naming exactly the bindings, signed with this broker's proof
(``broker_proof``) so the controller takes it as already authorized here. DeleteAcls is forwarded as
exact-match filters, one per binding, so the controller deletes what this broker answered with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kio.schema.create_acls.v3 import request as create_req
from kio.schema.delete_acls.v3 import request as delete_req
from kio.static.primitive import i8

from streamraft_broker.controller.commands import CreateAcls, DeleteAcls, encode
from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.replication import broker_proof, membership_rpc
from streamraft_broker.security.acl import (
    CREATE_ACLS,
    DELETE_ACLS,
    AclBinding,
    AclError,
    AclFilter,
    AclSet,
    exact_filter,
)

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

NOT_CONTROLLER = 41


def forward_message(op: str, items: Sequence[AclBinding] | Sequence[AclFilter]) -> str:
    """What a forwarding broker signs: the operation and the exact bindings or filters."""
    return f"{op}:{items!r}"


class ControllerAcls:
    def __init__(self, service: ReplicationService) -> None:
        self.service = service

    def current(self) -> AclSet:
        # Read through the service: a restored snapshot replaces the whole state object.
        return self.service.state.acls

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        # Checked before proposing, so the limit answers the client instead of failing at apply.
        AclSet(self.current()).add(bindings)
        if self.service.runtime.is_leader(CONTROLLER_GROUP):
            await self.service.propose_metadata(encode(CreateAcls(tuple(bindings))))
            return
        body = create_req.CreateAclsRequest(
            creations=tuple(
                create_req.AclCreation(
                    resource_type=i8(b.resource_type),
                    resource_name=b.name,
                    resource_pattern_type=i8(b.pattern_type),
                    principal=b.principal,
                    host=b.host,
                    operation=i8(b.operation),
                    permission_type=i8(b.permission),
                )
                for b in bindings
            )
        )
        answer = await self._forward(30, body, forward_message(CREATE_ACLS, list(bindings)))
        for result in answer.results:
            if int(result.error_code):
                raise AclError(
                    result.error_message or "the controller refused the ACLs", int(result.error_code)
                )

    async def delete(self, bindings: Sequence[AclBinding]) -> None:
        if self.service.runtime.is_leader(CONTROLLER_GROUP):
            await self.service.propose_metadata(encode(DeleteAcls(tuple(bindings))))
            return
        filters = [exact_filter(b) for b in bindings]
        body = delete_req.DeleteAclsRequest(
            filters=tuple(
                delete_req.DeleteAclsFilter(
                    resource_type_filter=i8(f.resource_type),
                    resource_name_filter=f.name,
                    pattern_type_filter=i8(f.pattern_type),
                    principal_filter=f.principal,
                    host_filter=f.host,
                    operation=i8(f.operation),
                    permission_type=i8(f.permission),
                )
                for f in filters
            )
        )
        answer = await self._forward(31, body, forward_message(DELETE_ACLS, filters))
        for result in answer.filter_results:
            if int(result.error_code):
                raise AclError(
                    result.error_message or "the controller refused to delete", int(result.error_code)
                )

    async def _forward(self, api_key: int, body: object, message: str) -> Any:
        try:
            host, port = self.service.controller_address()
            proof = broker_proof.client_id(self.service.node_id, self.service.membership.incarnation, message)
            return await membership_rpc.call(host, port, api_key, 3, body, client_id=proof)
        except membership_rpc.ControllerUnreachable as exc:
            raise AclError(f"controller unreachable: {exc}", NOT_CONTROLLER) from None
