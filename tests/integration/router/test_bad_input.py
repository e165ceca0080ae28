"""Bad input gets the right status and an OpenAI-style error naming the problem."""

from __future__ import annotations

import aiohttp
import pytest
from router_fakes import pool, router_yaml

CASES = [
    # (path, body bytes, headers, status, message fragment, param)
    ("/v1/completions", b"{not json", {}, 400, "not valid JSON", None),
    ("/v1/completions", b"[1, 2]", {}, 400, "must be a JSON object, got array", None),
    ("/v1/completions", b'{"prompt": "x"}', {}, 400, "'model' is required", "model"),
    ("/v1/completions", b'{"model": 3, "prompt": "x"}', {}, 400, "'model' is required", "model"),
    ("/v1/completions", b'{"model": "m"}', {}, 400, "'prompt' is required", "prompt"),
    ("/v1/completions", b'{"model": "m", "prompt": {}}', {}, 400, "'prompt' must be", "prompt"),
    (
        "/v1/completions",
        b'{"model":"m","prompt":"x","stream":"yes"}',
        {},
        400,
        "'stream'",
        "stream",
    ),
    (
        "/v1/completions",
        b'{"model":"m","prompt":"x","max_tokens":"5"}',
        {},
        400,
        "integer",
        "max_tokens",
    ),
    (
        "/v1/completions",
        b'{"model":"m","prompt":"x","max_tokens":0}',
        {},
        422,
        "greater than 0",
        "max_tokens",
    ),
    ("/v1/chat/completions", b'{"model":"m","messages":[]}', {}, 422, "at least one", "messages"),
    (
        "/v1/chat/completions",
        b'{"model":"m","messages":"hi"}',
        {},
        400,
        "must be an array",
        "messages",
    ),
    ("/v1/chat/completions", b'{"model":"m","messages":[1]}', {}, 400, "string 'role'", "messages"),
    ("/v1/completions", b'{"model":"nope","prompt":"x"}', {}, 404, "served models: m", "model"),
    (
        "/v1/completions",
        b'{"model":"m","prompt":"x"}',
        {"x-routing-strategy": "magic"},
        400,
        "unknown routing strategy 'magic'",
        "x-routing-strategy",
    ),
    ("/v1/completions", b'{"model":"m","prompt":"' + b"x" * 5000 + b'"}', {}, 413, "limit", None),
    ("/v1/embeddings", b"{}", {}, 400, "'model' is required", "model"),
    ("/v1/unknown", b"{}", {}, 404, "Not Found", None),
]


@pytest.fixture
async def base(engines, start_router):  # type: ignore[no-untyped-def]
    (engine,) = await engines(1)
    doc = router_yaml([pool("p", "m", [engine.url])], server={"client_max_size": 4096})
    return await start_router(doc), engine


@pytest.mark.parametrize(("path", "body", "headers", "status", "fragment", "param"), CASES)
async def test_bad_input(base, path, body, headers, status, fragment, param) -> None:  # type: ignore[no-untyped-def]
    url, engine = base
    async with aiohttp.ClientSession() as s:
        async with s.post(url + path, data=body, headers=headers) as r:
            assert r.status == status
            error = (await r.json())["error"]
        assert fragment in error["message"]
        assert error["param"] == param
        assert error["code"] == status
        assert isinstance(error["type"], str)
        # the router is still healthy and serves a good request afterwards
        async with s.post(url + "/v1/completions", json={"model": "m", "prompt": "ok"}) as r:
            assert r.status == 200
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
