"""SIGTERM/SIGINT: what vLLM 0.32's OpenAI server does, measured (docs/simulator.md "Shutdown").

``--shutdown-timeout 0`` (vLLM's default, "abort"): every queued and running request ends at
once; a stream gets an error event and ``[DONE]``, a non-streaming request its text so far with
``finish_reason: "abort"``. Then the listener closes, idle kept-alive connections are closed
and the process exits 0.

``--shutdown-timeout N`` ("drain"): the engines keep running what they hold; requests that need
the tokenizer (completions, chat, tokenize, embeddings) get a 500; ``/health``, ``/metrics`` and
``/v1/models`` still answer 200; the listener stays open. When the last request is done the
server stops and exits 0. If N seconds pass first, the engines stop, the listener closes and the
in-flight requests hang without further bytes; the process does not exit until it is killed
(SIGKILL). Later signals are ignored. N counts real seconds (not ``--sim-time-scale``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from sagellm_sim.state import SimServer

log = logging.getLogger("sagellm_sim.shutdown")
# Bounds how long an aborted request's handler may take to write its ending to a slow client.
ABORT_FLUSH_SECONDS = 5.0


def signalled() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (later ones change nothing)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


async def shut_down(srv: SimServer, site: web.BaseSite, drain_seconds: int) -> None:
    """Abort or drain; returns when the caller may clean up and exit (never, past a deadline)."""
    srv.shutting_down = True
    if drain_seconds == 0:
        count = srv.abort_all()
        log.info("[shutdown] mode=abort: aborting in-flight requests count=%d", count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srv.wait_idle(), ABORT_FLUSH_SECONDS)
        return
    log.info("[shutdown] mode=drain: draining in-flight requests count=%d timeout=%ds",
             srv.in_flight, drain_seconds)  # fmt: skip
    try:
        await asyncio.wait_for(srv.wait_idle(), drain_seconds)
        log.info("[shutdown] request processing complete; exiting")
        return
    except TimeoutError:
        pass
    log.warning(
        "[shutdown] drain timeout (%ds) passed with %d requests in flight: engines stopped, "
        "listener closed; they hang until the process is killed, as in vLLM 0.32",
        drain_seconds, srv.in_flight,
    )  # fmt: skip
    for runner in srv.runners:
        await runner.stop()
    await site.stop()
    await asyncio.Event().wait()
