"""What to do to make a Kafka user match its StreamUser: a pure decision, tested without brokers.

Every ACL of the user's principal is the StreamUser's: ACLs for it that the spec does not list are removed
(someone added them behind the operator's back, or the spec dropped them). The password lives only in the
user's Secret; the broker keeps a salted hash, so the operator (re)sets the SCRAM credential when the
broker has none for the user or when it has just generated the password, and cannot see a credential
changed behind its back.
"""

from dataclasses import dataclass

from streamraft_operator.userspec import Acl, UserSpec


@dataclass(frozen=True)
class ObservedUser:
    acls: frozenset[Acl]
    """Every ACL binding whose principal is the user's."""
    scram_mechanisms: frozenset[str]
    """SCRAM mechanisms the broker holds a credential for, e.g. {"SCRAM-SHA-512"}."""
    password_new: bool = False
    """The operator has just generated the password (no Secret held one before)."""
    quotas_supported: bool = False


@dataclass(frozen=True)
class UserPlan:
    add_acls: tuple[Acl, ...] = ()
    remove_acls: tuple[Acl, ...] = ()
    upsert_scram: bool = False
    delete_scram: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return not (self.add_acls or self.remove_acls or self.upsert_scram or self.delete_scram)


SCRAM_SHA_512 = "SCRAM-SHA-512"


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
    problems: list[str] = []
    if not desired.quotas.empty and not observed.quotas_supported:
        problems.append(
            "spec.quotas not applied: the operator's Kafka client (confluent-kafka 2.16 AdminClient) has "
            "no client-quota API (AlterClientQuotas); set them with kafka-configs --entity-type users"
        )
    return UserPlan(add, remove, upsert, delete, tuple(problems))
