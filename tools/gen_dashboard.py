"""Write charts/sagellm/dashboards/sagellm.json, the Grafana dashboard the chart ships.

Run: python tools/gen_dashboard.py  (tests/chart checks the committed file is current and that
every metric it queries is one the router or the simulator exports).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "charts" / "sagellm" / "dashboards" / "sagellm.json"
SEL = 'model=~"$model"'
RATE = "[$__rate_interval]"


def _quantiles(metric: str, sel: str = SEL) -> list[tuple[str, str]]:
    return [
        (
            f"p{q}",
            f"histogram_quantile(0.{q}, sum by (le) (rate({metric}_bucket{{{sel}}}{RATE})))",
        )
        for q in ("50", "90", "99")
    ]


# (title, unit, [(legend, expr)], stacked)
PANELS: list[tuple[str, str, list[tuple[str, str]], bool]] = [
    (
        "Requests per second by status",
        "reqps",
        [("{{status}}", f"sum by (status) (rate(sagellm_router_requests_total{{{SEL}}}{RATE}))")],
        True,
    ),
    ("Time to first token (router)", "s", _quantiles("sagellm_router_ttft_seconds"), False),
    (
        "Inter-token latency (router)",
        "s",
        _quantiles("sagellm_router_inter_token_latency_seconds"),
        False,
    ),
    ("End-to-end latency (router)", "s", _quantiles("sagellm_router_e2e_latency_seconds"), False),
    (
        "Token throughput",
        "short",
        [
            (
                "router {{direction}} tokens/s",
                f"sum by (direction) (rate(sagellm_router_tokens_total{{{SEL}}}{RATE}))",
            ),
            (
                "engine generation tokens/s",
                f'sum(rate(vllm:generation_tokens_total{{model_name=~"$model"}}{RATE}))',
            ),
            (
                "engine prompt tokens/s",
                f'sum(rate(vllm:prompt_tokens_total{{model_name=~"$model"}}{RATE}))',
            ),
        ],
        False,
    ),
    (
        "Queue depth",
        "short",
        [
            ("router admission queue", "sum(sagellm_router_queued_requests)"),
            ("router in flight", "sum(sagellm_router_in_flight_requests)"),
            ("engine waiting", 'sum(vllm:num_requests_waiting{model_name=~"$model"})'),
            ("engine running", 'sum(vllm:num_requests_running{model_name=~"$model"})'),
        ],
        False,
    ),
    (
        "TTFT SLO attainment (share of requests with TTFT <= $ttft_slo s)",
        "percentunit",
        [
            (
                "attainment",
                f'sum(rate(sagellm_router_ttft_seconds_bucket{{{SEL}, le="$ttft_slo"}}{RATE}))'
                f" / sum(rate(sagellm_router_ttft_seconds_count{{{SEL}}}{RATE}))",
            )
        ],
        False,
    ),
    (
        "Instance states (router view)",
        "short",
        [("{{pool}} {{state}}", "sum by (pool, state) (sagellm_router_endpoints)")],
        True,
    ),
    (
        "KV-cache usage per engine",
        "percentunit",
        [("{{pod}}", 'max by (pod) (vllm:kv_cache_usage_perc{model_name=~"$model"})')],
        False,
    ),
    (
        "Prefix-cache hit rate",
        "percentunit",
        [
            (
                "hit rate",
                f"sum(rate(vllm:prefix_cache_hits_total{RATE}))"
                f" / sum(rate(vllm:prefix_cache_queries_total{RATE}))",
            )
        ],
        False,
    ),
    (
        "Retries and ejections",
        "short",
        [
            ("retries {{reason}}", f"sum by (reason) (rate(sagellm_router_retries_total{RATE}))"),
            ("ejections", f"sum(rate(sagellm_router_endpoint_ejections_total{RATE}))"),
        ],
        False,
    ),
]


def _panel(
    index: int, title: str, unit: str, targets: list[tuple[str, str]], stacked: bool
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stacked else "none"}},
            },
            "overrides": [],
        },
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def _variables() -> list[dict[str, Any]]:
    slos = ["0.25", "0.5", "1.0", "2.5", "5.0"]
    return [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {
            "name": "model",
            "type": "query",
            "label": "Model",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": "label_values(sagellm_router_requests_total, model)",
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "refresh": 2,
        },
        {
            "name": "ttft_slo",
            "type": "custom",
            "label": "TTFT SLO (s)",
            "query": ",".join(slos),
            "current": {"text": "1.0", "value": "1.0"},
            "options": [{"text": s, "value": s, "selected": s == "1.0"} for s in slos],
        },
    ]


def dashboard() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict."""
    return {
        "uid": "sagellm-control-plane",
        "title": "sageLLM Control Plane",
        "tags": ["sagellm", "vllm", "llm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": _variables()},
        "panels": [_panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    sys.stderr.write(f"wrote {OUT}\n")
