"""Bad input gets the right status and an OpenAI-style error naming the problem."""

from __future__ import annotations

import aiohttp
import pytest
from router_fakes import pool, router_yaml

SCHEMA = "Bad Request"  # vLLM's type for request-schema failures (FastAPI's validation handler)
CASES = [
    # (path, body bytes, headers, status, message fragment, param, type)
    ("/v1/completions", b"{not json", {}, 400, "'type': 'json_invalid', 'loc': 'body.1'",
     "body.1", SCHEMA),
    ("/v1/completions", b"[1, 2]", {}, 400, "'type': 'model_attributes_type'", "body", SCHEMA),
    ("/v1/completions", b'{"prompt": "x"}', {}, 400, "'model' is required", "model",
     "BadRequestError"),
    ("/v1/completions", b'{"model": 3, "prompt": "x"}', {}, 400, "'type': 'string_type'",
     "body.model", SCHEMA),
    ("/v1/completions", b'{"model": "m"}', {}, 400,
     "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
     "prompt", "BadRequestError"),
    ("/v1/completions", b'{"model":"m","prompt":"x","stream":"maybe"}', {}, 400,
     "'type': 'bool_parsing'", "body.stream", SCHEMA),
    ("/v1/chat/completions", b'{"model":"m","messages":"hi"}', {}, 400, "'type': 'list_type'",
     "body.messages", SCHEMA),
    ("/v1/chat/completions", b'{"model":"m"}', {}, 400, "'type': 'missing'", "body.messages",
     SCHEMA),
    ("/v1/completions", b'{"model":"nope","prompt":"x"}', {}, 404, "served models: m", "model",
     "NotFoundError"),
    ("/v1/completions", b'{"model":"m","prompt":"x"}', {"x-routing-strategy": "magic"}, 400,
     "unknown routing strategy 'magic'", "x-routing-strategy", "BadRequestError"),
    ("/v1/completions", b'{"model":"m","prompt":"' + b"x" * 5000 + b'"}', {}, 413, "limit", None,
     "RequestTooLargeError"),
    ("/v1/embeddings", b"{}", {}, 400, "'model' is required", "model", "BadRequestError"),
    ("/v1/unknown", b"{}", {}, 404, "Not Found", None, "NotFoundError"),
]  # fmt: skip
# Values only the engine judges (vLLM's own 400 comes back; tests/integration/sim/
# test_conformance.py checks its shape through the router): the router forwards them.
FORWARDED = [
    ("/v1/completions", b'{"model":"m","prompt":"x","max_tokens":0}'),
    ("/v1/completions", b'{"model":"m","prompt":"x","max_tokens":"5"}'),
    ("/v1/completions", b'{"model":"m","prompt":{}}'),
    ("/v1/chat/completions", b'{"model":"m","messages":[]}'),
    ("/v1/chat/completions", b'{"model":"m","messages":[1]}'),
]


@pytest.fixture
async def base(engines, start_router):  # type: ignore[no-untyped-def]
    (engine,) = await engines(1)
    doc = router_yaml([pool("p", "m", [engine.url])], server={"client_max_size": 4096})
    return await start_router(doc), engine


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fragment", "param", "err_type"), CASES
)
async def test_bad_input(base, path, body, headers, status, fragment, param, err_type) -> None:  # type: ignore[no-untyped-def]
    url, engine = base
    async with aiohttp.ClientSession() as s:
        async with s.post(url + path, data=body, headers=headers) as r:
            assert r.status == status
            error = (await r.json())["error"]
        assert fragment in error["message"]
        assert error["param"] == param
        assert error["code"] == status
        assert error["type"] == err_type
        # the router is still healthy and serves a good request afterwards
        async with s.post(url + "/v1/completions", json={"model": "m", "prompt": "ok"}) as r:
            assert r.status == 200
    assert len(engine.seen) == 1


@pytest.mark.parametrize(("path", "body"), FORWARDED)
async def test_values_the_engine_judges_are_forwarded(base, path, body) -> None:  # type: ignore[no-untyped-def]
    url, engine = base
    async with aiohttp.ClientSession() as s, s.post(url + path, data=body) as r:
        assert r.status == 200  # the fake engine accepts anything; vLLM would answer 400
    assert len(engine.seen) == 1


async def test_api_keys(engines, start_router, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (engine,) = await engines(1)
    keys = tmp_path / "keys"
    keys.write_text("# comment\nk-file\n")
    monkeypatch.setenv("ROUTER_KEYS", "k-env1, k-env2")
    auth = {"api_keys_file": str(keys), "api_keys_env": "ROUTER_KEYS"}
    url = await start_router(router_yaml([pool("p", "m", [engine.url])], auth=auth))
    body = {"model": "m", "prompt": "x"}
    async with aiohttp.ClientSession() as s:
        for header, status in [
            (None, 401),
            ("Bearer wrong", 401),
            ("Basic k-file", 401),
            ("Bearer k-file", 200),
            ("Bearer k-env2", 200),
        ]:
            headers = {"Authorization": header} if header else {}
            async with s.post(url + "/v1/completions", json=body, headers=headers) as r:
                assert r.status == status, header
                if status == 401:
                    error = (await r.json())["error"]
                    assert error["type"] == "AuthenticationError"
                    assert "k-" not in error["message"]
        async with s.get(url + "/health") as r:  # health stays open
            assert r.status == 200
