"""helm lint and helm template for every value set; every rendered manifest is validated against
the Kubernetes schemas (oldest supported and newest minor), InferencePools against our CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, NAMESPACE, HelmFailed, Manifest, Render, find, one, run_helm
from chart_values import VALUE_SETS
from k8s_schemas import K8sSchemas

from sagellm_core.validation import pool_problems
from sagellm_operator.cli import operator as operator_cli
from sagellm_router.cli import router as router_cli
from sagellm_router.config import RouterSettings

# The chart's minimum (Chart.yaml kubeVersion) and a recent minor.
KUBE_VERSIONS = ("1.28.0", "1.34.0")
# Kinds from CRDs outside Kubernetes itself; checked by shape in their own tests instead.
FOREIGN_KINDS = {"ServiceMonitor", "PodMonitor"}


@pytest.fixture(scope="module")
def schemas() -> K8sSchemas:
    return K8sSchemas(KUBE_VERSIONS)


def schema_problems(schemas: K8sSchemas, doc: Manifest) -> list[str]:
    if doc["kind"] == "InferencePool":
        return pool_problems(doc)
    if doc["kind"] in FOREIGN_KINDS:
        return []
    return schemas.problems(doc)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_passes(helm: Path, tmp_path: Path, name: str) -> None:
    out = run_helm(helm, ["lint", "--strict", str(CHART)], VALUE_SETS[name], tmp_path)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_are_valid(render: Render, schemas: K8sSchemas, name: str) -> None:
    docs = render(VALUE_SETS[name])
    assert docs, "nothing rendered"
    for doc in docs:
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        assert schema_problems(schemas, doc) == [], label
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "sag", label


def test_validator_catches_a_broken_manifest(schemas: K8sSchemas) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    problems = schema_problems(schemas, bad)
    assert any("spec.replicas" in p and "'two'" in p for p in problems), problems
    unknown = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spek": {}}
    assert any("spek" in p for p in schema_problems(schemas, unknown))


def test_default_render_has_the_expected_objects(render: Render) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in render({}))
    assert kinds == [
        ("ClusterRole", "sag-sagellm-operator-crd-reader"),
        ("ClusterRoleBinding", "sag-sagellm-operator-crd-reader"),
        ("ConfigMap", "sag-sagellm-router"),
        ("Deployment", "sag-sagellm-operator"),
        ("Deployment", "sag-sagellm-router"),
        ("Role", "sag-sagellm-operator"),
        ("Role", "sag-sagellm-router"),
        ("RoleBinding", "sag-sagellm-operator"),
        ("RoleBinding", "sag-sagellm-router"),
        ("Service", "sag-sagellm-router"),
        ("Service", "sag-sagellm-router-peers"),
        ("ServiceAccount", "sag-sagellm-operator"),
        ("ServiceAccount", "sag-sagellm-router"),
    ]


def _containers(docs: list[Manifest]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"], c)
        for d in find(docs, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("name", ["default", "namespaced", "api-keys", "digest"])
def test_pods_are_locked_down(render: Render, name: str) -> None:
    for deploy, pod, container in _containers(render(VALUE_SETS[name])):
        psc, csc = pod["securityContext"], container["securityContext"]
        assert psc["runAsNonRoot"] is True, deploy
        assert psc["runAsUser"] == 10001, deploy
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, deploy
        assert csc["readOnlyRootFilesystem"] is True, deploy
        assert csc["allowPrivilegeEscalation"] is False, deploy
        assert csc["capabilities"] == {"drop": ["ALL"]}, deploy
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), deploy
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), deploy
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, f"{deploy}: read-only root needs a writable /tmp"


def test_image_defaults_to_app_version_and_digest_wins(render: Render) -> None:
    images = {c["image"] for _, _, c in _containers(render({}))}
    assert images == {"sagellm/sagellm:0.1.0"}
    images = {c["image"] for _, _, c in _containers(render(VALUE_SETS["digest"]))}
    assert images == {"registry.local/sagellm@sha256:" + "a" * 64}


def test_probes_hit_the_health_endpoints(render: Render) -> None:
    docs = render({})
    router = one(docs, "Deployment", "sag-sagellm-router")["spec"]["template"]["spec"]
    (container,) = router["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "probes"}
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "probes", "containerPort": 8081, "protocol": "TCP"},
        {"name": "replica-sync", "containerPort": 5590, "protocol": "TCP"},
    ]
    config = yaml.safe_load(one(docs, "ConfigMap", "sag-sagellm-router")["data"]["router.yaml"])
    assert config["server"]["probe_port"] == 8081, "the probed port must be the one served"
    operator = one(docs, "Deployment", "sag-sagellm-operator")["spec"]["template"]["spec"]
    (container,) = operator["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
    ]
    assert "--liveness-port=8080" in container["args"], "the probe port must be the one served"


def test_router_replicas_find_each_other_through_the_headless_service(render: Render) -> None:
    docs = render({"router": {"replicaSync": {"port": 6000}}})
    peers = one(docs, "Service", "sag-sagellm-router-peers")["spec"]
    assert peers["clusterIP"] == "None"
    assert peers["publishNotReadyAddresses"] is True
    assert peers["ports"][0]["port"] == 6000
    assert peers["ports"][0]["targetPort"] == "replica-sync"
    router = one(docs, "Deployment", "sag-sagellm-router")["spec"]["template"]
    assert peers["selector"].items() <= router["metadata"]["labels"].items()
    config = yaml.safe_load(one(docs, "ConfigMap", "sag-sagellm-router")["data"]["router.yaml"])
    sync = RouterSettings.model_validate(config).routing.replica_sync
    assert (sync.port, sync.peers_dns) == (6000, "sag-sagellm-router-peers.llm.svc:6000")

    own = {"router": {"config": {"routing": {"replica_sync": {"resolve_interval_s": 3}}}}}
    rendered = one(render(own), "ConfigMap", "sag-sagellm-router")["data"]["router.yaml"]
    sync = RouterSettings.model_validate(yaml.safe_load(rendered)).routing.replica_sync
    assert (sync.port, sync.resolve_interval_s) == (5590, 3)  # the user's other keys are kept
    with pytest.raises(HelmFailed, match=r"router\.replicaSync\.port 8081 is also"):
        render({"router": {"replicaSync": {"port": 8081}}})

    off = render({"router": {"replicaSync": {"enabled": False}}})
    assert not [d for d in off if d["metadata"]["name"] == "sag-sagellm-router-peers"]
    config = yaml.safe_load(one(off, "ConfigMap", "sag-sagellm-router")["data"]["router.yaml"])
    assert RouterSettings.model_validate(config).routing.replica_sync.port is None


def test_router_rollout_keeps_capacity_and_drains(render: Render) -> None:
    deploy = one(render({}), "Deployment", "sag-sagellm-router")
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "3"]
    # hook sleep 3 + router pre-stop delay 5 + drain timeout 30 + 10 s margin
    assert pod["terminationGracePeriodSeconds"] == 48
    values = {
        "router": {
            "preStopSleepSeconds": 0,
            "config": {"server": {"prestop_delay_s": 2, "shutdown_timeout_s": 60}},
        }
    }
    pod = one(render(values), "Deployment", "sag-sagellm-router")["spec"]["template"]["spec"]
    assert "lifecycle" not in pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] == 72


def test_config_change_rolls_router_pods(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deploy = one(render(values), "Deployment", "sag-sagellm-router")
        return str(deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(VALUE_SETS["router-config"])


def test_operator_never_runs_twice_without_peering(render: Render) -> None:
    deploy = one(render({}), "Deployment", "sag-sagellm-operator")
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert deploy["spec"]["replicas"] == 1
    peered = one(render(VALUE_SETS["peering"]), "Deployment", "sag-sagellm-operator")
    assert "strategy" not in peered["spec"]


def test_hpa_owns_replicas(render: Render) -> None:
    docs = render(VALUE_SETS["hpa"])
    assert "replicas" not in one(docs, "Deployment", "sag-sagellm-router")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "sag-sagellm-router"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("pdb", {"minAvailable": "50%"}), ("pdb-max-unavailable", {"maxUnavailable": 1})],
)
def test_pdb_selects_router_pods(render: Render, name: str, expected: dict[str, Any]) -> None:
    docs = render(VALUE_SETS[name])
    spec = one(docs, "PodDisruptionBudget")["spec"]
    selector = spec.pop("selector")["matchLabels"]
    assert spec == expected
    router_pod = one(docs, "Deployment", "sag-sagellm-router")["spec"]["template"]
    assert selector.items() <= router_pod["metadata"]["labels"].items()


def test_monitoring_objects_select_the_services(render: Render) -> None:
    docs = render(VALUE_SETS["monitoring"])
    services = {s["metadata"]["name"]: s for s in find(docs, "Service")}
    assert set(services) == {
        "sag-sagellm-router",
        "sag-sagellm-router-peers",
        "sag-sagellm-operator-metrics",
    }
    monitors = find(docs, "ServiceMonitor")
    assert len(monitors) == 2
    engines = one(docs, "PodMonitor")["spec"]
    assert engines["selector"]["matchExpressions"] == [
        {"key": "sagellm.io/pool", "operator": "Exists"}
    ]
    assert engines["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in engines["podMetricsEndpoints"]] == ["http"]
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in services.values() if wanted.items() <= s["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    dashboard = one(docs, "ConfigMap", "sag-sagellm-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"title": "sageLLM Control Plane"' in dashboard["data"]["sagellm.json"]


def test_no_monitoring_objects_by_default(render: Render) -> None:
    kinds = {d["kind"] for d in render({})}
    assert not kinds & {"ServiceMonitor", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_pools_from_values(render: Render) -> None:
    pools = {p["metadata"]["name"]: p for p in find(render(VALUE_SETS["pools"]), "InferencePool")}
    assert set(pools) == {"sim-tiny", "sim-b"}
    assert pools["sim-tiny"]["metadata"]["namespace"] == NAMESPACE
    assert pools["sim-b"]["metadata"]["namespace"] == "team-b"
    assert pools["sim-b"]["metadata"]["labels"]["team"] == "b"
    assert pools["sim-tiny"]["spec"]["engine"]["kind"] == "Simulator"


def test_bad_pool_spec_in_values_is_caught_by_the_crd_check(
    render: Render, schemas: K8sSchemas
) -> None:
    values = {"pools": [{"name": "p", "spec": {"model": {"name": "m"}, "engine": {"kind": "TGI"}}}]}
    (pool,) = find(render(values), "InferencePool")
    assert any("engine.kind" in p for p in schema_problems(schemas, pool))


def test_router_only_install(render: Render) -> None:
    docs = render(VALUE_SETS["router-only"])
    names = {d["metadata"]["name"] for d in docs}
    assert not any("operator" in n for n in names)
    assert one(docs, "Service", "sag-sagellm-router")["spec"]["type"] == "NodePort"


def _args(docs: list[Manifest], deployment: str) -> list[str]:
    pod = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    return list(pod["containers"][0]["args"])


@pytest.mark.parametrize("name", ["default", "namespaced-other-ns", "peering", "digest"])
def test_rendered_args_parse_with_the_real_clis(render: Render, name: str) -> None:
    docs = render(VALUE_SETS[name])
    args = _args(docs, "sag-sagellm-operator")
    assert args[0] == "operator"
    params = operator_cli.make_context("operator", args[1:]).params
    image = one(docs, "Deployment", "sag-sagellm-router")["spec"]["template"]["spec"]
    assert params["simulator_image"] == image["containers"][0]["image"], "sim pods use our image"
    assert params["metrics_port"] == 9090
    assert params["peering"] is (name == "peering")
    args = _args(docs, "sag-sagellm-router")
    assert args[0] == "router"
    params = router_cli.make_context("router", args[1:]).params
    assert params["config_path"] == "/etc/sagellm/router.yaml"


def test_operator_flags_follow_values(render: Render) -> None:
    values = {"operator": {"verbose": True, "vllmImage": "vllm/vllm-openai:v0.11.1"}}
    params = operator_cli.make_context(
        "operator", _args(render(values), "sag-sagellm-operator")[1:]
    ).params
    assert params["verbose"] is True
    assert params["vllm_image"] == "vllm/vllm-openai:v0.11.1"
    assert params["all_namespaces"] is False
    assert params["namespaces"] == (NAMESPACE,)
    assert params["max_nodes_per_instance"] == 8
    assert params["vllm_run_as_user"] is None
    values = {"operator": {"maxNodesPerInstance": 3, "vllmRunAsUser": 1000}}
    params = operator_cli.make_context(
        "operator", _args(render(values), "sag-sagellm-operator")[1:]
    ).params
    assert (params["max_nodes_per_instance"], params["vllm_run_as_user"]) == (3, 1000)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, ["port-forward svc/sag-sagellm-router 8080:80", "simulator-pool.yaml"]),
        (VALUE_SETS["api-keys"], ["Authorization: Bearer $API_KEY", 'Secret "sagellm-api-keys"']),
        (VALUE_SETS["pools"], ["Pools created by this release: sim-tiny, sim-b"]),
        (VALUE_SETS["namespaced"], ['Scope: namespace "llm" only']),
        (VALUE_SETS["cluster"], ["Scope: the namespaces team-a, team-b (ClusterRole, allow-list)"]),
    ],
)
def test_notes_tell_what_to_do_next(
    helm: Path, tmp_path: Path, values: dict[str, Any], expected: list[str]
) -> None:
    args = ["install", "sag", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    notes = run_helm(helm, args, values, tmp_path).split("NOTES:", 1)[1]
    for text in [*expected, "kubectl apply --server-side -f charts/sagellm/crds/"]:
        assert text in notes
