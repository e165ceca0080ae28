"""Plugins named by reference in a router config (``plugins: ["module:attr"]``), and broken
ones for the validation tests."""

from __future__ import annotations

from sagellm_core.plugins import plugin
from sagellm_router.routing.base import StrategyContext
from sagellm_test_plugins.policies import PinFirst
from sagellm_test_plugins.routing import LastCandidate


@plugin("routing_strategy", "last_by_reference")
def last_by_reference(ctx: StrategyContext) -> LastCandidate:
    return LastCandidate()


@plugin("routing_strategy", "round_robin")
def clashing(ctx: StrategyContext) -> LastCandidate:
    return LastCandidate()


@plugin("routing_strategy", "pickless")
def pickless(ctx: StrategyContext) -> object:
    return object()


@plugin("scheduling_policy", "exploding")
def exploding(settings: object) -> object:
    raise RuntimeError("boom")


unmarked = LastCandidate.__init__
NOT_CALLABLE = 3


@plugin("scheduling_policy", "pinned")
def pinned(settings: object) -> PinFirst:
    return PinFirst()
