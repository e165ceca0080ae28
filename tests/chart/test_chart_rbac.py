"""RBAC scope: the router only reads InferencePools; the operator has no wildcards and, in
namespace scope, no cluster-wide access to anything but CRD definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_helpers import CHART, NAMESPACE, HelmFailed, Manifest, Render, find, one, run_helm
from chart_values import VALUE_SETS

ROUTER_SA = "sag-sagellm-router"
OPERATOR_SA = "sag-sagellm-operator"


def rules_of(docs: list[Manifest], service_account: str) -> list[tuple[str, dict[str, Any]]]:
    """(role kind, rule) for every rule granted to a ServiceAccount through any binding."""
    roles = {
        (d["kind"], d["metadata"]["name"]): d
        for d in find(docs, "Role") + find(docs, "ClusterRole")
    }
    out = []
    for binding in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == service_account
            and s["namespace"] == NAMESPACE
            for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role = roles[(ref["kind"], ref["name"])]
        out += [(role["kind"], rule) for rule in role["rules"]]
    return out


def grants(rules: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str, str, str]]:
    """Flatten to (role kind, group, resource, verb)."""
    return {
        (kind, group, resource, verb)
        for kind, rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("scope", ["default", "namespaced", "cluster"])
def test_router_can_only_read_inferencepools(render: Render, scope: str) -> None:
    docs = render(VALUE_SETS[scope])
    role_kind = "ClusterRole" if scope == "cluster" else "Role"
    assert grants(rules_of(docs, ROUTER_SA)) == {
        (role_kind, "sagellm.io", "inferencepools", verb) for verb in ("get", "list", "watch")
    }


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_no_wildcards_anywhere(render: Render, name: str) -> None:
    for role in find(render(VALUE_SETS[name]), "Role") + find(
        render(VALUE_SETS[name]), "ClusterRole"
    ):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: wildcard {field}"
            assert "nonResourceURLs" not in rule


def test_operator_has_what_it_needs_and_no_secrets(render: Render) -> None:
    granted = {(g, r, v) for _, g, r, v in grants(rules_of(render({}), OPERATOR_SA))}
    needed = {
        ("sagellm.io", "inferencepools", "watch"),
        ("sagellm.io", "executioninstances", "create"),
        ("sagellm.io", "executioninstances", "delete"),
        ("sagellm.io", "inferencepools/status", "patch"),
        ("sagellm.io", "executioninstances/status", "patch"),
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "events", "create"),
        ("leaderworkerset.x-k8s.io", "leaderworkersets", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    }
    assert needed <= granted
    resources = {r for _, r, _ in granted}
    assert not resources & {"secrets", "configmaps", "nodes", "namespaces", "serviceaccounts"}
    assert not {v for _, _, v in granted} & {"escalate", "bind", "impersonate"}
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "create") not in granted


def test_namespaced_mode_keeps_workload_access_in_one_namespace(render: Render) -> None:
    docs = render(VALUE_SETS["namespaced-other-ns"])
    for role in find(docs, "Role") + find(docs, "RoleBinding"):
        if role["metadata"]["name"].endswith("-router-reader"):  # the autoscaler reads routers
            pods = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
            assert role["kind"] == "RoleBinding" or role["rules"] == pods
            continue
        assert role["metadata"]["namespace"] == "models"
    cluster = grants(
        [
            (k, r)
            for k, r in rules_of(docs, OPERATOR_SA) + rules_of(docs, ROUTER_SA)
            if k == "ClusterRole"
        ]
    )
    assert {(g, r) for _, g, r, _ in cluster} == {
        ("apiextensions.k8s.io", "customresourcedefinitions")
    }
    assert {v for *_, v in cluster} <= {"get", "list", "watch"}
    operator = one(docs, "Deployment", "sag-sagellm-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=models" in args
    assert "--all-namespaces" not in args


def test_cluster_mode_serves_only_the_allow_list(render: Render) -> None:
    operator = one(render(VALUE_SETS["cluster"]), "Deployment", "sag-sagellm-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_default_scope_is_the_release_namespace(render: Render) -> None:
    docs = render({})
    operator = one(docs, "Deployment", "sag-sagellm-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [f"--namespace={NAMESPACE}"]
    granted = grants(rules_of(docs, OPERATOR_SA)) | grants(rules_of(docs, ROUTER_SA))
    cluster = {(g, r) for k, g, r, _ in granted if k == "ClusterRole"}
    assert cluster == {("apiextensions.k8s.io", "customresourcedefinitions")}


def test_cluster_scope_without_allow_list_is_refused(helm: Path, tmp_path: Path) -> None:
    args = ["template", "sag", str(CHART), "--namespace", NAMESPACE]
    with pytest.raises(HelmFailed, match="namespaces"):
        run_helm(helm, args, {"watch": {"scope": "cluster"}}, tmp_path)


def test_peering_rules_only_with_peering(render: Render) -> None:
    plain = {r for _, _, r, _ in grants(rules_of(render({}), OPERATOR_SA))}
    assert not {"clusterkopfpeerings", "kopfpeerings"} & plain
    # The operator always watches named namespaces, so kopf peers through namespaced objects.
    for scope in ("namespaced", "cluster"):
        values = {**VALUE_SETS["peering"], **VALUE_SETS[scope]}
        peered = {r for _, _, r, _ in grants(rules_of(render(values), OPERATOR_SA))}
        assert "kopfpeerings" in peered
        assert "clusterkopfpeerings" not in peered


def test_rbac_can_be_left_to_the_user(render: Render) -> None:
    docs = render({"rbac": {"create": False}})
    assert not {d["kind"] for d in docs} & {
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
    }
