"""Parse an OpenAI request body just enough to route it, answering what it must as vLLM does.

The router checks only what it needs (JSON, an object, ``model``, ``stream``, the presence and
shape of ``messages``/``prompt``/``input``) and answers those failures exactly as vLLM 0.32
does: schema failures as FastAPI's ``400 "Bad Request"`` with ``param: "body.<field>"``, a
missing prompt as vLLM's ``BadRequestError``. Everything else (``max_tokens: 0``, empty
``messages``, sampling fields, context length) is the engine's to judge: the request is
forwarded and the engine's own answer comes back. The raw body is forwarded unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from sagellm_core.vllm_errors import json_invalid, not_object, semantic_message
from sagellm_router.errors import ApiError, schema_error

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MAX_EMBEDDING_INPUTS = 2048


def task_of(path: str) -> str:
    """The model task a route needs: ``embed`` for embeddings, else ``generate``."""
    return "embed" if path == EMBEDDINGS else "generate"


@dataclass(slots=True)
class ParsedRequest:
    """What the router needs from a request body; ``body`` is the original parsed object."""

    path: str
    model: str
    stream: bool
    body: dict[str, Any]
    session_key: str | None = None
    _prompt_text: str | None = field(default=None, repr=False)

    @property
    def prompt_text(self) -> str:
        """The prompt (or the rendered chat messages) as text, for prefix hashing."""
        if self._prompt_text is None:
            self._prompt_text = render_prompt(self.path, self.body)
        return self._prompt_text


def parse_body(raw: bytes, path: str, max_inputs: int = MAX_EMBEDDING_INPUTS) -> ParsedRequest:
    """Check ``raw`` as a completions, chat or embeddings request for ``path``.

    Raises ApiError as vLLM would answer; ``max_inputs`` caps the inputs of one embeddings
    request (the router's own limit).
    """
    body = _decode(raw)
    if not isinstance(body, dict):
        raise schema_error([not_object(body)])
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise schema_error([_typed("string_type", "model", model, "a valid string")])
    if not model:
        raise ApiError(400, "'model' is required and must be a non-empty string", param="model")
    if path == CHAT:
        _check_messages(body)
    elif path == EMBEDDINGS:
        _check_inputs(body, max_inputs)
    else:
        _check_prompt(body.get("prompt"))
    stream = _stream(body.get("stream", False))
    user = body.get("user")
    return ParsedRequest(path, model, stream, body, user if isinstance(user, str) else None)


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        error = json_invalid(raw)  # where Python's json (and so vLLM) says it fails
        if error is None:  # JSON that orjson refuses but Python accepts (NaN, big ints)
            return json.loads(raw)
        raise schema_error([error]) from None


def _typed(kind: str, name: str, value: object, what: str) -> dict[str, object]:
    return {"type": kind, "loc": ("body", name), "msg": f"Input should be {what}", "input": value}


def _missing(name: str, body: dict[str, Any]) -> dict[str, object]:
    return {"type": "missing", "loc": ("body", name), "msg": "Field required", "input": body}


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _stream(value: object) -> bool:
    """``stream`` as pydantic reads a bool (lax: 0/1 and "true"/"no"/...), else vLLM's 400."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if isinstance(value, str):
        what = "a valid boolean, unable to interpret input"
        raise schema_error([_typed("bool_parsing", "stream", value, what)])
    raise schema_error([_typed("bool_type", "stream", value, "a valid boolean")])


def _check_messages(body: dict[str, Any]) -> None:
    """``messages`` must be there and be a list; its items and emptiness are the engine's."""
    if "messages" not in body:
        raise schema_error([_missing("messages", body)])
    messages = body["messages"]
    if not isinstance(messages, list):
        raise schema_error([_typed("list_type", "messages", messages, "a valid list")])


def _check_prompt(prompt: object) -> None:
    """vLLM's own first check; the prompt's shape is the engine's to judge."""
    if prompt is None or prompt == "":
        message = "Either prompt or prompt_embeds must be provided and non-empty."
        raise ApiError(400, semantic_message(message, "prompt"), param="prompt")


def _check_inputs(body: dict[str, Any], max_inputs: int) -> None:
    """Embeddings ``input``: a string, token ids, or a list of either (what vLLM and the
    openai client send); required, and at most ``max_inputs`` items."""
    if "input" not in body:
        raise schema_error([_missing("input", body)])
    inputs = body["input"]
    if isinstance(inputs, list) and len(inputs) > max_inputs and not _is_token_ids(inputs):
        raise ApiError(
            400, f"'input' has {len(inputs)} items; at most {max_inputs} are allowed per request",
            param="input",
        )  # fmt: skip


def _is_token_ids(value: list[Any]) -> bool:
    return all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def render_prompt(path: str, body: dict[str, Any]) -> str:
    """Flatten the prompt or chat messages into one string (used only as a hashing key)."""
    if path == CHAT:
        parts = []
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                parts.append(f"{message.get('role')}:{_content_text(message.get('content'))}\n")
        return "".join(parts)
    prompt = body.get("input") if path == EMBEDDINGS else body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        first = prompt[0]
        if isinstance(first, str):
            return first
        return " ".join(str(t) for t in (first if isinstance(first, list) else prompt))
    return ""


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
