"""The emulator's store against documented API-server behaviour, one rule per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kmock import KubernetesError

from tests.kubeemu import Selector, Store

ROOT = Path(__file__).resolve().parents[3]
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
ALL = Selector()


def _pods(store: Store) -> Any:
    return store.resource("", "pods")


def _crd(store: Store) -> Any:
    crd = yaml.safe_load((ROOT / "crds/sagellm.io_inferencepools.yaml").read_text())
    store.create(store.resource("apiextensions.k8s.io", "customresourcedefinitions"), None, crd)
    return store.resource("sagellm.io", "inferencepools")


def _pool(name: str = "p") -> dict[str, Any]:
    sample = yaml.safe_load((ROOT / "crds/samples/general-pool.yaml").read_text())
    sample["metadata"] = {"name": name}
    return sample


def test_create_assigns_identity_and_versions() -> None:
    store = Store()
    a = store.create(_pods(store), "ns", {"metadata": {"name": "a"}, "spec": {}})
    b = store.create(_pods(store), "ns", {"metadata": {"name": "b"}, "spec": {}})
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["generation"] == 1
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert a["metadata"]["namespace"] == "ns"


def test_create_duplicate_is_409_and_generate_name_is_unique() -> None:
    store = Store()
    store.create(_pods(store), "ns", {"metadata": {"name": "a"}})
    with pytest.raises(KubernetesError) as err:
        store.create(_pods(store), "ns", {"metadata": {"name": "a"}})
    assert err.value.status == 409
    one = store.create(_pods(store), "ns", {"metadata": {"generateName": "ev-"}})
    two = store.create(_pods(store), "ns", {"metadata": {"generateName": "ev-"}})
    assert one["metadata"]["name"].startswith("ev-")
    assert one["metadata"]["name"] != two["metadata"]["name"]


def test_generation_bumps_only_on_spec_changes() -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "ns", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    labelled = store.patch(pods, "ns", "a", MERGE, {"metadata": {"labels": {"k": "v"}}}, None)
    assert labelled["metadata"]["generation"] == 1
    status = store.patch(pods, "ns", "a", MERGE, {"status": {"phase": "Running"}}, "status")
    assert status["metadata"]["generation"] == 1
    spec = store.patch(pods, "ns", "a", MERGE, {"spec": {"x": 2}}, None)
    assert spec["metadata"]["generation"] == 2


def test_status_subresource_separates_writes() -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "ns", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    main = store.patch(pods, "ns", "a", MERGE, {"spec": {"x": 2}, "status": {"phase": "X"}}, None)
    assert main["status"] == {"phase": "Pending"}  # main-resource writes ignore status
    sub = store.patch(
        pods, "ns", "a", MERGE, {"spec": {"x": 3}, "status": {"phase": "Y"}}, "status"
    )
    assert sub["spec"] == {"x": 2}  # /status writes ignore everything else
    assert sub["status"]["phase"] == "Y"


def test_noop_write_keeps_resource_version() -> None:
    store = Store()
    pods = _pods(store)
    created = store.create(pods, "ns", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    same = store.patch(pods, "ns", "a", MERGE, {"spec": {"x": 1}}, None)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_stale_resource_version_conflicts() -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "ns", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    with pytest.raises(KubernetesError) as err:
        store.patch(pods, "ns", "a", MERGE, {"metadata": {"resourceVersion": "0"}}, None)
    assert err.value.status == 409
    body = store.get(pods, "ns", "a")
    body["spec"]["x"] = 5
    assert store.replace(pods, "ns", "a", body, None)["spec"]["x"] == 5
    with pytest.raises(KubernetesError) as err:
        store.replace(pods, "ns", "a", body, None)  # the same body again is stale now
    assert err.value.status == 409


def test_json_patch_and_failed_test_op() -> None:
    store = Store()
    pods = _pods(store)
    obj = store.create(pods, "ns", {"metadata": {"name": "a", "finalizers": ["f"]}})
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    assert store.patch(pods, "ns", "a", JSON_PATCH, ops, None)["metadata"]["finalizers"] == []
    with pytest.raises(KubernetesError) as err:
        store.patch(pods, "ns", "a", JSON_PATCH, ops, None)  # rv moved on: test fails
    assert err.value.status == 422


def test_unsupported_patch_type_is_415() -> None:
    store = Store()
    store.create(_pods(store), "ns", {"metadata": {"name": "a"}})
    with pytest.raises(KubernetesError) as err:
        store.patch(_pods(store), "ns", "a", "application/apply-patch+yaml", {}, None)
    assert err.value.status == 415


def test_finalizers_hold_deletion_until_removed() -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "ns", {"metadata": {"name": "a", "finalizers": ["x/y"]}})
    marked = store.delete(pods, "ns", "a", None)
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get(pods, "ns", "a")  # still there
    with pytest.raises(KubernetesError):
        store.patch(pods, "ns", "a", MERGE, {"metadata": {"finalizers": ["x/y", "new"]}}, None)
    store.patch(pods, "ns", "a", MERGE, {"metadata": {"finalizers": None}}, None)
    with pytest.raises(KubernetesError) as err:
        store.get(pods, "ns", "a")
    assert err.value.status == 404


def _owned(owner: dict[str, Any], name: str) -> dict[str, Any]:
    ref = {"apiVersion": "v1", "kind": "Pod", "name": owner["metadata"]["name"]}
    ref["uid"] = owner["metadata"]["uid"]
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


def test_garbage_collection_cascades_through_levels() -> None:
    store = Store()
    pods = _pods(store)
    root = store.create(pods, "ns", {"metadata": {"name": "root"}})
    child = store.create(pods, "ns", _owned(root, "child"))
    store.create(pods, "ns", _owned(child, "grandchild"))
    store.create(pods, "ns", {"metadata": {"name": "bystander"}})
    store.delete(pods, "ns", "root", None)
    while store.collect_garbage():
        pass
    names = [p["metadata"]["name"] for p in store.list(pods, "ns", ALL)[0]]
    assert names == ["bystander"]


def test_orphan_propagation_keeps_dependents() -> None:
    store = Store()
    pods = _pods(store)
    root = store.create(pods, "ns", {"metadata": {"name": "root"}})
    store.create(pods, "ns", _owned(root, "child"))
    store.delete(pods, "ns", "root", "Orphan")
    assert store.collect_garbage() == 0
    assert "ownerReferences" not in store.get(pods, "ns", "child")["metadata"]


def test_crd_registration_defaults_and_validation() -> None:
    store = Store()
    pools = _crd(store)
    created = store.create(pools, "ns", _pool())
    assert created["spec"]["scheduling"]["pdThresholdInputTokens"] == 800  # schema default
    bad = _pool("bad")
    bad["spec"]["roles"]["general"]["replicas"] = -1
    with pytest.raises(KubernetesError) as err:
        store.create(pools, "ns", bad)
    assert err.value.status == 422
    assert "spec.roles.general.replicas" in (err.value.message or "")


def test_crd_cel_rules_are_enforced() -> None:
    store = Store()
    pools = _crd(store)
    both = _pool("both")
    both["spec"]["roles"]["prefill"] = {"replicas": 1}
    with pytest.raises(KubernetesError) as err:
        store.create(pools, "ns", both)
    assert "roles.prefill" in (err.value.message or "")


def test_unknown_fields_are_pruned() -> None:
    store = Store()
    pools = _crd(store)
    pool = _pool()
    pool["spec"]["bogus"] = 1
    created = store.create(pools, "ns", pool)
    assert "bogus" not in created["spec"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", ["one"]),
        ("app==a", ["one"]),
        ("app!=a", ["three", "two"]),
        ("app in (a,b)", ["one", "two"]),
        ("app notin (a)", ["three", "two"]),
        ("app", ["one", "two"]),
        ("!app", ["three"]),
        ("app=a,tier=x", ["one"]),
        ("app=b,tier=x", []),
    ],
)
def test_label_selectors(selector: str, expected: list[str]) -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "ns", {"metadata": {"name": "one", "labels": {"app": "a", "tier": "x"}}})
    store.create(pods, "ns", {"metadata": {"name": "two", "labels": {"app": "b"}}})
    store.create(pods, "ns", {"metadata": {"name": "three"}})
    items, _ = store.list(pods, None, Selector.parse(selector, None))
    assert sorted(i["metadata"]["name"] for i in items) == expected


def test_field_selector_and_namespace_scoping() -> None:
    store = Store()
    pods = _pods(store)
    store.create(pods, "a", {"metadata": {"name": "x"}})
    store.create(pods, "b", {"metadata": {"name": "x"}})
    assert len(store.list(pods, None, ALL)[0]) == 2
    assert len(store.list(pods, "a", ALL)[0]) == 1
    sel = Selector.parse(None, "metadata.namespace=b")
    assert [p["metadata"]["namespace"] for p in store.list(pods, None, sel)[0]] == ["b"]


@pytest.mark.parametrize(
    ("spec", "grace", "kept_for"),
    [
        ({"nodeName": "n", "terminationGracePeriodSeconds": 75}, None, 75),  # the pod's own
        ({"nodeName": "n"}, None, 30),  # Kubernetes' default
        ({"nodeName": "n", "terminationGracePeriodSeconds": 75}, 5, 5),  # the request's
        ({"nodeName": "n"}, 0, None),  # grace 0: at once
        ({}, None, None),  # never bound to a node: no kubelet to wait for
    ],
)
def test_bound_pods_are_deleted_gracefully(
    spec: dict[str, Any], grace: int | None, kept_for: int | None
) -> None:
    store = Store()
    store.create(_pods(store), "ns", {"metadata": {"name": "a"}, "spec": spec})
    out = store.delete(_pods(store), "ns", "a", None, grace)
    if kept_for is None:
        assert store.list(_pods(store), "ns", ALL)[0] == []
        return
    assert out["metadata"]["deletionTimestamp"]
    assert out["metadata"]["deletionGracePeriodSeconds"] == kept_for
    assert store.delete(_pods(store), "ns", "a", None)["metadata"]["deletionTimestamp"]
    store.delete(_pods(store), "ns", "a", None, 0)  # the kubelet: containers have stopped
    assert store.list(_pods(store), "ns", ALL)[0] == []
