"""Chunking a long transcript on turn boundaries, with overlap, within a token limit.

Pure Python: no database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from analysis.engine.chunking import split_transcript
from analysis.engine.tokens import count_tokens
from analysis.engine.transcripts import normalize_transcript
from tests.conftest import transcript as read


def words(text: str) -> int:
    """A tokenizer stand-in that makes the arithmetic of a test easy to follow."""
    return len(text.split())


def check_chunks(
    text: str, chunks: list[str], max_tokens: int, count: Callable[[str], int], overlap_tokens: int
) -> None:
    """Every chunk within the limit, made of whole consecutive lines, all lines covered in
    order, and each chunk starting with the end of the previous one when that end fits the overlap."""
    lines = [line for line in text.split("\n") if line.strip()]
    assert len(chunks) > 1
    end = 0  # lines covered so far
    for number, chunk in enumerate(chunks):
        assert count(chunk) <= max_tokens
        size = len(chunk.split("\n"))
        # A chunk starts at or before the end of what is covered (no gap) and goes past it.
        starts = [
            start
            for start in range(max(0, end - size + 1), end + 1)
            if "\n".join(lines[start : start + size]) == chunk
        ]
        assert starts, f"chunk {number} is not a run of consecutive lines following chunk {number - 1}"
        start = starts[-1]
        if number == 0:
            assert start == 0
        elif count(lines[end - 1]) + 1 <= overlap_tokens:
            assert start < end, f"chunk {number} does not repeat the end of chunk {number - 1}"
        end = start + size
    assert end == len(lines)


@pytest.mark.parametrize(
    "provider, model",
    [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")],
)
def test_bed015_in_chunks_of_4000_tokens(provider: str, model: str) -> None:
    text = normalize_transcript(read("Bed015.vtt"))  # 22,000 words, 1,255 turns
    count = functools.partial(count_tokens, provider=provider, model=model)

    chunks = split_transcript(text, max_tokens=4000, count=count, overlap_tokens=200)

    check_chunks(text, chunks, 4000, count, 200)
    assert chunks[0].startswith("[00:00:00] Grad B: what things to talk about .")
    # The chunks are reasonably full: the line sums leave little unused.
    assert all(count(chunk) > 3000 for chunk in chunks[:-1])


def test_overlap_is_bounded() -> None:
    text = normalize_transcript(read("ES2009b.txt"))
    count = functools.partial(count_tokens, provider="openai", model="gpt-4o")

    chunks = split_transcript(text, max_tokens=1000, count=count, overlap_tokens=150)

    check_chunks(text, chunks, 1000, count, 150)
    for previous, chunk in zip(chunks, chunks[1:]):
        before, after = previous.split("\n"), chunk.split("\n")
        shared = max(k for k in range(len(after)) if k == 0 or before[-k:] == after[:k])
        assert sum(count(line) + 1 for line in after[:shared]) <= 150


def test_a_text_that_fits_is_returned_as_is() -> None:
    text = read("TS3010a.txt")
    assert split_transcript(text, max_tokens=10_000, count=words) == [text]


def test_overlap_never_pushes_a_chunk_over_the_limit() -> None:
    # The third line nearly fills a chunk alone: no room for the overlap.
    text = "\n".join(["A: " + "x " * 40, "B: " + "y " * 40, "C: " + "z " * 95, "D: " + "w " * 10])

    chunks = split_transcript(text, max_tokens=100, count=words, overlap_tokens=50)

    assert all(words(chunk) <= 100 for chunk in chunks)
    assert chunks[1].startswith("C: ")  # "B" would have overflowed it
    assert chunks[2].startswith("D: ")  # "C" alone is over overlap_tokens: no overlap


def test_a_turn_over_the_limit_is_split_on_sentences() -> None:
    sentences = [f"Sentence number {n} has exactly seven words." for n in range(60)]
    text = "Short: turn.\nLong Speaker: " + " ".join(sentences) + "\nAfter: this."

    chunks = split_transcript(text, max_tokens=50, count=words, overlap_tokens=0)

    assert all(words(chunk) <= 50 for chunk in chunks)
    # Cut between sentences only, and nothing lost.
    body = [chunk for chunk in chunks if "Sentence" in chunk]
    assert all(chunk.rstrip().endswith(".") for chunk in body)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())


def test_a_sentence_over_the_limit_is_split_on_words() -> None:
    text = "Speaker: " + " ".join(f"word{n}" for n in range(500))

    chunks = split_transcript(text, max_tokens=64, count=words, overlap_tokens=0)

    assert all(words(chunk) <= 64 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()


def test_a_word_over_the_limit_is_cut() -> None:
    blob = "QmFzZTY0" * 2000  # 16,000 characters, no space
    count = functools.partial(count_tokens, provider="openai", model="gpt-4o")

    chunks = split_transcript(blob, max_tokens=500, count=count, overlap_tokens=0)

    assert all(count(chunk) <= 500 for chunk in chunks)
    assert "".join(chunks) == blob


def test_lines_are_counted_once_not_the_growing_chunk() -> None:
    text = normalize_transcript(read("Bed015.txt"))
    calls: list[int] = []
    base = functools.partial(count_tokens, provider="openai", model="gpt-4o")

    def count(chunk: str) -> int:
        calls.append(len(chunk))
        return base(chunk)

    chunks = split_transcript(text, max_tokens=4000, count=count)

    # One count of the whole, one per line, one check per chunk: about three
    # times the text in all, where recounting the growing chunk would be
    # hundreds of times.
    assert len(calls) <= 1 + text.count("\n") + 1 + len(chunks)
    assert sum(calls) < 4 * len(text)


def test_invalid_limit() -> None:
    with pytest.raises(ValueError):
        split_transcript("text", max_tokens=0, count=words)
