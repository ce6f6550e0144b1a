"""What to do to make a Kafka topic match its StreamTopic: a pure decision, tested without brokers.

Only the config keys named in the spec are managed; keys set by other means are left alone. Drift in a
managed key (someone altered it with kafka-configs) is reverted on the next resync.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamraft_operator.configkeys import as_kafka_strings
from streamraft_operator.spec import TopicSpec


@dataclass(frozen=True)
class ObservedTopic:
    partitions: int
    replicas: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicPlan:
    create: bool = False
    grow_to: int | None = None
    set_config: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return not self.create and self.grow_to is None and not self.set_config


def plan_topic(desired: TopicSpec, observed: ObservedTopic | None) -> TopicPlan:
    wanted = as_kafka_strings(desired.config)
    if observed is None:
        return TopicPlan(create=True, set_config=wanted)
    problems: list[str] = []
    grow_to: int | None = None
    if observed.partitions < desired.partitions:
        grow_to = desired.partitions
    elif observed.partitions > desired.partitions:
        problems.append(
            f"topic {desired.topic} has {observed.partitions} partitions, spec asks {desired.partitions}; "
            "Kafka cannot remove partitions: raise spec.partitions"
        )
    if observed.replicas != desired.replicas:
        problems.append(
            f"topic {desired.topic} has {observed.replicas} replicas, spec asks {desired.replicas}; "
            "changing it needs a partition reassignment, which the operator does not do yet"
        )
    drift = {k: v for k, v in wanted.items() if observed.config.get(k) != v}
    return TopicPlan(grow_to=grow_to, set_config=drift, problems=tuple(problems))
