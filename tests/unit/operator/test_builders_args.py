"""The operator's engine argv comes from core's builder: per role, per sample, multi-node, and
the KV-event publisher of kv_aware pools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sagellm_core.api import ExecutionInstanceSpec, Role
from sagellm_core.planner import plan_pool
from sagellm_core.validation import instance_problems, parse_pool
from sagellm_core.vllm_args import KV_EVENTS_PORT, KV_EVENTS_REPLAY_PORT
from sagellm_operator.builders.args import instance_args
from sagellm_operator.builders.instance import build_instance
from sagellm_operator.builders.lws import build_lws
from sagellm_operator.settings import PodDefaults

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"


def _sample(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    obj["metadata"].setdefault("namespace", "ns")
    obj["metadata"]["uid"] = "uid-pool"
    return obj


def _pool(name: str, routing: str | None = None):  # type: ignore[no-untyped-def]
    obj = _sample(name)
    if routing is not None:
        obj["spec"].setdefault("scheduling", {})["routing"] = routing
    spec = parse_pool(obj).spec
    return spec, plan_pool(spec).plans


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("sample", "role", "expect"),
    [
        ("general-pool", Role.GENERAL, {"--tensor-parallel-size": "1", "--port": "8123"}),
        ("pd-pool", Role.PREFILL, {"--tensor-parallel-size": "1"}),
        ("pd-pool", Role.DECODE, {"--tensor-parallel-size": "2", "--max-num-seqs": "64"}),
        (
            "simulator-pool",
            Role.GENERAL,
            {"--sim-time-scale": "0.05", "--served-model-name": "tiny"},
        ),
        ("multinode-70b-pool", Role.GENERAL, {"--nnodes": "2", "--node-rank": "0"}),
    ],
)
def test_instance_args_follow_the_core_builder(
    sample: str, role: Role, expect: dict[str, str]
) -> None:
    spec, plans = _pool(sample)
    args, _ = instance_args(spec, role, plans[role], 8123)
    assert args[0] == spec.model.source
    assert _flag(args, "--port") == "8123"
    for flag, value in expect.items():
        assert _flag(args, flag) == value, flag
    assert "--headless" not in args


@pytest.mark.parametrize(
    ("role", "kv_role"), [(Role.PREFILL, "kv_producer"), (Role.DECODE, "kv_consumer")]
)
def test_pd_roles_get_their_kv_transfer_config(role: Role, kv_role: str) -> None:
    spec, plans = _pool("pd-pool")
    args, _ = instance_args(spec, role, plans[role], 8000)
    config = json.loads(_flag(args, "--kv-transfer-config"))
    assert config == {"kv_connector": "NixlConnector", "kv_role": kv_role}


MULTI_NODE_WORKER = [
    "meta-llama/Llama-3.1-70B-Instruct", "--served-model-name", "llama-70b",
    "--host", "0.0.0.0", "--port", "8000",
    "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
    "--nnodes", "2", "--node-rank", "$(LWS_WORKER_INDEX)", "--master-addr",
    "$(LWS_LEADER_ADDRESS)", "--headless",
]  # fmt: skip


def test_multi_node_workers_run_the_leaders_argv_with_their_rank_and_headless() -> None:
    spec, plans = _pool("multinode-70b-pool")
    leader, worker = instance_args(spec, Role.GENERAL, plans[Role.GENERAL], 8000)
    assert worker is not None
    assert worker[: len(MULTI_NODE_WORKER)] == MULTI_NODE_WORKER
    rank = leader.index("--node-rank")
    assert worker == [*leader[: rank + 1], "$(LWS_WORKER_INDEX)",
                      *leader[rank + 2 : rank + 4], "--headless", *leader[rank + 4 :]]  # fmt: skip


def test_the_lws_runs_the_instances_leader_and_worker_argv() -> None:
    pool = _sample("multinode-70b-pool")
    spec = parse_pool(pool).spec
    plan = plan_pool(spec).plans[Role.GENERAL]
    argvs = instance_args(spec, Role.GENERAL, plan, 8000)
    inst = build_instance(pool, spec, Role.GENERAL, plan, 0, argvs, 600)
    assert inst["spec"]["workerArgs"] == argvs[1]
    lws = build_lws(inst, ExecutionInstanceSpec.model_validate(inst["spec"]), PodDefaults())
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["leaderTemplate"]["spec"]["containers"][0]["args"] == argvs[0]
    assert group["workerTemplate"]["spec"]["containers"][0]["args"] == argvs[1]


def test_one_node_instances_have_no_worker_argv_and_keep_their_spec_hash() -> None:
    pool = _sample("general-pool")
    spec = parse_pool(pool).spec
    plan = plan_pool(spec).plans[Role.GENERAL]
    argvs = instance_args(spec, Role.GENERAL, plan, 8000)
    assert argvs[1] is None
    inst = build_instance(pool, spec, Role.GENERAL, plan, 0, argvs, 600)
    assert "workerArgs" not in inst["spec"]  # unset, so existing instances' hashes hold


def test_a_multi_node_instance_without_worker_argv_is_refused() -> None:
    inst: dict[str, Any] = {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "ExecutionInstance",
        "metadata": {"name": "i", "namespace": "ns", "labels": {}},
        "spec": {"pool": "p", "model": {"name": "m", "source": "m", "parameters": 1},
                 "nodes": 2, "args": ["m"]},
    }  # fmt: skip
    assert any("workerArgs is required when nodes > 1" in p for p in instance_problems(inst))
    with pytest.raises(ValueError, match=r"no spec\.workerArgs"):
        build_lws(inst, ExecutionInstanceSpec.model_validate(inst["spec"]), PodDefaults())
    inst["spec"]["workerArgs"] = ["m", "--headless"]
    assert instance_problems(inst) == []


@pytest.mark.parametrize("sample", ["general-pool", "pd-pool", "simulator-pool",
                                    "multinode-70b-pool"])  # fmt: skip
@pytest.mark.parametrize("routing", ["kv_aware", "prefix_aware", None])
def test_engines_of_kv_aware_pools_publish_kv_events(sample: str, routing: str | None) -> None:
    spec, plans = _pool(sample, routing)
    for role, plan in plans.items():
        for argv in instance_args(spec, role, plan, 8000):
            if argv is None:
                continue
            if routing != "kv_aware":
                assert "--kv-events-config" not in argv
                continue
            assert "--enable-prefix-caching" in argv
            assert json.loads(_flag(argv, "--kv-events-config")) == {
                "enable_kv_cache_events": True, "publisher": "zmq",
                "endpoint": f"tcp://*:{KV_EVENTS_PORT}",
                "replay_endpoint": f"tcp://*:{KV_EVENTS_REPLAY_PORT}",
            }  # fmt: skip
