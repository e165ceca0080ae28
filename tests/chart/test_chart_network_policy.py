"""Engine isolation: one NetworkPolicy per served namespace lets only the router, the operator,
other engines and the configured scrapers reach engine pods."""

from __future__ import annotations

from typing import Any

from chart_helpers import NAMESPACE, Manifest, find, one
from chart_values import VALUE_SETS
from conftest import Render

from sagellm_core.api import labels as L

SCRAPER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _component(component: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "sagellm",
                "app.kubernetes.io/instance": "sag",
                "app.kubernetes.io/component": component,
            }
        },
    }


def _pod_labels(docs: list[Manifest], name: str) -> dict[str, str]:
    labels: dict[str, str] = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return labels


def test_engines_accept_only_router_operator_engines_and_scrapers(render: Render) -> None:
    docs = render({"networkPolicy": {"metricsScrapers": [SCRAPER]}})
    policy = one(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert spec["podSelector"] == {"matchLabels": {L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE}}
    assert spec["policyTypes"] == ["Ingress"]
    engines, http = spec["ingress"]
    assert engines == {"from": [{"podSelector": spec["podSelector"]}]}
    assert http["from"] == [_component("router"), _component("operator"), SCRAPER]
    assert http["ports"] == [{"port": 8000, "protocol": "TCP"}]
    for name, peer in (("router", http["from"][0]), ("operator", http["from"][1])):
        selector = peer["podSelector"]["matchLabels"]
        assert selector.items() <= _pod_labels(docs, f"sag-sagellm-{name}").items()


def test_engine_port_is_the_operators(render: Render) -> None:
    from sagellm_operator.settings import PodDefaults

    (port,) = one(render({}), "NetworkPolicy")["spec"]["ingress"][1]["ports"]
    assert port["port"] == PodDefaults().port


def test_one_policy_per_allow_listed_namespace(render: Render) -> None:
    policies = find(render(VALUE_SETS["cluster"]), "NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]


def test_network_policy_can_be_turned_off(render: Render) -> None:
    assert not find(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")
