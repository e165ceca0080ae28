"""Tokenizer approximation and deterministic text generation."""

from __future__ import annotations

import pytest

from sagellm_sim.tokenizer import TextGenerator, count_tokens, render_chat, tokenize


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("Hello", 1),
        ("Hello world", 2),
        ("Hello, world!", 4),
        ("internationalization", 4),  # long words split into <= 6-letter pieces
        ("12345", 2),
        ("a  b", 3),  # a run of whitespace is one piece
    ],
)
def test_counts(text: str, count: int) -> None:
    assert count_tokens(text) == count == len(tokenize(text))


def test_ids_are_stable_and_text_dependent() -> None:
    assert tokenize("the same text") == tokenize("the same text")
    assert tokenize("the same text") != tokenize("another text")


def test_prose_is_about_four_characters_per_token() -> None:
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 20
    assert 3.0 < len(text) / count_tokens(text) < 5.5


def test_generation_is_deterministic_per_seed_and_prompt() -> None:
    def words(sim_seed: int, req_seed: int | None, prompt: list[int]) -> list[str]:
        return TextGenerator(sim_seed, req_seed, prompt).next_words(20)

    assert words(0, None, [1, 2, 3]) == words(0, None, [1, 2, 3])
    assert words(0, None, [1, 2, 3]) != words(1, None, [1, 2, 3])
    assert words(0, None, [1, 2, 3]) != words(0, 5, [1, 2, 3])
    assert words(0, None, [1, 2, 3]) != words(0, None, [1, 2, 4])


def test_generated_words_retokenize_to_one_token_each() -> None:
    gen = TextGenerator(0, None, [1])
    text = "".join(gen.next_words(200))
    assert count_tokens(text) == 200
    assert 16 <= gen.natural_length < 512


def test_chat_template_includes_roles_and_generation_prompt() -> None:
    text = render_chat([("system", "be brief"), ("user", "hi")])
    assert text.index("system") < text.index("user") < text.rindex("assistant")
