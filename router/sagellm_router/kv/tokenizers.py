"""Token ids of a request as the engine computes them, for looking its blocks up in a ``KvIndex``.

- ``sim``: simulated engines (``sagellm_core.sim_tokens``): the simulator's tokenizer and its chat
  rendering, the very functions the simulator runs.
- ``hf``: vLLM engines: the model's own tokenizer and chat template, loaded with ``transformers``
  from the files the engine loads (a local directory, or a model id already in the local Hugging
  Face cache: nothing is downloaded). As vLLM 0.32 does: chat messages are rendered by
  ``apply_chat_template`` with the request's ``add_generation_prompt`` (default true),
  ``continue_final_message`` and ``chat_template_kwargs``, and tokenized without adding special
  tokens (the template carries BOS); a completions prompt is encoded with the request's
  ``add_special_tokens`` (default true). A list of text content parts becomes one string joined
  by newlines (vLLM's "string" content format, what most templates use). ``ByModel`` holds one
  per served model name, for a router in front of pools of several models.

Token-id prompts (``prompt: [1, 2, ...]``) are used as they are. A body that cannot be tokenized
(wrong shapes, a template that raises) gives ``None``: the strategy then falls back, and the
engine answers the request with its own error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sagellm_core.sim_tokens import chat_prompt, chunks, message_text, tokenize

CHAT = "/v1/chat/completions"
TOKENIZERS = ("sim", "hf")


class Tokenizer(Protocol):
    def chat(self, body: Mapping[str, Any]) -> list[int]: ...

    def text(self, text: str, body: Mapping[str, Any]) -> list[int]: ...


class SimTokenizer:
    """The simulator's tokenizer and chat rendering, with the ids of recent text chunks kept
    (``sim_tokens.chunks``: the long prefixes this strategy exists for repeat across requests,
    and a cached chunk costs a dict lookup instead of a regex pass).

    A chunk's ids are kept as a tuple of shared int objects (one per vocabulary id seen, at
    most the simulator's vocabulary): copying them into the prompt's list is a copy of
    references, where an ``array`` would box every id again on each request (3x the time)."""

    def __init__(self, max_chunks: int = 16_384) -> None:
        self._max = max_chunks
        self._ids: dict[str, tuple[int, ...]] = {}
        self._ints: dict[int, int] = {}

    def chat(self, body: Mapping[str, Any]) -> list[int]:
        return self.text(chat_prompt(body["messages"]), body)

    def text(self, text: str, body: Mapping[str, Any]) -> list[int]:
        out: list[int] = []
        known = self._ids
        for chunk in chunks(text, 512):
            ids = known.get(chunk)
            if ids is None:
                shared = self._ints.setdefault
                ids = known[chunk] = tuple(shared(i, i) for i in tokenize(chunk))
                if len(known) > self._max:
                    del known[next(iter(known))]  # the oldest chunk
            out += ids
        return out


class HfTokenizer:
    """A model's tokenizer and chat template, through ``transformers``."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer

    @classmethod
    def load(cls, path: str, revision: str | None = None) -> HfTokenizer:
        """Raises ``ValueError`` naming the problem (no transformers, files not found)."""
        try:
            import jinja2  # noqa: F401  (chat templates; without it every chat would fall back)
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ValueError(
                "tokenizer 'hf' needs transformers and jinja2: pip install "
                "'sagellm-control-plane[hf]'"
            ) from exc
        try:
            tok = AutoTokenizer.from_pretrained(path, revision=revision, local_files_only=True)
        except (OSError, ValueError) as exc:
            where = "directory" if Path(path).is_dir() else "model id (not in the local HF cache?)"
            raise ValueError(f"cannot load a tokenizer from {where} {path!r}: {exc}") from exc
        return cls(tok)

    def chat(self, body: Mapping[str, Any]) -> list[int]:
        kwargs = dict(body.get("chat_template_kwargs") or {})
        ids = self._tok.apply_chat_template(
            [_vllm_message(m) for m in body["messages"]],
            add_generation_prompt=body.get("add_generation_prompt", True),
            continue_final_message=body.get("continue_final_message", False),
            tokenize=True,
            return_dict=False,
            **kwargs,
        )
        return list(ids)

    def text(self, text: str, body: Mapping[str, Any]) -> list[int]:
        special = body.get("add_special_tokens", True)
        return list(self._tok.encode(text, add_special_tokens=bool(special)))


class ByModel:
    """One tokenizer per served model name: the request's ``model`` picks it (a model without
    one gives no tokens)."""

    def __init__(self, tokenizers: Mapping[str, Tokenizer]) -> None:
        self._by_model = dict(tokenizers)

    def chat(self, body: Mapping[str, Any]) -> list[int]:
        return self._by_model[body["model"]].chat(body)

    def text(self, text: str, body: Mapping[str, Any]) -> list[int]:
        return self._by_model[body["model"]].text(text, body)


def _vllm_message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        texts = [message_text([p]) for p in content if isinstance(p, Mapping)]
        content = "\n".join(t for t in texts if t)
    return {**message, "content": content}


def request_tokens(tok: Tokenizer, path: str, body: Mapping[str, Any]) -> list[int] | None:
    """The engine's prompt token ids of a completions/chat/embeddings ``body`` sent to ``path``."""
    try:
        if path == CHAT:
            messages = body.get("messages")
            return tok.chat(body) if isinstance(messages, list) and messages else None
        prompt = body.get("prompt", body.get("input"))
        if isinstance(prompt, list) and prompt and not _is_ids(prompt):
            prompt = prompt[0]  # batched prompts: the first one decides
        if isinstance(prompt, str):
            return tok.text(prompt, body) if prompt else None
        return list(prompt) if isinstance(prompt, list) and _is_ids(prompt) else None
    except Exception:  # whatever the tokenizer or its template raises: no tokens
        return None


def _is_ids(value: Sequence[Any]) -> bool:
    return bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
