"""Mid-stream failover, the pure part: what the client has seen, and how to continue it.

When an engine dies or stalls mid-stream, the proxy sends the original request plus the text
generated so far to another engine (chat: a partial assistant turn with
``continue_final_message: true, add_generation_prompt: false``; completions: prompt + text),
with ``max_tokens`` reduced by the tokens already produced, and splices that stream onto the
client's: the continuation's role chunk, usage chunk and ``[DONE]`` are dropped, ``id``,
``created`` and ``model`` are rewritten to the original's, and one final usage chunk (the
original prompt's tokens, the completion tokens of every segment) and one ``[DONE]`` end it.

``refusal`` names request shapes that cannot be continued this way (the stream then ends with
an error event, as without failover). ``Transcript`` watches the bytes sent to the client;
``continuation`` builds the next request; ``Splicer`` rewrites the continuation's events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sagellm_router.validation import CHAT, COMPLETIONS

_FOLD_AT = 1 << 16  # parse the client's events in batches of this many bytes
_TOOLS = ("tools", "tool_choice", "functions", "function_call")
_GUIDED = ("guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs")


def event_end(data: bytes | bytearray) -> int:
    """Where the last complete SSE event of ``data`` ends (0: none). An event ends with a blank
    line: LF LF as vLLM writes it, or CR LF CR LF."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def events(data: bytes) -> list[bytes]:
    """The complete events of ``data`` (ending at ``event_end``), stripped."""
    return [e.strip() for e in data.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]


def refusal(path: str, body: dict[str, Any]) -> str | None:
    """Why a stream of this request cannot be continued on another engine (None: it can)."""
    if path not in (CHAT, COMPLETIONS):
        return "not_generation"
    if body.get("n", 1) not in (1, None) or body.get("best_of", 1) not in (1, None):
        return "n_gt_1"
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        return "logprobs"
    if any(body.get(k) is not None for k in _TOOLS):
        return "tools"
    fmt = body.get("response_format")
    if any(body.get(k) is not None for k in _GUIDED) or (
        isinstance(fmt, dict) and fmt.get("type") not in (None, "text")
    ):
        return "structured_output"
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("continuous_usage_stats"):
        return "continuous_usage_stats"
    if path == COMPLETIONS:
        prompt = body.get("prompt")
        if body.get("echo") or body.get("suffix") is not None:
            return "echo_or_suffix"
        if not isinstance(prompt, str) and not (
            isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
        ):
            return "prompt_not_text"
    elif body.get("continue_final_message"):
        last = (body.get("messages") or [{}])[-1]
        if not isinstance(last, dict) or not isinstance(last.get("content"), str):
            return "final_message_not_text"
    return None


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether the stream ends with a usage chunk: as in vLLM, ``include_usage`` defaults to
    true once a ``stream_options`` object is present."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage", True) is not False


@dataclass
class Transcript:
    """What the client received so far: text of choice 0, ids, and whether it can continue.

    ``feed`` only appends; events are parsed in batches (``fold``), so a healthy stream pays
    little for being ready to fail over.
    """

    chat: bool
    pieces: list[str] = field(default_factory=list)
    ids: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    unsafe: str | None = None
    _raw: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        self._raw += data
        if len(self._raw) >= _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Parse every complete event received so far."""
        cut = event_end(self._raw)
        if not cut:
            return
        complete, self._raw = bytes(self._raw[:cut]), self._raw[cut:]
        for event in events(complete):
            if event.startswith(b"data:") and event[5:].strip() != b"[DONE]":
                self._event(event[5:].strip())

    def _event(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.unsafe = "bad_event"
            return
        if not isinstance(obj, dict):
            return
        if "error" in obj:
            self.unsafe = "engine_error"
            return
        for key in ("id", "created", "model", "object"):
            if key in obj and key not in self.ids:
                self.ids[key] = obj[key]
        if obj.get("usage") and not obj.get("choices"):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or []:
            self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        if choice.get("index", 0) != 0:
            self.unsafe = "n_gt_1"
            return
        if choice.get("logprobs") is not None:
            self.unsafe = "logprobs"
        part = (choice.get("delta") or {}) if self.chat else choice
        if part.get("tool_calls"):
            self.unsafe = "tools"
        if part.get("reasoning_content") or part.get("reasoning"):
            self.unsafe = "reasoning"
        text = part.get("content") if self.chat else part.get("text")
        if isinstance(text, str) and text:
            self.pieces.append(text)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def max_tokens_of(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            return value
    return None


def continuation(
    path: str, body: dict[str, Any], text: str, produced: int
) -> dict[str, Any] | None:
    """The request that continues ``body`` after ``text`` (``produced`` tokens); None when
    ``max_tokens`` is already used up (pure)."""
    limit = max_tokens_of(body)
    if limit is not None and produced >= limit:
        return None
    out = {k: v for k, v in body.items() if k not in ("kv_transfer_params", "stream_options")}
    out["stream"], out["stream_options"] = True, {"include_usage": True}
    for key in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(key), int):
            out[key] = body[key] - produced
    for key in ("min_tokens", "min_completion_tokens"):
        if isinstance(body.get(key), int):
            out[key] = max(0, body[key] - produced)
    if path == COMPLETIONS:
        prompt = body["prompt"]
        out["prompt"] = (prompt if isinstance(prompt, str) else prompt[0]) + text
        return out
    messages = [dict(m) for m in body["messages"]]
    if body.get("continue_final_message"):
        messages[-1]["content"] = messages[-1]["content"] + text
    else:
        messages.append({"role": "assistant", "content": text})
    out["messages"] = messages
    out["continue_final_message"], out["add_generation_prompt"] = True, False
    return out


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def ending(
    transcript: Transcript, want_usage: bool, usage: dict[str, int] | None, length_cut: bool
) -> bytes:
    """The end of a spliced stream: a ``length`` finish (when max_tokens ran out at the seam),
    the usage chunk (when the client asked for it), then ``[DONE]``."""
    ids = transcript.ids
    out = b""
    if length_cut:
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if transcript.chat:
            choice["delta"] = {}
        else:
            choice["text"] = ""
        out += _event({**ids, "choices": [choice]})
    if want_usage and usage is not None:
        out += _event({**ids, "choices": [], "usage": usage})
    return out + b"data: [DONE]\n\n"


def summed_usage(
    prompt_tokens: int, produced: int, segment: dict[str, Any] | None
) -> dict[str, int]:
    """Usage of the whole stream: the original prompt, the completion tokens of all segments."""
    more = segment.get("completion_tokens") if segment else 0
    completion = produced + (more if isinstance(more, int) else 0)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}  # fmt: skip


@dataclass
class Splicer:
    """Rewrites a continuation's events for the client's stream (see the module docstring)."""

    ids: dict[str, Any]
    chat: bool
    done: bool = False
    usage: dict[str, Any] | None = None
    _pending: bytes = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        cut = event_end(data)
        self._pending = data[cut:]
        return b"".join(self._rewrite(e) for e in events(data[:cut])) if cut else b""

    def _rewrite(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return b""
        payload = event[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return b""
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict) or "error" in obj:
            return event + b"\n\n"
        choices = obj.get("choices") or []
        if not choices:
            self.usage = obj.get("usage") or self.usage
            return b""
        if self.chat and _role_only(choices):
            return b""
        obj.update(self.ids)
        obj.pop("usage", None)
        return _event(obj)


def _role_only(choices: list[dict[str, Any]]) -> bool:
    delta = choices[0].get("delta") or {}
    return not delta.get("content") and not choices[0].get("finish_reason")
