"""Engine flags and environment variables the operator owns: one list, used by the CRD's CEL
rules (:mod:`sagellm_core.api.pool`), the operator's spec check (:mod:`sagellm_core.validation`)
and checked against the argv builder (:mod:`sagellm_core.vllm_args`) by the tests.

Pure; imports nothing from the API models so those can build CEL rules from it.
"""

from __future__ import annotations

from typing import Final

_NETWORK = "the operator sets the listen address and port (probes, Service and router use them)"
_PARALLEL = "the operator sets parallelism from the plan; use spec.parallelism"
_MULTI_NODE = "the operator wires multi-node groups from the plan"
OWNED_FLAGS: Final[dict[str, str]] = {
    **dict.fromkeys(("--host", "--port", "--uds"), _NETWORK),
    **dict.fromkeys((
        "--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp",
        "--data-parallel-size", "-dp", "--data-parallel-size-local", "-dpl",
        "--data-parallel-rank", "-dpn", "--data-parallel-start-rank", "-dpr",
        "--data-parallel-address", "-dpa", "--data-parallel-rpc-port", "-dpp",
        "--data-parallel-backend", "-dpb", "--data-parallel-hybrid-lb", "-dph",
        "--data-parallel-external-lb", "-dpe", "--prefill-context-parallel-size", "-pcp",
        "--enable-expert-parallel", "-ep", "--no-enable-expert-parallel",
    ), _PARALLEL),
    **dict.fromkeys((
        "--nnodes", "-n", "--node-rank", "-r", "--master-addr", "--master-port", "--headless",
        "--distributed-executor-backend",
    ), _MULTI_NODE),
    "--served-model-name": "the operator sets it from spec.model.name (the router routes by it)",
    "--model": "the operator passes spec.model.source",
    "--kv-transfer-config": "the operator sets it from the role and spec.roles.kvTransfer",
    "--kv-events-config": "the operator sets it when spec.scheduling.routing is kv_aware",
}  # fmt: skip
"""Engine flags the operator sets, and why; ``engine.extraArgs`` may not set them. The CRD
rejects the exact spellings (``--flag`` and ``--flag=value``); :func:`owned_arg_problems` also
catches the spellings vLLM's parser accepts beyond those (``_`` for ``-``, abbreviations)."""

OWNED_ENV: Final[dict[str, str]] = {
    **dict.fromkeys(("POD_IP", "VLLM_HOST_IP"), "the operator sets it to the pod IP"),
    **dict.fromkeys(
        ("VLLM_NIXL_SIDE_CHANNEL_HOST", "VLLM_NIXL_SIDE_CHANNEL_PORT"),
        "the operator sets the KV-transfer side channel",
    ),
    **dict.fromkeys(
        ("LWS_LEADER_ADDRESS", "LWS_WORKER_INDEX", "LWS_GROUP_SIZE"),
        "the LeaderWorkerSet sets it; the multi-node flags refer to it",
    ),
}
"""Environment variables the operator (or the LeaderWorkerSet) sets; ``engine.env`` may not."""

_MIN_ABBREVIATION = 6
"""argparse accepts unique prefixes of long flags; shorter prefixes than ``--host`` are not
checked (they would be ambiguous between many vLLM flags and vLLM refuses them)."""


def owned_flag(arg: str) -> str | None:
    """The owned flag ``arg`` sets (any spelling vLLM accepts), or None."""
    if not arg.startswith("-"):
        return None
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    if name in OWNED_FLAGS:
        return name
    if name.startswith("--") and len(name) >= _MIN_ABBREVIATION:
        longer = sorted(f for f in OWNED_FLAGS if f.startswith(name))
        return longer[0] if longer else None
    return None


def owned_arg_problems(extra_args: list[str], env_names: list[str]) -> list[str]:
    """One problem per owned flag in ``extra_args`` or owned variable in ``env_names``."""
    problems = []
    for i, arg in enumerate(extra_args):
        flag = owned_flag(arg)
        if flag is not None:
            problems.append(
                f"engine.extraArgs[{i}]: {arg.split('=', 1)[0]!r} sets {flag}, which the "
                f"operator owns ({OWNED_FLAGS[flag]}); remove it"
            )
    for i, name in enumerate(env_names):
        if name in OWNED_ENV:
            problems.append(
                f"engine.env[{i}]: {name} is owned by the operator ({OWNED_ENV[name]}); remove it"
            )
    return problems
