"""Per-instance concurrency limits from the pool spec (pure)."""

from __future__ import annotations

from sagellm_core.api.common import Role
from sagellm_core.api.pool import InferencePoolSpec

#: vLLM's default ``--max-num-seqs``: what an engine runs at once when nothing else is known.
DEFAULT_MAX_CONCURRENCY = 256


def concurrency_limit(
    spec: InferencePoolSpec, role: Role | str, configured: int | None = None
) -> int:
    """How many requests the router lets run at once on one instance of ``role``.

    First match wins: the router's configured ``max_concurrent_requests``; the decode role's
    ``maxParallelRequests`` (for decode instances); ``--max-num-seqs`` in ``engine.extraArgs``;
    vLLM's default of 256.
    """
    if configured is not None:
        if configured < 1:
            raise ValueError(f"max_concurrent_requests must be >= 1, got {configured}")
        return configured
    decode = spec.roles.decode
    if Role(role) is Role.DECODE and decode is not None and decode.max_parallel_requests:
        return decode.max_parallel_requests
    return _max_num_seqs(spec.engine.extra_args) or DEFAULT_MAX_CONCURRENCY


def _max_num_seqs(args: list[str]) -> int | None:
    for i, arg in enumerate(args):
        value: str | None = None
        if arg.startswith("--max-num-seqs="):
            value = arg.split("=", 1)[1]
        elif arg == "--max-num-seqs" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(
                    f"engine.extraArgs --max-num-seqs {value!r} is not a positive integer"
                )
            return int(value)
    return None
