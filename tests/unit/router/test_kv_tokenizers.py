"""Tokenizing requests as the engines do: the simulator's chunked, cached tokenizer gives the
simulator's ids; the ``hf`` tokenizer renders chats with the model's template as vLLM does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagellm_core.sim_tokens import chat_tokens, chunks, tokenize
from sagellm_router.kv.tokenizers import HfTokenizer, SimTokenizer, request_tokens

TEXTY = st.text(alphabet=st.sampled_from(list("ab Z9 .\n\t  é-")), max_size=3000)


@settings(max_examples=300, deadline=None)
@given(TEXTY, st.integers(1, 64))
def test_chunks_tokenize_to_the_whole_texts_ids(text: str, size: int) -> None:
    assert "".join(chunks(text, size)) == text
    assert [i for c in chunks(text, size) for i in tokenize(c)] == tokenize(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXTY, min_size=1, max_size=4))
def test_the_cached_sim_tokenizer_gives_the_simulators_ids(texts: list[str]) -> None:
    tok = SimTokenizer(max_chunks=3)  # small: evictions happen
    for text in [*texts, *texts]:
        assert tok.text(text, {}) == tokenize(text)
        messages = [{"role": "user", "content": text}]
        assert tok.chat({"messages": messages}) == chat_tokens(messages)


ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer directory: ``SAGELLM_TINY_MODEL``, else the tiny model's tokenizer trained
    here (tools/vllm/make_tiny_model.py; nothing is downloaded)."""
    pytest.importorskip("transformers")
    given = os.environ.get("SAGELLM_TINY_MODEL")
    if given:
        return Path(given)
    sys.path.insert(0, str(ROOT / "tools" / "vllm"))
    try:
        from make_tiny_model import train_tokenizer
    finally:
        sys.path.pop(0)
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    train_tokenizer(out)
    return out


@pytest.fixture(scope="module")
def hf(tiny_dir: Path) -> HfTokenizer:
    import transformers

    hf = HfTokenizer.load(str(tiny_dir))
    hf.reference = transformers.AutoTokenizer.from_pretrained(str(tiny_dir))  # type: ignore[attr-defined]
    return hf


MESSAGES = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"},
                                         {"type": "text", "text": "world"}]}]  # fmt: skip


def test_hf_chat_is_the_models_template_with_the_generation_prompt(hf: HfTokenizer) -> None:
    ref = hf.reference  # type: ignore[attr-defined]
    flat = [MESSAGES[0], {"role": "user", "content": "hello\nworld"}]  # vLLM's string format
    text = ref.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)
    want = ref.encode(text, add_special_tokens=False)  # the template carries BOS itself
    body = {"messages": MESSAGES}
    assert request_tokens(hf, "/v1/chat/completions", body) == want
    no_prompt = {**body, "add_generation_prompt": False}
    assert request_tokens(hf, "/v1/chat/completions", no_prompt) != want


def test_hf_completions_add_special_tokens_unless_told_not_to(
    tmp_path: Path, tiny_dir: Path
) -> None:
    """With a tokenizer that adds BOS (as Llama's do): completions get it by default."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok.save(str(tmp_path / "tokenizer.json"))
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if (tiny_dir / name).exists():
            (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())
    hf = HfTokenizer.load(str(tmp_path))
    ids = request_tokens(hf, "/v1/completions", {"prompt": "hello world"})
    bare = request_tokens(
        hf, "/v1/completions", {"prompt": "hello world", "add_special_tokens": False}
    )
    assert ids is not None
    assert ids[0] == 0
    assert ids[1:] == bare
    chat = request_tokens(hf, "/v1/chat/completions", {"messages": MESSAGES})
    assert chat is not None
    assert chat[:2] != [0, 0]


def test_hf_refuses_what_it_cannot_load(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="cannot load a tokenizer from directory"):
        HfTokenizer.load(str(tmp_path))


def test_hf_tokenizers_per_served_model(hf: HfTokenizer, tiny_dir: Path) -> None:
    """``tokenizer_path`` as a map: the request's ``model`` picks the tokenizer."""
    from sagellm_router.routing.base import StrategyContext
    from sagellm_router.routing.kv_aware import KvAware

    params = {"tokenizer": "hf", "tokenizer_path": {"tiny": str(tiny_dir)}}
    strategy = KvAware.create(StrategyContext(params=params))
    body = {"model": "tiny", "prompt": "hello world"}
    assert request_tokens(strategy.tokenizer, "/v1/completions", body) == hf.text("hello world", {})
    other = {"model": "other", "prompt": "hello world"}
    assert request_tokens(strategy.tokenizer, "/v1/completions", other) is None
