"""Chart files that mirror other sources: CRDs, the Grafana dashboard, the router config."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, NAMESPACE, ROOT, Render, one
from chart_values import VALUE_SETS
from prometheus_client import CollectorRegistry

from sagellm_router.config import KubernetesDiscoverySettings, parse_settings
from sagellm_router.metrics import RouterMetrics


def test_chart_crds_are_byte_identical_to_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty"
    assert set(shipped) == set(generated), "charts/sagellm/crds/ must hold exactly crds/*.yaml"
    for name, data in generated.items():
        assert shipped[name] == data, f"charts/sagellm/crds/{name} differs: cp crds/{name} there"


def _load_tool(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_is_current() -> None:
    committed = (CHART / "dashboards" / "sagellm.json").read_text()
    assert committed == _load_tool("gen_dashboard").render(), "run python tools/gen_dashboard.py"


def _exported_router_metrics() -> set[str]:
    metrics = RouterMetrics(CollectorRegistry())
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
        if family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    text = (CHART / "dashboards" / "sagellm.json").read_text()
    router_used = set(re.findall(r"\bsagellm_router_[a-z0-9_]+", text))
    assert router_used, "dashboard queries no router metric"
    assert router_used <= _exported_router_metrics()
    sim_source = (ROOT / "simulator" / "sagellm_sim" / "metrics.py").read_text()
    sim_names = set(re.findall(r'"(vllm:[a-z0-9_]+)"', sim_source))
    for used in set(re.findall(r"vllm:[a-z0-9_]+", text)):
        base = re.sub(r"_(total|bucket|count|sum)$", "", used)
        assert base in sim_names, f"dashboard queries {used}, which the engines do not export"


def _router_config(render: Render, values: dict[str, Any]) -> str:
    return str(one(render(values), "ConfigMap", "sag-sagellm-router")["data"]["router.yaml"])


@pytest.mark.parametrize("name", ["default", "namespaced", "cluster", "api-keys", "router-config"])
def test_rendered_router_config_is_accepted_by_the_router(render: Render, name: str) -> None:
    settings = parse_settings(_router_config(render, VALUE_SETS[name]), name)
    assert settings.discovery.type == "kubernetes"


def test_router_config_follows_values(render: Render) -> None:
    default = parse_settings(_router_config(render, {}))
    assert isinstance(default.discovery, KubernetesDiscoverySettings)
    assert default.discovery.namespace == NAMESPACE, "the default scope is the release namespace"
    assert default.discovery.all_namespaces is False
    assert default.server.port == 8080
    assert default.auth.api_keys_file is None
    ns = parse_settings(_router_config(render, VALUE_SETS["namespaced"]))
    assert isinstance(ns.discovery, KubernetesDiscoverySettings)
    assert ns.discovery.namespace == NAMESPACE
    assert ns.discovery.all_namespaces is False
    cluster = parse_settings(_router_config(render, VALUE_SETS["cluster"]))
    assert isinstance(cluster.discovery, KubernetesDiscoverySettings)
    assert cluster.discovery.namespaces == ("team-a", "team-b")
    assert cluster.discovery.all_namespaces is False
    custom = parse_settings(_router_config(render, VALUE_SETS["router-config"]))
    assert (custom.server.port, custom.routing.default) == (9000, "power_of_two")
    assert custom.limits.max_concurrent_requests == 10
    assert custom.retries.max_attempts == 3, "untouched sections keep the chart defaults"


def test_api_keys_come_from_the_secret_file(render: Render) -> None:
    docs = render(VALUE_SETS["api-keys"])
    settings = parse_settings(_router_config(render, VALUE_SETS["api-keys"]))
    pod = one(docs, "Deployment", "sag-sagellm-router")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "sagellm-api-keys"
    assert volume["secret"]["items"] == [{"key": "k", "path": "api-keys"}]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert settings.auth.api_keys_file == str(Path(mount["mountPath"]) / "api-keys")
    assert "sagellm-api-keys" not in yaml.safe_dump(settings.model_dump()), "no key material"
