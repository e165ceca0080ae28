"""The model-name ownership rule: oldest claim wins, then declaration order, then the name."""

from __future__ import annotations

import pytest

from sagellm_core.ownership import Claim, claim_of, conflict_message, resolve

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"


@pytest.mark.parametrize(
    ("claims", "owner"),
    [
        ([Claim("z/victim", "m", T0), Claim("a/evil", "m", T1)], "z/victim"),
        ([Claim("a/evil", "m", T1), Claim("z/victim", "m", T0)], "z/victim"),
        ([Claim("b/x", "m", T0), Claim("a/y", "m", T0)], "a/y"),  # same second: by name
        ([Claim("second", "m", None, 1), Claim("first", "m", None, 0)], "first"),  # file order
        ([Claim("a", "m", None, 0), Claim("b", "m", T1, 1)], "b"),  # a timestamp beats none
        ([Claim("a", "m", "not a time"), Claim("b", "m", T1)], "b"),  # unparsable sorts last
        ([Claim("a", "m", "2026-01-01T00:00:00+02:00"), Claim("b", "m", T0)], "a"),  # zones
    ],
)
def test_the_oldest_claim_owns_the_name(claims: list[Claim], owner: str) -> None:
    verdict = resolve(claims)
    assert verdict.owners == {"m": owner}
    losers = {c.key for c in claims} - {owner}
    assert verdict.conflicts == dict.fromkeys(losers, owner)
    assert verdict.accepted(owner)
    assert not any(verdict.accepted(k) for k in losers)


def test_different_names_do_not_conflict() -> None:
    verdict = resolve([Claim("a/p", "m1", T1), Claim("b/q", "m2", T0)])
    assert verdict.owners == {"m1": "a/p", "m2": "b/q"}
    assert verdict.conflicts == {}


def test_claim_of_a_pool_object() -> None:
    obj = {
        "metadata": {"name": "evil", "namespace": "a-tenant-b", "creationTimestamp": T1},
        "spec": {"model": {"name": "shared"}},
    }
    assert claim_of(obj) == Claim("a-tenant-b/evil", "shared", T1)
    assert claim_of({"metadata": {"name": "x"}, "spec": {}}) is None
    assert "a/owner" in conflict_message("shared", "a/owner")
