"""Mid-stream failover (pure parts), ejection with backoff, probe requests, dead pools."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagellm_router import failover as fo
from sagellm_router.health import HealthBook, ProbeTarget, probe_passed, probe_request
from sagellm_router.state import may_hold
from sagellm_router.types import Endpoint, PoolSnapshot, Role
from sagellm_router.validation import CHAT, COMPLETIONS


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


CHAT_ID = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5, "model": "m"}


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        (COMPLETIONS, {"prompt": "x"}, None),
        (COMPLETIONS, {"prompt": ["x"]}, None),
        (CHAT, {"messages": [{"role": "user", "content": "x"}]}, None),
        (COMPLETIONS, {"prompt": "x", "n": 2}, "n_gt_1"),
        (COMPLETIONS, {"prompt": "x", "logprobs": 1}, "logprobs"),
        (CHAT, {"messages": [], "logprobs": True}, "logprobs"),
        (CHAT, {"messages": [], "tools": [{"type": "function"}]}, "tools"),
        (CHAT, {"messages": [], "response_format": {"type": "json_object"}}, "structured_output"),
        (CHAT, {"messages": [], "response_format": {"type": "text"}}, None),
        (COMPLETIONS, {"prompt": "x", "echo": True}, "echo_or_suffix"),
        (COMPLETIONS, {"prompt": [1, 2, 3]}, "prompt_not_text"),
        (COMPLETIONS, {"prompt": "x", "stream_options": {"continuous_usage_stats": True}},
         "continuous_usage_stats"),
        ("/v1/embeddings", {"input": "x"}, "not_generation"),
    ],
)  # fmt: skip
def test_refusal_names_shapes_that_cannot_continue(path: str, body: dict, why: str | None) -> None:  # type: ignore[type-arg]
    assert fo.refusal(path, body) == why


def test_transcript_collects_text_ids_and_flags_in_batches() -> None:
    t = fo.Transcript(chat=True)
    t.feed(
        sse({**CHAT_ID, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    )
    t.feed(sse({**CHAT_ID, "choices": [{"index": 0, "delta": {"content": "Hel"}}]})[:20])
    assert t.text == ""  # nothing parsed before a fold
    t.feed(sse({**CHAT_ID, "choices": [{"index": 0, "delta": {"content": "Hel"}}]})[20:])
    t.fold()
    assert (t.text, t.ids["id"], t.unsafe, t.finish_reason) == ("Hel", "chatcmpl-1", None, None)
    t.feed(sse({**CHAT_ID, "choices": [{"index": 0, "delta": {"tool_calls": [{"id": "x"}]}}]}))
    t.fold()
    assert t.unsafe == "tools"


def test_continuation_of_chat_and_completions() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10,
            "min_tokens": 3, "stream": True, "kv_transfer_params": {"x": 1}}  # fmt: skip
    body = fo.continuation(CHAT, chat, "Hello wor", 4)
    assert body is not None
    assert body["messages"][-1] == {"role": "assistant", "content": "Hello wor"}
    assert (body["max_tokens"], body["min_tokens"]) == (6, 0)
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    assert "kv_transfer_params" not in body
    assert body["stream_options"] == {"include_usage": True}
    prefilled = {**chat, "messages": [*chat["messages"], {"role": "assistant", "content": "A:"}],
                 "continue_final_message": True}  # fmt: skip
    again = fo.continuation(CHAT, prefilled, " yes", 1)
    assert again is not None
    assert again["messages"][-1]["content"] == "A: yes"
    assert len(again["messages"]) == 2
    comp = fo.continuation(COMPLETIONS, {"prompt": ["Once"], "max_tokens": 5}, " upon", 1)
    assert comp is not None
    assert (comp["prompt"], comp["max_tokens"]) == ("Once upon", 4)
    assert fo.continuation(COMPLETIONS, {"prompt": "x", "max_tokens": 5}, "a b c d e", 5) is None
    assert fo.continuation(COMPLETIONS, {"prompt": "x"}, "a", 1) is not None  # no limit set


def test_splicer_rewrites_ids_drops_role_usage_and_done() -> None:
    s = fo.Splicer(dict(CHAT_ID), chat=True)
    other = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 9, "model": "m"}
    stream = (
        sse(
            {**other, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {**other, "choices": [{"index": 0, "delta": {"content": "ld"}}]},
            {**other, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**other, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
        )
        + b"data: [DONE]\n\n"
    )
    out = s.feed(stream[:50]) + s.feed(stream[50:])
    events = [json.loads(e[6:]) for e in out.strip().split(b"\n\n")]
    assert [e["choices"][0].get("delta") for e in events] == [{"content": "ld"}, {}]
    assert {(e["id"], e["created"]) for e in events} == {("chatcmpl-1", 5)}
    assert s.done
    assert s.usage == {"prompt_tokens": 9, "completion_tokens": 2}
    usage = fo.summed_usage(3, 4, s.usage)
    assert usage == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}


def test_ending_with_length_cut_and_usage() -> None:
    t = fo.Transcript(chat=False)
    t.feed(sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "text": "a"}]}))  # fmt: skip
    t.fold()
    out = fo.ending(t, True, {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, True)
    events = out.strip().split(b"\n\n")
    assert json.loads(events[0][6:])["choices"][0] == {"index": 0, "finish_reason": "length",
                                                       "text": ""}  # fmt: skip
    assert json.loads(events[1][6:])["usage"]["total_tokens"] == 2
    assert events[2] == b"data: [DONE]"
    assert fo.ending(t, False, None, False) == b"data: [DONE]\n\n"


def test_timeouts_eject_at_once_and_probes_back_off() -> None:
    book = HealthBook(failure_threshold=3, backoff_initial_s=1.0, backoff_max_s=5.0)
    assert not book.failure("u", "disconnected", now=0)
    assert book.failure("v", "stall", now=10)  # a timeout ejects at once
    assert book.ejected["v"].reason == "stall"
    assert book.due(10.5) == []
    assert book.due(11) == ["v"]
    book.probe_failed("v", 11)
    assert book.due(12.9) == []
    assert book.due(13) == ["v"]
    for now in (13, 17, 21):
        book.probe_failed("v", now)
    assert book.ejected["v"].next_probe == 26  # capped at 5 s
    book.readmit("v")
    assert book.due(100) == []


def test_probe_requests_are_real_requests() -> None:
    path, body = probe_request(ProbeTarget("llama", "generate"))
    assert path == "/v1/completions"
    assert json.loads(body) == {"model": "llama", "prompt": "ping", "max_tokens": 1,
                                "stream": True}  # fmt: skip
    path, body = probe_request(ProbeTarget("e5", "embed"))
    assert (path, json.loads(body)) == ("/v1/embeddings", {"model": "e5", "input": "ping"})
    assert probe_passed(200, b'data: {"choices":[]}\n\ndata: [DONE]\n\n', "generate")
    assert not probe_passed(200, b'data: {"error":{}}\n\ndata: [DONE]\n\n', "generate")
    assert not probe_passed(200, b'data: {"choices":[]}\n\n', "generate")  # cut short
    assert not probe_passed(503, b"", "embed")
    assert probe_passed(200, b"{}", "embed")


def test_pools_hold_requests_only_while_an_endpoint_is_starting() -> None:
    def pool(*endpoints: Endpoint) -> PoolSnapshot:
        return PoolSnapshot("p", "m", endpoints=endpoints)

    assert may_hold(pool(Endpoint("a", "a", ready=False)))
    assert not may_hold(pool(Endpoint("a", "a", ready=False, draining=True)))
    assert not may_hold(pool(Endpoint("a", "a")))  # ready (maybe ejected): not starting
    assert not may_hold(pool())  # no endpoint at all
    assert not may_hold(pool(Endpoint("a", "a", Role.PREFILL, ready=False)))


def test_event_boundaries_lf_and_crlf() -> None:
    assert fo.event_end(b"data: 1\n\ndata: 2") == 9
    assert fo.event_end(b"data: 1\r\n\r\ndata: 2") == 11
    assert fo.event_end(b"data: 1") == 0
    assert fo.event_end(b"") == 0
    s = fo.Splicer({"id": "a"}, chat=False)
    out = s.feed(b'data: {"id":"b","choices":[{"index":0,"text":"x"}]}\r\n\r\ndata: [DONE]\r\n\r\n')
    assert json.loads(out[6:])["id"] == "a"
    assert s.done


def test_usage_is_wanted_as_vllm_decides() -> None:
    assert not fo.wants_usage({})
    assert fo.wants_usage({"stream_options": {}})  # vLLM: include_usage defaults to true here
    assert fo.wants_usage({"stream_options": {"include_usage": True}})
    assert not fo.wants_usage({"stream_options": {"include_usage": False}})
