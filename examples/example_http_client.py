#!/usr/bin/env python3
"""``UnifiedInferenceClient`` against a running router: ``make run`` in one terminal, then
``python examples/example_http_client.py`` in another.

The router is found at ``--base-url``, else ``$SAGELLM_BASE_URL``, else ``http://localhost:8080``
(where ``make run`` serves). The same code works against any OpenAI-compatible server (a vLLM
server, a router on another machine): only the URL changes. It shows the sync face (plain
calls), streaming, a long prompt that the router runs PD-separated when the model's pool has
prefill and decode engines, and the async face (many requests at once).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from control_plane import ClientError, UnifiedInferenceClient


def sync_calls(base_url: str | None, model: str | None) -> str:
    with UnifiedInferenceClient.create(base_url) as client:
        served = client.models()
        print(f"models: {', '.join(served)}")
        model = model or served[0]
        answer = client.chat([{"role": "user", "content": "Hello!"}], model=model, max_tokens=16)
        print(
            f"chat: {answer.usage.completion_tokens} tokens from {answer.instance} "
            f"(finish: {answer.finish_reason})"
        )
        text = client.complete("Once upon a time", model=model, max_tokens=8).text
        print(f"completion: {text!r}")
        pieces = [
            c.text
            for c in client.stream_chat(
                [{"role": "user", "content": "Count!"}], model=model, max_tokens=8
            )
        ]
        print(f"stream: {len(pieces)} chunks")
        for pd_model in (m for m in served if m.endswith("-pd")):
            long = client.complete("long context " * 200, model=pd_model, max_tokens=4)
            print(f"PD ({pd_model}): prefill on {long.prefill_instance}, decode on {long.instance}")
        try:
            client.chat([], model=model)
        except ClientError as err:
            print(f"bad request answered {err.status}: {err.message[:60]}")
    return model


async def async_calls(base_url: str | None, model: str, n: int) -> None:
    async with UnifiedInferenceClient.create(base_url, model=model) as client:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.complete(f"request {i}", max_tokens=16) for i in range(n))
        )
        wall = time.monotonic() - started
        instances = sorted({a.instance or "?" for a in answers})
        print(f"async: {n} requests in {wall:.2f}s over {', '.join(instances)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None, help="router URL (default: see above)")
    parser.add_argument("--model", default=None, help="default: the first model listed")
    parser.add_argument("--requests", type=int, default=20, help="for the async part")
    args = parser.parse_args()
    model = sync_calls(args.base_url, args.model)
    asyncio.run(async_calls(args.base_url, model, args.requests))


if __name__ == "__main__":
    main()
