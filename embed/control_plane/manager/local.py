"""Starting and stopping the manager's in-process engines (``executor="inprocess"``)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from control_plane.types import ExecutionInstance
from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.inprocess.engine import load_vllm_engine

log = logging.getLogger(__name__)


def make_local(instance: ExecutionInstance) -> tuple[LocalEngine, bool]:
    """The adapter for ``instance``; True when the manager started (and must stop) the engine."""
    owned = instance.engine is None
    engine = instance.engine
    if engine is None:
        assert instance.model_path is not None
        log.info("starting in-process vLLM engine", extra={"instance": instance.instance_id})
        engine = load_vllm_engine(instance.model_path, instance.engine_args)
    factory = instance.sampling_params_factory
    extra: dict[str, Any] = {"make_sampling_params": factory} if factory else {}
    model = instance.model_name or instance.instance_id
    declared = instance.engine_args.get("max_model_len")
    if isinstance(declared, int):
        extra["max_model_len"] = declared
    return LocalEngine(instance.instance_id, engine, model, **extra), owned


async def shutdown(local: LocalEngine) -> None:
    """Stop an engine the manager started (vLLM's ``shutdown``; awaited when it is async)."""
    stop = getattr(local.engine, "shutdown", None)
    if stop is None:
        return
    result = stop()
    if inspect.isawaitable(result):
        await result
