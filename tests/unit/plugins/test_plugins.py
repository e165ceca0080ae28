"""Plugin discovery and validation (entry points and config references), table-driven."""

from __future__ import annotations

import importlib.metadata
import random
from collections.abc import Iterable

import pytest

from sagellm_core.plugins import (
    ROUTING_STRATEGY,
    SCHEDULING_POLICY,
    PluginError,
    discover,
    from_reference,
    plugin,
)
from sagellm_core.scheduling.registry import (
    PolicySettings,
    policies_with_plugins,
    policy_plugins,
)
from sagellm_core.scheduling.view import ClusterView, InstanceView
from sagellm_router.config import parse_settings
from sagellm_router.routing.base import StrategyContext
from sagellm_router.routing.registry import StrategyBook, strategies_with_plugins, strategy_plugins
from sagellm_router.state import build_state
from sagellm_router.types import Endpoint

REF = "sagellm_test_plugins.referenced"


def _eps(*items: tuple[str, str]) -> object:
    def find(group: str) -> Iterable[importlib.metadata.EntryPoint]:
        return [importlib.metadata.EntryPoint(n, v, group) for n, v in items]

    return find


def test_entry_points_are_found_and_used(installed: None) -> None:
    strategies = strategy_plugins()
    assert list(strategies) == ["last_candidate"]
    book = StrategyBook(strategies_with_plugins(strategies), {}, lambda: 0.0, 8)
    candidates = [Endpoint(f"http://h{i}", f"inst-{i}") for i in (2, 0, 1)]
    picked = book.get("pool", "last_candidate").pick(_Req(), candidates, _NoLoad())
    assert picked.instance == "inst-2"
    policies = policies_with_plugins(policy_plugins(), PolicySettings())
    assert {"fifo", "adaptive", "pin_first"} <= set(policies)
    view = ClusterView(instances=(InstanceView("http://b"), InstanceView("http://a")))
    assert policies["pin_first"].placement(None, view, 0.0).instances == ("http://a",)  # type: ignore[arg-type]


def test_reference_plugins_are_found_by_kind(installed: None) -> None:
    refs = [f"{REF}:last_by_reference"]
    assert list(discover(ROUTING_STRATEGY, refs, entry_points=_eps())) == ["last_by_reference"]
    assert discover(SCHEDULING_POLICY, refs, entry_points=_eps()) == {}


@pytest.mark.parametrize(
    ("refs", "eps", "fragment"),
    [
        (["no_colon"], (), "must look like 'package.module:attribute'"),
        (["no_such_module_xyz:f"], (), "cannot import module 'no_such_module_xyz'"),
        ([f"{REF}:missing"], (), "has no attribute 'missing'"),
        ([f"{REF}:NOT_CALLABLE"], (), "int object is not callable"),
        ([f"{REF}:unmarked"], (), "not marked with @plugin"),
        ([f"{REF}:clashing"], (), "'round_robin', which is a built-in"),
        ([], (("x", "no_such_module_xyz:create"),), "cannot import module 'no_such_module_xyz'"),
        ([f"{REF}:last_by_reference"], (("last_by_reference", f"{REF}:last_by_reference"),),
         "two plugins are named 'last_by_reference'"),
    ],
)  # fmt: skip
def test_bad_plugins_are_refused_with_a_clear_error(
    installed: None, refs: list[str], eps: tuple[tuple[str, str], ...], fragment: str
) -> None:
    with pytest.raises(PluginError, match=_escape(fragment)):
        discover(ROUTING_STRATEGY, refs, ["round_robin"], _eps(*eps))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [(f"{REF}:pickless", "lacks pick()"), (f"{REF}:exploding", "its factory failed: RuntimeError")],
)
def test_wrong_interface_fails_at_start_up(installed: None, ref: str, fragment: str) -> None:
    settings = parse_settings(f"plugins: ['{ref}']")
    with pytest.raises(PluginError, match=_escape(fragment)):
        build_state(settings, lambda: 0.0)


def test_unknown_policy_in_a_static_pool_fails_at_start_up(installed: None) -> None:
    doc = "discovery: {type: static, pools: [{name: p, model: m, policy: nope}]}"
    with pytest.raises(ValueError, match=r"scheduling policy 'nope' is not known.*pin_first"):
        build_state(parse_settings(doc), lambda: 0.0)


@pytest.mark.parametrize(("kind", "name"), [("routing", "x"), ("routing_strategy", "not ok")])
def test_plugin_marker_validates_its_arguments(kind: str, name: str) -> None:
    with pytest.raises(PluginError):
        plugin(kind, name)


def test_marker_sets_kind_and_name(installed: None) -> None:
    item = from_reference(f"{REF}:last_by_reference")
    assert (item.kind, item.name) == (ROUTING_STRATEGY, "last_by_reference")
    product = item.factory(StrategyContext(rng=random.Random(0)))
    assert callable(product.pick)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


class _Req:
    prompt_text = ""
    session_key = None


class _NoLoad:
    def in_flight(self, url: str) -> int:
        return 0

    def load(self, url: str) -> float:
        return 0.0
