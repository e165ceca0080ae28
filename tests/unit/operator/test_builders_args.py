"""The operator's engine argv comes from core's builder: per role, per sample, multi-node."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from sagellm_core.api import Role
from sagellm_core.planner import plan_pool
from sagellm_core.validation import parse_pool
from sagellm_core.vllm_args import lws_multi_node, serve_args, serve_config_for_pool
from sagellm_operator.builders.args import instance_args, worker_args

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"


def _pool(name: str):  # type: ignore[no-untyped-def]
    spec = parse_pool(yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())).spec
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
    args = instance_args(spec, role, plans[role], 8123)
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
    config = json.loads(_flag(instance_args(spec, role, plans[role], 8000), "--kv-transfer-config"))
    assert config == {"kv_connector": "NixlConnector", "kv_role": kv_role}


def test_worker_args_equal_the_core_builders_worker_argv() -> None:
    spec, plans = _pool("multinode-70b-pool")
    plan = plans[Role.GENERAL]
    leader = instance_args(spec, Role.GENERAL, plan, 8000)
    cfg = serve_config_for_pool(spec, Role.GENERAL, plan.layout, lws_multi_node(2, leader=False))
    assert worker_args(leader, 2) == serve_args(replace(cfg, port=8000))


def test_worker_args_refuse_an_argv_without_leader_flags() -> None:
    spec, plans = _pool("general-pool")
    with pytest.raises(ValueError, match="no leader flags"):
        worker_args(instance_args(spec, Role.GENERAL, plans[Role.GENERAL], 8000), 2)
