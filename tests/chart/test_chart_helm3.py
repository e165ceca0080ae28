"""Helm 3 renders exactly what Helm 4 renders, lints the chart and enforces the same schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, NAMESPACE, RELEASE, HelmFailed, Render, run_helm
from chart_values import VALUE_SETS


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm3_renders_like_helm4(helm3: Path, render: Render, tmp_path: Path, name: str) -> None:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    out = run_helm(helm3, args, VALUE_SETS[name], tmp_path)
    assert [d for d in yaml.safe_load_all(out) if d] == render(VALUE_SETS[name])


def test_helm3_lints(helm3: Path, tmp_path: Path) -> None:
    assert "0 chart(s) failed" in run_helm(helm3, ["lint", "--strict", str(CHART)], {}, tmp_path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 3}, "replicaCount"),
        ({"watch": {"scope": "everything"}}, "watch.scope"),
        ({"router": {"replicas": "two"}}, "router.replicas"),
        ({"image": {"tag": "latest"}}, "latest"),
    ],
)
def test_helm3_rejects_bad_values(
    helm3: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm(helm3, ["template", RELEASE, str(CHART)], values, tmp_path)
    assert message in str(failure.value)
