"""``POST /v1/completions`` and ``POST /v1/chat/completions``: validate, submit, answer.

A request becomes a ``SimRequest`` on the least-loaded engine; the handler then waits on its
``RequestHandle`` and renders either one JSON body or an SSE stream (one event per engine step
that produced tokens, merged when the client reads slower than the engine generates).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sagellm_sim.engine import SimRequest, Status
from sagellm_sim.errors import not_found_model
from sagellm_sim.kvcache import block_hashes
from sagellm_sim.pd import producer_params
from sagellm_sim.protocol import Kind, Prepared, decode_json, prepare
from sagellm_sim.responses import (
    DONE,
    ENGINE_DEAD_EVENT,
    ResponseCtx,
    chunk,
    full_response,
    usage,
    usage_chunk,
)
from sagellm_sim.runner import EngineRunner, RequestHandle
from sagellm_sim.state import SERVER_KEY, SimServer
from sagellm_sim.tokenizer import TextGenerator

log = logging.getLogger("sagellm_sim.requests")


@dataclass
class Job:
    """One admitted request and everything needed to answer it."""

    srv: SimServer
    prep: Prepared
    ctx: ResponseCtx
    runner: EngineRunner
    handle: RequestHandle
    gen: TextGenerator

    @property
    def req(self) -> SimRequest:
        return self.handle.req

    def usage(self, *, final: bool = True) -> dict[str, Any]:
        cached = self.req.cached_tokens if self.srv.config.enable_prompt_tokens_details else None
        return usage(self.req.prompt_len, self.req.num_output, cached, final=final)

    def chunk_usage(self, sent: int) -> dict[str, Any] | None:
        """Per-chunk usage with ``continuous_usage_stats`` (chat adds completion details)."""
        if not (self.prep.continuous_usage and self.prep.include_usage):
            return None
        cached = self.req.cached_tokens if self.srv.config.enable_prompt_tokens_details else None
        use = usage(self.req.prompt_len, sent, cached, final=False)
        if self.prep.kind == "chat":
            use["completion_tokens_details"] = None
        return use


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "completion")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "chat")


async def _generate(request: web.Request, kind: Kind) -> web.StreamResponse:
    srv = request.app[SERVER_KEY]
    prep = prepare(kind, decode_json(await request.read()), srv.config.served_name,
                   srv.max_model_len)  # fmt: skip
    if prep.model not in srv.config.accepted_names:
        raise not_found_model(prep.model, srv.config.accepted_names)
    srv.check_accepting()
    runner = srv.pick_runner(request.headers.get("X-data-parallel-rank"))
    srv.check_admission(runner)
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    with srv.tracked():
        return await _answer(request, srv, runner, _submit(srv, runner, prep, request_id))


async def _answer(
    request: web.Request, srv: SimServer, runner: EngineRunner, job: Job
) -> web.StreamResponse:
    try:
        if job.prep.stream:
            return await _stream(request, job)
        return await _complete(request, job)
    finally:
        if job.req.status is not Status.FINISHED:
            srv.metrics.on_abort(runner.index)
        runner.abort(job.handle)
        if job.req.request_id not in runner.held:  # nobody was told where the KV is: free it
            runner.core.release_held(job.req)
        srv.request_done()


def _submit(srv: SimServer, runner: EngineRunner, prep: Prepared, request_id: str) -> Job:
    srv.sequence += 1
    prefix = "cmpl" if prep.kind == "completion" else "chatcmpl"
    ctx = ResponseCtx(prep.kind, f"{prefix}-{request_id}", int(time.time()), prep.model,
                      srv.fingerprint)  # fmt: skip
    gen = TextGenerator(srv.config.sim_seed, prep.seed, prep.prompt_ids)
    out_len = prep.max_tokens if prep.ignore_eos else min(prep.max_tokens, gen.natural_length)
    now = srv.clock()
    req = SimRequest(
        request_id=f"{ctx.id}-{srv.sequence}", prompt_ids=prep.prompt_ids,
        max_tokens=prep.max_tokens, arrival=now,
        output_len=min(prep.max_tokens, max(out_len, prep.min_tokens, 1)),
        block_hashes=block_hashes(prep.prompt_ids, srv.config.block_size, prep.cache_salt),
    )  # fmt: skip
    pd_on = srv.config.kv_transfer is not None and prep.kv is not None
    if pd_on and prep.kv and prep.kv.remote_decode:
        req.hold_blocks = True
    elif pd_on and prep.kv and prep.kv.remote_prefill:
        remote = prep.kv.remote_prefill
        tokens = min(req.prompt_len, remote.num_tokens or req.prompt_len)
        req.remote_prefill = True
        req.ready_at = now + srv.cost.kv_transfer_seconds(tokens) * srv.config.sim_time_scale
        srv.spawn(_release_after(srv, req.ready_at - now, remote.host, remote.port,
                                 remote.engine_id, remote.request_id))  # fmt: skip
    return Job(srv, prep, ctx, runner, runner.submit(req), gen)


async def _release_after(srv: SimServer, delay: float, *target: Any) -> None:
    await asyncio.sleep(delay)
    await srv.notify_kv_pulled(*target)


def _kv_params(request: web.Request, job: Job) -> dict[str, Any] | None:
    if not job.req.hold_blocks:
        return None
    srv = job.srv
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    host = srv.config.sim_advertise_host or (sock[0] if sock else "127.0.0.1")
    port = sock[1] if sock else srv.config.port
    job.runner.hold_kv(job.req, srv.config.sim_kv_hold_seconds)
    return producer_params(job.req, srv.engine_ids[job.runner.index], host, port,
                           srv.config.tensor_parallel_size)  # fmt: skip


async def _complete(request: web.Request, job: Job) -> web.Response:
    words: list[str] = []
    finished = False
    while not finished:
        n, finished = await job.handle.next()
        words.extend(job.gen.next_words(n))
    # An engine shutdown without drain answers what was generated, as vLLM 0.32 does.
    reason = "abort" if job.handle.aborted else job.req.finish_reason
    body = full_response(job.ctx, "".join(words), reason, job.usage(),
                         _kv_params(request, job))  # fmt: skip
    return web.json_response(body)


async def _stream(request: web.Request, job: Job) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})  # fmt: skip
    await resp.prepare(request)
    faults, sent, finished = job.srv.faults, 0, False
    role = job.prep.kind == "chat"
    try:
        while not finished:
            n, finished = await job.handle.next()
            if role:  # vLLM sends the role chunk with the first engine output (after prefill)
                await resp.write(chunk(job.ctx, "", None, role=True, use=job.chunk_usage(0)))
                role = False
            if job.handle.aborted:
                await _partial(resp, job, n)
                return await _end_aborted(resp)
            limit = _fault_limit(faults.stall_after_tokens, faults.cut_stream_after_tokens)
            if limit is not None and sent + n >= limit:
                await _partial(resp, job, limit - sent)
                return await _break_stream(request, resp, job, faults.stall_after_tokens == limit)
            reason = job.req.finish_reason if finished else None
            sent += n
            text = "".join(job.gen.next_words(n))
            last = finished and not job.prep.include_usage
            await resp.write(chunk(job.ctx, text, reason, use=job.chunk_usage(sent), last=last))
        if job.prep.include_usage:
            await resp.write(usage_chunk(job.ctx, job.usage(final=False)))
        await resp.write(DONE)
        await resp.write_eof()
    except ConnectionResetError:
        log.info("client disconnected request_id=%s", job.req.request_id)
    return resp


async def _end_aborted(resp: web.StreamResponse) -> web.StreamResponse:
    """vLLM 0.32 ends a stream cut by engine shutdown with an error event, then ``[DONE]``."""
    await resp.write(ENGINE_DEAD_EVENT)
    await resp.write(DONE)
    await resp.write_eof()
    return resp


def _fault_limit(stall: int | None, cut: int | None) -> int | None:
    limits = [x for x in (stall, cut) if x is not None]
    return min(limits) if limits else None


async def _partial(resp: web.StreamResponse, job: Job, n: int) -> None:
    if n > 0:
        await resp.write(chunk(job.ctx, "".join(job.gen.next_words(n)), None))


async def _break_stream(
    request: web.Request, resp: web.StreamResponse, job: Job, stall: bool
) -> web.StreamResponse:
    """Inject a stream fault: stall (keep the connection silent) or cut (drop it)."""
    job.srv.metrics.on_abort(job.runner.index)
    job.runner.abort(job.handle)
    transport = request.transport
    if stall:
        log.warning("stalling stream (fault) request_id=%s", job.req.request_id)
        # aiohttp offers no close event for a connection, so poll until the client leaves.
        while transport is not None and not transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    else:
        log.warning("cutting stream (fault) request_id=%s", job.req.request_id)
        if transport is not None:
            transport.close()  # flushes what was written, then drops the connection
    return resp
