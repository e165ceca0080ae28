"""vllm-router's own ``kv_aware`` policy as a peer: its flags for the fleet's KV-event sockets.

vllm-router (0.1.17 and later) follows vLLM's KV events when given each worker's publisher
(``--kv-event-source URL=ENDPOINT[,ENDPOINT...]``, one endpoint per data-parallel rank), replay
socket, block size and model. The simulators bind OS-chosen ports (``tcp://*:0``) and report
them, as vLLM resolves its config, at ``GET /kv_event_sources``; these flags are read from there
once the fleet is up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from sagellm_router.bench.fleet import MODEL, BenchError, Contender, http_get
from sagellm_router.kv.subscriber import publishers

POLICY = "kv_aware"


def with_event_sources(
    c: Contender, urls: Sequence[str], block_size: int, model: str = MODEL
) -> Contender:
    """``c`` with its KV-event flags if it is vllm-router's ``kv_aware``, else ``c``."""
    if c.kind != "peer" or c.strategy != POLICY:
        return c
    return replace(c, options={**c.options, "argv": event_source_args(urls, block_size, model)})


def event_source_args(urls: Sequence[str], block_size: int, model: str = MODEL) -> list[str]:
    """``--kv-event-source`` and ``--kv-event-replay-source`` per engine, then the block size
    and model; ``BenchError`` when an engine does not publish events."""
    args: list[str] = []
    for url in urls:
        status, body = http_get(url + "/kv_event_sources")
        ranks = publishers(url, json.loads(body)) if status == 200 else []
        if not ranks:
            raise BenchError(
                f"{url} publishes no KV events (GET /kv_event_sources: {status}); "
                "vllm-router's kv_aware needs --kv-events-config on the engines"
            )
        args += ["--kv-event-source", f"{url}={','.join(p.endpoint for p in ranks)}"]
        replays = [p.replay for p in ranks if p.replay]
        if len(replays) == len(ranks):
            args += ["--kv-event-replay-source", f"{url}={','.join(replays)}"]
    return [*args, "--kv-event-block-size", str(block_size), "--kv-event-model", model]
