"""The ``Accepted`` condition: does this pool own its model name in the operator's scope?

The rule is core's (:mod:`sagellm_core.ownership`), the same one every router applies to the
pools it discovers, so the condition says what the routers do. The operator writes it because it
already owns pool status and Events; routers keep read-only access to the API.

The claims of the pools in scope are kept in ``Context.claims``: every pool watch event updates
it and every resync replaces it with the pools in scope, so a reconcile needs no extra API call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sagellm_core.api import labels as L
from sagellm_core.conditions import condition, previous
from sagellm_core.ownership import Claim, claim_of, conflict_message, resolve
from sagellm_operator.reconcile.context import Context

Obj = dict[str, Any]


def remember(ctx: Context, pool: Obj, deleted: bool = False) -> set[str]:
    """Record (or forget) the claim one pool makes; returns the keys of the other pools whose
    Accepted condition changes because of it: the owner it displaced or the one it made."""
    claim = claim_of(pool)
    if claim is None:
        return set()
    models = {claim.model}
    if claim.key in ctx.claims:
        models.add(ctx.claims[claim.key].model)
    before = _owners(ctx, models)
    ctx.claims.pop(claim.key, None)
    if not deleted:
        ctx.claims[claim.key] = claim
    after = _owners(ctx, models)
    changed = {before.get(m) for m in models} ^ {after.get(m) for m in models}
    return {key for key in changed if key is not None and key != claim.key}


def _owners(ctx: Context, models: set[str]) -> dict[str, str]:
    return dict(resolve(c for c in ctx.claims.values() if c.model in models).owners)


def remember_all(ctx: Context, pools: Iterable[Obj]) -> None:
    """Replace the claims with those of a fresh list of every pool in scope."""
    ctx.claims = {c.key: c for c in map(claim_of, pools) if c is not None}


def accepted_condition(pool: Obj, others: Iterable[Claim], now: str) -> Obj:
    """The Accepted condition of ``pool`` among the claims of the pools in scope (any claim
    with ``pool``'s own key is replaced by ``pool``'s current one)."""
    mine = claim_of(pool)
    gen = pool["metadata"].get("generation")
    owner = None
    if mine is not None:
        claims = [c for c in others if c.key != mine.key]
        owner = resolve([*claims, mine]).conflicts.get(mine.key)
    if mine is None or owner is None:
        model = mine.model if mine is not None else ""
        status, reason, msg = "True", L.REASON_ACCEPTED, f"serves model name {model!r}"
    else:
        status, reason, msg = (
            "False",
            L.REASON_MODEL_NAME_CONFLICT,
            conflict_message(mine.model, owner),
        )
    old = (pool.get("status") or {}).get("conditions") or []
    return condition(
        old, L.CONDITION_ACCEPTED, status == "True", reason, msg, now=now, generation=gen
    )


def _previous(pool: Obj) -> Mapping[str, Any]:
    return previous((pool.get("status") or {}).get("conditions") or [], L.CONDITION_ACCEPTED)


def newly_rejected(pool: Obj, condition: Obj) -> bool:
    """True when ``condition`` rejects the pool and the stored status did not say so yet."""
    prev = _previous(pool)
    return condition["status"] == "False" and (
        prev.get("status") != "False" or prev.get("message") != condition["message"]
    )
