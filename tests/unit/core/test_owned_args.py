"""Flags and variables the operator owns: refused by the CRD (CEL) in their exact spellings,
by the operator's check in the others; the list agrees with what the argv builder emits."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sagellm_core.api import labels as L
from sagellm_core.api.common import Role
from sagellm_core.owned_args import OWNED_ENV, OWNED_FLAGS, owned_flag
from sagellm_core.validation import pool_problems
from sagellm_core.vllm_args import MultiNode, ServeConfig, serve_args

BASE: dict[str, Any] = {
    "apiVersion": L.API_VERSION, "kind": L.POOL_KIND,
    "metadata": {"name": "p", "namespace": "d"},
    "spec": {"model": {"name": "m", "source": "org/m", "parameters": 1, "maxModelLen": 1024},
             "roles": {"general": {"replicas": 1}}},
}  # fmt: skip
SPEC_DERIVED = {
    "--revision", "--max-model-len", "--gpu-memory-utilization", "--dtype", "--quantization",
    "--block-size", "--enable-prefix-caching", "--no-enable-prefix-caching", "--max-num-seqs",
}  # fmt: skip
"""Flags the builder derives from spec fields that extraArgs may deliberately override."""


def _pool(**engine: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["spec"]["engine"] = engine
    return obj


@pytest.mark.parametrize("flag", sorted(OWNED_FLAGS))
def test_every_owned_flag_is_refused_by_the_crd_in_both_forms(flag: str) -> None:
    for args in ([flag, "1"], [f"{flag}=1"]):
        problems = pool_problems(_pool(extraArgs=["--max-num-seqs", "4", *args]))
        assert problems == [
            f"spec.engine.extraArgs: extraArgs sets {args[0]}, a flag the operator owns; remove it"
        ]


@pytest.mark.parametrize(
    ("arg", "flag"),
    [("--tensor_parallel_size", "--tensor-parallel-size"), ("--served", "--served-model-name"),
     ("--kv_transfer_config={}", "--kv-transfer-config"),
     ("--enable-expert", "--enable-expert-parallel")],
)  # fmt: skip
def test_other_spellings_are_caught_by_the_operator_check(arg: str, flag: str) -> None:
    (problem,) = pool_problems(_pool(extraArgs=[arg, "4"]))
    assert problem.startswith(f"spec.engine.extraArgs[0]: {arg.split('=')[0]!r} sets {flag}")
    assert owned_flag(arg) == flag


@pytest.mark.parametrize("args", [["--max-num-seqs", "8"], ["--enforce-eager"], ["--hostile"]])
def test_flags_the_operator_does_not_own_pass(args: list[str]) -> None:
    assert pool_problems(_pool(extraArgs=args)) == []


@pytest.mark.parametrize("name", sorted(OWNED_ENV))
def test_owned_env_is_refused(name: str) -> None:
    problems = pool_problems(
        _pool(env=[{"name": "OK", "value": "1"}, {"name": name, "value": "x"}])
    )
    assert problems == [
        f"spec.engine.env: env sets {name}, a variable the operator owns; remove it"
    ]


@pytest.mark.parametrize("image", ["", " ", "repo/image :tag", "\t"])
def test_blank_images_are_refused(image: str) -> None:
    problems = pool_problems(_pool(image=image))
    assert problems
    assert all(p.startswith("spec.engine.image:") for p in problems)


def test_every_flag_the_builder_emits_is_owned_or_spec_derived() -> None:
    multi = MultiNode(2, 0, "$(LWS_LEADER_ADDRESS)", 29501)
    configs = [
        ServeConfig("org/m", "m", 1024, quantization="fp8", revision="r", data=2,
                    expert_parallel=True, role=Role.PREFILL, block_size=16, max_num_seqs=4,
                    multi_node=multi, enable_prefix_caching=False),
        ServeConfig("org/m", "m", 1024, multi_node=MultiNode(2, 1, "$(LWS_LEADER_ADDRESS)")),
    ]  # fmt: skip
    emitted = {a for cfg in configs for a in serve_args(cfg) if a.startswith("-")}
    assert emitted - SPEC_DERIVED <= set(OWNED_FLAGS)
    assert not SPEC_DERIVED & set(OWNED_FLAGS)


def test_pool_names_are_bounded_so_every_derived_name_fits() -> None:
    longest = "p" * L.MAX_POOL_NAME
    obj = copy.deepcopy(BASE)
    obj["metadata"]["name"] = longest
    assert pool_problems(obj) == []
    instance = f"{longest}-{max(L.ROLE_LABEL_VALUES, key=len)}-{L.MAX_ROLE_REPLICAS - 1}"
    pod = f"{instance}-{'0' * L.SPEC_HASH_LENGTH}"
    assert len(instance) <= L.DNS_LABEL_MAX
    assert len(pod) == L.DNS_LABEL_MAX
    assert set(L.ROLE_LABEL_VALUES) == {L.role_label_value(r) for r in Role}
    obj["metadata"]["name"] = longest + "p"
    (problem,) = pool_problems(obj)
    assert f"at most {L.MAX_POOL_NAME} characters" in problem
