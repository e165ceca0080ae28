"""docs/metrics.md lists every metric family the router, operator and simulator register."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sagellm_operator.metrics import Metrics
from sagellm_router.config import RouterSettings
from sagellm_router.state import build_state
from sagellm_sim.config import SimConfig
from sagellm_sim.state import SimServer

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


def _documented(name: str) -> bool:
    """Listed in backticks, alone or as a ``/ `_suffix``` of a grouped ``vllm:request_*`` row."""
    if f"`{name}`" in DOC or f"`{name}_total`" in DOC:
        return True
    prefix = "vllm:request_"
    return name.startswith(prefix) and f"`_{name.removeprefix(prefix)}`" in DOC


def _families() -> list[str]:
    router = build_state(RouterSettings(), lambda: 0.0).metrics.registry  # demand series too
    names = [m.name for m in router.collect()]
    names += [m.name for m in Metrics().registry.collect()]
    srv = SimServer(SimConfig(model="m", sim_profile="tiny"))
    names += [f.name for f in text_string_to_metric_families(srv.metrics.render().decode())]
    return sorted({n for n in names if not n.endswith("_created")})


def test_every_family_is_documented() -> None:
    missing = [name for name in _families() if not _documented(name)]
    assert missing == []


def test_an_undocumented_name_is_caught() -> None:
    assert not _documented("vllm:request_made_up_seconds")
    assert not _documented("sagellm_router_made_up")
