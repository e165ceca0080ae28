"""Pure parts of the slo, pd and operator scenarios and of the shared sweep (no processes)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from sagellm_router.bench import fleet, runs, stats, workloads
from sagellm_router.bench.fleet import BenchError, Contender
from sagellm_router.bench.scenarios import availability, pd, slo

FIELDS = ["sid", "turn", "klass", "start", "ttft", "e2e", "out_tokens", "prompt_tokens", "error"]


@pytest.mark.parametrize(
    ("label", "engines", "roles", "mode"),
    [
        ("general", 4, ["General"] * 4, "Fixed"),
        ("1p3d-fixed", 4, ["Prefill", "Decode", "Decode", "Decode"], "Fixed"),
        ("1p3d-auto", 4, ["Prefill", "Decode", "Decode", "Decode"], "Auto"),
        ("2p2d-fixed", 4, ["Prefill", "Prefill", "Decode", "Decode"], "Fixed"),
        ("1p3d-fixed", 2, ["Prefill", "Decode"], "Fixed"),
    ],
)
def test_pd_layouts_become_router_pools(
    label: str, engines: int, roles: list[str], mode: str
) -> None:
    urls = [f"http://e{i}" for i in range(engines)]
    config = fleet.our_config(pd.layout_contender(label, engines), urls, 9000)
    (pool,) = config["discovery"]["pools"]
    assert [e["role"] for e in pool["endpoints"]] == roles
    assert [e["url"] for e in pool["endpoints"]] == urls
    assert pool["scheduling"]["pdThresholdMode"] == mode
    assert config["pd"]["auto"] == pd.AUTO_TUNING


def test_pd_layout_needs_a_decode_engine() -> None:
    with pytest.raises(BenchError, match="2p2d-fixed needs more than 2 engines"):
        pd.layout_contender("2p2d-fixed", 2)


def test_roles_must_match_engines() -> None:
    c = Contender("ours", "load_balanced", options={"roles": ["Prefill"]})
    with pytest.raises(BenchError, match="1 roles for 2 engines"):
        fleet.our_config(c, ["http://a", "http://b"], 1)


def test_slo_contender_queues_in_the_router() -> None:
    c = slo.policy_contender("slo_aware", 8)
    config = fleet.our_config(c, ["http://a"], 1)
    (pool,) = config["discovery"]["pools"]
    assert c.name == "ours/slo_aware"
    assert pool["scheduling"]["policy"] == "slo_aware"
    assert pool["endpoints"][0]["max_concurrency"] == 8
    assert config["admin"] == {"enabled": True}
    assert "scrape" not in config
    fast = fleet.our_config(slo.policy_contender("priority", 8, 0.1), ["http://a"], 1)
    assert fast["scrape"] == {"interval_s": 0.1}
    assert slo.policy_contender("priority", 8, 0.1).name == "ours/priority+scrape0.1s"


def test_plain_contender_config_is_one_general_pool() -> None:
    config = fleet.our_config(Contender("ours", "prefix_aware"), ["http://a"], 7, model="m")
    assert config["server"] == {"host": "127.0.0.1", "port": 7}
    endpoint = {"url": "http://a", "role": "General"}
    pool = {"name": "bench", "model": "m", "routing": "prefix_aware", "endpoints": [endpoint]}
    assert config["discovery"]["pools"] == [pool]


def test_class_metrics_per_class_and_rejections() -> None:
    result = {
        "fields": FIELDS,
        "records": [[0, 0, "high", 0.0, 0.1, 1.0, 10, 5, None],
                    [1, 0, "high", 0.1, 0.5, 1.0, 10, 5, None],
                    [2, 0, "high", 0.2, None, None, 0, 0, "HTTP 503"],
                    [3, 0, "low", 0.3, 2.0, 3.0, 10, 5, None],
                    [4, 0, "low", 0.4, None, None, 0, 0, "HTTP 429"]],
        "itl": [],
    }  # fmt: skip
    m = stats.class_metrics(result, {"high": 200.0, "low": None})
    assert m["slo_high"] == pytest.approx(1 / 3)  # the rejected request counts as a miss
    assert "slo_low" not in m
    assert (m["requests_high"], m["requests_low"]) == (3.0, 2.0)
    assert m["ttft_p50_high_ms"] == pytest.approx(300.0)
    assert m["ttft_p99_low_ms"] == pytest.approx(2000.0)
    assert (m["rejected_429"], m["rejected_503"]) == (1.0, 1.0)


def test_class_metrics_of_an_absent_class_are_nan() -> None:
    m = stats.class_metrics({"fields": FIELDS, "records": [], "itl": []}, {"high": 1.0})
    assert m["requests_high"] == 0.0
    assert math.isnan(m["slo_high"])


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ({"fifo": 0.3, "priority": 0.99, "slo_aware": 0.9}, "met"),
        ({"fifo": 0.6, "priority": 0.99, "slo_aware": 0.99}, "not met"),
        ({"fifo": 0.3, "priority": 0.9, "slo_aware": 0.94}, "not met"),
    ],
)
def test_slo_goal_note(values: dict[str, float], verdict: str) -> None:
    summary = [{"contender": f"ours/{k}", "slo_high": v} for k, v in values.items()]
    assert slo.goal_note(summary).split(": ", 1)[1].startswith(verdict + " ")


def test_overload_mix_has_a_fifth_high() -> None:
    high = [c for c in workloads.OVERLOAD_MIX if c.priority == "HIGH"]
    assert [c.share for c in high] == [0.2]
    assert high[0].headers(4.0) == {"x-priority": "HIGH", "x-slo-ttft-ms": "1200"}
    cfg = slo.config(slo.BenchOptions())
    assert cfg.slo_wall_ms() == {"high": 1200.0, "normal": 20000.0, "low": None}


def test_operator_lines_are_parsed() -> None:
    out = (
        "1 pool(s) x 8 instances: all instances+pods created in 2.5s; operator RSS 80 MiB "
        "idle, 95 MiB after\nnoise\n100 pool(s) x 4 instances: all instances+pods created "
        "in 61.0s; operator RSS 81 MiB idle, 140 MiB after\n"
    )
    rows = availability.parse_lines(out)
    assert [(r["pools"], r["replicas"], r["seconds"], r["rss_mib"]) for r in rows] == [
        (1, 8, 2.5, 95.0), (100, 4, 61.0, 140.0)]  # fmt: skip


def test_sweep_alternates_order_and_shares_sessions() -> None:
    order = [Contender("ours", "a"), Contender("peer", "b")]
    calls: list[tuple[str, float, int, str]] = []

    def sessions_for(load: float, rep: int) -> list[dict[str, Any]]:
        return [{"sid": rep, "load": load}]

    def measure(c: Contender, target: list[str], sessions: list[dict[str, Any]], tag: str) -> Any:
        calls.append((c.name, sessions[0]["load"], sessions[0]["sid"], target[0]))
        return {"x": 1.0}

    done: list[int] = []
    targets = fleet.RouterSet({"ours/a": ["A"], "peer/b": ["B"]})  # no processes: nothing paused
    rows = runs.sweep(order, targets, (0.5, 0.8), 2, sessions_for,
                      measure, done.append, {"workload": "w"})  # fmt: skip
    assert [c[0] for c in calls] == ["ours/a", "peer/b", "peer/b", "ours/a",
                                     "peer/b", "ours/a", "ours/a", "peer/b"]  # fmt: skip
    assert [c[3] for c in calls if c[0] == "peer/b"] == ["B"] * 4
    assert len(done) == len(rows) == 8
    assert rows[0] == {"workload": "w", "load": 0.5, "repeat": 0, "contender": "ours/a",
                       "kind": "ours", "strategy": "a", "x": 1.0}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"pools": {"bench": {"policy": "adaptive", "policy_status": {
            "active": "slo_aware", "reason": "SLO attainment 0.8 < 0.9"}}}},
         "slo_aware (SLO attainment 0.8 < 0.9)"),
        ({"pools": {"bench": {"policy": "fifo", "policy_status": None}}}, "fifo"),
        ({"pools": {}}, "?"),
    ],
)  # fmt: skip
def test_active_policy_from_admin_status(status: dict[str, Any], expected: str) -> None:
    assert slo.active_policy(status) == expected


def test_direct_contenders_start_no_router(tmp_path: Path) -> None:
    with fleet.routers([Contender("direct", "")], ["http://e0", "http://e1"], tmp_path) as rs:
        assert rs["direct"] == ["http://e0", "http://e1"]
        assert rs.procs == {}
        with rs.active("direct") as target:
            assert target == ["http://e0", "http://e1"]


@pytest.mark.parametrize(
    ("before", "after", "requests", "expected"),
    [
        (1.0, 1.3, 150.0, {"router_cpu_us_per_req": 2000.0}),
        (None, 1.3, 150.0, {}),  # no /proc, or no process (direct)
        (1.0, 1.3, 0.0, {}),
    ],
)
def test_router_cpu_per_request(
    before: float | None, after: float | None, requests: float, expected: dict[str, float]
) -> None:
    got = runs.router_cpu(before, after, {"requests": requests})
    assert got.keys() == expected.keys()
    assert all(math.isclose(got[k], v) for k, v in expected.items())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_router_set_sums_the_cpu_of_a_contenders_processes() -> None:
    import os

    class Proc:
        pid = os.getpid()

    targets = fleet.RouterSet({"ours/a": ["A", "B"], "direct": ["E"]},
                              {"ours/a": [Proc(), Proc()]})  # type: ignore[list-item]  # fmt: skip
    own = fleet.cpu_seconds(os.getpid())
    both = targets.cpu_seconds("ours/a")
    assert own is not None
    assert both is not None
    assert both >= 2 * own
    assert targets.cpu_seconds("direct") is None
