"""Engine isolation: the chart hands the operator the peers that may reach engine pods (this
release's router and operator, and the configured scrapers); the operator gives every pool a
NetworkPolicy with them (tests/integration/operator/test_operator_spec_guard.py)."""

from __future__ import annotations

from typing import Any

from chart_helpers import NAMESPACE, Manifest, Render, find, one
from chart_values import VALUE_SETS
from test_chart_rbac import OPERATOR_SA, grants, rules_of

from sagellm_operator.cli import operator as operator_cli
from sagellm_operator.cli import parse_peers

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


def _operator_params(docs: list[Manifest]) -> dict[str, Any]:
    deploy = one(docs, "Deployment", "sag-sagellm-operator")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    params: dict[str, Any] = operator_cli.make_context("operator", args[1:]).params
    return params


def _pod_labels(docs: list[Manifest], name: str) -> dict[str, str]:
    deploy = one(docs, "Deployment", name)
    labels: dict[str, str] = deploy["spec"]["template"]["metadata"]["labels"]
    return labels


def test_operator_gets_the_router_operator_and_scrapers_as_engine_peers(render: Render) -> None:
    docs = render({"networkPolicy": {"metricsScrapers": [SCRAPER]}})
    peers = _operator_params(docs)["engine_ingress_peers"]
    assert parse_peers(peers) == (_component("router"), _component("operator"), SCRAPER)
    for name, peer in (("router", _component("router")), ("operator", _component("operator"))):
        selector = peer["podSelector"]["matchLabels"]
        assert selector.items() <= _pod_labels(docs, f"sag-sagellm-{name}").items()
    granted = {(g, r, v) for _, g, r, v in grants(rules_of(docs, OPERATOR_SA))}
    assert {("networking.k8s.io", "networkpolicies", v) for v in ("create", "patch")} <= granted


def test_only_the_routers_reach_kv_aware_engines_event_ports(render: Render) -> None:
    docs = render({"networkPolicy": {"metricsScrapers": [SCRAPER]}})
    peers = _operator_params(docs)["kv_event_peers"]
    assert parse_peers(peers, "--kv-event-peers") == (_component("router"),)


def test_cluster_scope_grants_network_policies_cluster_wide(render: Render) -> None:
    docs = render(VALUE_SETS["cluster"])
    assert _operator_params(docs)["engine_ingress_peers"] is not None
    kinds = {k for k, g, r, _ in grants(rules_of(docs, OPERATOR_SA)) if r == "networkpolicies"}
    assert kinds == {"ClusterRole"}


def test_network_policy_can_be_turned_off(render: Render) -> None:
    docs = render({"networkPolicy": {"enabled": False}})
    assert _operator_params(docs)["engine_ingress_peers"] is None
    assert _operator_params(docs)["kv_event_peers"] is None
    granted = {r for _, _, r, _ in grants(rules_of(docs, OPERATOR_SA))}
    assert "networkpolicies" not in granted
    assert not find(docs, "NetworkPolicy"), "the operator makes them, per pool"
