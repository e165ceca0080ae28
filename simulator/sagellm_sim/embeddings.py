"""``POST /v1/embeddings`` of a simulated embedding model (``--runner pooling``).

Each input becomes one prefill-only request on an engine core (so the performance model, the
queue and the ``vllm:*`` metrics see embedding traffic like vLLM's pooling runner does); the
answer carries a deterministic vector per input: seeded by the text and the simulator seed,
L2-normalised, of ``dimensions`` entries (else ``--sim-embedding-dim``).

Inputs, as vLLM takes them: a string, an array of strings, an array of token ids (one input)
or an array of token-id arrays (several), at most ``MAX_INPUTS``; an empty string or array is
refused. A token-id input's vector is seeded by its ids. Unlike the tiny
real model (which refuses ``dimensions`` without Matryoshka support), any ``dimensions`` >= 1 is
served. As in vLLM, a pooling model has no generation routes (404) and a generative model no
embeddings route.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
import time
import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from sagellm_sim.engine import SimRequest, Status
from sagellm_sim.errors import ApiError, invalid, not_found_model, schema_error
from sagellm_sim.kvcache import block_hashes
from sagellm_sim.protocol import decode_json
from sagellm_sim.responses import ENGINE_DEAD_MESSAGE
from sagellm_sim.state import SERVER_KEY, SimServer
from sagellm_sim.tokenizer import tokenize

MAX_INPUTS = 2048


class EmbeddingBody(BaseModel):
    """The OpenAI embeddings request; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[Any]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


def embedding_vector(text: str, dim: int, seed: int = 0) -> list[float]:
    """A deterministic unit vector for ``text``: the same text and seed give the same vector."""
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def parse_inputs(body: EmbeddingBody, max_inputs: int = MAX_INPUTS) -> list[str | list[int]]:
    """The inputs, each a string or a list of token ids; ``ApiError`` naming the problem."""
    raw = body.input
    items: list[Any] = [raw] if isinstance(raw, str) or _token_ids(raw) else raw
    if not items:
        raise invalid("'input' must not be an empty array", "input", "[]")
    if len(items) > max_inputs:
        raise invalid(f"'input' has {len(items)} items; at most {max_inputs} are allowed", "input")
    for i, item in enumerate(items):
        if not isinstance(item, str) and not _token_ids(item):
            kind = type(item).__name__
            raise invalid(f"input[{i}] must be a string or token ids, got {kind}", "input")
        if not item:
            raise invalid(f"input[{i}] is empty", "input")
    return items


def _token_ids(value: object) -> bool:
    return (
        isinstance(value, list) and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )  # fmt: skip


def _dimensions(body: EmbeddingBody, default: int) -> int:
    if body.dimensions is None:
        return default
    if body.dimensions < 1:
        raise invalid("'dimensions' must be >= 1", "dimensions", body.dimensions)
    return body.dimensions


async def embeddings(request: web.Request) -> web.Response:
    srv = request.app[SERVER_KEY]
    data = decode_json(await request.read())
    try:
        body = EmbeddingBody.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise schema_error(errors) from exc
    model = body.model or srv.config.served_name
    if model not in srv.config.accepted_names:
        raise not_found_model(model, srv.config.accepted_names)
    inputs = parse_inputs(body)
    dim = _dimensions(body, srv.embedding_dim)
    ids = [tokenize(t) if isinstance(t, str) else list(t) for t in inputs]
    for i, tokens in enumerate(ids):
        if len(tokens) > srv.max_model_len:
            raise invalid(
                f"input[{i}] has {len(tokens)} tokens; the maximum context length is "
                f"{srv.max_model_len}", "input",
            )  # fmt: skip
    rid = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    srv.check_accepting()
    with srv.tracked():
        await _run_prefill(srv, rid, ids)
    keys = [t if isinstance(t, str) else "ids:" + ",".join(map(str, t)) for t in inputs]
    vectors = [embedding_vector(k, dim, srv.config.sim_seed) for k in keys]
    data_out = [
        {"index": i, "object": "embedding", "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    prompt_tokens = sum(len(t) for t in ids)
    return web.json_response({
        "id": f"embd-{rid}", "object": "list", "created": int(time.time()), "model": model,
        "data": data_out,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens,
                  "completion_tokens": 0, "prompt_tokens_details": None,
                  "completion_tokens_details": None},
    })  # fmt: skip


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    """``float``: the list; ``base64``: little-endian float32 bytes, base64 (as vLLM)."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def _run_prefill(srv: SimServer, rid: str, prompts: list[list[int]]) -> None:
    """One prefill-only request per input on the least-loaded engine; aborted if cancelled."""
    runner = srv.pick_runner(None)
    srv.check_admission(runner)
    handles = []
    for i, prompt in enumerate(prompts):
        srv.sequence += 1
        req = SimRequest(
            request_id=f"embd-{rid}-{i}-{srv.sequence}", prompt_ids=prompt, max_tokens=1,
            output_len=1, arrival=srv.clock(),
            block_hashes=block_hashes(prompt, srv.config.block_size, None),
        )  # fmt: skip
        handles.append(runner.submit(req))
    try:
        for handle in handles:
            finished = False
            while not finished:
                _, finished = await handle.next()
            if handle.aborted:
                raise ApiError(ENGINE_DEAD_MESSAGE, 500, "InternalServerError")
    finally:
        for handle in handles:
            if handle.req.status is not Status.FINISHED:
                srv.metrics.on_abort(runner.index)
            runner.abort(handle)
        srv.request_done()
