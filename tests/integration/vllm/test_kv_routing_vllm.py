"""kv_aware against a real vLLM engine (CPU build): the router's KV-event index, fed by the
engine's own events and looked up with the ``hf`` tokenizer (the model's tokenizer and chat
template), finds a chat and a completions prompt's blocks on that engine, and tokenizes both
exactly as vLLM did (vLLM's ``return_token_ids``).

Needs vLLM: ``SAGELLM_VLLM_PYTHON`` (else ``.venv-vllm``), the tiny model at
``SAGELLM_VLLM_MODEL`` (else ``.tools/tiny-llama``; ``tools/vllm/setup.sh`` makes both) and
``transformers`` in the test venv (``pip install -e '.[hf]'``). Runs with ``pytest -m vllm``
(``make test-vllm``); vLLM takes 30-160 s to start on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from e2e.waiting import eventually
from sagellm_router.config import RouterSettings
from sagellm_router.routing.kv_aware import KvAware
from sagellm_router.state import build_state
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.validation import CHAT, COMPLETIONS, parse_body
from tests.integration.sim.sim_process import health
from tests.ports import free_port

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[3]
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "routers",
         "count", "cached", "blocks")  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Path:
    pytest.importorskip("transformers", reason="tokenizer 'hf' needs transformers (.[hf])")
    path = Path(os.environ.get("SAGELLM_VLLM_MODEL") or ROOT / ".tools" / "tiny-llama")
    if not (path / "config.json").exists():
        pytest.skip(f"no model at {path} (set SAGELLM_VLLM_MODEL or run tools/vllm/setup.sh)")
    return path


@pytest.fixture(scope="module")
def engine(model: Path) -> Iterator[str]:
    python = os.environ.get("SAGELLM_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip(f"no vLLM python at {python} (set SAGELLM_VLLM_PYTHON)")
    port, pub, replay = free_port(), free_port(), free_port()
    events = {"enable_kv_cache_events": True, "publisher": "zmq", "endpoint": f"tcp://*:{pub}",
              "replay_endpoint": f"tcp://*:{replay}"}  # fmt: skip
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", "tiny", "--max-model-len", "512", "--dtype", "bfloat16",
            "--host", "127.0.0.1", "--port", str(port), "--enable-prefix-caching",
            "--block-size", "32",  # small blocks (vLLM's CPU attention takes multiples of 32)
            "--kv-events-config", json.dumps(events)]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 600
    while health(url) != 200:
        if proc.poll() is not None:
            lines = proc.stderr.read().decode().splitlines() if proc.stderr else []
            err = "\n".join([line for line in lines if "Error" in line][-5:] or lines[-20:])
            raise AssertionError(f"vLLM exited during start-up ({proc.returncode}): {err}")
        if time.monotonic() > deadline:
            raise AssertionError("vLLM not healthy within 600 s")
        time.sleep(1)


def text(i: int, words: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words))


async def test_the_index_finds_chat_and_completion_blocks_on_a_real_engine(
    engine: str, model: Path
) -> None:
    params = {"tokenizer": "hf", "tokenizer_path": str(model)}
    settings = {"routing": {"default": "kv_aware", "params": {"kv_aware": params}}}
    state = build_state(RouterSettings.model_validate(settings), time.monotonic)
    real, idle = Endpoint(engine, "vllm"), Endpoint("http://127.0.0.1:9", "idle")
    state.apply_pools([PoolSnapshot("p", "tiny", endpoints=(real, idle))])
    strategy = state.strategies.get("p", "kv_aware")
    assert isinstance(strategy, KvAware)
    requests = [
        (CHAT, {"model": "tiny", "max_tokens": 2, "return_token_ids": True, "messages": [
            {"role": "system", "content": text(0, 50)}, {"role": "user", "content": text(3, 20)}]}),
        (COMPLETIONS, {"model": "tiny", "max_tokens": 2, "return_token_ids": True,
                       "prompt": text(5, 70)}),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as session:
        state.kv.start(session)
        try:
            await eventually(
                lambda: len(state.kv.followers["p"].engines.get(engine, [])) == 1,
                "the engine's publisher to be followed",
            )
            for path, body in requests:
                parsed = parse_body(json.dumps(body).encode(), path)
                tokens = strategy.tokens(parsed)
                async with session.post(f"{engine}{path}", json=body) as resp:
                    answer: dict[str, Any] = await resp.json()
                    assert resp.status == 200, answer
                engine_ids = answer.get("prompt_token_ids") or answer["choices"][0].get(
                    "prompt_token_ids"
                )
                assert tokens is not None
                assert tokens == engine_ids, path  # tokenized exactly as vLLM did
                await eventually(
                    lambda t=tokens: strategy.cached_share(t, [real, idle]) == {real.url: 1.0},  # type: ignore[misc]
                    f"the index to hold the {path} prompt's blocks",
                )
                size = strategy.index.block_size(real.url)
                assert size is not None
                assert len(tokens) >= size, "the prompt must fill at least one block"
                before = strategy.picks["kv"]
                assert strategy.pick(parsed, [idle, real], state.loads) == real  # type: ignore[arg-type]
                assert strategy.picks["kv"] == before + 1
        finally:
            await state.kv.close()
