"""The CRDs in crds/ are generated from the models, parse as apiextensions.k8s.io/v1, accept
every sample and reject bad manifests with messages that name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sagellm_core.api import InferencePool, Role
from sagellm_core.crdgen import render_all
from sagellm_core.validation import parse_pool, pool_problems

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "crds"
SAMPLES = sorted((CRDS / "samples").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_committed_crds_match_the_models() -> None:
    rendered = render_all()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(on_disk) == set(rendered), "crds/ has missing or extra files: run `make crds`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"


@pytest.mark.parametrize(
    ("file", "kind", "short"),
    [
        ("sagellm.io_inferencepools.yaml", "InferencePool", "ipool"),
        ("sagellm.io_executioninstances.yaml", "ExecutionInstance", "einst"),
    ],
)
def test_crd_shape(file: str, kind: str, short: str) -> None:
    crd = load(CRDS / file)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    assert spec["group"] == "sagellm.io"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["shortNames"] == [short]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"]["status"] == {}
    if kind == "InferencePool":  # HPA/KEDA drive the general role through /scale
        assert version["subresources"]["scale"] == {
            "specReplicasPath": ".spec.roles.general.replicas",
            "statusReplicasPath": ".status.scale.replicas",
            "labelSelectorPath": ".status.scale.selector",
        }
    else:
        assert "scale" not in version["subresources"]
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Age"} <= columns
    schema = version["schema"]["openAPIV3Schema"]
    assert_structural(schema, "openAPIV3Schema")


def assert_structural(node: dict[str, Any], where: str) -> None:
    """Every node has a type (or is int-or-string / preserve-unknown), and no JSON-Schema-only
    constructs leak into the CRD."""
    for banned in ("$ref", "anyOf", "$defs", "title", "const"):
        assert banned not in node, f"{where} has {banned}"
    assert (
        "type" in node
        or node.get("x-kubernetes-int-or-string")
        or node.get("x-kubernetes-preserve-unknown-fields")
    ), f"{where} has no type"
    for name, sub in node.get("properties", {}).items():
        assert_structural(sub, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            assert_structural(node[key], f"{where}.{key}")


def test_pool_columns_cover_model_phase_ready_desired() -> None:
    crd = load(CRDS / "sagellm.io_inferencepools.yaml")
    columns = {c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Model", "Phase", "Ready", "Desired", "Age"} <= columns


def test_there_are_five_samples() -> None:
    names = {p.stem for p in SAMPLES}
    assert names == {
        "general-pool",
        "pd-pool",
        "multinode-70b-pool",
        "moe-pool",
        "simulator-pool",
    }


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_is_valid(path: Path) -> None:
    obj = load(path)
    assert pool_problems(obj) == []
    pool = parse_pool(obj)
    assert isinstance(pool, InferencePool)


def test_defaults_are_applied_when_parsing() -> None:
    pool = parse_pool(load(CRDS / "samples" / "general-pool.yaml"))
    assert pool.spec.parallelism.strategy == "Auto"
    assert pool.spec.scheduling.pd_threshold_input_tokens == 800
    assert pool.spec.engine.gpu_memory_utilization == 0.9
    assert pool.spec.role_names() == [Role.GENERAL]
    assert pool.spec.replicas_for("General") == 2


def test_pd_sample_roles_and_per_role_parallelism() -> None:
    spec = parse_pool(load(CRDS / "samples" / "pd-pool.yaml")).spec
    assert spec.role_names() == [Role.PREFILL, Role.DECODE]
    assert spec.parallelism_for(Role.DECODE).tensor == 2
    assert spec.parallelism_for(Role.PREFILL).tensor == 1


def mutate(base: str, path: str, value: Any) -> dict[str, Any]:
    """Set (or, with value=DELETE, remove) a dotted path in a sample."""
    obj = copy.deepcopy(load(CRDS / "samples" / base))
    *parents, last = path.split(".")
    node = obj
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return obj


DELETE = object()

BAD = [
    ("general-pool.yaml", "spec.model.parameters", -3, "spec.model.parameters"),
    ("general-pool.yaml", "spec.model.parameters", "seventy", "spec.model.parameters"),
    ("general-pool.yaml", "spec.model.source", DELETE, "'source' is a required property"),
    ("general-pool.yaml", "spec.model.dtype", "float8", "spec.model.dtype"),
    ("general-pool.yaml", "spec.model.architecture", "MoE", "model.experts is required"),
    ("general-pool.yaml", "spec.engine.kind", "TensorRT", "spec.engine.kind"),
    ("general-pool.yaml", "spec.engine.gpuMemoryUtilization", 1.5, "gpuMemoryUtilization"),
    ("general-pool.yaml", "spec.engine.gpusPerNode", 0, "spec.engine.gpusPerNode"),
    ("general-pool.yaml", "spec.roles.general.replicas", -1, "spec.roles.general.replicas"),
    ("general-pool.yaml", "spec.roles.prefill", {"replicas": 1}, "not both"),
    ("general-pool.yaml", "spec.roles", {}, "set either roles.general"),
    ("general-pool.yaml", "spec.scheduling.policy", "lifo", "spec.scheduling.policy"),
    ("general-pool.yaml", "spec.scheduling.routing", "sticky", "spec.scheduling.routing"),
    ("general-pool.yaml", "spec.model.colour", "blue", "unknown field"),
    ("general-pool.yaml", "spec.parallelism", {"tensor": 4}, "need a strategy other than Auto"),
    (
        "general-pool.yaml",
        "spec.parallelism",
        {"strategy": "TP", "tensor": 4, "pipeline": 2},
        "strategy TP sets only parallelism.tensor",
    ),
    (
        "general-pool.yaml",
        "spec.parallelism",
        {"strategy": "EP"},
        "parallelism.strategy: parallelism.strategy EP needs model.architecture MoE",
    ),
    ("pd-pool.yaml", "spec.roles.decode", DELETE, "must be set together"),
    (
        "pd-pool.yaml",
        "spec.roles.prefill",
        {"replicas": 1, "targetBatchSize": 1024, "chunkedPrefill": False},
        "targetBatchSize must be at least model.maxModelLen",
    ),
    ("pd-pool.yaml", "spec.roles.decode.targetLatencyMs", 50, "unknown field"),
    ("pd-pool.yaml", "spec.roles.kvTransfer.connector", "FtpConnector", "connector"),
    (
        "moe-pool.yaml",
        "spec.autoscaling",
        {"enabled": True, "general": {"minReplicas": 5, "maxReplicas": 2}},
        "minReplicas must not exceed maxReplicas",
    ),
]


@pytest.mark.parametrize(("base", "path", "value", "expected"), BAD, ids=[b[1] for b in BAD])
def test_bad_manifests_are_rejected_naming_the_field(
    base: str, path: str, value: Any, expected: str
) -> None:
    problems = pool_problems(mutate(base, path, value))
    assert problems, f"setting {path}={value!r} should be rejected"
    assert any(expected in p for p in problems), problems


def test_api_reference_is_current() -> None:
    from sagellm_core.apidoc import render

    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed == render(), "docs/api.md is stale: run `make crds`"


def test_kv_aware_routing_needs_prefix_caching() -> None:
    kv_aware = mutate("general-pool.yaml", "spec.scheduling.routing", "kv_aware")
    assert pool_problems(kv_aware) == []
    kv_aware["spec"].setdefault("engine", {})["enablePrefixCaching"] = False
    problems = pool_problems(kv_aware)
    assert any("kv_aware needs engine.enablePrefixCaching" in p for p in problems), problems
