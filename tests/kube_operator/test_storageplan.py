"""Storage resize planning: grow through PVC expansion when every class allows it, refuse anything else
with a reason naming why, and keep the StatefulSet's current template when refusing."""

import pytest
from streamraft_operator.storageplan import (
    ClaimObservation,
    StoragePlan,
    claim_observation,
    plan_storage,
    quantity,
    template_storage,
)

STD = "standard"


def _claims(
    requested: str, capacity: str | None = "", cls: str | None = STD, n: int = 2
) -> list[ClaimObservation]:
    """Capacity defaults to what is requested; None is a claim not bound yet."""
    cap = requested if capacity == "" else capacity
    return [ClaimObservation(f"data-demo-{i}", requested, cap, cls) for i in range(n)]


CASES = [
    pytest.param(
        ("2Gi", None), None, [], {}, StoragePlan("2Gi", None), id="no StatefulSet yet: the spec as is"
    ),
    pytest.param(
        ("1Gi", None),
        ("1Gi", None),
        _claims("1Gi"),
        {STD: False},
        StoragePlan("1Gi", None),
        id="unchanged: nothing to do, even on a class without expansion",
    ),
    pytest.param(
        ("1024Mi", None),
        ("1Gi", None),
        _claims("1Gi"),
        {STD: False},
        StoragePlan("1024Mi", None),
        id="same size spelled differently: no resize, no re-creation",
    ),
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        _claims("1Gi"),
        {STD: True},
        StoragePlan(
            "2Gi",
            None,
            resize=(("data-demo-0", "2Gi"), ("data-demo-1", "2Gi")),
            recreate=True,
            resizing="waiting for data-demo-0, data-demo-1 to reach 2Gi",
        ),
        id="grow with expansion allowed: patch every PVC, re-create the StatefulSet",
    ),
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        [
            ClaimObservation("data-demo-0", "2Gi", "1Gi", STD),
            ClaimObservation("data-demo-1", "1Gi", "1Gi", STD),
        ],
        {STD: True},
        StoragePlan(
            "2Gi",
            None,
            resize=(("data-demo-1", "2Gi"),),
            recreate=True,
            resizing="waiting for data-demo-0, data-demo-1 to reach 2Gi",
        ),
        id="interrupted half-way: only the PVC not yet patched is patched again",
    ),
    pytest.param(
        ("2Gi", None),
        ("2Gi", None),
        _claims("2Gi", capacity="1Gi"),
        {STD: True},
        StoragePlan("2Gi", None, resizing="waiting for data-demo-0, data-demo-1 to reach 2Gi"),
        id="patched and re-created: wait for the capacity to follow",
    ),
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        _claims("1Gi", capacity=None),
        {STD: True},
        StoragePlan("2Gi", None, resize=(("data-demo-0", "2Gi"), ("data-demo-1", "2Gi")), recreate=True),
        id="pending claims (no capacity yet) are not reported as resizing",
    ),
    pytest.param(
        ("3Gi", "fast"),
        ("1Gi", "fast"),
        [],
        {},
        StoragePlan("3Gi", "fast", recreate=True),
        id="no PVC yet: only the template changes",
    ),
]

REFUSED = [
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        _claims("1Gi"),
        {STD: False},
        "storage.size cannot grow to 2Gi: StorageClass standard does not set allowVolumeExpansion",
        id="class without allowVolumeExpansion",
    ),
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        _claims("1Gi"),
        {},
        "storage.size cannot grow to 2Gi: StorageClass standard does not set allowVolumeExpansion",
        id="class not found counts as not expandable",
    ),
    pytest.param(
        ("2Gi", None),
        ("1Gi", None),
        _claims("1Gi", cls=None),
        {},
        "storage.size cannot grow to 2Gi: StorageClass (cluster default) does not set allowVolumeExpansion",
        id="claim without a class",
    ),
    pytest.param(
        ("1Gi", None),
        ("2Gi", None),
        _claims("2Gi"),
        {STD: True},
        "storage.size cannot shrink (2Gi -> 1Gi): Kubernetes volumes only grow",
        id="shrink",
    ),
    pytest.param(
        ("2Gi", None),
        ("2Gi", None),
        [ClaimObservation("data-demo-0", "3Gi", "3Gi", STD)],
        {STD: True},
        "storage.size cannot shrink (3Gi -> 2Gi): Kubernetes volumes only grow",
        id="smaller than a PVC already grown",
    ),
    pytest.param(
        ("1Gi", "fast"),
        ("1Gi", None),
        _claims("1Gi"),
        {STD: True},
        "storage.storageClass cannot change ((cluster default) -> fast): a PVC's class is immutable; "
        "migrate to a new StreamCluster instead",
        id="storageClass change",
    ),
]


@pytest.mark.parametrize(("wanted", "current", "claims", "expandable", "expected"), CASES)
def test_plan(
    wanted: tuple[str, str | None],
    current: tuple[str, str | None] | None,
    claims: list[ClaimObservation],
    expandable: dict[str, bool],
    expected: StoragePlan,
) -> None:
    assert plan_storage(*wanted, current, claims, expandable) == expected


@pytest.mark.parametrize(("wanted", "current", "claims", "expandable", "why"), REFUSED)
def test_refusal_keeps_the_current_template_and_touches_nothing(
    wanted: tuple[str, str | None],
    current: tuple[str, str | None],
    claims: list[ClaimObservation],
    expandable: dict[str, bool],
    why: str,
) -> None:
    assert plan_storage(*wanted, current, claims, expandable) == StoragePlan(*current, refused=why)


def test_template_and_claim_are_read_from_api_objects() -> None:
    sts = {"spec": {"volumeClaimTemplates": [
        {"metadata": {"name": "data"},
         "spec": {"resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "fast"}},
    ]}}  # fmt: skip
    assert template_storage(sts) == ("5Gi", "fast")
    assert template_storage(None) is None
    pvc = {
        "metadata": {"name": "data-demo-0"},
        "spec": {"resources": {"requests": {"storage": "2Gi"}}, "storageClassName": STD},
        "status": {"capacity": {"storage": "1Gi"}},
    }
    assert claim_observation(pvc) == ClaimObservation("data-demo-0", "2Gi", "1Gi", STD)


def test_quantities() -> None:
    assert quantity("1Gi") == quantity("1024Mi") == 2**30
    assert quantity("1G") == 10**9
    with pytest.raises(ValueError, match="not a Kubernetes quantity: '12 parsecs'"):
        quantity("12 parsecs")
