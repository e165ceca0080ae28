"""State of one simulator instance: config, engines, metrics, faults, PD bookkeeping."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import zmq.asyncio
from aiohttp import web

from sagellm_sim.config import VLLM_COMPAT_VERSION, SimConfig
from sagellm_sim.engine import EngineCore
from sagellm_sim.errors import ApiError
from sagellm_sim.kv_publisher import ZmqKvPublisher
from sagellm_sim.kvcache import KVCache
from sagellm_sim.metrics import SimMetrics, cache_config_labels
from sagellm_sim.profiles import CostModel, Parallelism, Profile, get_profile
from sagellm_sim.runner import Clock, EngineRunner

log = logging.getLogger("sagellm_sim.server")

# What vLLM 0.32 answers a request that needs its tokenizer once shutdown began (its
# renderer's thread pool is closed): HTTP 500 InternalServerError with this message.
SHUTDOWN_MESSAGE = "cannot schedule new futures after shutdown"


def _engine_ids(config: SimConfig) -> list[str]:
    """``remote_engine_id`` per DP rank (the kv-transfer engine_id, suffixed per rank)."""
    kvt, dp = config.kv_transfer, config.data_parallel_size
    if kvt is None:
        return [f"engine-{i}" for i in range(dp)]
    return [kvt.engine_id] if dp == 1 else [f"{kvt.engine_id}_dp{i}" for i in range(dp)]


def system_fingerprint(config: SimConfig) -> str:
    """``vllm-<version>[-tpN][-ppN][-dpN]-<hash8>``, vLLM's default ``full`` fingerprint mode.

    The hash covers what identifies the simulated deployment (model, profile, parallelism,
    length and cache settings), as vLLM's ``compute_hash()`` covers its config.
    """
    c = config
    ident = repr((c.model, c.sim_profile, c.tensor_parallel_size, c.pipeline_parallel_size,
                  c.data_parallel_size, c.max_model_len, c.block_size,
                  c.enable_prefix_caching))  # fmt: skip
    degrees = (("tp", c.tensor_parallel_size), ("pp", c.pipeline_parallel_size),
               ("dp", c.data_parallel_size))  # fmt: skip
    parts = [f"vllm-{VLLM_COMPAT_VERSION}", *(f"{k}{n}" for k, n in degrees if n > 1)]
    return "-".join([*parts, hashlib.sha256(ident.encode()).hexdigest()[:8]])


def _exit_process() -> None:
    log.error("simulated crash (--sim-crash-after reached); exiting")
    logging.shutdown()
    os._exit(1)


class SimServer:
    """All state of one simulator instance (no module-level state)."""

    def __init__(
        self, config: SimConfig, clock: Clock = time.monotonic,
        on_crash: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.clock = clock
        self.on_crash = on_crash or _exit_process
        self.faults = type(config.sim_faults)(**config.sim_faults.as_dict())
        self.profile: Profile = get_profile(config.sim_profile)
        self.max_model_len = config.max_model_len or self.profile.model.max_position
        self.embedding_dim = config.sim_embedding_dim or self.profile.model.hidden
        par = Parallelism(config.tensor_parallel_size, config.pipeline_parallel_size)
        self.cost = CostModel(self.profile, par)
        self.num_gpu_blocks = config.num_gpu_blocks_override or self.cost.num_gpu_blocks(
            config.gpu_memory_utilization, config.block_size
        )
        if self.num_gpu_blocks * config.block_size < self.max_model_len:
            raise ValueError(
                f"To serve at least one request with the model's max seq len "
                f"({self.max_model_len}), the KV cache needs "
                f"{-(-self.max_model_len // config.block_size)} blocks but only "
                f"{self.num_gpu_blocks} fit; lower --max-model-len or add GPUs"
            )
        cores = [self._core() for _ in range(config.data_parallel_size)]
        info = cache_config_labels(
            config.block_size, self.num_gpu_blocks, config.num_gpu_blocks_override,
            config.enable_prefix_caching, config.gpu_memory_utilization, self.max_model_len,
        )  # fmt: skip
        self.metrics = SimMetrics(config.served_name, cores, info, self.max_model_len, clock)
        self.fingerprint = system_fingerprint(config)
        self.runners = [
            EngineRunner(c, i, config.sim_time_scale, self.faults, self.metrics, clock)
            for i, c in enumerate(cores)
        ]
        self.engine_ids = _engine_ids(config)
        self.rng = random.Random(config.sim_seed)
        self.started = int(time.time())
        self.completed_requests = 0
        self.sequence = 0
        self.session: aiohttp.ClientSession | None = None
        self.background: set[asyncio.Task[Any]] = set()
        self.kv_publishers: list[ZmqKvPublisher] = []
        self._zmq: zmq.asyncio.Context | None = None
        self.shutting_down = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _core(self) -> EngineCore:
        c = self.config
        events = c.kv_events is not None and c.kv_events.publishes
        cache = KVCache(self.num_gpu_blocks, c.block_size, c.enable_prefix_caching, events)
        return EngineCore(
            self.cost, cache, c.max_num_seqs, c.max_num_batched_tokens, c.enable_chunked_prefill
        )

    # -- request plumbing used by the generation handler -----------------------------------
    def pick_runner(self, pinned: str | None) -> EngineRunner:
        if pinned is not None:
            if not pinned.isdigit() or int(pinned) >= len(self.runners):
                raise ApiError(
                    f"X-data-parallel-rank must be an integer in [0, {len(self.runners)}), "
                    f"got {pinned!r}", param="X-data-parallel-rank",
                )  # fmt: skip
            return self.runners[int(pinned)]
        return min(self.runners, key=lambda r: r.load)

    def check_admission(self, runner: EngineRunner) -> None:
        if runner.dead:
            raise ApiError("EngineCore encountered an issue. See stack trace for the root cause.",
                           500, "InternalServerError")  # fmt: skip
        if self.rng.random() < self.faults.error_rate:
            raise ApiError("simulated engine error (--sim-error-rate)", 500, "InternalServerError")
        limit = self.config.sim_max_waiting
        if limit is not None and len(runner.core.waiting) >= limit:
            self.metrics.on_rejected()
            raise ApiError(
                f"The engine is overloaded: {len(runner.core.waiting)} requests are waiting "
                f"(--sim-max-waiting {limit}); retry later", 503, "ServiceUnavailableError",
            )  # fmt: skip

    def check_accepting(self) -> None:
        """After SIGTERM, requests that need the tokenizer fail as they do in vLLM 0.32."""
        if self.shutting_down:
            raise ApiError(SHUTDOWN_MESSAGE, 500, "InternalServerError")

    @contextmanager
    def tracked(self) -> Iterator[None]:
        """Count one engine request in flight for as long as its HTTP handler runs."""
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until no engine request is in flight."""
        await self._idle.wait()

    def abort_all(self) -> int:
        """End every queued and running request as aborted; returns how many."""
        return sum(r.abort_all() for r in self.runners)

    def request_done(self) -> None:
        self.completed_requests += 1
        limit = self.faults.crash_after
        if limit is not None and self.completed_requests >= limit:
            asyncio.get_running_loop().call_later(0.05, self.on_crash)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def notify_kv_pulled(self, host: str, port: int, engine_id: str, request_id: str) -> None:
        """Tell the prefill instance its KV was pulled (the NIXL completion notification)."""
        if self.session is None:
            return
        url = f"http://{host}:{port}/sim/kv_release"
        try:
            async with self.session.post(
                url, json={"remote_engine_id": engine_id, "remote_request_id": request_id}
            ) as resp:
                await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("kv release notification to %s failed: %s", url, exc)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, _app: web.Application) -> None:
        kv = self.config.kv_events
        if kv is not None and kv.publishes:
            self._zmq = zmq.asyncio.Context()
            for r in self.runners:
                pub = ZmqKvPublisher(kv, r.index, self._zmq)
                pub.start()
                r.publish = pub.publish
                self.kv_publishers.append(pub)
        for r in self.runners:
            r.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def stop(self, _app: web.Application) -> None:
        for r in self.runners:
            await r.stop()
        for task in list(self.background):
            task.cancel()
        if self.session is not None:
            await self.session.close()
        for pub in self.kv_publishers:
            await pub.close()
        if self._zmq is not None:
            self._zmq.term()


SERVER_KEY = web.AppKey("sagellm_sim.server", SimServer)
