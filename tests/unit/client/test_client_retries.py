"""Retry, backoff and error decoding of UnifiedInferenceClient (a scripted backend)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from control_plane.client import ClientError, UnifiedInferenceClient
from control_plane.client.backends import Answer, ConnectFailed, HttpBackend, sse_payloads

OK = Answer(200, {"x-request-id": "r1", "x-sagellm-instance": "i0"}, orjson.dumps(
    {"model": "m", "choices": [{"text": "hi", "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))  # fmt: skip


def err(status: int, retry_after: str | None = None, body: bytes | None = None) -> Answer:
    headers = {"retry-after": retry_after} if retry_after else {}
    payload = body or orjson.dumps({"error": {"message": f"m{status}", "type": "T", "param": "p"}})
    return Answer(status, headers, payload)


class Scripted:
    def __init__(self, *steps: Answer | Exception, served: tuple[str, ...] = ()) -> None:
        self.steps, self.calls, self.served = list(steps), 0, list(served)

    async def models(self) -> list[str]:
        return self.served

    async def send(self, path: str, body: Mapping[str, Any], stream: bool) -> Answer:
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def close(self) -> None:
        return None


def client(backend: Scripted, retries: int = 2) -> tuple[UnifiedInferenceClient, list[float]]:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    return UnifiedInferenceClient(backend, model="m", retries=retries, backoff_s=0.1,
                                  max_backoff_s=5, sleep=sleep), slept  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "slept", "calls"),
    [
        ([OK], [], 1),
        ([err(503, "2"), OK], [2.0], 2),
        ([err(429), err(429), OK], [0.1, 0.2], 3),
        ([ConnectFailed("refused"), OK], [0.1], 2),
        ([err(503, "60"), OK], [5.0], 2),  # Retry-After capped by max_backoff_s
        ([err(503, "soon"), OK], [0.1], 2),  # unparsable Retry-After: backoff
    ],
)
async def test_retries_then_success(steps: list[Any], slept: list[float], calls: int) -> None:
    backend = Scripted(*steps)
    c, sleeps = client(backend)
    done = await c.complete("x")
    assert (done.text, done.instance, done.request_id) == ("hi", "i0", "r1")
    assert sleeps == slept
    assert backend.calls == calls


@pytest.mark.parametrize(
    ("steps", "status", "message", "calls"),
    [
        ([err(400)], 400, "m400", 1),  # not retried
        ([err(500)], 500, "m500", 1),
        ([err(503), err(503), err(503)], 503, "m503", 3),  # retries exhausted
        ([ConnectFailed("refused")] * 3, 0, "cannot reach the server: refused", 3),
        ([err(404, body=b'{"detail": "Not Found"}')], 404, "Not Found", 1),
        ([err(502, body=b"bad gateway")], 502, "bad gateway", 1),
    ],
)
async def test_errors(steps: list[Any], status: int, message: str, calls: int) -> None:
    backend = Scripted(*steps)
    c, _ = client(backend)
    with pytest.raises(ClientError) as exc:
        await c.complete("x")
    assert (exc.value.status, exc.value.message) == (status, message)
    assert backend.calls == calls


async def test_typed_error_fields() -> None:
    c, _ = client(Scripted(err(400)))
    with pytest.raises(ClientError) as exc:
        await c.chat([{"role": "user", "content": "x"}])
    assert (exc.value.type, exc.value.param) == ("T", "p")


async def test_model_defaults_to_the_only_served_one_else_says_what_to_set() -> None:
    c = UnifiedInferenceClient(Scripted(OK, served=("a", "b")))
    with pytest.raises(ClientError, match=r"server lists \['a', 'b'\].*SAGELLM_MODEL"):
        await c.complete("x")
    single = Scripted(OK, served=("only",))
    await UnifiedInferenceClient(single).complete("x")
    assert single.calls == 1


def test_create_without_arguments_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGELLM_BASE_URL", raising=False)
    monkeypatch.delenv("SAGELLM_MODEL", raising=False)
    default = UnifiedInferenceClient.create()
    assert isinstance(default.backend, HttpBackend)
    assert default.backend.base_url == "http://localhost:8080"
    assert default.model is None
    monkeypatch.setenv("SAGELLM_BASE_URL", "http://10.1.2.3:9000/v1")
    monkeypatch.setenv("SAGELLM_MODEL", "m")
    from_env = UnifiedInferenceClient.create()
    assert isinstance(from_env.backend, HttpBackend)
    assert (from_env.backend.base_url, from_env.model) == ("http://10.1.2.3:9000", "m")
    with pytest.raises(ValueError, match="not both"):
        UnifiedInferenceClient.create("http://x", manager=object())  # type: ignore[arg-type]


def test_sync_face_outside_an_event_loop() -> None:
    backend = Scripted(OK, OK, served=("only",))
    with UnifiedInferenceClient(backend) as c:
        first = c.complete("x")
        assert first.text == "hi"
        assert c.complete("y", model="m").text == "hi"
    assert backend.calls == 2


async def test_a_client_keeps_the_mode_of_its_first_call() -> None:
    c = UnifiedInferenceClient(Scripted(OK, served=("only",)))
    assert (await c.complete("x")).text == "hi"
    # sync use of the same client from a worker thread is refused, clearly
    with pytest.raises(RuntimeError, match="first used asynchronously"):
        await asyncio.to_thread(c.complete, "y")


async def test_sse_payloads_split_across_pieces() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'data: {"a"', b': 1}\n\ndata: {"b": 2}\n', b"\ndata: [DONE]\n\n", b"x"):
            yield piece

    assert [p async for p in sse_payloads(pieces())] == [b'{"a": 1}', b'{"b": 2}']


async def test_stream_error_event_raises() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b'{"choices": [{"text": "a", "finish_reason": null}]}'
        yield b'{"error": {"message": "upstream failed mid-stream", "code": 502}}'

    c, _ = client(Scripted(Answer(200, {}, events=events())))
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in c.stream_complete("x"):
            seen.append(chunk.text)

    with pytest.raises(ClientError, match="mid-stream") as exc:
        await consume()
    assert seen == ["a"]
    assert exc.value.status == 502
