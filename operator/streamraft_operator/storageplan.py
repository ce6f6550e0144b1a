"""Storage resize planning: a pure function from spec.storage and what the API server holds (the
StatefulSet's volumeClaimTemplate, the brokers' PVCs, their StorageClasses) to the steps to take.

A StatefulSet's volumeClaimTemplates are immutable, so growing storage is: patch each broker PVC's
requests.storage (allowed only when its StorageClass has allowVolumeExpansion), then delete the StatefulSet
with propagationPolicy=Orphan (its pods keep running) and apply it again with the new template; the new
StatefulSet adopts the running pods, whose template (and so revision) did not change: no broker restarts.
Anything else (a shrink, a class without expansion, a storageClass change) is refused and the StatefulSet
keeps its current template, so every other change still applies.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("10Gi", "1500M") in bytes; ValueError naming it when malformed."""
    try:
        value = parse_quantity(text)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from exc
    return Decimal(value)


@dataclass(frozen=True)
class ClaimObservation:
    """One broker PVC as the API server has it."""

    name: str
    requested: str  # spec.resources.requests.storage
    capacity: str | None  # status.capacity.storage, once bound
    storage_class: str | None  # spec.storageClassName (defaulted by the API server at creation)


@dataclass(frozen=True)
class StoragePlan:
    size: str  # the volumeClaimTemplate's size to apply
    storage_class: str | None  # and its storageClassName
    resize: tuple[tuple[str, str], ...] = ()  # (PVC name, new requests.storage)
    recreate: bool = False  # delete the StatefulSet (orphaning pods) before applying it
    refused: str | None = None  # why the wanted storage cannot be had; the current template is kept
    resizing: str | None = None  # PVCs asked to grow whose capacity has not followed yet


def template_storage(sts: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """(size, storageClassName) of the StatefulSet's `data` volumeClaimTemplate; None without one."""
    for tpl in ((sts or {}).get("spec") or {}).get("volumeClaimTemplates") or ():
        if (tpl.get("metadata") or {}).get("name") == "data":
            spec = tpl.get("spec") or {}
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if size is not None:
                return str(size), spec.get("storageClassName") or None
    return None


def claim_observation(pvc: Mapping[str, Any]) -> ClaimObservation:
    spec = pvc.get("spec") or {}
    return ClaimObservation(
        name=str(pvc["metadata"]["name"]),
        requested=str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")),
        capacity=((pvc.get("status") or {}).get("capacity") or {}).get("storage"),
        storage_class=spec.get("storageClassName") or None,
    )


def plan_storage(
    wanted_size: str,
    wanted_class: str | None,
    current: tuple[str, str | None] | None,
    claims: Sequence[ClaimObservation],
    expandable: Mapping[str, bool],
) -> StoragePlan:
    """`current` is the existing StatefulSet's template (None: no StatefulSet yet); `expandable` maps a
    StorageClass name to its allowVolumeExpansion (a class missing from it is treated as not expandable)."""
    if current is None:
        return StoragePlan(wanted_size, wanted_class)
    cur_size, cur_class = current
    keep = StoragePlan(cur_size, cur_class)
    if wanted_class != cur_class:
        return _refused(
            keep,
            f"storage.storageClass cannot change ({_cls(cur_class)} -> {_cls(wanted_class)}): "
            "a PVC's class is immutable; migrate to a new StreamCluster instead",
        )
    want = quantity(wanted_size)
    largest = max([quantity(cur_size), *(quantity(c.requested) for c in claims)])
    if want < largest:
        return _refused(
            keep,
            f"storage.size cannot shrink ({_largest_text(cur_size, claims)} -> {wanted_size}): "
            "Kubernetes volumes only grow",
        )
    growing = [c for c in claims if quantity(c.requested) < want]
    fixed = sorted(
        {_cls(c.storage_class) for c in growing if not expandable.get(c.storage_class or "", False)}
    )
    if fixed:
        return _refused(
            keep,
            f"storage.size cannot grow to {wanted_size}: StorageClass {', '.join(fixed)} does not set "
            "allowVolumeExpansion",
        )
    # Claims still Pending have no capacity yet: that is "not ready", not a resize in flight.
    behind = sorted(c.name for c in claims if c.capacity is not None and quantity(c.capacity) < want)
    return StoragePlan(
        wanted_size,
        wanted_class,
        resize=tuple((c.name, wanted_size) for c in sorted(growing, key=lambda c: c.name)),
        recreate=quantity(cur_size) != want,
        resizing=f"waiting for {', '.join(behind)} to reach {wanted_size}" if behind else None,
    )


def _refused(keep: StoragePlan, why: str) -> StoragePlan:
    return StoragePlan(keep.size, keep.storage_class, refused=why)


def _cls(name: str | None) -> str:
    return name if name else "(cluster default)"


def _largest_text(cur_size: str, claims: Sequence[ClaimObservation]) -> str:
    best = cur_size
    for c in claims:
        if quantity(c.requested) > quantity(best):
            best = c.requested
    return best
