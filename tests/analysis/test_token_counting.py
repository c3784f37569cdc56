"""Token counting before a request: exact for OpenAI, never below chars/4 elsewhere.

Pure Python: no database.
"""

from __future__ import annotations

import functools
import math

import bpe_openai
import pytest

from analysis.engine.tokens import (
    MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, count_tokens, preload_encodings,
)
from tests.conftest import TRANSCRIPTS

MEETINGS = ["TS3010a", "ES2009b", "IS1006b", "Bro011", "education_0", "Bed015", "covid_2"]

SAMPLES = [
    "Hello, world!",
    "日本語のテキストです。会議の要約をお願いします。",  # about one token a character
    "Привет, как дела? Это тестовое сообщение.",
    "def f(x):\n    return {'a': [1, 2, 3]}\n",
    "a",
    "   \n\n\t  ",
]


def read(name: str) -> str:
    return (TRANSCRIPTS / name).read_text(encoding="utf-8")


@functools.cache
def encoding(name: str) -> bpe_openai.Encoding:
    return bpe_openai.get_encoding(name)


def reference(text: str, name: str) -> int:
    """bpe-openai's own count, as tiktoken's len(encode_ordinary(text))."""
    return len(encoding(name).encode_ordinary(text))


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_openai_counts_are_exact(model: str, encoding: str) -> None:
    for text in [read("TS3010a.txt"), read("education_0.txt"), *SAMPLES]:
        assert count_tokens(text, provider="openai", model=model) == reference(text, encoding)


def test_long_texts_are_counted_exactly_in_pieces() -> None:
    # 341,000 characters: counted in 40,000-character pieces cut at line ends.
    text = read("Bed015.txt") * 3
    assert count_tokens(text, provider="openai", model="gpt-4o") == reference(text, "o200k_base")

    # Without line breaks the pieces are cut before a space: never fewer tokens.
    flat = text.replace("\n", " ")
    assert count_tokens(flat, provider="openai", model="gpt-4o") >= reference(flat, "o200k_base")


def test_special_token_text_is_ordinary_text() -> None:
    text = "the model printed <|endoftext|> and stopped"
    assert count_tokens(text, provider="openai", model="gpt-4o") == reference(text, "o200k_base")


def test_lone_surrogates_count_like_the_replacement_character() -> None:
    # A badly decoded upload can hold lone surrogates, which cannot be encoded as UTF-8.
    text = "caf\udce9 au lait, \ud800 twice \udfff"
    assert count_tokens(text, provider="openai", model="gpt-4o") == reference(text, "o200k_base") > 0
    assert count_tokens(text, provider="openai", model="gpt-4") == reference(text, "cl100k_base") > 0


def test_unlisted_openai_compatible_models() -> None:
    # A local server (Ollama, vLLM) running a model whose tokenizer we don't have.
    for text in [read("covid_2.txt"), read("Bed015.txt"), *SAMPLES]:
        count = count_tokens(text, provider="openai", model="llama3.1:8b")
        assert count == max(reference(text, "o200k_base"), math.ceil(len(text) / 4))


@pytest.mark.parametrize("provider", ["gemini", "anthropic", "some-new-provider"])
def test_approximations_never_count_fewer_than_chars_over_4(provider: str) -> None:
    for text in [*(read(f"{meeting}.txt") for meeting in MEETINGS), *SAMPLES]:
        count = count_tokens(text, provider=provider, model="any-model")
        assert count >= math.ceil(len(text) / 4)
        # Nor fewer than OpenAI's efficient o200k, whatever the language.
        assert count >= reference(text, "o200k_base")


def test_anthropic_is_the_more_conservative_estimate() -> None:
    text = read("ES2009b.txt")
    gemini = count_tokens(text, provider="gemini", model="gemini-2.5-flash")
    anthropic = count_tokens(text, provider="anthropic", model="claude-sonnet-4-5")

    assert anthropic > gemini > reference(text, "o200k_base")
    # An unknown provider gets the most conservative estimate.
    assert count_tokens(text, provider="mystery", model="m") == anthropic


def test_empty_text() -> None:
    for provider in ("openai", "gemini", "anthropic"):
        assert count_tokens("", provider=provider, model="gpt-4o") == 0


def test_a_long_transcript_counts_between_its_words_and_its_characters() -> None:
    # How fast it is belongs to the benchmarks (README, "Benchmarks"), not to the suite.
    preload_encodings()  # loading an encoding is a one-time cost per process
    text = "\n".join(read(f"{meeting}.txt") for meeting in ["Bed015", "covid_2", "education_0", "Bro011"])
    assert len(text.split()) > 60_000

    for provider, model in [("openai", "gpt-4o"), ("gemini", "gemini-2.5-pro"), ("anthropic", "claude-opus-4")]:
        tokens = count_tokens(text, provider=provider, model=model)
        assert len(text.split()) < tokens < len(text)
        assert count_tokens(text, provider=provider, model=model) == tokens


def test_message_overhead() -> None:
    assert 0 < MESSAGE_OVERHEAD_TOKENS == REPLY_PRIMING_TOKENS + 3 * TOKENS_PER_MESSAGE < 100


@pytest.mark.parametrize("text", ["Alice: We ship on Friday.", "会议纪要：我们周五发布。" * 50, "🙂" * 100, "x" * 5000])
@pytest.mark.parametrize("provider,model", [("openai", "gpt-4o-mini"), ("openai", "llama3"), ("gemini", "gemini-2.5-flash"),
                                            ("anthropic", "claude-haiku-4-5")])
def test_upper_bound_is_never_below_a_count(text, provider, model):
    from analysis.engine.tokens import token_upper_bound

    assert token_upper_bound(text) >= count_tokens(text, provider=provider, model=model)
