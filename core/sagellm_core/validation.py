"""One entry point to check a user's manifest: CRD schema + CEL rules, then the typed model.

The operator calls these before acting on a spec; the tests use them on the samples.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from sagellm_core.api.crdcheck import apply_defaults, crd_schema, validate_object
from sagellm_core.api.instance import ExecutionInstance
from sagellm_core.api.pool import InferencePool
from sagellm_core.crdgen import instance_crd, pool_crd
from sagellm_core.owned_args import owned_arg_problems
from sagellm_core.scheduling.capacity import concurrency_limit


@cache
def _pool_crd() -> dict[str, Any]:
    return pool_crd()


@cache
def _instance_crd() -> dict[str, Any]:
    return instance_crd()


def _pydantic_problems(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    ]


def pool_problems(obj: dict[str, Any]) -> list[str]:
    """Every reason the API server or the operator would refuse this InferencePool."""
    return validate_object(_pool_crd(), obj) or operator_problems(obj)


def operator_problems(obj: dict[str, Any]) -> list[str]:
    """What the operator refuses in a pool the API server accepted (schema and CEL rules are the
    server's: the operator checks at startup that the installed CRD is the one it expects)."""
    try:
        pool = parse_pool(obj)
    except ValidationError as exc:
        return _pydantic_problems(exc)
    engine = pool.spec.engine
    owned = owned_arg_problems(engine.extra_args, [e.name for e in engine.env])
    return [f"spec.{problem}" for problem in owned] + _slot_problems(pool)


def _slot_problems(pool: InferencePool) -> list[str]:
    """The router's admission slots come from the spec (status.endpoints[].maxConcurrency)."""
    try:
        concurrency_limit(pool.spec, "General")
    except ValueError as exc:
        return [f"spec.{exc}"]
    return []


def parse_pool(obj: dict[str, Any]) -> InferencePool:
    """Parse a pool as stored by Kubernetes (defaults applied); raises ValidationError."""
    defaulted = apply_defaults(crd_schema(_pool_crd()), obj)
    return InferencePool.model_validate(defaulted)


def instance_problems(obj: dict[str, Any]) -> list[str]:
    problems = validate_object(_instance_crd(), obj)
    if problems:
        return problems
    try:
        ExecutionInstance.model_validate(apply_defaults(crd_schema(_instance_crd()), obj))
    except ValidationError as exc:
        return _pydantic_problems(exc)
    return []
