"""Parse and validate an OpenAI request body just enough to route it.

Rules: malformed JSON, a missing required field or a wrong type -> 400; a well-typed value
that is not acceptable (empty ``messages``, ``max_tokens`` <= 0) -> 422. The raw body is
forwarded unchanged, so nothing here re-serialises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sagellm_router.errors import ApiError

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
    """Validate ``raw`` as a completions, chat or embeddings request for ``path``.

    Raises ApiError naming the problem; ``max_inputs`` caps the inputs of one embeddings request.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, got {_kind(body)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a non-empty string", param="model")
    if path == CHAT:
        _check_messages(body.get("messages"))
    elif path == EMBEDDINGS:
        _check_inputs(body.get("input"), max_inputs)
        _check_dimensions(body.get("dimensions"))
    else:
        _check_prompt(body.get("prompt"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be a boolean, got {_kind(stream)}", param="stream")
    for name in ("max_tokens", "max_completion_tokens"):
        _check_positive_int(body, name)
    user = body.get("user")
    return ParsedRequest(path, model, stream, body, user if isinstance(user, str) else None)


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _check_messages(messages: object) -> None:
    if messages is None:
        raise ApiError(400, "'messages' is required for chat completions", param="messages")
    if not isinstance(messages, list):
        raise ApiError(400, f"'messages' must be an array, got {_kind(messages)}", param="messages")
    if not messages:
        raise ApiError(422, "'messages' must contain at least one message", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(
                400, f"messages[{i}] must be an object with a string 'role'", param="messages"
            )


def _check_prompt(prompt: object) -> None:
    if prompt is None:
        raise ApiError(400, "'prompt' is required for completions", param="prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return
    if isinstance(prompt, list) and not prompt:
        raise ApiError(422, "'prompt' must not be an empty array", param="prompt")
    raise ApiError(
        400,
        "'prompt' must be a string, an array of strings, or an array of token ids",
        param="prompt",
    )


def _check_inputs(inputs: object, max_inputs: int) -> None:
    """Embeddings ``input``: a non-empty string or a non-empty array of non-empty strings."""
    if inputs is None:
        raise ApiError(400, "'input' is required for embeddings", param="input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list):
        raise ApiError(
            400, f"'input' must be a string or an array of strings, got {_kind(inputs)}",
            param="input",
        )  # fmt: skip
    if not texts:
        raise ApiError(400, "'input' must not be an empty array", param="input")
    if len(texts) > max_inputs:
        raise ApiError(
            400, f"'input' has {len(texts)} items; at most {max_inputs} are allowed per request",
            param="input",
        )  # fmt: skip
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(400, f"input[{i}] must be a string, got {_kind(text)}", param="input")
        if not text:
            raise ApiError(400, f"input[{i}] is an empty string", param="input")


def _check_dimensions(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(
            400, f"'dimensions' must be a positive integer, got {value!r}", param="dimensions"
        )


def _check_positive_int(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be an integer, got {_kind(value)}", param=name)
    if value <= 0:
        raise ApiError(422, f"'{name}' must be greater than 0, got {value}", param=name)


def render_prompt(path: str, body: dict[str, Any]) -> str:
    """Flatten the prompt or chat messages into one string (used only as a hashing key)."""
    if path == CHAT:
        parts = []
        for message in body.get("messages") or ():
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
