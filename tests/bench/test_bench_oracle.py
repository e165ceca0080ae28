"""The benchmark's ``oracle`` strategy: scoring (table-driven), how answers reach ``pick``."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sagellm_core.plugins import discover
from sagellm_router.bench import oracle
from sagellm_router.bench.oracle import Answers, Oracle, OracleParams, choose
from sagellm_router.routing.base import StrategyContext, StrategyParamError
from sagellm_router.routing.registry import default_strategies
from sagellm_router.types import Endpoint

A, B, C = (Endpoint(f"http://{n}", n) for n in "abc")


class Loads:
    def __init__(self, loads: Mapping[str, float]) -> None:
        self._loads = loads

    def in_flight(self, url: str) -> int:
        return int(self._loads.get(url, 0))

    def load(self, url: str) -> float:
        return self._loads.get(url, 0.0)


def ans(prompt: int, **cached: int) -> Answers:
    return Answers({f"http://{k}": v for k, v in cached.items()}, prompt)


# loads by name, answers, the candidates that may win (ties broken at random)
CASES: list[tuple[str, dict[str, float], Answers | None, set[str]]] = [
    ("no answers: least loaded", {"a": 3, "b": 1, "c": 2}, None, {"b"}),
    ("empty prompt: least loaded", {"a": 3, "b": 1, "c": 2}, ans(0, a=0), {"b"}),
    ("equal loads: the longest cached prefix", {}, ans(1000, a=160, b=960, c=480), {"b"}),
    ("equal loads and caches: a tie", {}, ans(1000, a=480, b=480), {"a", "b"}),
    ("a miss costs miss_cost of load: 20 < 32", {"a": 0, "b": 20}, ans(1000, b=1000), {"b"}),
    ("busier than the miss is worth: 33 > 32", {"b": 33, "c": 2}, ans(1000, b=1000), {"a"}),
    ("partial hit: 10 + 32 * 0.5 = 26 < 32", {"b": 10}, ans(1000, b=500), {"b"}),
    ("balance guard: 40 over the least", {"a": 0, "b": 40, "c": 5}, ans(1000, b=1000), {"a"}),
    ("not answering counts as nothing cached", {"a": 1}, ans(1000, a=900), {"a"}),
    ("cached beyond the prompt is clamped", {"a": 5, "b": 0}, ans(100, a=500, b=100), {"b"}),
]


@pytest.mark.parametrize(("loads", "answers", "winners"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_choose(loads: dict[str, float], answers: Answers | None, winners: set[str]) -> None:
    view = Loads({f"http://{k}": v for k, v in loads.items()})
    picks = {choose(answers, [A, B, C], view, OracleParams(), random.Random(s)).instance
             for s in range(20)}  # fmt: skip
    assert picks == winners


def test_miss_cost_zero_is_least_loaded() -> None:
    view = Loads({"http://a": 1.0, "http://b": 2.0})
    got = choose(ans(1000, b=1000), [A, B], view, OracleParams(miss_cost=0), random.Random(0))
    assert got is A


async def test_pick_uses_the_answers_prepared_for_that_request() -> None:
    strategy = Oracle(OracleParams(), random.Random(0))

    async def fake_ask(http: object, url: str, body: object) -> tuple[int, int] | None:
        return {"http://a": None, "http://b": (960, 1000), "http://c": (0, 1000)}[url]

    strategy._ask = fake_ask  # type: ignore[method-assign]

    class Req:
        body = {"model": "m", "messages": []}
        prompt_text, session_key = "", None

    first, second = Req(), Req()
    await strategy.prepare(first, [A, B, C])
    assert strategy.pick(second, [A, B, C], Loads({"http://a": 0})) is not None  # no answers
    assert strategy.pick(first, [A, B, C], Loads({"http://a": 0})) is B
    # used up: a retry of the same request falls back to the least loaded
    assert strategy.pick(first, [A, B, C], Loads({"http://b": 1, "http://c": 1})) is A
    await strategy.close()


def test_oracle_is_a_plugin_not_a_built_in() -> None:
    assert "oracle" not in default_strategies()
    found = discover("routing_strategy", [oracle.PLUGIN], default_strategies(), lambda _: ())
    made = found["oracle"].factory(StrategyContext(params={"miss_cost": 8.0}))
    assert isinstance(made, Oracle)
    with pytest.raises(StrategyParamError, match="oracle"):
        found["oracle"].factory(StrategyContext(params={"timeout_s": 0}))
    with pytest.raises(StrategyParamError, match=r"routing\.params\.oracle"):
        found["oracle"].factory(StrategyContext(params={"bogus": 1}))


def test_oracle_now_is_the_oracle_without_pending_prompts() -> None:
    found = discover("routing_strategy", [oracle.PLUGINS["oracle_now"]], default_strategies(),
                     lambda _: ())  # fmt: skip
    made = found["oracle_now"].factory(StrategyContext(params={"pending": True}))
    assert isinstance(made, Oracle)
    assert made._params.pending is False


# what three fake engines answer on /sim/cached_prefix (cached now, with pending), pending flag,
# the candidates that may win at equal loads
ASK_CASES: list[tuple[str, dict[str, tuple[int, int | None]], bool, set[str]]] = [
    ("queued on b: b", {"a": (0, 0), "b": (0, 960), "c": (0, 0)}, True, {"b"}),
    ("queued on b, cache only: a tie", {"a": (0, 0), "b": (0, 960), "c": (0, 0)}, False,
     {"a", "b", "c"}),
    ("cached on a beats less queued on b", {"a": (800, 800), "b": (0, 480), "c": (0, 0)}, True,
     {"a"}),
    ("running on c extends its cache", {"a": (480, 480), "b": (0, 0), "c": (320, 960)}, True,
     {"c"}),
    ("an engine without the field: its cache", {"a": (480, None), "b": (0, 0), "c": (0, 0)},
     True, {"a"}),
]  # fmt: skip


@pytest.mark.parametrize(("replies", "pending", "winners"), [c[1:] for c in ASK_CASES],
                         ids=[c[0] for c in ASK_CASES])  # fmt: skip
async def test_scores_with_what_the_engines_will_hold(
    replies: dict[str, tuple[int, int | None]], pending: bool, winners: set[str]
) -> None:
    servers: dict[str, TestServer] = {}
    for name, (now, later) in replies.items():
        answer: dict[str, int] = {"cached_tokens": now, "prompt_tokens": 1000, "block_size": 16}
        if later is not None:
            answer["cached_tokens_with_pending"] = later

        async def route(_: web.Request, answer: dict[str, int] = answer) -> web.Response:
            return web.json_response(answer)

        app = web.Application()
        app.router.add_post(oracle.ROUTE, route)
        servers[name] = TestServer(app, host="127.0.0.1")
        await servers[name].start_server()
    endpoints = [Endpoint(str(s.make_url("")).rstrip("/"), n) for n, s in servers.items()]
    picks = set()
    for seed in range(12):
        strategy = Oracle(OracleParams(pending=pending), random.Random(seed))

        class Req:
            body = {"model": "m", "messages": []}
            prompt_text, session_key = "", None

        request = Req()
        await strategy.prepare(request, endpoints)
        picks.add(strategy.pick(request, endpoints, Loads({})).instance)
        await strategy.close()
    for server in servers.values():
        await server.close()
    assert picks == winners
