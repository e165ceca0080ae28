"""Embeddings request validation and the pool task from discovery (table-driven)."""

from __future__ import annotations

import orjson
import pytest

from sagellm_router.config import parse_settings
from sagellm_router.discovery.k8s_index import pool_from_object
from sagellm_router.errors import ApiError
from sagellm_router.validation import EMBEDDINGS, parse_body, task_of


@pytest.mark.parametrize(
    ("inputs", "prompt_text"),
    [("abc", "abc"), (["x", "y"], "x"), ([1, 2, 3], "1 2 3"), ([[5, 6], [7]], "5 6")],
)
def test_valid_embedding_inputs_include_token_ids(inputs: object, prompt_text: str) -> None:
    """The input forms vLLM and the openai client accept: text, texts, token ids, lists of them."""
    parsed = parse_body(orjson.dumps({"model": "m", "input": inputs}), EMBEDDINGS)
    assert (parsed.model, parsed.stream, parsed.prompt_text) == ("m", False, prompt_text)


@pytest.mark.parametrize(
    ("inputs", "err_type", "param", "fragment"),
    [(None, "Bad Request", "body.input", "'type': 'missing', 'loc': 'body.input'"),
     (["a"] * 3, "BadRequestError", "input", "3 items; at most 2")],
)  # fmt: skip
def test_bad_embedding_inputs(inputs: object, err_type: str, param: str, fragment: str) -> None:
    body = {"model": "m"} if inputs is None else {"model": "m", "input": inputs}
    with pytest.raises(ApiError) as err:
        parse_body(orjson.dumps(body), EMBEDDINGS, max_inputs=2)
    assert (err.value.status, err.value.error_type, err.value.param) == (400, err_type, param)
    assert fragment in err.value.message


@pytest.mark.parametrize("inputs", [3, [], ["a", ""], [1.5]])
def test_other_input_shapes_are_the_engines_to_judge(inputs: object) -> None:
    """The router forwards them; the engine answers with vLLM's own 400."""
    assert parse_body(orjson.dumps({"model": "m", "input": inputs}), EMBEDDINGS).model == "m"


@pytest.mark.parametrize(
    ("path", "task"),
    [(EMBEDDINGS, "embed"), ("/v1/completions", "generate"), ("/v1/chat/completions", "generate")],
)
def test_task_of_route(path: str, task: str) -> None:
    assert task_of(path) == task


@pytest.mark.parametrize(
    ("written", "task"), [({"model": "e", "task": "embed"}, "embed"), ({"model": "g"}, "generate")]
)
def test_kubernetes_pool_task(written: dict[str, str], task: str) -> None:
    pool = pool_from_object({"metadata": {"name": "p"}, "status": written})
    assert pool is not None
    assert pool.task == task


def test_static_pool_task_and_bad_task() -> None:
    doc = "discovery: {type: static, pools: [{name: p, model: m, task: embed}]}"
    assert parse_settings(doc).discovery.pools[0].snapshot().task == "embed"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="task"):
        parse_settings("discovery: {type: static, pools: [{name: p, model: m, task: rerank}]}")
