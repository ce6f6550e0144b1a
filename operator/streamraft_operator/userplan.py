"""What to do to make a Kafka user match its StreamUser: a pure decision, tested without brokers.

Every ACL of the user's principal is the StreamUser's: ACLs for it that the spec does not list are removed
(someone added them behind the operator's back, or the spec dropped them). So is every client quota of
the entity ``user=<principal name>``: it holds exactly the spec's values, and a key the spec does not set
is removed (its client-id and default entities are not the StreamUser's and are left alone). The password
lives only in the user's Secret; the broker keeps a salted hash, so the operator (re)sets the SCRAM
credential when the broker has none for the user or when it has just generated the password, and cannot
see a credential changed behind its back.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamraft_operator.userspec import Acl, Quotas, UserSpec

QuotaOp = tuple[str, float | None]
"""Kafka quota key, and the value to set or None to remove the key."""


@dataclass(frozen=True)
class ObservedUser:
    acls: frozenset[Acl]
    """Every ACL binding whose principal is the user's."""
    scram_mechanisms: frozenset[str]
    """SCRAM mechanisms the broker holds a credential for, e.g. {"SCRAM-SHA-512"}."""
    password_new: bool = False
    """The operator has just generated the password (no Secret held one before)."""
    quotas: Mapping[str, float] = field(default_factory=dict)
    """Quota key -> value of the entity user=<principal name> (DescribeClientQuotas, strict)."""


@dataclass(frozen=True)
class UserPlan:
    add_acls: tuple[Acl, ...] = ()
    remove_acls: tuple[Acl, ...] = ()
    upsert_scram: bool = False
    delete_scram: tuple[str, ...] = ()
    quota_ops: tuple[QuotaOp, ...] = ()

    @property
    def noop(self) -> bool:
        return not (
            self.add_acls or self.remove_acls or self.upsert_scram or self.delete_scram or self.quota_ops
        )


SCRAM_SHA_512 = "SCRAM-SHA-512"


def plan_quotas(desired: Quotas, observed: Mapping[str, float]) -> tuple[QuotaOp, ...]:
    """The alterations that leave the user entity with exactly ``desired``'s values (sorted by key):
    a key set to another value or missing is set, a key the spec does not have is removed."""
    want = desired.kafka_values()
    ops: list[QuotaOp] = [(k, v) for k, v in want.items() if observed.get(k) != v]
    ops += [(k, None) for k in observed if k not in want]
    return tuple(sorted(ops))


def plan_user(desired: UserSpec, observed: ObservedUser) -> UserPlan:
    add = tuple(sorted(desired.acls - observed.acls))
    remove = tuple(sorted(observed.acls - desired.acls))
    upsert = False
    delete: tuple[str, ...] = ()
    if desired.auth == "scram-sha-512":
        upsert = observed.password_new or SCRAM_SHA_512 not in observed.scram_mechanisms
        delete = tuple(sorted(observed.scram_mechanisms - {SCRAM_SHA_512}))
    else:
        # A TLS user authenticates by certificate only: a leftover password would still let it in.
        delete = tuple(sorted(observed.scram_mechanisms))
    return UserPlan(add, remove, upsert, delete, plan_quotas(desired.quotas, observed.quotas))
