"""values.schema.json and the templates' own checks reject bad values with a message that names
the problem; the schema agrees with the router's strategy registry and with values.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, HelmFailed, run_helm

from sagellm_router.routing.registry import default_strategies

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", {"replicaCount": 3}, "replicaCount"),
    ("wrong type", {"router": {"replicas": "two"}}, "/router/replicas"),
    ("bad scope enum", {"watch": {"scope": "everything"}}, "/watch/scope"),
    (
        "bad routing enum",
        {"router": {"config": {"routing": {"default": "fastest"}}}},
        "/router/config/routing/default",
    ),
    (
        "unknown strategy params",
        {"router": {"config": {"routing": {"params": {"foo": {}}}}}},
        "foo",
    ),
    (
        "chart-owned router key",
        {"router": {"config": {"discovery": {"type": "static"}}}},
        "discovery",
    ),
    ("server port in config", {"router": {"config": {"server": {"port": 1}}}}, "port"),
    (
        "negative limit",
        {"router": {"config": {"limits": {"max_concurrent_requests": 0}}}},
        "max_concurrent_requests",
    ),
    ("port out of range", {"router": {"port": 70000}}, "/router/port"),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ("bad digest", {"image": {"digest": "md5:1"}}, "/image/digest"),
    ("latest tag", {"image": {"tag": "latest"}}, "latest"),
    ("bad service type", {"router": {"service": {"type": "Ingress"}}}, "/router/service/type"),
    ("bad log level", {"router": {"logLevel": "loud"}}, "/router/logLevel"),
    ("pool without spec", {"pools": [{"name": "p"}]}, "spec"),
    (
        "pool with bad name",
        {"pools": [{"name": "Bad_Name", "spec": {"model": {}}}]},
        "/pools/0/name",
    ),
    ("bad interval", {"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
    (
        "pdb with both bounds",
        {"router": {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}}},
        "not both",
    ),
    (
        "hpa min above max",
        {"router": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
        "minReplicas (5) is greater than maxReplicas (2)",
    ),
    (
        "hpa without a metric",
        {"router": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 0}}},
        "targetCPUUtilizationPercentage",
    ),
]


@pytest.mark.parametrize(("case", "values", "message"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_fail_with_a_message(
    helm: Path, tmp_path: Path, case: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm(helm, ["template", "sag", str(CHART)], values, tmp_path)
    assert message in str(failure.value), f"{case}: {failure.value}"


def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return data


def test_routing_enum_matches_the_router_registry() -> None:
    routing = _schema()["properties"]["router"]["properties"]["config"]["properties"]["routing"]
    assert set(routing["properties"]["default"]["enum"]) == set(default_strategies())


def test_every_default_value_is_declared_in_the_schema() -> None:
    """values.yaml keys all appear in the schema (so strict objects do not reject defaults)."""

    def walk(values: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(values, dict) or "properties" not in schema:
            return []
        missing = []
        for key, value in values.items():
            sub = schema["properties"].get(key)
            if sub is None:
                if schema.get("additionalProperties") is False:
                    missing.append(f"{path}{key}")
                continue
            missing += walk(value, sub, f"{path}{key}.")
        return missing

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert walk(defaults, _schema(), "") == []
