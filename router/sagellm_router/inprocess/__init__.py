"""In-process engines: a vLLM ``AsyncLLM`` inside the ``ControlPlaneManager``'s process, served
through the same pipeline (admission queue, routing, retries, metrics) as HTTP engines.

``engine``: the engine interface and the lazy vLLM loader (``pip install
'sagellm-control-plane[vllm]'``); ``adapter``: OpenAI requests in, OpenAI answers out, driven
through ``generate``/``abort``; ``transport``: the upstream that sends ``inprocess://`` URLs to
adapters and everything else over HTTP.
"""

from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.inprocess.engine import (
    AsyncEngine,
    VllmNotInstalled,
    load_vllm_engine,
    vllm_sampling_params,
)
from sagellm_router.inprocess.transport import INPROCESS_SCHEME, MixedUpstream

__all__ = [
    "INPROCESS_SCHEME",
    "AsyncEngine",
    "LocalEngine",
    "MixedUpstream",
    "VllmNotInstalled",
    "load_vllm_engine",
    "vllm_sampling_params",
]
